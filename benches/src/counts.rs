//! `dstash-benches counts`: expiring counts, dstash's Add against the Redis way of
//! keeping a sliding-window count (ZADD + ZREMRANGEBYSCORE + ZCARD per event,
//! pipelined), in one run.
//!
//! Each event adds to one of `K` distinct keys (10,000 and 1,000,000) and reads the
//! key's count over a 60 s window, as a rate limiter does. dstash: BatchAdd over
//! loopback, batches of 1,000 events on one stream, up to 8 in flight, each answered
//! with the keys' counts, fsync per batch (`--sync always`). Redis: the same events as
//! pipelines of 1,000 events (3,000 commands), no persistence. After the run every
//! key's count is checked on both sides, and memory is read after half the events and
//! after all of them, to show whether it grows with the event rate.
//! `cargo run -p dstash-benches --release -- counts --events 1000000 --runs 3`

use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::Channel;

use crate::loopback::Server;
use crate::redis_side::{self, Persistence, RedisServer};
use crate::table::{self, Cell, Unit};
use crate::workload::{dir_bytes, mix, rss_anon_of};

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
    let batches: Vec<AddBatch> = (from..to)
        .step_by(BATCH as usize)
        .map(|start| AddBatch {
            namespace: NS.into(),
            keys: (start..(start + BATCH).min(to))
                .map(|i| key_bytes(event_key(i, keys)))
                .collect(),
            batch_id: start,
            at_seconds: 0,
            // As the client library sends them: each batch named, so a retry counts once.
            request_id: format!("{}-{from}-{start}", run_id()),
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

/// One dstash run: (events/s, memory after half, memory after all), memory being the
/// node's RssAnon plus its count buckets on disk.
/// `fsync`: the node runs `--sync always` (fsync per batch), else `--sync never`.
fn dstash_run(
    keys: u64,
    events: u64,
    fsync: bool,
    rt: &tokio::runtime::Runtime,
) -> (f64, f64, f64) {
    let tmp = tempfile::tempdir_in(".").expect("tempdir");
    let dir = tmp.path().join("counts");
    let mut args = vec!["serve-node", dir.to_str().unwrap()];
    if !fsync {
        args.push("--no-fsync");
    }
    let server = Server::spawn(&args);
    let pid = server.pid().to_string();
    let memory =
        || (rss_anon_of(&pid) + dir_bytes(&dir.join("ns").join(NS).join("counters"))) as f64;
    rt.block_on(async {
        let mut c = server.client().await;
        let half = events / 2;
        let t = Instant::now();
        let mut answered = dstash_events(&mut c, keys, 0, half).await;
        let elapsed_half = t.elapsed();
        let at_half = memory();
        let t = Instant::now();
        answered += dstash_events(&mut c, keys, half, events).await;
        let secs = (elapsed_half + t.elapsed()).as_secs_f64();
        assert_eq!(answered, events);
        assert_eq!(
            dstash_total(&mut c, keys).await,
            events,
            "dstash lost events"
        );
        (events as f64 / secs, at_half, memory())
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
        let (mut d, mut r, mut nosync) = (
            [Cell::default(), Cell::default(), Cell::default()],
            [Cell::default(), Cell::default(), Cell::default()],
            Cell::default(),
        );
        for run in 0..a.runs {
            eprintln!("counts, {keys} keys: run {}/{}", run + 1, a.runs);
            let (rate, half, end) = dstash_run(keys, a.events, true, &rt);
            d[0].0.push(rate);
            d[1].0.push(half);
            d[2].0.push(end);
            nosync.0.push(dstash_run(keys, a.events, false, &rt).0);
            if let Some(bin) = &redis {
                let (rate, half, end) = redis_run(bin, keys, a.events);
                r[0].0.push(rate);
                r[1].0.push(half);
                r[2].0.push(end);
            }
        }
        let ratio = |x: &Cell, y: &Cell| {
            if y.0.is_empty() {
                String::new()
            } else {
                format!("×{:.2}", x.median() / y.median())
            }
        };
        println!(
            "| events/s, {keys} distinct keys | {} | {} | {} | ≥ 5× |",
            d[0].show(Unit::PerSec),
            r[0].show(Unit::PerSec),
            ratio(&d[0], &r[0])
        );
        println!(
            "| events/s, {keys} distinct keys, dstash without fsync (`--sync never`), both sides unpersisted | {} | {} | {} | |",
            nosync.show(Unit::PerSec),
            r[0].show(Unit::PerSec),
            ratio(&nosync, &r[0])
        );
        println!(
            "| memory after {} events, {keys} keys | {} | {} | | |",
            a.events / 2,
            d[1].show(Unit::MiB),
            r[1].show(Unit::MiB)
        );
        println!(
            "| memory after {} events, {keys} keys | {} | {} | | flat in the event rate |",
            a.events,
            d[2].show(Unit::MiB),
            r[2].show(Unit::MiB)
        );
        let unsynced = table::over(&nosync, &r[0]);
        targets.push(table::target(
            &format!("expiring counts ÷ the Redis ZSET way, {keys} distinct keys, fsync per batch against no persistence"),
            table::over(&d[0], &r[0]),
            5.0,
            &format!(
                "Without fsync the same node reaches ×{unsynced:.2} in this run, so the limit is the fdatasync per batch of the count-bucket pages the batch dirtied: over {keys} keys, 1,000 events land on up to 1,000 different 4 KiB pages of the bucket file, and every one is written back before the answer. The next step is to log count events in an append-only file, fsync that once per batch, and write the bucket back at checkpoints."
            ),
        ));
        // Flat in the event rate: the second half's events must not grow memory by more
        // than a quarter where every key is seen in the first half.
        let growth = d[2].median() / d[1].median();
        let first_half_sees_all = a.events / 2 >= keys * 20;
        targets.push(if first_half_sees_all {
            format!(
                "{}expiring counts' memory flat in the event rate, {keys} keys: {} after {} events, {} after {} (×{growth:.2}): **{}**.",
                table::TARGET,
                Unit::MiB.fmt(d[1].median()),
                a.events / 2,
                Unit::MiB.fmt(d[2].median()),
                a.events,
                if growth <= 1.25 { "met" } else { "missed" }
            )
        } else {
            let redis = table::over(&r[2], &r[1]);
            format!(
                "{}expiring counts' memory, {keys} keys: ×{growth:.2} from half the events to all, but the second half also brings keys not seen before, so this row measures growth in keys, not in the event rate{}.",
                table::TARGET,
                if redis.is_nan() { String::new() } else { format!(" (Redis: ×{redis:.2})") }
            )
        });
    }
    println!();
    for t in &targets {
        println!("{t}");
    }
    println!();
    println!(
        "Median of {} runs (range in brackets). dstash: one node, `--sync always` (fsync per batch) unless the row says otherwise, batches of 1,000 events on one stream, each answered with the keys' counts; memory is the node's RssAnon plus its count-bucket files. Redis: no persistence, pipelines of 1,000 events (3,000 commands); memory is `used_memory`. Every key's count is checked against the events sent on both sides.",
        a.runs
    );
    Ok(())
}
