//! `dstash-benches all`: every side-by-side benchmark in one run, written to
//! `benches/REPORT.md` with the machine, the commit and the command of each section.
//!
//! Each section runs as a child process of this binary (a fresh heap and page-cache
//! footprint for each), and its Markdown tables go into the report as printed.
//! `--quick` runs every section small and without Redis: CI's check that none of them
//! rots. `cargo run -p dstash-benches --release -- all [--runs 3] [--quick] [--out FILE]`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Small sizes, one run, no Redis: CI's smoke run.
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/REPORT.md"))]
    out: PathBuf,
}

/// One section of the report: a title, what it compares, and the subcommand to run.
struct Section {
    title: &'static str,
    about: &'static str,
    args: Vec<String>,
}

fn sections(a: &Args) -> Vec<Section> {
    let runs = a.runs.to_string();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let with_runs = |v: &[&str]| {
        let mut v = owned(v);
        v.extend(["--runs".to_string(), runs.clone()]);
        v
    };
    let quick = a.quick;
    let pick = |full: &[&str], small: &[&str]| if quick { owned(small) } else { with_runs(full) };
    let plots = a.out.with_file_name("plots").display().to_string();
    let mut v = vec![
        Section {
            title: "Storage engine",
            about: "The engine in-process against heed (LMDB) at 1M and 10M keys and candystore at 1M, pogreb-bench's shape in random order: puts, gets, mixed, durable batched puts, deletes; and expiring counts.",
            args: {
                let mut v = pick(
                    &["engine", "--keys", "1000000,10000000"],
                    &["engine", "--keys", "20000", "--runs", "1"],
                );
                v.extend(["--plots".to_string(), plots.clone()]);
                v
            },
        },
        Section {
            title: "One node over loopback: BatchPut and BatchLookup",
            about: "100,000 keys as BatchPut and BatchLookup against Redis MSET and MGET in chunks of 1,000, and a store-less tonic echo server (the ceiling).",
            args: pick(&["node"], &["node", "--keys", "20000", "--runs", "1", "--no-redis"]),
        },
        Section {
            title: "Bulk load from a file",
            about: "1,000,000 keys from a file: the `dstash load` command into real `dstash node` processes against `redis-cli --pipe` of SET commands.",
            args: pick(&["bulk"], &["bulk", "--keys", "20000", "--runs", "1", "--no-redis"]),
        },
        Section {
            title: "Bulk load and batch lookup through the client",
            about: "1,000,000 keys loaded as `dstash load` sends them, into 3 nodes with R=2 and into 1 node; a lookup of 100,000 keys across the 3.",
            args: pick(
                &["cluster"],
                &["cluster", "--keys", "20000", "--lookups", "5000", "--runs", "1"],
            ),
        },
        Section {
            title: "Expiring counts",
            about: "Add (which answers the count) against the Redis sliding-window way, at 10,000 and 1,000,000 distinct keys.",
            args: pick(
                &["counts", "--events", "1000000"],
                &["counts", "--events", "20000", "--keys", "1000", "--runs", "1", "--no-redis"],
            ),
        },
        Section {
            title: "Unary latency",
            about: "Single Put and Lookup at 1 and 50 concurrent clients against redis-benchmark without pipelining.",
            args: pick(
                &["latency", "--requests", "20000"],
                &["latency", "--requests", "500", "--runs", "1", "--no-redis"],
            ),
        },
        Section {
            title: "Scaling with key count",
            about: "The engine's durable puts, memory, open time after `kill -9` and gets as keys grow, with plots.",
            args: {
                let mut v = pick(
                    &["scaling", "--keys", "1000000,10000000,50000000"],
                    &["scaling", "--keys", "10000,20000", "--runs", "1"],
                );
                v.extend(["--plots".to_string(), plots.clone()]);
                v
            },
        },
        Section {
            title: "Operations: space, bulk deletes, backup",
            about: "The same 300,000 keys loaded six times into one node, its data files against its live bytes over time; `dstash del --from` beside `dstash load`; `dstash backup` and `dstash restore` against the disk's sequential write rate.",
            args: {
                let mut v = pick(
                    &["ops"],
                    &["ops", "--keys", "20000", "--loads", "3", "--settle", "5", "--runs", "1"],
                );
                v.extend(["--plots".to_string(), plots.clone()]);
                v
            },
        },
        Section {
            title: "Larger than RAM",
            about: "One node in a memory cgroup 1/16 of its data, loaded, then read at random with every value checked.",
            args: if quick {
                owned(&["larger-than-ram", "--data-mib", "64", "--limit-mib", "32", "--lookups", "2000"])
            } else {
                owned(&["larger-than-ram", "--data-mib", "4096", "--limit-mib", "256"])
            },
        },
    ];
    // redis-benchmark drives both sides, so the quick form (no Redis) leaves it out.
    if !quick {
        v.push(Section {
            title: "Redis protocol",
            about: "redis-benchmark against dstash's Redis front end and against Redis, pipelined and not, and counting events against the ZSET window script.",
            args: with_runs(&["resp"]),
        });
    }
    v
}

