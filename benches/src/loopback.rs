//! `dstash-benches node`: one node over loopback, against Redis and the tonic ceiling,
//! in one run.
//!
//! 100,000 keys (16-byte keys, 100-byte values) go to a `dstash node` child as BatchPut
//! (fsync per batch: `--sync always`) and come back as BatchLookup, batches of 1,000
//! keys on one stream. In the same run: Redis MSET/MGET of the same keys in chunks of
//! 1,000 on one connection, and the same streams against a store-less echo server (the
//! ceiling of tonic, HTTP/2 and protobuf here).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::Channel;

use crate::redis_side::{self, Persistence, RedisServer};
use crate::table::{self, Cell, Unit};
use crate::workload::rss_anon_of;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    #[arg(long, default_value_t = 1000, value_parser = crate::flags::min::<1>)]
    batch: usize,
    /// Profile an already running node instead (dstash rows only).
    #[arg(long)]
    node: Option<SocketAddr>,
    /// Leave the Redis columns empty (CI's smoke run: no apt there).
    #[arg(long)]
    no_redis: bool,
}

/// A server child (`serve-node DIR` or `serve-echo`) and the address it printed.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("server child output");
        let addr = line
            .strip_prefix("ADDR ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("server child printed {line:?}"));
        Server { child, addr }
    }

    fn rss_anon(&self) -> f64 {
        rss_anon_of(&self.child.id().to_string()) as f64
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> DstashClient<Channel> {
        DstashClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 16-byte keys and 100-byte values, deterministic.
pub fn data(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let keys = (0..n)
        .map(|i| format!("key-{i:012}").into_bytes())
        .collect();
    let values = (0..n)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    (keys, values)
}

async fn batch_put(
    c: &mut DstashClient<Channel>,
    keys: &[Vec<u8>],
    values: &[Vec<u8>],
    batch: usize,
) -> Duration {
    let batches: Vec<PutBatch> = keys
        .chunks(batch)
        .zip(values.chunks(batch))
        .enumerate()
        .map(|(i, (ks, vs))| PutBatch {
            namespace: "bench".into(),
            entries: ks
                .iter()
                .zip(vs)
                .map(|(k, v)| Entry {
                    key: Bytes::from(k.clone()),
                    value: Bytes::from(v.clone()),
                    ttl_seconds: 0,
                    ..Default::default()
                })
                .collect(),
            batch_id: i as u64,
        })
        .collect();
    let t = Instant::now();
    let mut acks = c
        .batch_put(tokio_stream::iter(batches))
        .await
        .expect("BatchPut")
        .into_inner();
    let mut written = 0;
    while let Some(ack) = acks.message().await.expect("ack") {
        written += ack.written as usize;
    }
    let took = t.elapsed();
    assert_eq!(written, keys.len());
    took
}

/// BatchLookup of `keys` in batches, asking per-key answers or the `flat` form; checks
/// every value against `values` when given.
async fn batch_lookup(
    c: &mut DstashClient<Channel>,
    keys: &[Vec<u8>],
    values: Option<&[Vec<u8>]>,
    batch: usize,
    flat: bool,
) -> Duration {
    let batches: Vec<LookupBatch> = keys
        .chunks(batch)
        .enumerate()
        .map(|(i, ks)| LookupBatch {
            namespace: "bench".into(),
            keys: ks.iter().cloned().map(Bytes::from).collect(),
            batch_id: i as u64,
            flat,
        })
        .collect();
    let t = Instant::now();
    let mut results = c
        .batch_lookup(tokio_stream::iter(batches))
        .await
        .expect("BatchLookup")
        .into_inner();
    let mut got: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
    while let Some(r) = results.message().await.expect("results") {
        match r.flat {
            Some(f) => got.extend(
                f.entries()
                    .expect("flat answer")
                    .into_iter()
                    .map(|e| match e {
                        dstash_proto::flat::FlatEntry::Value { value, .. } => Some(value),
                        _ => None,
                    }),
            ),
            None => got.extend(r.results.into_iter().map(|r| r.found.then_some(r.value))),
        }
    }
    let took = t.elapsed();
    assert_eq!(got.len(), keys.len());
    if let Some(values) = values {
        assert!(got
            .iter()
            .zip(values)
            .all(|(g, v)| g.as_deref() == Some(&v[..])));
    }
    took
}

#[derive(Default)]
struct Figures {
    put: Cell,
    lookup: Cell,
    lookup_flat: Cell,
    echo_put: Cell,
    echo_lookup: Cell,
    echo_lookup_flat: Cell,
    redis_set: Cell,
    redis_get: Cell,
    redis_aof_set: Cell,
    idle_rss: Cell,
    loaded_rss: Cell,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(a: Args) -> Result<(), String> {
    let (keys, values) = data(a.keys);
    let redis = if a.no_redis {
        Err("skipped (--no-redis)".to_string())
    } else {
        redis_side::find_or_install()
    };
    if let Err(why) = &redis {
        eprintln!("no Redis column: {why}");
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    if let Some(addr) = a.node {
        return rt.block_on(async {
            let mut c = DstashClient::connect(format!("http://{addr}"))
                .await
                .map_err(|e| e.to_string())?;
            let put = batch_put(&mut c, &keys, &values, a.batch).await;
            let get = batch_lookup(&mut c, &keys, Some(&values), a.batch, true).await;
            println!("BatchPut {put:?}, BatchLookup {get:?}");
            Ok(())
        });
    }
    let mut f = Figures::default();
    for run in 0..a.runs {
        eprintln!("run {}/{}", run + 1, a.runs);
        let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
        let node = Server::spawn(&["serve-node", tmp.path().to_str().unwrap()]);
        std::thread::sleep(Duration::from_millis(200));
        f.idle_rss.0.push(node.rss_anon());
        rt.block_on(async {
            let mut c = node.client().await;
            f.put
                .0
                .push(ms(batch_put(&mut c, &keys, &values, a.batch).await));
            f.lookup.0.push(ms(batch_lookup(
                &mut c,
                &keys,
                Some(&values),
                a.batch,
                false,
            )
            .await));
            f.lookup_flat.0.push(ms(batch_lookup(
                &mut c,
                &keys,
                Some(&values),
                a.batch,
                true,
            )
            .await));
        });
        f.loaded_rss.0.push(node.rss_anon());
        drop(node);

        let echo = Server::spawn(&["serve-echo"]);
        rt.block_on(async {
            let mut c = echo.client().await;
            f.echo_put
                .0
                .push(ms(batch_put(&mut c, &keys, &values, a.batch).await));
            f.echo_lookup
                .0
                .push(ms(batch_lookup(&mut c, &keys, None, a.batch, false).await));
            f.echo_lookup_flat
                .0
                .push(ms(batch_lookup(&mut c, &keys, None, a.batch, true).await));
        });
        drop(echo);

        if let Ok(bin) = &redis {
            let r = RedisServer::start(bin, Persistence::None)?;
            f.redis_set.0.push(ms(r.mset(&keys, &values, a.batch)));
            f.redis_get.0.push(ms(r.mget(&keys, &values, a.batch)));
            drop(r);
            let r = RedisServer::start(bin, Persistence::AofAlways)?;
            f.redis_aof_set.0.push(ms(r.mset(&keys, &values, a.batch)));
        }
    }
    report(&a, &f, redis.err());
    Ok(())
}

/// "131 ms (88–142), 765 K/s": median time, range, and keys/s at the median.
fn timed(n: usize, c: &Cell) -> String {
    if c.0.is_empty() {
        return "n/a".into();
    }
    let (lo, hi) = c.range();
    let rate = Unit::PerSec.fmt(n as f64 / (c.median() / 1e3));
    format!("{:.0} ms ({lo:.0}–{hi:.0}), {rate}", c.median()) + &c.raw(Unit::Millis)
}

fn ratio(redis: &Cell, dstash: &Cell) -> String {
    if redis.0.is_empty() {
        return "n/a".into();
    }
    format!("×{:.2}", redis.median() / dstash.median())
}

fn report(a: &Args, f: &Figures, redis_missing: Option<String>) {
    let n = a.keys;
    println!(
        "| {n} keys over loopback, batches of {} | dstash node | tonic echo (ceiling) | Redis, no persistence | Redis ÷ dstash time | target |",
        a.batch
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| BatchPut, fsync per batch (`--sync always`) vs MSET | {} | {} | {} | {} | ≥ 1 M keys/s, ≥ 2× |",
        timed(n, &f.put),
        timed(n, &f.echo_put),
        timed(n, &f.redis_set),
        ratio(&f.redis_set, &f.put),
    );
    println!(
        "| BatchLookup vs MGET | {} | {} | {} | {} | ≤ 70 ms, ≥ 2× |",
        timed(n, &f.lookup),
        timed(n, &f.echo_lookup),
        timed(n, &f.redis_get),
        ratio(&f.redis_get, &f.lookup),
    );
    println!(
        "| BatchLookup, flat answers (columns, values in one buffer) vs MGET | {} | {} | {} | {} | ≥ 2.5×, ≤ 1.3× echo |",
        timed(n, &f.lookup_flat),
        timed(n, &f.echo_lookup_flat),
        timed(n, &f.redis_get),
        ratio(&f.redis_get, &f.lookup_flat),
    );
    println!(
        "| MSET under `appendfsync always` (durable like dstash) | | | {} | {} | |",
        timed(n, &f.redis_aof_set),
        ratio(&f.redis_aof_set, &f.put),
    );
    println!(
        "| node RssAnon: idle / after the run | {} / {} | | | | idle ≤ 8 MiB |",
        f.idle_rss.show(Unit::MiB),
        f.loaded_rss.show(Unit::MiB)
    );
    println!();
    println!(
        "{}",
        table::target(
            "BatchLookup ÷ MGET (Redis time ÷ dstash time)",
            table::over(&f.redis_get, &f.lookup),
            2.0,
            &format!(
                "The store-less tonic echo server answers the same stream in {:.0} ms of dstash's {:.0} ms, so with a store that cost nothing BatchLookup would reach only ×{:.2}: gRPC's framing and HTTP/2 flow control on one stream, with client and node sharing 2 cores, are most of the cost. The echo server sends the same messages, so its time includes prost's per-key encoding of a `LookupResponse` submessage for each of the 100,000 keys; the flat answers in the next row lower that cost on both sides.",
                f.echo_lookup.median(),
                f.lookup.median(),
                table::over(&f.redis_get, &f.echo_lookup)
            ),
        )
    );
    println!();
    println!(
        "{}",
        table::target(
            "flat BatchLookup ÷ MGET (Redis time ÷ dstash time)",
            table::over(&f.redis_get, &f.lookup_flat),
            2.5,
            &format!(
                "Flat answers against the flat echo: dstash {:.0} ms, the ceiling {:.0} ms (×{:.2} of it; the goal is within ×1.3). What is left on the node is the store's own work per key (index probe, record read, crc) and moving each batch to a blocking thread and back.",
                f.lookup_flat.median(),
                f.echo_lookup_flat.median(),
                f.lookup_flat.median() / f.echo_lookup_flat.median().max(1e-9)
            ),
        )
    );
    println!();
    println!(
        "Median of {} runs (range in brackets). Redis ÷ dstash time above 1 means dstash is faster. \
         One stream or connection each, batches sent back to back; the node keeps up to 8 batches \
         of a stream in flight. Redis without persistence acknowledges before anything reaches disk; \
         dstash acknowledges each batch after fdatasync.",
        a.runs
    );
    if let Some(why) = redis_missing {
        println!("The Redis columns are empty: {why}.");
    }
}

/// Child: a dstash node over DIR with default settings (`--sync always`) on a free
/// loopback port; prints `ADDR <addr>` once serving, stops on SIGTERM or when killed.
/// `--retention SECS` sets the counter retention; `--no-fsync` runs it `--sync never`.
pub fn child_serve_node(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let dir = args.next().ok_or("missing data directory")?;
    let mut opts = dstash_node::NodeOptions::insecure(dir, ([127, 0, 0, 1], 0).into());
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--retention" => {
                opts.store.retention_secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--retention needs seconds")?;
            }
            "--no-fsync" => opts.store.sync = dstash_storage::SyncMode::Never,
            "--handoff-rate" => {
                opts.sync.handoff_rate = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--handoff-rate needs records per second")?;
            }
            "--id" => opts.service.node_id = args.next().ok_or("--id needs a node id")?,
            other => return Err(format!("serve-node: unknown flag {other}")),
        }
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut node = dstash_node::Node::start(opts)
            .await
            .map_err(|e| e.to_string())?;
        node.ready().await.map_err(|e| e.to_string())?;
        let mut signals = dstash_node::Termination::install().map_err(|e| e.to_string())?;
        println!("ADDR {}", node.local_addr());
        signals.wait().await;
        node.shutdown().await.map_err(|e| e.to_string())
    })
}

/// Child: the echo server on a free loopback port; prints `ADDR <addr>`.
pub fn child_serve_echo() -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        println!("ADDR {}", listener.local_addr().map_err(|e| e.to_string())?);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(crate::echo::server())
            .serve_with_incoming(incoming)
            .await
            .map_err(|e| e.to_string())
    })
}
