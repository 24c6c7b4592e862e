//! `dstash-benches engine`: the storage engine in-process against heed (LMDB) and
//! candystore, in pogreb-bench's shape (keys of 16–64 bytes, values of 128–512, written
//! and read in random order), at each key count of `--keys`.
//!
//! `cargo run -p dstash-benches --release -- engine [--keys 1000000,10000000] [--runs 3] [--plots DIR] [--candy-max N]`

use dstash_storage::{Store, SyncMode};

use crate::engines::*;
use crate::svg::{line_chart, Series};
use crate::table::{self, Cell, Unit};
use crate::workload::Shuffle;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only dstash's rows (for profiling).
    #[arg(long)]
    only_dstash: bool,
    /// Key counts, one run each (at least 1000).
    #[arg(long = "keys", value_delimiter = ',', default_values_t = [1_000_000u64], value_parser = crate::flags::min_u64::<1000>)]
    sizes: Vec<u64>,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Where to write one SVG chart per workload, each engine against key count.
    #[arg(long)]
    plots: Option<std::path::PathBuf>,
    /// The largest key count candystore is run at (its load slows sharply as it grows).
    #[arg(long, default_value_t = 1_000_000)]
    candy_max: u64,
}

struct Row {
    what: String,
    unit: Unit,
    dstash: Cell,
    heed: Cell,
    candy: Cell,
    target: &'static str,
}

impl Row {
    fn new(what: impl Into<String>, unit: Unit, target: &'static str) -> Self {
        Row {
            what: what.into(),
            unit,
            dstash: Cell::default(),
            heed: Cell::default(),
            candy: Cell::default(),
            target,
        }
    }
}

fn ratio(a: &Cell, b: &Cell) -> String {
    if a.0.is_empty() || b.0.is_empty() {
        "".into()
    } else {
        format!(" (×{:.2})", a.median() / b.median())
    }
}

/// The sizes of one key count's workloads.
struct Sizes {
    n: u64,
    reads: u64,
    mixed: u64,
    durable: u64,
    deletes: u64,
}

impl Sizes {
    fn of(n: u64) -> Sizes {
        Sizes {
            n,
            reads: n.min(2_000_000),
            mixed: n.min(1_000_000),
            durable: n.min(200_000),
            deletes: n / 10,
        }
    }
}

/// One key count's rows, in the order they are printed.
const LOAD: usize = 0;
const GETS: usize = 1;
const MIXED: usize = 2;
const DURABLE: usize = 3;
const DELETES: usize = 4;

fn rows_for(s: &Sizes) -> Vec<Row> {
    let n = s.n;
    vec![
        Row::new(
            format!("puts, single, no fsync, random order ({n} keys)"),
            Unit::PerSec,
            "≥ 1 M/s",
        ),
        Row::new(
            format!(
                "random gets, warm, 1 thread ({} reads of {n} keys)",
                s.reads
            ),
            Unit::PerSec,
            "≥ 1.0× heed",
        ),
        Row::new(
            format!(
                "mixed: 9 gets to 1 overwrite, random keys ({} ops over {n} keys)",
                s.mixed
            ),
            Unit::PerSec,
            "",
        ),
        Row::new(
            format!(
                "puts, batches of 1,000, fsync per batch, random order ({} new keys into {n})",
                s.durable
            ),
            Unit::PerSec,
            "≥ 3× heed",
        ),
        Row::new(
            format!(
                "deletes, single, no fsync, random order ({} of {n} keys)",
                s.deletes
            ),
            Unit::PerSec,
            "",
        ),
    ]
}

/// Switches an engine to fsync every write (`true`) or none.
type SetSync<'a, E> = &'a mut dyn FnMut(&mut E, bool);

