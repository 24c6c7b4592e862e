//! `dstash-benches latency`: unary Put and Lookup latency against `redis-benchmark`
//! without pipelining (SET and GET), at 1 and at 50 concurrent clients, in one run.
//!
//! dstash: `C` clients, each on its own connection, each sending one call at a time to
//! a node with `--sync always` (every Put is durable before it is answered; concurrent
//! Puts share fsyncs). Redis: `redis-benchmark -c C -P 1` with no persistence, and with
//! `appendfsync always` for the Put row. Values are 100 bytes.
//! `cargo run -p dstash-benches --release -- latency --requests 20000 --runs 3`

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::Bytes;

use crate::hist::Hist;
use crate::loopback::Server;
use crate::redis_side::{self, Persistence, RedisServer};
use crate::table::{Cell, Unit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000, value_parser = crate::flags::min::<100>)]
    requests: usize,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Concurrent clients, one run per count.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 50])]
    clients: Vec<usize>,
    /// Leave the Redis columns empty.
    #[arg(long)]
    no_redis: bool,
}

/// (ops/s, p50, p99) in (1/s, ns, ns).
type Figures = (f64, f64, f64);

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key-{i:012}"))
}

fn value(i: usize) -> Bytes {
    let mut v = format!("{i:012}").into_bytes();
    v.resize(100, b'v');
    Bytes::from(v)
}

/// `requests` unary calls split over `clients` connections; `lookup` reads the keys a
/// put phase wrote.
async fn dstash_phase(server: &Server, clients: usize, requests: usize, lookup: bool) -> Figures {
    let hist = Arc::new(Mutex::new(Hist::default()));
    let per = requests.div_ceil(clients);
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    for c in 0..clients {
        let mut rpc = server.client().await;
        let hist = hist.clone();
        tasks.spawn(async move {
            let mut local = Hist::default();
            for j in 0..per {
                let i = c * per + j;
                let started = Instant::now();
                if lookup {
                    let r = rpc
                        .lookup(LookupRequest {
                            namespace: "lat".into(),
                            key: key(i),
                        })
                        .await
                        .expect("Lookup")
                        .into_inner();
                    assert!(r.found && r.value == value(i), "Lookup of key {i}");
                } else {
                    rpc.put(PutRequest {
                        namespace: "lat".into(),
                        key: key(i),
                        value: value(i),
                        ttl_seconds: 0,
                        ..Default::default()
                    })
                    .await
                    .expect("Put");
                }
                local.record(started.elapsed());
            }
            hist.lock().unwrap().merge(&local);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("client task");
    }
    let secs = t.elapsed().as_secs_f64();
    let h = hist.lock().unwrap();
    let ns = |d: Duration| d.as_nanos() as f64;
    (
        (per * clients) as f64 / secs,
        ns(h.quantile(0.5)),
        ns(h.quantile(0.99)),
    )
}

/// `redis-benchmark` for one test: (requests/s, p50, p99) from its CSV line.
fn redis_benchmark(server: &RedisServer, test: &str, clients: usize, requests: usize) -> Figures {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args([
            "-d",
            "100",
            "-P",
            "1",
            "-r",
            &requests.to_string(),
            "-t",
            test,
            "--csv",
        ])
        .output()
        .expect("running redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}\"", test.to_uppercase())))
        .unwrap_or_else(|| panic!("redis-benchmark printed no {test} line: {text}"));
    let f: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    (f[0], f[3] * 1e6, f[5] * 1e6)
}

#[derive(Default)]
struct Row {
    dstash: [Cell; 3],
    redis: [Cell; 3],
    redis_fsync: [Cell; 3],
}

fn push(cells: &mut [Cell; 3], f: Figures) {
    cells[0].0.push(f.0);
    cells[1].0.push(f.1);
    cells[2].0.push(f.2);
}

pub fn run(a: Args) -> Result<(), String> {
    let redis = if a.no_redis {
        None
    } else {
        Some(redis_side::find_or_install()?)
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    // rows[c][0] puts, rows[c][1] lookups.
    let mut rows: Vec<[Row; 2]> = a.clients.iter().map(|_| Default::default()).collect();
    for run in 0..a.runs {
        eprintln!("latency: run {}/{}", run + 1, a.runs);
        for (ci, &clients) in a.clients.iter().enumerate() {
            let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
            let server = Server::spawn(&["serve-node", tmp.path().join("lat").to_str().unwrap()]);
            let (put, get) = rt.block_on(async {
                let put = dstash_phase(&server, clients, a.requests, false).await;
                let get = dstash_phase(&server, clients, a.requests, true).await;
                (put, get)
            });
            push(&mut rows[ci][0].dstash, put);
            push(&mut rows[ci][1].dstash, get);
            if let Some(bin) = &redis {
                let r = RedisServer::start(bin, Persistence::None)?;
                push(
                    &mut rows[ci][0].redis,
                    redis_benchmark(&r, "set", clients, a.requests),
                );
                push(
                    &mut rows[ci][1].redis,
                    redis_benchmark(&r, "get", clients, a.requests),
                );
                let r = RedisServer::start(bin, Persistence::AofAlways)?;
                push(
                    &mut rows[ci][0].redis_fsync,
                    redis_benchmark(&r, "set", clients, a.requests),
                );
            }
        }
    }
    println!("| unary call, {} requests | clients | dstash ops/s | dstash p50 | dstash p99 | Redis ops/s | Redis p50 | Redis p99 | Redis `appendfsync always` ops/s, p50, p99 |", a.requests);
    println!("|---|---|---|---|---|---|---|---|---|");
    for (ci, &clients) in a.clients.iter().enumerate() {
        for (k, name) in ["Put (Redis SET)", "Lookup (Redis GET)"].iter().enumerate() {
            let r = &rows[ci][k];
            let fsync = if r.redis_fsync[0].0.is_empty() {
                String::new()
            } else {
                format!(
                    "{}, {}, {}",
                    r.redis_fsync[0].show(Unit::PerSec),
                    r.redis_fsync[1].show(Unit::Nanos),
                    r.redis_fsync[2].show(Unit::Nanos)
                )
            };
            println!(
                "| {name} | {clients} | {} | {} | {} | {} | {} | {} | {fsync} |",
                r.dstash[0].show(Unit::PerSec),
                r.dstash[1].show(Unit::Nanos),
                r.dstash[2].show(Unit::Nanos),
                r.redis[0].show(Unit::PerSec),
                r.redis[1].show(Unit::Nanos),
                r.redis[2].show(Unit::Nanos),
            );
        }
    }
    println!();
    println!(
        "Median of {} runs (range in brackets). dstash: one node, `--sync always` (each Put is fsynced before its answer; concurrent Puts share fsyncs), one connection per client, one call at a time, every Lookup checked. Redis: `redis-benchmark -P 1 -d 100` (no pipelining), no persistence, and for SET also `appendfsync always`. Client and server share the machine's 2 cores.",
        a.runs
    );
    Ok(())
}
