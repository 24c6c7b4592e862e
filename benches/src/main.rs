//! dstash side by side with what users would pick instead, each printed as a Markdown
//! table with ratios; `all` runs every one and writes `benches/REPORT.md` ([`all`]):
//!
//! - `engine`: the storage engine against heed (LMDB) and candystore, pogreb-bench's shape;
//! - `node`: one node over loopback against Redis MSET/MGET and a store-less tonic echo
//!   server ([`loopback`]);
//! - `cluster`: the client's replicated bulk load and batch lookup over local nodes
//!   ([`cluster`]);
//! - `soak`: many concurrent streams of every kind against one node, checked answer by
//!   answer, with memory over time and latency quantiles ([`soak`]);
//! - `larger-than-ram`: one node in a memory cgroup far smaller than its data, loaded
//!   and read at random ([`bigger`]);
//! - `bulk`: `dstash load` from a file into real nodes against `redis-cli --pipe`
//!   ([`bulk`]);
//! - `scaling`: the engine's puts, gets, memory and open time as keys grow, with plots
//!   ([`scaling`]);
//! - `counts`: expiring counts against Redis's ZSET sliding window ([`counts`]);
//! - `latency`: unary Put and Lookup against redis-benchmark ([`latency`]).
//!
//! ```text
//! cargo run -p dstash-benches --release -- all [--runs R] [--quick]
//! cargo run -p dstash-benches --release -- engine [--keys N] [--runs R] [--kill-keys A,B]
//! cargo run -p dstash-benches --release -- node [--keys N] [--runs R] [--batch B]
//! cargo run -p dstash-benches --release -- cluster [--keys N] [--lookups N] [--runs R]
//! cargo run -p dstash-benches --release -- soak [--streams N] [--seconds S]
//! cargo run -p dstash-benches --release -- larger-than-ram [--data-mib M] [--limit-mib M]
//! ```

mod all;
mod bigger;
mod bulk;
mod cluster;
mod counts;
mod echo;
mod engines;
mod hist;
mod latency;
mod loopback;
mod redis_side;
mod scaling;
mod soak;
mod svg;
mod table;
mod workload;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use dstash_storage::{Store, SyncMode};

use engines::*;
use table::{Cell, Unit};

