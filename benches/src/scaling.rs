//! `dstash-benches scaling`: the engine as keys grow (1M, 10M, 50M by default): durable
//! batched puts/s, RssAnon once loaded, open time after `kill -9`, RssAnon after that
//! open, and random gets/s right after it. Each point loads a fresh store in a child
//! (`--sync always`, batches of 1,000), kills it, and reopens it in another child.
//! Writes one SVG line chart per figure into `--plots DIR` (benches/plots by default).
//! `cargo run -p dstash-benches --release -- scaling --keys 1000000,10000000,50000000 --runs 3`

use std::path::PathBuf;

use dstash_storage::SyncMode;

use crate::svg::{line_chart, Series};
use crate::table::{self, Cell, Unit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key counts, one point each.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 50_000_000])]
    keys: Vec<u64>,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Where the SVG charts go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/plots"))]
    plots: PathBuf,
}

/// The figures of one point, as (name, unit, y label, file).
const FIGURES: [(&str, Unit, &str, &str); 5] = [
    (
        "durable batched puts",
        Unit::PerSec,
        "puts/s",
        "scaling-puts.svg",
    ),
    ("RssAnon once loaded", Unit::MiB, "MiB", "scaling-rss.svg"),
    ("open after kill -9", Unit::Millis, "ms", "scaling-open.svg"),
    (
        "RssAnon after that open",
        Unit::MiB,
        "MiB",
        "scaling-rss-open.svg",
    ),
    (
        "random gets after that open",
        Unit::PerSec,
        "gets/s",
        "scaling-gets.svg",
    ),
];

pub fn run(a: Args) -> Result<(), String> {
    // cells[point][figure]
    let mut cells: Vec<[Cell; 5]> = a.keys.iter().map(|_| Default::default()).collect();
    for run in 0..a.runs {
        for (i, &n) in a.keys.iter().enumerate() {
            eprintln!("scaling: {n} keys, run {}/{}", run + 1, a.runs);
            let p = crate::kill::load_kill_reopen(n, SyncMode::Always);
            for (c, v) in
                cells[i]
                    .iter_mut()
                    .zip([p.puts, p.rss_loaded, p.open_ms, p.rss_open, p.gets])
            {
                c.0.push(v);
            }
        }
    }
    print!("| keys |");
    for (name, ..) in FIGURES {
        print!(" {name} |");
    }
    println!();
    println!("|---|---|---|---|---|---|");
    for (i, &n) in a.keys.iter().enumerate() {
        print!("| {n} |");
        for (f, (_, unit, ..)) in FIGURES.iter().enumerate() {
            print!(" {} |", cells[i][f].show(*unit));
        }
        println!();
    }
    std::fs::create_dir_all(&a.plots).map_err(|e| format!("{}: {e}", a.plots.display()))?;
    println!();
    for (f, (name, unit, y_label, file)) in FIGURES.iter().enumerate() {
        let scale = match unit {
            Unit::MiB => 1.0 / (1 << 20) as f64,
            _ => 1.0,
        };
        let series = Series {
            name: "dstash".into(),
            points: a
                .keys
                .iter()
                .enumerate()
                .map(|(i, &n)| (n as f64, cells[i][f].median() * scale))
                .collect(),
        };
        let svg = line_chart(
            &format!("{name} against key count"),
            "keys (log scale)",
            y_label,
            &[series],
        );
        let path = a.plots.join(file);
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("![{name}](plots/{file})");
    }
    println!();
    for (f, what) in [
        (1, "RssAnon once loaded"),
        (3, "RssAnon right after reopening"),
    ] {
        if let Some(line) = rss_flat(&a.keys, &cells, f, what) {
            println!("{line}");
        }
    }
    println!();
    println!(
        "Median of {} runs (range in brackets). Keys of 16 bytes, values of 100 bytes, loaded with fsync per batch of 1,000; the loader is killed with SIGKILL and the store reopened in a fresh process. The plots show the medians.",
        a.runs
    );
    Ok(())
}

/// The target line for anonymous memory as keys grow 1M → 10M, if both were measured:
/// flat means the 10M figure is at most 1.5× the 1M one, or within 2 MiB of it.
fn rss_flat(keys: &[u64], cells: &[[Cell; 5]], figure: usize, what: &str) -> Option<String> {
    let at = |n: u64| {
        keys.iter()
            .position(|&k| k == n)
            .map(|i| cells[i][figure].median())
    };
    let (small, large) = (at(1_000_000)?, at(10_000_000)?);
    let flat = large <= small * 1.5 || large - small <= (2 << 20) as f64;
    Some(format!(
        "{}{what}, flat as keys grow 1M → 10M: {} → {}: **{}**.",
        table::TARGET,
        Unit::MiB.fmt(small),
        Unit::MiB.fmt(large),
        if flat { "met" } else { "missed" }
    ))
}