/// Runs one key count's workloads through `e`, in one store, pushing into `col(row)`.
/// `set_sync(true)` before the durable puts, `set_sync(false)` after them; `None` when
/// the engine cannot fsync on demand (candystore), which skips the durable row.
fn workloads<E: Engine>(
    e: &mut E,
    s: &Sizes,
    group: u64,
    mut set_sync: Option<SetSync<'_, E>>,
    mut push: impl FnMut(usize, f64),
) {
    push(LOAD, puts(e, 0, &Shuffle::new(s.n, 1), group, false));
    push(GETS, gets(e, s.n, s.reads));
    push(MIXED, mixed(e, s.n, s.mixed));
    if let Some(set) = set_sync.as_mut() {
        set(e, true);
        push(
            DURABLE,
            puts(e, s.n, &Shuffle::new(s.durable, 2), 1000, true),
        );
        set(e, false);
    }
    push(DELETES, deletes(e, s.n, s.deletes, group));
}

pub fn run(a: Args) -> Result<(), String> {
    let sizes: Vec<Sizes> = a.sizes.iter().map(|&n| Sizes::of(n)).collect();
    let mut rows: Vec<Vec<Row>> = sizes.iter().map(rows_for).collect();
    let first = a.sizes[0];
    let mut extra = vec![
        Row::new(
            format!("puts, batches of 1,000, fsync per batch, ascending keys, fresh store ({first} keys)"),
            Unit::PerSec,
            "",
        ),
        Row::new("add, 1 event per call, 10k keys, no fsync", Unit::PerSec, "≥ 1 M/s"),
        Row::new("count p50, 60 s window", Unit::Nanos, ""),
        Row::new("count p99, 60 s window", Unit::Nanos, "< 5 µs"),
    ];
    for run in 0..a.runs {
        for (s, rows) in sizes.iter().zip(rows.iter_mut()) {
            eprintln!("run {}/{}, {} keys", run + 1, a.runs, s.n);
            let tmp = tempfile::tempdir_in(".").map_err(|e| format!("tempdir: {e}"))?;
            let mut d = Dstash::open(&tmp.path().join("dstash"), SyncMode::Never);
            let mut set = |d: &mut Dstash, sync: bool| d.set_sync(sync);
            workloads(&mut d, s, 10_000, Some(&mut set), |r, v| {
                rows[r].dstash.0.push(v)
            });
            drop(d);
            if a.only_dstash {
                continue;
            }
            let hdir = tmp.path().join("heed");
            std::fs::create_dir_all(&hdir).map_err(|e| e.to_string())?;
            let mut h = Heed::open(&hdir, true);
            let mut set = |h: &mut Heed, sync: bool| h.set_sync(sync);
            workloads(&mut h, s, 10_000, Some(&mut set), |r, v| {
                rows[r].heed.0.push(v)
            });
            drop(h);
            if s.n <= a.candy_max {
                let mut c = Candy::open(&tmp.path().join("candy"));
                workloads(&mut c, s, 10_000, None, |r, v| rows[r].candy.0.push(v));
            }
        }
        eprintln!("run {}/{}, ascending and counts", run + 1, a.runs);
        let tmp = tempfile::tempdir_in(".").map_err(|e| format!("tempdir: {e}"))?;
        let ascending = Shuffle::identity(first);
        {
            let s = Store::open(tmp.path().join("d-asc"), dstash_opts(SyncMode::Always))
                .map_err(|e| e.to_string())?;
            extra[0].dstash.0.push(puts(&s, 0, &ascending, 1000, true));
        }
        {
            let s = Store::open(tmp.path().join("d-add"), dstash_opts(SyncMode::Never))
                .map_err(|e| e.to_string())?;
            extra[1].dstash.0.push(dstash_add(&s, 2_000_000, 10_000));
            let (p50, p99) = dstash_count_latency(&s, 200_000, 10_000);
            extra[2].dstash.0.push(p50);
            extra[3].dstash.0.push(p99);
        }
        if !a.only_dstash {
            let dir = tmp.path().join("heed-asc");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let h = Heed::open(&dir, false);
            extra[0].heed.0.push(puts(&h, 0, &ascending, 1000, true));
        }
    }
    println!("| workload | dstash | heed (LMDB) | candystore | target |");
    println!("|---|---|---|---|---|");
    for r in rows.iter().flatten().chain(&extra) {
        println!(
            "| {} | {} | {}{} | {}{} | {} |",
            r.what,
            r.dstash.show(r.unit),
            r.heed.show(r.unit),
            ratio(&r.dstash, &r.heed),
            r.candy.show(r.unit),
            ratio(&r.dstash, &r.candy),
            r.target
        );
    }
    println!();
    for (s, rows) in sizes.iter().zip(&rows) {
        println!(
            "{}",
            table::target(
                &format!("engine random gets ÷ heed, {} keys", s.n),
                table::over(&rows[GETS].dstash, &rows[GETS].heed),
                1.0,
                "A dstash get is one index probe, one record read and a crc32 check of the record before its value is copied out; LMDB hands out a pointer into its map after a B-tree descent.",
            )
        );
        println!(
            "{}",
            table::target(
                &format!("engine batched durable puts ÷ heed, {} keys", s.n),
                table::over(&rows[DURABLE].dstash, &rows[DURABLE].heed),
                3.0,
                "Each batch of 1,000 costs one fdatasync of the segment it was appended to; this disk's fdatasync latency bounds the batches per second a single writer can commit.",
            )
        );
    }
    println!();
    if let Some(dir) = &a.plots {
        plots(dir, &sizes, &rows)?;
    }
    println!(
        "Median of {} runs (range in brackets); ×N is dstash ÷ that engine. Each key count runs in one fresh store per engine, in the order of the rows: load, gets, mixed, durable puts of new keys, deletes. Without fsync, heed commits a transaction per 10,000 writes (NO_SYNC) and, in the mixed row, per 100 operations' writes; dstash and candystore take one call per write. With fsync, heed commits a transaction per 1,000 puts and dstash calls `put_many` per 1,000 (one fdatasync each). candystore has no fsync control, so its fsync rows are n/a; it runs only up to {} keys (`--candy-max`): in a trial at 10M keys it had not finished loading after 14.5 minutes, under 11.5 K puts/s on average against 36 K/s at 1M. The ascending row is a B-tree's best case: every put lands on the tree's right edge.",
        a.runs, a.candy_max
    );
    Ok(())
}

