//! `dstash-benches counts`: expiring counts, dstash's Add against the Redis way of
//! keeping a sliding-window count (ZADD + ZREMRANGEBYSCORE + ZCARD per event,
//! pipelined), in one run.
//!
//! Each event adds to one of `K` distinct keys (10,000 and 1,000,000) and reads the
//! key's count over a 60 s window, as a rate limiter does. dstash: BatchAdd over
//! loopback, batches of 1,000 events on one stream, up to 8 in flight, each answered
//! with the keys' counts, fsync per batch (`--sync always`), each batch under a request
//! id as the client library sends it. Redis: the same events as pipelines of 1,000
//! events (3,000 commands), no persistence. After the run every key's count is checked
//! on both sides; memory (and dstash's disk) is read after half the events and after
//! all of them, to show whether it grows with the event rate. A last run touches every
//! key once in a namespace with a one-day retention, for its bytes per key.
//! `cargo run -p dstash-benches --release -- counts --events 1000000 --runs 3`

use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::Channel;

use crate::loopback::Server;
use crate::redis_side::{self, Persistence, RedisServer};
use crate::table::{self, Cell, Unit};
use crate::workload::{mix, rss_anon_of};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::flags::min_u64::<2000>)]
    events: u64,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Distinct keys, one run per count.
    #[arg(long = "keys", value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    key_counts: Vec<u64>,
    /// Leave the Redis columns empty.
    #[arg(long)]
    no_redis: bool,
}

const NS: &str = "rate";
const WINDOW_SECS: u64 = 60;
const BATCH: u64 = 1000;

