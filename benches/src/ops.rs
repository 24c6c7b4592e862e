//! `dstash-benches ops`: what operators run, on real `dstash node` processes.
//!
//! - Space over time: the same keys loaded again and again (`dstash load`), the
//!   namespace's data files sampled as it goes and for a while after, against its live
//!   bytes; with each load's rate, so a stall of foreground writes by compaction would
//!   show. A plot goes to `--plots`.
//! - Bulk deletes: `dstash del --from FILE` (BatchDelete) beside `dstash load` of the
//!   same keys (BatchPut), into 1 node and into 3 nodes with R=2.
//! - Backup and restore: `dstash backup` of the namespace and `dstash restore` into a
//!   fresh node, in MB/s of backup file, beside this disk's sequential write rate
//!   (1 GiB in 1 MiB writes, then fsync).
//!
//! Needs the `dstash` binary beside this one (`cargo build --release -p dstash`).
//! `cargo run -p dstash-benches --release -- ops --keys 300000 --runs 3`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bulk::{dstash_bin, start_nodes as start};
use crate::svg::{line_chart_linear, Series};
use crate::table::{Cell, Unit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 300_000)]
    keys: u64,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Loads of the same keys in the space run.
    #[arg(long, default_value_t = 6)]
    loads: usize,
    /// Seconds the space run samples after the last load.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// Where the space plot goes.
    #[arg(long)]
    plots: Option<PathBuf>,
}

/// 16-byte keys and 200-byte values, tagged so each load overwrites every value.
fn write_tsv(path: &Path, n: u64, tag: u8) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let value = vec![b'a' + tag % 26; 200];
    for i in 0..n {
        write!(f, "key-{i:012}\t")?;
        f.write_all(&value)?;
        f.write_all(b"\n")?;
    }
    f.flush()
}

fn write_keys(path: &Path, n: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(f, "key-{i:012}")?;
    }
    f.flush()
}

/// Live bytes of `n` such keys: record header, key, value.
fn live_bytes(n: u64) -> u64 {
    n * (32 + 16 + 200)
}