fn csv_field(s: &str) -> String {
    let s = s.trim().replace('`', "");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Takes the `<!--raw UNIT V...-->` comments out of a section's Markdown tables and
/// appends each run's value to `csv`, named by the section, the row (its cells that
/// hold no figure) and the column header. Returns the Markdown without them.
fn raw_values(section: &str, markdown: &str, csv: &mut String) -> String {
    let mut header: Vec<String> = Vec::new();
    let mut previous = "";
    let mut out = String::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let is_row = line.starts_with('|');
        if line.starts_with("|---") {
            // The header is the row above the separator.
            header = previous
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
        }
        previous = line;
        let mut clean = String::new();
        let mut rest = line;
        while let Some(start) = rest.find("<!--raw ") {
            clean += &rest[..start];
            let end = rest[start..]
                .find("-->")
                .map_or(rest.len(), |e| start + e + 3);
            rest = &rest[end..];
        }
        clean += rest;
        if is_row && line.contains("<!--raw") {
            let label: Vec<String> = cells
                .iter()
                .filter(|c| !c.contains("<!--raw"))
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty() && c != "n/a")
                .collect();
            for (col, cell) in cells.iter().enumerate() {
                for part in cell.split("<!--raw ").skip(1) {
                    let body = part.split("-->").next().unwrap_or("");
                    let mut words = body.split_whitespace();
                    let unit = words.next().unwrap_or("");
                    for (run, v) in words.enumerate() {
                        *csv += &format!(
                            "{},{},{},{unit},{},{v}\n",
                            csv_field(section),
                            csv_field(&label.join(" / ")),
                            csv_field(header.get(col).map_or("", String::as_str)),
                            run + 1
                        );
                    }
                }
            }
        }
        out += &clean;
        out.push('\n');
    }
    out
}

/// A section's target lines (see [`crate::table::target`]), each naming the section.
fn target_lines(section: &str, text: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix(crate::table::TARGET))
        .map(|rest| format!("{}({section}) {rest}\n", crate::table::TARGET))
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let dirty = !command_out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!(
        "| | |\n|---|---|\n| cores | {cores} ({cpu}) |\n| memory | {:.1} GiB |\n| kernel | {} |\n| commit | `{}`{} |\n| date | {} |\n| rustc | {} |\n| redis-server | {} |",
        mem_kb as f64 / (1 << 20) as f64,
        read("/proc/sys/kernel/osrelease").trim(),
        command_out("git", &["rev-parse", "HEAD"]),
        if dirty { " with uncommitted changes" } else { "" },
        command_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command_out("rustc", &["--version"]),
        command_out("redis-server", &["--version"]),
    )
}

pub fn run(a: Args) -> Result<(), String> {
    if !a.quick {
        // Installed once, before any timing starts.
        crate::redis_side::find_or_install()?;
    }
    // The bulk section runs the `dstash` binary itself.
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "-p", "dstash"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cargo build -p dstash: {e}"))?;
    if !built.success() {
        return Err("cargo build --release -p dstash failed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut body = String::new();
    let mut csv = String::from("section,row,column,unit,run,value\n");
    let mut targets = String::new();
    for s in sections(&a) {
        let shown = s.args.join(" ");
        eprintln!("== {}: dstash-benches {shown}", s.title);
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(&s.args)
            .env(crate::table::RAW, "1")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", s.title))?;
        let raw = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("{} failed ({}):\n{raw}", s.title, out.status));
        }
        let text = raw_values(s.title, &raw, &mut csv);
        targets += &target_lines(s.title, &text);
        body += &format!(
            "## {}\n\n{}\n\n`cargo run -p dstash-benches --release -- {shown}` ({:.0} s)\n\n{}\n\n",
            s.title,
            s.about,
            t.elapsed().as_secs_f64(),
            text.trim()
        );
    }
    let how = if a.quick {
        "`cargo run -p dstash-benches --release -- all --quick` (small sizes, one run, no Redis: a check that the code runs, not figures)".to_string()
    } else {
        format!(
            "`cargo run -p dstash-benches --release -- all --runs {}`",
            a.runs
        )
    };
    let report = format!(
        "# dstash benchmark report\n\nMade by {how} in {:.0} s. Every section below names the command that reproduces it alone. Ratios are measured in the same run, on the machine below; runs on this kind of VM vary by up to ±30 % from minute to minute, so compare within a run.\n\n{}\n\n## Targets\n\nEach target of the benchmark issue, as its section below measured it: met, or missed by how much and what limits it.\n\n{targets}\n{body}",
        started.elapsed().as_secs_f64(),
        machine()
    );
    std::fs::write(&a.out, report).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let csv_path = a.out.with_extension("csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    eprintln!("wrote {} and {}", a.out.display(), csv_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_become_csv_rows_and_leave_the_markdown() {
        let md = "| workload | dstash | heed |\n|---|---|---|\n| gets | 1 M/s<!--raw per_second 900 1100--> | n/a |\nfooter\n";
        let mut csv = String::new();
        let clean = raw_values("Engine", md, &mut csv);
        assert_eq!(
            clean,
            "| workload | dstash | heed |\n|---|---|---|\n| gets | 1 M/s | n/a |\nfooter\n"
        );
        assert_eq!(
            csv,
            "Engine,gets,dstash,per_second,1,900\nEngine,gets,dstash,per_second,2,1100\n"
        );
    }

    #[test]
    fn target_lines_are_gathered_with_their_section() {
        let t = crate::table::TARGET;
        let text = format!("| a | b |\n{t}gets ÷ heed: ×2.00: **met**.\nfooter\n{t}puts: ×1.00\n");
        assert_eq!(
            target_lines("Engine", &text),
            format!("{t}(Engine) gets ÷ heed: ×2.00: **met**.\n{t}(Engine) puts: ×1.00\n")
        );
        assert_eq!(target_lines("Engine", "no targets here\n"), "");
    }
}