/// Unique to this process and call, so request ids never repeat across runs.
fn run_id() -> String {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn event_key(i: u64, keys: u64) -> u64 {
    mix(i) % keys
}

fn key_bytes(k: u64) -> Bytes {
    Bytes::from(format!("client-{k:08}"))
}

/// Events `from..to` as BatchAdd messages on one stream; returns the counts answered.
async fn dstash_events(c: &mut DstashClient<Channel>, keys: u64, from: u64, to: u64) -> u64 {
    add_each(c, from, to, |i| event_key(i, keys)).await
}

/// One event for key `key_of(i)` for each `i` in `from..to`, as BatchAdd messages of
/// `BATCH` events on one stream; returns the counts answered.
async fn add_each(
    c: &mut DstashClient<Channel>,
    from: u64,
    to: u64,
    key_of: impl Fn(u64) -> u64,
) -> u64 {
    let run = run_id();
    let batches: Vec<AddBatch> = (from..to)
        .step_by(BATCH as usize)
        .map(|start| AddBatch {
            namespace: NS.into(),
            keys: (start..(start + BATCH).min(to))
                .map(|i| key_bytes(key_of(i)))
                .collect(),
            batch_id: start,
            at_seconds: 0,
            // As the client library sends them: each batch named, so a retry counts once.
            request_id: format!("{run}-{start}"),
        })
        .collect();
    let mut answers = c
        .batch_add(tokio_stream::iter(batches))
        .await
        .expect("BatchAdd")
        .into_inner();
    let mut answered = 0;
    while let Some(r) = answers.message().await.expect("BatchAdd answer") {
        assert!(r.counts.iter().all(|&n| n >= 1), "an added key counts 0");
        answered += r.counts.len() as u64;
    }
    answered
}

/// Sum of every key's count over the window: must be every event.
async fn dstash_total(c: &mut DstashClient<Channel>, keys: u64) -> u64 {
    let batches: Vec<CountBatch> = (0..keys)
        .step_by(BATCH as usize)
        .map(|start| CountBatch {
            namespace: NS.into(),
            keys: (start..(start + BATCH).min(keys)).map(key_bytes).collect(),
            window_seconds: WINDOW_SECS as u32,
            batch_id: start,
        })
        .collect();
    let mut answers = c
        .batch_count(tokio_stream::iter(batches))
        .await
        .expect("BatchCount")
        .into_inner();
    let mut total = 0;
    while let Some(r) = answers.message().await.expect("BatchCount answer") {
        total += r.counts.iter().sum::<u64>();
    }
    total
}

/// What one dstash run measured: events/s, and the node's RssAnon and its count files
/// on disk (tables and log) after half the events and after all.
struct DstashRun {
    rate: f64,
    rss: [f64; 2],
    /// Count tables, then the count log, after half and after all.
    tables: [f64; 2],
    log: [f64; 2],
}

/// Bytes of the files in `dir` whose names end in `ext`.
fn files_bytes(dir: &std::path::Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
        .filter_map(|e| e.metadata().ok())
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .sum()
}

/// A node for a run: `fsync` runs it at `--sync always` (fsync per batch), else
/// `--sync never`. Returns the server, its pid and where its counts live.
fn node(tmp: &std::path::Path, fsync: bool) -> (Server, String, std::path::PathBuf) {
    let dir = tmp.join("counts");
    let mut args = vec!["serve-node", dir.to_str().unwrap()];
    if !fsync {
        args.push("--no-fsync");
    }
    let server = Server::spawn(&args);
    let pid = server.pid().to_string();
    (server, pid, dir.join("ns").join(NS).join("counts"))
}

fn dstash_run(keys: u64, events: u64, fsync: bool, rt: &tokio::runtime::Runtime) -> DstashRun {
    let tmp = tempfile::tempdir_in(".").expect("tempdir");
    let (server, pid, files) = node(tmp.path(), fsync);
    let figures = || {
        let (t, l) = (files_bytes(&files, ".cgt"), files_bytes(&files, ".clg"));
        (rss_anon_of(&pid) as f64, t as f64, l as f64)
    };
    rt.block_on(async {
        let mut c = server.client().await;
        let half = events / 2;
        let t = Instant::now();
        let mut answered = dstash_events(&mut c, keys, 0, half).await;
        let elapsed_half = t.elapsed();
        let half_figures = figures();
        let t = Instant::now();
        answered += dstash_events(&mut c, keys, half, events).await;
        let secs = (elapsed_half + t.elapsed()).as_secs_f64();
        assert_eq!(answered, events);
        assert_eq!(
            dstash_total(&mut c, keys).await,
            events,
            "dstash lost events"
        );
        let end = figures();
        DstashRun {
            rate: events as f64 / secs,
            rss: [half_figures.0, end.0],
            tables: [half_figures.1, end.1],
            log: [half_figures.2, end.2],
        }
    })
}

/// Bytes per key at a one-day retention: every key touched once; (count tables on
/// disk, RssAnon over an idle node's) per key.
fn day_run(keys: u64, rt: &tokio::runtime::Runtime) -> (f64, f64) {
    let tmp = tempfile::tempdir_in(".").expect("tempdir");
    let (server, pid, files) = node(tmp.path(), true);
    rt.block_on(async {
        let mut c = server.client().await;
        let settings = NamespaceSettings {
            namespace: NS.into(),
            count_retention_seconds: 86_400,
            ..Default::default()
        };
        c.set_namespace(settings).await.expect("SetNamespace");
        let idle = rss_anon_of(&pid) as f64;
        assert_eq!(add_each(&mut c, 0, keys, |i| i).await, keys);
        // The tables: the log is cut at the next checkpoint.
        let disk = files_bytes(&files, ".cgt") as f64;
        let rss = rss_anon_of(&pid) as f64 - idle;
        (disk / keys as f64, rss.max(0.0) / keys as f64)
    })
}

/// One Redis run, the same shape: pipelines of `BATCH` events, 3 commands each.
fn redis_run(bin: &std::path::PathBuf, keys: u64, events: u64) -> (f64, f64, f64) {
    let server = RedisServer::start(bin, Persistence::None).expect("redis");
    let mut c = server.connect().expect("connect");
    let used = |c: &mut redis::Connection| -> f64 {
        let info: String = redis::cmd("INFO").arg("memory").query(c).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    // Scores are milliseconds of a clock that starts now; the window trims what is older.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let run = |c: &mut redis::Connection, from: u64, to: u64| {
        let t = Instant::now();
        let mut i = from;
        while i < to {
            let end = (i + BATCH).min(to);
            let mut p = redis::pipe();
            let now = start + t.elapsed().as_millis() as u64;
            for e in i..end {
                let key = format!("client-{:08}", event_key(e, keys));
                p.cmd("ZADD").arg(&key).arg(now).arg(e).ignore();
                p.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now.saturating_sub(WINDOW_SECS * 1000))
                    .ignore();
                p.cmd("ZCARD").arg(&key);
            }
            let counts: Vec<u64> = p.query(c).expect("pipeline");
            assert!(counts.iter().all(|&n| n >= 1));
            i = end;
        }
        t.elapsed()
    };
    let half = events / 2;
    let first = run(&mut c, 0, half);
    let at_half = used(&mut c);
    let second = run(&mut c, half, events);
    let at_end = used(&mut c);
    // Every event is counted: the sum of every key's cardinality.
    let mut total = 0u64;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(BATCH as usize) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("ZCARD").arg(format!("client-{k:08}"));
        }
        let n: Vec<u64> = p.query(&mut c).expect("ZCARD");
        total += n.iter().sum::<u64>();
    }
    assert_eq!(total, events, "Redis lost events");
    (
        events as f64 / (first + second).as_secs_f64(),
        at_half,
        at_end,
    )
}