fn segment_bytes(data: &Path) -> u64 {
    let kv = data.join("ns").join("bench").join("kv");
    std::fs::read_dir(kv)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `dstash ARGS` against `nodes` at R=`replicas`: seconds taken, once it exits 0.
fn timed(bin: &Path, nodes: &str, replicas: usize, args: &[&str]) -> Result<f64, String> {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["--nodes", nodes, "--replicas", &replicas.to_string()])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("dstash {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dstash {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The space run: (seconds, data-file MiB) samples, each load's keys/s, and the
/// largest and the last ratio of data files to live bytes.
struct Space {
    samples: Vec<(f64, f64)>,
    rates: Vec<f64>,
    peak: f64,
    settled: f64,
    settled_after: Option<f64>,
}

fn space(bin: &Path, a: &Args, tmp: &Path) -> Result<Space, String> {
    let (_nodes, spec) = start(bin, &tmp.join("space"), 1)?;
    let data = tmp.join("space").join("n0");
    let live = live_bytes(a.keys) as f64;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let t0 = Instant::now();
    let mut s = Space {
        samples: Vec::new(),
        rates: Vec::new(),
        peak: 0.0,
        settled: 0.0,
        settled_after: None,
    };
    for round in 0..a.loads {
        let file = tmp.join("round.tsv");
        write_tsv(&file, a.keys, round as u8).map_err(|e| e.to_string())?;
        let secs = timed(bin, &spec, 1, &["load", "bench", file.to_str().unwrap()])?;
        s.rates.push(a.keys as f64 / secs);
        let used = segment_bytes(&data);
        s.samples.push((t0.elapsed().as_secs_f64(), mib(used)));
        s.peak = s.peak.max(used as f64 / live);
    }
    let loaded = Instant::now();
    while loaded.elapsed() < Duration::from_secs(a.settle) {
        std::thread::sleep(Duration::from_millis(500));
        let used = segment_bytes(&data);
        s.samples.push((t0.elapsed().as_secs_f64(), mib(used)));
        s.peak = s.peak.max(used as f64 / live);
        s.settled = used as f64 / live;
        if s.settled <= 2.0 && s.settled_after.is_none() {
            s.settled_after = Some(loaded.elapsed().as_secs_f64());
        }
    }
    Ok(s)
}

/// BatchPut and BatchDelete of the same keys into `n` fresh nodes: keys/s of each.
fn put_and_delete(
    bin: &Path,
    tmp: &Path,
    a: &Args,
    n: usize,
    r: usize,
) -> Result<(f64, f64), String> {
    let dir = tempfile::tempdir_in(tmp).map_err(|e| e.to_string())?;
    let (_nodes, spec) = start(bin, dir.path(), n)?;
    let (tsv, keys) = (tmp.join("put.tsv"), tmp.join("keys.txt"));
    let load = timed(bin, &spec, r, &["load", "bench", tsv.to_str().unwrap()])?;
    let del = timed(
        bin,
        &spec,
        r,
        &["del", "bench", "--from", keys.to_str().unwrap()],
    )?;
    Ok((a.keys as f64 / load, a.keys as f64 / del))
}

/// `dstash backup` of a loaded node and `dstash restore` into a fresh one: MB/s of
/// the backup file each way.
fn backup_restore(bin: &Path, tmp: &Path) -> Result<(f64, f64, u64), String> {
    let dir = tempfile::tempdir_in(tmp).map_err(|e| e.to_string())?;
    let (_from, spec) = start(bin, &dir.path().join("from"), 1)?;
    let tsv = tmp.join("put.tsv");
    timed(bin, &spec, 1, &["load", "bench", tsv.to_str().unwrap()])?;
    let file = dir.path().join("all.dsb");
    let back = timed(bin, &spec, 1, &["backup", "--out", file.to_str().unwrap()])?;
    let bytes = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
    let (_to, spec) = start(bin, &dir.path().join("to"), 1)?;
    let restore = timed(bin, &spec, 1, &["restore", file.to_str().unwrap()])?;
    let mb = bytes as f64 / (1 << 20) as f64;
    Ok((mb / back, mb / restore, bytes))
}

/// This disk's sequential write rate: 1 GiB in 1 MiB writes, then fsync; MB/s.
fn disk_write_rate(tmp: &Path) -> Result<f64, String> {
    let path = tmp.join("seq.bin");
    let block = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    for _ in 0..1024 {
        f.write_all(&block).map_err(|e| e.to_string())?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    let rate = 1024.0 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

pub fn run(a: Args) -> Result<(), String> {
    let bin = dstash_bin()?;
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    write_tsv(&tmp.path().join("put.tsv"), a.keys, 0).map_err(|e| e.to_string())?;
    write_keys(&tmp.path().join("keys.txt"), a.keys).map_err(|e| e.to_string())?;
    let (mut put1, mut del1, mut put3, mut del3) = Default::default();
    let (mut back, mut restore, mut disk) = (Cell::default(), Cell::default(), Cell::default());
    let mut backup_bytes = 0;
    let space = space(&bin, &a, tmp.path())?;
    for run in 0..a.runs {
        eprintln!("ops: run {}/{}", run + 1, a.runs);
        let (p, d) = put_and_delete(&bin, tmp.path(), &a, 1, 1)?;
        push(&mut put1, &mut del1, p, d);
        let (p, d) = put_and_delete(&bin, tmp.path(), &a, 3, 2)?;
        push(&mut put3, &mut del3, p, d);
        let (b, r, bytes) = backup_restore(&bin, tmp.path())?;
        back.0.push(b);
        restore.0.push(r);
        backup_bytes = bytes;
        disk.0.push(disk_write_rate(tmp.path())?);
    }
    print_space(&a, &space)?;
    print_deletes(&a, [&put1, &del1, &put3, &del3]);
    print_backup(&a, &back, &restore, &disk, backup_bytes);
    Ok(())
}

fn push(put: &mut Cell, del: &mut Cell, p: f64, d: f64) {
    put.0.push(p);
    del.0.push(d);
}

fn print_space(a: &Args, s: &Space) -> Result<(), String> {
    let live_mib = live_bytes(a.keys) as f64 / (1 << 20) as f64;
    println!(
        "| {} loads of the same {} keys (live {live_mib:.1} MiB) into 1 node | value |",
        a.loads, a.keys
    );
    println!("|---|---|");
    let rates: Vec<String> = s.rates.iter().map(|r| Unit::PerSec.fmt(*r)).collect();
    println!(
        "| `dstash load` rate, load by load (compaction runs from the second on) | {} |",
        rates.join(", ")
    );
    println!("| data files ÷ live bytes, largest seen | ×{:.2} |", s.peak);
    println!(
        "| data files ÷ live bytes, {} s after the last load | ×{:.2} |",
        a.settle, s.settled
    );
    println!(
        "| seconds after the last load until at most ×2 | {} |",
        s.settled_after
            .map_or("not within the run".into(), |t| format!("{t:.1} s"))
    );
    println!();
    if let Some(dir) = &a.plots {
        let live: Vec<(f64, f64)> = s.samples.iter().map(|(t, _)| (*t, live_mib)).collect();
        let twice: Vec<(f64, f64)> = live.iter().map(|(t, l)| (*t, 2.0 * l)).collect();
        let series = [
            Series {
                name: "data files".into(),
                points: s.samples.clone(),
            },
            Series {
                name: "live bytes".into(),
                points: live,
            },
            Series {
                name: "2 × live".into(),
                points: twice,
            },
        ];
        let svg = line_chart_linear(
            "Space over time under repeated overwrites",
            "seconds",
            "MiB",
            &series,
        );
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let path = dir.join("ops-space.svg");
        std::fs::write(&path, svg).map_err(|e| e.to_string())?;
        println!("![space over time](plots/ops-space.svg)");
        println!();
    }
    Ok(())
}

fn print_deletes(a: &Args, [put1, del1, put3, del3]: [&Cell; 4]) {
    println!("| {} keys | BatchPut (`dstash load`) keys/s | BatchDelete (`dstash del --from`) keys/s | delete ÷ put |", a.keys);
    println!("|---|---|---|---|");
    for (what, p, d) in [
        ("1 node, R=1", put1, del1),
        ("3 nodes, R=2 W=2", put3, del3),
    ] {
        println!(
            "| {what} | {} | {} | ×{:.2} |",
            p.show(Unit::PerSec),
            d.show(Unit::PerSec),
            d.median() / p.median()
        );
    }
    println!();
}

fn print_backup(a: &Args, back: &Cell, restore: &Cell, disk: &Cell, bytes: u64) {
    println!(
        "| backup of {} keys ({:.1} MiB file) | MB/s | ÷ disk sequential write |",
        a.keys,
        bytes as f64 / (1 << 20) as f64
    );
    println!("|---|---|---|");
    for (what, c) in [
        ("`dstash backup` (serving node to file)", back),
        ("`dstash restore` (file into a fresh node)", restore),
    ] {
        println!(
            "| {what} | {:.1} | ×{:.2} |",
            c.median(),
            c.median() / disk.median()
        );
    }
    println!(
        "| disk sequential write, 1 GiB, then fsync | {:.1} | |",
        disk.median()
    );
    println!();
    println!(
        "Median of {} runs. Keys of 16 bytes, values of 200 bytes; every node a `dstash node` process with default settings (fsync per batch), sharing this machine's 2 cores with the command.",
        a.runs
    );
}