struct Args {
    /// Run only dstash's rows (for profiling).
    only_dstash: bool,
    keys: u64,
    runs: usize,
    kill_keys: Vec<u64>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        only_dstash: false,
        keys: 1_000_000,
        runs: 3,
        kill_keys: Vec::new(),
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--keys" => a.keys = val()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--runs" => a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--only-dstash" => a.only_dstash = true,
            "--kill-keys" => a.kill_keys = table::list(&flag, &val()?)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.kill_keys.is_empty() {
        a.kill_keys = vec![a.keys];
    }
    Ok(a)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let result = match cmd.as_str() {
        "all" => all::parse(args).and_then(all::run),
        "engine" => parse(args).map(engine),
        "node" => loopback::parse(args).and_then(loopback::run),
        "cluster" => cluster::parse(args).and_then(cluster::run),
        "soak" => soak::parse(args).and_then(soak::run),
        "larger-than-ram" => bigger::parse(args).and_then(bigger::run),
        "counts" => counts::parse(args).and_then(counts::run),
        "bulk" => bulk::parse(args).and_then(bulk::run),
        "scaling" => scaling::parse(args).and_then(scaling::run),
        "latency" => latency::parse(args).and_then(latency::run),
        "serve-node" => loopback::child_serve_node(args),
        "serve-echo" => loopback::child_serve_echo(),
        "kill-load" => child_load(args),
        "reopen" => child_reopen(args),
        _ => Err(
            "usage: dstash-benches all [--runs R] [--quick] [--out FILE]\n       dstash-benches engine [--keys N] [--runs R] [--kill-keys A,B] [--only-dstash]\n       dstash-benches node [--keys N] [--runs R] [--batch B] [--no-redis] [--node ADDR]\n       dstash-benches cluster [--keys N] [--lookups N] [--runs R]\n       dstash-benches soak [--streams N] [--seconds S] [--batch B] [--keys N] [--connections C]\n       dstash-benches larger-than-ram [--data-mib M] [--limit-mib M] [--lookups N] [--parallel P]\n       dstash-benches bulk [--keys N] [--runs R] [--no-redis]\n       dstash-benches scaling [--keys A,B,C] [--runs R] [--plots DIR]\n       dstash-benches counts [--events N] [--keys K1,K2] [--runs R] [--no-redis]\n       dstash-benches latency [--requests N] [--clients C1,C2] [--runs R] [--no-redis]"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
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

fn engine(a: Args) {
    let n = a.keys;
    let reads = n.min(2_000_000);
    let mut rows = vec![
        Row::new(
            format!("puts, single, no fsync ({n} keys)"),
            Unit::PerSec,
            "≥ 1 M/s",
        ),
        Row::new(
            format!("puts, batches of 1,000, fsync per batch ({n} keys)"),
            Unit::PerSec,
            "≥ 500 K/s",
        ),
        Row::new(
            format!("random gets, warm, 1 thread ({reads} reads)"),
            Unit::PerSec,
            "≥ 2 M/s",
        ),
        Row::new(
            "add, 1 event per call, 10k keys, no fsync".to_string(),
            Unit::PerSec,
            "≥ 1 M/s",
        ),
        Row::new("count p50, 60 s window".to_string(), Unit::Nanos, ""),
        Row::new("count p99, 60 s window".to_string(), Unit::Nanos, "< 5 µs"),
    ];
    for run in 0..a.runs {
        eprintln!("run {}/{}", run + 1, a.runs);
        let tmp = tempfile::tempdir_in(".").expect("tempdir");
        {
            let s = Store::open(tmp.path().join("d-never"), dstash_opts(SyncMode::Never))
                .expect("open");
            rows[0].dstash.0.push(dstash_put_single(&s, n));
            rows[2].dstash.0.push(dstash_get_random(&s, n, reads));
        }
        {
            let s = Store::open(tmp.path().join("d-always"), dstash_opts(SyncMode::Always))
                .expect("open");
            rows[1].dstash.0.push(dstash_put_batched(&s, n, 1000));
        }
        {
            let s =
                Store::open(tmp.path().join("d-add"), dstash_opts(SyncMode::Never)).expect("open");
            rows[3].dstash.0.push(dstash_add(&s, 2_000_000, 10_000));
            let (p50, p99) = dstash_count_latency(&s, 200_000, 10_000);
            rows[4].dstash.0.push(p50);
            rows[5].dstash.0.push(p99);
        }
        if a.only_dstash {
            continue;
        }
        {
            let dir = tmp.path().join("heed-nosync");
            std::fs::create_dir_all(&dir).unwrap();
            let h = Heed::open(&dir, true);
            rows[0].heed.0.push(h.put(n, 10_000));
            rows[2].heed.0.push(h.get_random(n, reads));
        }
        {
            let dir = tmp.path().join("heed-sync");
            std::fs::create_dir_all(&dir).unwrap();
            rows[1].heed.0.push(Heed::open(&dir, false).put(n, 1000));
        }
        {
            let c = Candy::open(&tmp.path().join("candy"));
            rows[0].candy.0.push(c.put(n));
            rows[2].candy.0.push(c.get_random(n, reads));
        }
    }
    for &k in &a.kill_keys {
        let (open_ms, rss, gets) = open_after_kill(k);
        let mut add = |what: String, unit, target, value| {
            let mut r = Row::new(what, unit, target);
            r.dstash.0.push(value);
            rows.push(r);
        };
        add(
            format!("open after kill -9 ({k} keys)"),
            Unit::Millis,
            "< 1 s at 10M",
            open_ms,
        );
        add(
            format!("RssAnon after open ({k} keys)"),
            Unit::MiB,
            "< 32 MiB, flat",
            rss,
        );
        add(
            format!("random gets right after that open ({k} keys)"),
            Unit::PerSec,
            "",
            gets,
        );
    }
    println!("| workload | dstash | heed (LMDB) | candystore | target |");
    println!("|---|---|---|---|---|");
    for r in &rows {
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
    println!("Median of {} runs (range in brackets); ×N is dstash ÷ that engine. heed writes in transactions of 10,000 (no fsync row, NO_SYNC) or 1,000 (fsync row); candystore has no fsync control, so its fsync row is n/a.", a.runs);
}

/// Loads `n` keys in a child, kills it with SIGKILL, then opens the store in a fresh child.
/// Returns (open ms, RssAnon bytes after open, gets/s right after).
fn open_after_kill(n: u64) -> (f64, f64, f64) {
    let p = load_kill_reopen(n, SyncMode::Never);
    (p.open_ms, p.rss_open, p.gets)
}

/// What one key count costs: a load in batches of 1,000, then `kill -9`, then a reopen.
pub struct ScalePoint {
    /// Puts/s of the load.
    pub puts: f64,
    /// RssAnon of the loader once loaded, in bytes.
    pub rss_loaded: f64,
    pub open_ms: f64,
    /// RssAnon right after the reopen, in bytes.
    pub rss_open: f64,
    /// Random gets/s right after the reopen.
    pub gets: f64,
}

/// Loads `n` keys in a child under `sync`, kills it, and reopens the store in another.
pub fn load_kill_reopen(n: u64, sync: SyncMode) -> ScalePoint {
    let exe = std::env::current_exe().expect("exe");
    let tmp = tempfile::tempdir_in(".").expect("tempdir");
    let dir = tmp.path().join("kill");
    let mode = if matches!(sync, SyncMode::Always) {
        "always"
    } else {
        "never"
    };
    let mut child = Command::new(&exe)
        .args(["kill-load", dir.to_str().unwrap(), &n.to_string(), mode])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loader");
    let out = child.stdout.take().unwrap();
    let loaded = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("LOADED"))
        .expect("loader failed");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let out = Command::new(&exe)
        .args(["reopen", dir.to_str().unwrap(), &n.to_string()])
        .output()
        .expect("spawn reopen");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + " " + &loaded;
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("reopen printed no {name}: {text}"))
    };
    ScalePoint {
        puts: field("puts_per_s="),
        rss_loaded: field("loaded_rss_anon="),
        open_ms: field("open_ms="),
        rss_open: field("rss_anon="),
        gets: field("gets_per_s="),
    }
}

/// A child's arguments: the data directory and the key count.
fn dir_and_count(args: &mut impl Iterator<Item = String>) -> Result<(String, u64), String> {
    let dir = args.next().ok_or("missing data directory")?;
    let n = args.next().ok_or("missing key count")?;
    Ok((dir, n.parse().map_err(|e| format!("key count {n:?}: {e}"))?))
}

/// Child: `kill-load DIR N [always|never]` loads N keys in batches of 1,000, prints
/// `LOADED puts_per_s=.. loaded_rss_anon=..`, and waits to be killed.
fn child_load(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (dir, n) = dir_and_count(&mut args)?;
    let sync = match args.next().as_deref() {
        Some("always") => SyncMode::Always,
        None | Some("never") => SyncMode::Never,
        Some(other) => return Err(format!("kill-load: sync {other:?}")),
    };
    let s = Store::open(&dir, dstash_opts(sync)).map_err(|e| e.to_string())?;
    let rate = dstash_put_batched(&s, n, 1000);
    println!(
        "LOADED puts_per_s={rate:.0} loaded_rss_anon={}",
        workload::rss_anon()
    );
    // Wait to be killed: nothing is closed cleanly.
    loop {
        std::thread::park();
    }
}

fn child_reopen(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (dir, n) = dir_and_count(&mut args)?;
    let t = Instant::now();
    let s =
        Store::open(Path::new(&dir), dstash_opts(SyncMode::Never)).map_err(|e| e.to_string())?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss = workload::rss_anon();
    let keys = s.stats().iter().map(|n| n.kv.keys).sum::<u64>();
    if keys != n {
        return Err(format!("reopened with {keys} keys, loaded {n}"));
    }
    let gets = dstash_get_random(&s, n, n.min(200_000));
    println!("open_ms={open_ms:.1} rss_anon={rss} gets_per_s={gets:.0}");
    Ok(())
}