pub fn run(a: Args) -> Result<(), String> {
    let redis = if a.no_redis {
        None
    } else {
        Some(redis_side::find_or_install()?)
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    println!("| expiring counts, {} events, 60 s window | dstash Add (BatchAdd) | Redis ZADD+ZREMRANGEBYSCORE+ZCARD, pipelined | dstash ÷ Redis | target |", a.events);
    println!("|---|---|---|---|---|");
    let mut targets = Vec::new();
    for &keys in &a.key_counts {
        let two = || [Cell::default(), Cell::default()];
        let (mut rate, mut rss, mut tables, mut log) = (Cell::default(), two(), two(), two());
        let (mut r, mut nosync) = (
            [Cell::default(), Cell::default(), Cell::default()],
            Cell::default(),
        );
        for run in 0..a.runs {
            eprintln!("counts, {keys} keys: run {}/{}", run + 1, a.runs);
            let d = dstash_run(keys, a.events, true, &rt);
            rate.0.push(d.rate);
            for i in 0..2 {
                rss[i].0.push(d.rss[i]);
                tables[i].0.push(d.tables[i]);
                log[i].0.push(d.log[i]);
            }
            nosync.0.push(dstash_run(keys, a.events, false, &rt).rate);
            if let Some(bin) = &redis {
                let (rate, half, end) = redis_run(bin, keys, a.events);
                r[0].0.push(rate);
                r[1].0.push(half);
                r[2].0.push(end);
            }
        }
        let ratio = |x: &Cell, y: &Cell| {
            let v = table::over(x, y);
            if v.is_nan() {
                String::new()
            } else {
                format!("×{v:.2}")
            }
        };
        println!(
            "| events/s, {keys} distinct keys | {} | {} | {} | ≥ 5× |",
            rate.show(Unit::PerSec),
            r[0].show(Unit::PerSec),
            ratio(&rate, &r[0])
        );
        println!(
            "| events/s, {keys} distinct keys, dstash without fsync (`--sync never`), both sides unpersisted | {} | {} | {} | |",
            nosync.show(Unit::PerSec),
            r[0].show(Unit::PerSec),
            ratio(&nosync, &r[0])
        );
        for (i, at) in [a.events / 2, a.events].into_iter().enumerate() {
            println!(
                "| memory after {at} events, {keys} keys (dstash: RssAnon; Redis: used_memory) | {} | {} | | {} |",
                rss[i].show(Unit::MiB),
                r[i + 1].show(Unit::MiB),
                if i == 1 { "flat in the event rate" } else { "" }
            );
            println!(
                "| disk after {at} events, {keys} keys: count tables; count log | {}; {} | | | {} |",
                tables[i].show(Unit::MiB),
                log[i].show(Unit::MiB),
                if i == 1 { "flat in the event rate" } else { "" }
            );
        }
        let unsynced = table::over(&nosync, &r[0]);
        targets.push(table::target(
            &format!("expiring counts ÷ the Redis ZSET way, {keys} distinct keys, fsync per batch against no persistence"),
            table::over(&rate, &r[0]),
            5.0,
            &format!("Without fsync the same node reaches ×{unsynced:.2} in this run."),
        ));
        targets.push(flatness(keys, a.events, &rss, &tables, &log, &r));
    }
    let day_keys = a.key_counts.iter().copied().max().unwrap_or(10_000);
    eprintln!("counts: {day_keys} keys at a one-day retention");
    let (disk_per_key, rss_per_key) = day_run(day_keys, &rt);
    println!(
        "| bytes per key at a one-day retention, {day_keys} keys each counted once | disk {disk_per_key:.0} B, RssAnon {rss_per_key:.0} B | | | ≤ about 1 KB |"
    );
    targets.push(format!(
        "{}bytes per active key at a one-day retention: {disk_per_key:.0} B on disk (a record of 151 cells of 4 bytes, a 24-byte header and the key, appended densely, plus an 8-byte entry in a table between three-eighths and three-quarters full), {rss_per_key:.0} B of anonymous memory: **{}**.",
        table::TARGET,
        if disk_per_key <= 1100.0 { "met" } else { "missed" }
    ));
    println!();
    for t in &targets {
        println!("{t}");
    }
    println!();
    println!(
        "Median of {} runs (range in brackets). dstash: one node, `--sync always` (fsync per batch) unless the row says otherwise, batches of 1,000 events on one stream under request ids, each answered with the keys' counts; memory is the node's RssAnon; disk is its count tables (mmap'd, so their pages are file-backed, not anonymous) and its count log, which a checkpoint cuts once it passes the tables' size (at least 8 MiB, at most 64 MiB). Redis: no persistence, pipelines of 1,000 events (3,000 commands); memory is `used_memory`. Every key's count is checked against the events sent on both sides.",
        a.runs
    );
    Ok(())
}

/// The memory target: flat in the event rate where the first half already sees every
/// key; else a statement that the second half brings new keys. Memory and tables are
/// compared; the log is bounded between checkpoints (by the tables' size, at least
/// 8 MiB) and is stated, not compared, since where a run stops in that cycle is chance.
fn flatness(
    keys: u64,
    events: u64,
    rss: &[Cell; 2],
    tables: &[Cell; 2],
    log: &[Cell; 2],
    r: &[Cell; 3],
) -> String {
    let total = |i: usize| rss[i].median() + tables[i].median();
    let most_log = log[0].median().max(log[1].median());
    let growth = total(1) / total(0);
    if events / 2 >= keys * 20 {
        format!(
            "{}expiring counts' memory and disk flat in the event rate, {keys} keys: RssAnon and tables {} after {} events, {} after {} (×{growth:.2}); the count log at most {} (bounded between checkpoints): **{}**.",
            table::TARGET,
            Unit::MiB.fmt(total(0)),
            events / 2,
            Unit::MiB.fmt(total(1)),
            events,
            Unit::MiB.fmt(most_log),
            if growth <= 1.25 { "met" } else { "missed" }
        )
    } else {
        let redis = table::over(&r[2], &r[1]);
        format!(
            "{}expiring counts' memory and disk, {keys} keys: ×{growth:.2} from half the events to all, but the second half also brings keys not seen before, so this row measures growth in keys, not in the event rate{}.",
            table::TARGET,
            if redis.is_nan() { String::new() } else { format!(" (Redis: ×{redis:.2})") }
        )
    }
}