type Column = fn(&Row) -> &Cell;

/// One chart per workload row: each engine's median against key count.
fn plots(dir: &std::path::Path, sizes: &[Sizes], rows: &[Vec<Row>]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let charts = [
        (
            LOAD,
            "puts, single, no fsync, random order",
            "engine-puts.svg",
        ),
        (GETS, "random gets, 1 thread", "engine-gets.svg"),
        (MIXED, "mixed, 9 gets to 1 overwrite", "engine-mixed.svg"),
        (
            DURABLE,
            "puts, batches of 1,000, fsync per batch",
            "engine-durable-puts.svg",
        ),
        (DELETES, "deletes, single, no fsync", "engine-deletes.svg"),
    ];
    for (row, title, file) in charts {
        let columns: [(&str, Column); 3] = [
            ("dstash", |r| &r.dstash),
            ("heed (LMDB)", |r| &r.heed),
            ("candystore", |r| &r.candy),
        ];
        let series: Vec<Series> = columns
            .iter()
            .map(|(name, cell)| Series {
                name: name.to_string(),
                points: sizes
                    .iter()
                    .zip(rows)
                    .filter(|(_, r)| !cell(&r[row]).0.is_empty())
                    .map(|(s, r)| (s.n as f64, cell(&r[row]).median()))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let svg = line_chart(
            &format!("{title} against key count"),
            "keys (log scale)",
            "operations/s",
            &series,
        );
        let path = dir.join(file);
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("![{title}](plots/{file})");
    }
    println!();
    Ok(())
}
