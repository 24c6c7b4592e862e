//! `dstash-benches soak`: many concurrent client streams against one node for a set
//! time, mixing BatchPut, BatchLookup, BatchAdd and BatchCount (issue #6).
//!
//! Each stream is one long-lived bidirectional gRPC stream of one kind, sending small
//! batches one at a time and checking every answer:
//!
//! - lookups read preloaded keys and must see exactly the preloaded values;
//! - adds count events on keys only their own stream adds to, so every answer must be
//!   exactly one more than the last;
//! - at the end, every put stream's keys hold their last acknowledged values and every
//!   add stream's keys count exactly the events acknowledged.
//!
//! The node's RssAnon and VmRSS are sampled through the run. Any error or wrong answer
//! fails the command (exit 2). `cargo run -p dstash-benches --release -- soak
//! --streams 1000 --seconds 60`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::hist::Hist;
use crate::loopback::Server;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000, value_parser = crate::flags::min::<4>)]
    streams: usize,
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Keys per batch.
    #[arg(long, default_value_t = 10, value_parser = crate::flags::min::<1>)]
    batch: usize,
    /// Preloaded keys the lookup streams read.
    #[arg(long, default_value_t = 10_000, value_parser = crate::flags::min::<1>)]
    keys: usize,
    /// HTTP/2 connections the streams share.
    #[arg(long, default_value_t = 10, value_parser = crate::flags::min::<1>)]
    connections: usize,
}

const NS: &str = "soak";
const KINDS: [&str; 4] = ["put", "lookup", "add", "count"];

fn preloaded_key(i: usize) -> Bytes {
    Bytes::from(format!("pre-{i:08}"))
}

fn preloaded_value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i:08}-{}", "p".repeat(64)))
}

/// Key `j` of put or add stream `s`.
fn own_key(s: usize, j: usize) -> Bytes {
    Bytes::from(format!("s{s:05}-{j:05}"))
}

fn put_value(s: usize, n: u64, j: usize) -> Bytes {
    Bytes::from(format!("s{s}-n{n}-j{j}"))
}

/// What the streams saw, shared.
#[derive(Default)]
struct Tally {
    ops: [AtomicU64; 4],
    errors: AtomicU64,
    wrong: AtomicU64,
    first_problem: Mutex<Option<String>>,
}

impl Tally {
    fn problem(&self, wrong: bool, what: String) {
        if wrong {
            self.wrong.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.first_problem.lock().unwrap().get_or_insert(what);
    }
}

/// The end state a stream leaves for the final check.
enum Left {
    /// Put stream: per key slot, the batch number of the last acknowledged write.
    Put(usize, Vec<Option<u64>>),
    /// Add stream: per key slot, the events acknowledged.
    Add(usize, Vec<u64>),
    Nothing,
}

struct Lane<Req, Resp> {
    tx: mpsc::Sender<Req>,
    rx: tonic::Streaming<Resp>,
}

impl<Req, Resp> Lane<Req, Resp> {
    /// One batch and its answer; `None` after an error, counted in `tally`.
    async fn call(&mut self, req: Req, tally: &Tally, kind: &str) -> Option<Resp> {
        if self.tx.send(req).await.is_err() {
            tally.problem(false, format!("{kind}: the stream closed"));
            return None;
        }
        match self.rx.message().await {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                tally.problem(false, format!("{kind}: the stream ended early"));
                None
            }
            Err(s) => {
                tally.problem(false, format!("{kind}: {s}"));
                None
            }
        }
    }
}

macro_rules! lane {
    ($client:expr, $method:ident) => {{
        let (tx, rx) = mpsc::channel(1);
        match $client.$method(ReceiverStream::new(rx)).await {
            Ok(r) => Ok(Lane {
                tx,
                rx: r.into_inner(),
            }),
            Err(s) => Err(s),
        }
    }};
}

/// Batches' worth of keys a put stream cycles through.
const RING: usize = 100;
/// The same for an add stream: fewer, since every counted key costs a slot of
/// `4 × span` bytes in each bucket (span = retention / 8).
const ADD_RING: usize = 10;

async fn stream(
    s: usize,
    a: Arc<Args>,
    mut c: DstashClient<Channel>,
    deadline: Instant,
    tally: Arc<Tally>,
    hist: Arc<Mutex<Hist>>,
) -> Left {
    let kind = s % 4;
    let name = KINDS[kind];
    let mut rng = (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut local = Hist::default();
    let b = a.batch;
    let left = match kind {
        0 => {
            let mut lane = match lane!(c, batch_put) {
                Ok(l) => l,
                Err(e) => return open_failed(&tally, name, e),
            };
            let mut last = vec![None; RING * b];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let base = (n as usize % RING) * b;
                let entries = (0..b)
                    .map(|j| Entry {
                        key: own_key(s, base + j),
                        value: put_value(s, n, base + j),
                        ttl_seconds: 0,
                        ..Default::default()
                    })
                    .collect();
                let t = Instant::now();
                let req = PutBatch {
                    namespace: NS.into(),
                    entries,
                    batch_id: n,
                };
                let Some(ack) = lane.call(req, &tally, name).await else {
                    break;
                };
                local.record(t.elapsed());
                if ack.written as usize != b || ack.batch_id != n {
                    tally.problem(true, format!("put: ack {ack:?} for batch {n}"));
                }
                for slot in &mut last[base..base + b] {
                    *slot = Some(n);
                }
                n += 1;
            }
            Left::Put(s, last)
        }
        1 => {
            let mut lane = match lane!(c, batch_lookup) {
                Ok(l) => l,
                Err(e) => return open_failed(&tally, name, e),
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                let picks: Vec<usize> = (0..b).map(|_| next() as usize % a.keys).collect();
                let req = LookupBatch {
                    namespace: NS.into(),
                    keys: picks.iter().map(|&i| preloaded_key(i)).collect(),
                    batch_id: n,
                    flat: false,
                };
                let t = Instant::now();
                let Some(res) = lane.call(req, &tally, name).await else {
                    break;
                };
                local.record(t.elapsed());
                for (r, &i) in res.results.iter().zip(&picks) {
                    if !r.found || r.value != preloaded_value(i) {
                        tally.problem(true, format!("lookup: key {i} answered {r:?}"));
                    }
                }
                if res.results.len() != b {
                    tally.problem(true, format!("lookup: {} answers", res.results.len()));
                }
                n += 1;
            }
            Left::Nothing
        }
        2 => {
            let mut lane = match lane!(c, batch_add) {
                Ok(l) => l,
                Err(e) => return open_failed(&tally, name, e),
            };
            let mut acked = vec![0u64; ADD_RING * b];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let base = (n as usize % ADD_RING) * b;
                let req = AddBatch {
                    namespace: NS.into(),
                    keys: (0..b).map(|j| own_key(s, base + j)).collect(),
                    batch_id: n,
                    at_seconds: 0,
                    request_id: String::new(),
                };
                let t = Instant::now();
                let Some(res) = lane.call(req, &tally, name).await else {
                    break;
                };
                local.record(t.elapsed());
                for (j, &count) in res.counts.iter().enumerate() {
                    let want = acked[base + j] + 1;
                    if count != want {
                        tally.problem(true, format!("add: count {count}, want {want}"));
                    }
                    acked[base + j] = want;
                }
                n += 1;
            }
            Left::Add(s, acked)
        }
        _ => {
            let mut lane = match lane!(c, batch_count) {
                Ok(l) => l,
                Err(e) => return open_failed(&tally, name, e),
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                // Keys of the add streams (s ≡ 2 mod 4), whichever exist.
                let keys = (0..b)
                    .map(|_| {
                        let adder = (next() as usize % (a.streams / 4).max(1)) * 4 + 2;
                        own_key(adder, next() as usize % (ADD_RING * b))
                    })
                    .collect();
                let req = CountBatch {
                    namespace: NS.into(),
                    keys,
                    window_seconds: 0,
                    batch_id: n,
                };
                let t = Instant::now();
                let Some(res) = lane.call(req, &tally, name).await else {
                    break;
                };
                local.record(t.elapsed());
                if res.counts.len() != b {
                    tally.problem(true, format!("count: {} answers", res.counts.len()));
                }
                n += 1;
            }
            Left::Nothing
        }
    };
    tally.ops[kind].fetch_add(local.count(), Ordering::Relaxed);
    hist.lock().unwrap().merge(&local);
    left
}

fn open_failed(tally: &Tally, kind: &str, e: tonic::Status) -> Left {
    tally.problem(false, format!("{kind}: opening the stream: {e}"));
    Left::Nothing
}

/// (RssAnon, VmRSS) of process `pid`, in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let [anon, rss] = crate::workload::status_bytes(&pid.to_string(), &["RssAnon:", "VmRSS:"]);
    (anon, rss)
}

async fn preload(c: &mut DstashClient<Channel>, keys: usize) -> Result<(), String> {
    let batches: Vec<PutBatch> = (0..keys)
        .collect::<Vec<_>>()
        .chunks(1000)
        .enumerate()
        .map(|(n, chunk)| PutBatch {
            namespace: NS.into(),
            entries: chunk
                .iter()
                .map(|&i| Entry {
                    key: preloaded_key(i),
                    value: preloaded_value(i),
                    ttl_seconds: 0,
                    ..Default::default()
                })
                .collect(),
            batch_id: n as u64,
        })
        .collect();
    let want = batches.len();
    let mut acks = c
        .batch_put(tokio_stream::iter(batches))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut got = 0;
    while let Some(_ack) = acks.message().await.map_err(|e| e.to_string())? {
        got += 1;
    }
    if got != want {
        return Err(format!("preload: {got} of {want} batches acknowledged"));
    }
    Ok(())
}

/// Every put stream's keys hold their last acknowledged value (or a later one it sent
/// and never saw acknowledged: none, since a stream stops only after an answer), and
/// every add stream's keys count exactly what was acknowledged.
async fn verify(c: &mut DstashClient<Channel>, left: &[Left], tally: &Tally) -> u64 {
    let mut verified = 0;
    for l in left {
        match l {
            Left::Put(s, last) => {
                let keys: Vec<Bytes> = (0..last.len()).map(|j| own_key(*s, j)).collect();
                let r = lookup_batch(c, keys)
                    .await
                    .map(|r| r.into_iter().map(|x| (x.found, x.value)).collect());
                let answers: Vec<(bool, Bytes)> = match r {
                    Ok(a) => a,
                    Err(e) => {
                        tally.problem(false, format!("verify lookups: {e}"));
                        continue;
                    }
                };
                for (j, ((found, v), n)) in answers.into_iter().zip(last).enumerate() {
                    let ok = match n {
                        Some(n) => found && v == put_value(*s, *n, j),
                        None => !found,
                    };
                    if !ok {
                        tally.problem(true, format!("put stream {s} key {j}: {v:?}, want {n:?}"));
                    }
                    verified += 1;
                }
            }
            Left::Add(s, acked) => {
                let keys: Vec<Bytes> = (0..acked.len()).map(|j| own_key(*s, j)).collect();
                match count_batch(c, keys).await {
                    Ok(counts) => {
                        for (j, (n, want)) in counts.iter().zip(acked).enumerate() {
                            if n != want {
                                tally.problem(
                                    true,
                                    format!("add stream {s} key {j}: {n}, want {want}"),
                                );
                            }
                            verified += 1;
                        }
                    }
                    Err(e) => tally.problem(false, format!("verify counts: {e}")),
                }
            }
            Left::Nothing => {}
        }
    }
    verified
}

/// One BatchLookup message, for the final check.
async fn lookup_batch(
    c: &mut DstashClient<Channel>,
    keys: Vec<Bytes>,
) -> Result<Vec<LookupResponse>, tonic::Status> {
    let req = LookupBatch {
        namespace: NS.into(),
        keys,
        batch_id: 0,
        flat: false,
    };
    let mut s = c
        .batch_lookup(tokio_stream::iter([req]))
        .await?
        .into_inner();
    Ok(s.message().await?.map(|r| r.results).unwrap_or_default())
}

/// One BatchCount message over the whole retention, for the final check.
async fn count_batch(
    c: &mut DstashClient<Channel>,
    keys: Vec<Bytes>,
) -> Result<Vec<u64>, tonic::Status> {
    let req = CountBatch {
        namespace: NS.into(),
        keys,
        window_seconds: 0,
        batch_id: 0,
    };
    let mut s = c.batch_count(tokio_stream::iter([req])).await?.into_inner();
    Ok(s.message().await?.map(|r| r.counts).unwrap_or_default())
}

pub fn run(a: Args) -> Result<(), String> {
    let a = Arc::new(a);
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    // A retention longer than the soak, so that final counts are exact.
    let retention = (a.seconds as u64 * 2 + 60).min(7 * 24 * 3600).to_string();
    let server = Server::spawn(&[
        "serve-node",
        tmp.path().join("soak").to_str().unwrap(),
        "--retention",
        &retention,
    ]);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut clients = Vec::new();
        for _ in 0..a.connections {
            clients.push(server.client().await);
        }
        preload(&mut clients[0], a.keys).await?;
        let tally = Arc::new(Tally::default());
        let hists: Vec<Arc<Mutex<Hist>>> = (0..4).map(|_| Arc::default()).collect();
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(a.seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for s in 0..a.streams {
            let c = clients[s % clients.len()].clone();
            let h = hists[s % 4].clone();
            tasks.spawn(stream(s, a.clone(), c, deadline, tally.clone(), h));
        }
        eprintln!(
            "soak: {} streams over {} connections for {} s",
            a.streams, a.connections, a.seconds
        );
        // Memory over time: about 10 samples, at least a second apart.
        let every = Duration::from_secs_f64((a.seconds / 10.0).max(1.0));
        let pid = server.pid();
        let mut samples = vec![(0.0, memory_of(pid))];
        let mut left = Vec::new();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(l) => left.push(l.map_err(|e| e.to_string())?),
                    None => break,
                },
                _ = tick.tick() => samples.push((started.elapsed().as_secs_f64(), memory_of(pid))),
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        samples.push((elapsed, memory_of(pid)));
        let verified = verify(&mut clients[0], &left, &tally).await;
        report(&a, elapsed, &tally, &hists, &samples, verified);
        let (errors, wrong) = (
            tally.errors.load(Ordering::Relaxed),
            tally.wrong.load(Ordering::Relaxed),
        );
        if errors + wrong > 0 {
            let first = tally.first_problem.lock().unwrap().clone();
            return Err(format!(
                "{errors} errors and {wrong} wrong answers; the first: {}",
                first.unwrap_or_default()
            ));
        }
        Ok(())
    })
}

fn report(
    a: &Args,
    elapsed: f64,
    tally: &Tally,
    hists: &[Arc<Mutex<Hist>>],
    samples: &[(f64, (u64, u64))],
    verified: u64,
) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "Soak: {} streams ({} of each kind) over {} connections, batches of {} keys, {:.1} s, one node with `--sync always`.",
        a.streams,
        a.streams / 4,
        a.connections,
        a.batch,
        elapsed
    );
    println!();
    println!("| stream kind | batches | keys/s | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (k, name) in KINDS.iter().enumerate() {
        let h = hists[k].lock().unwrap();
        let ops = tally.ops[k].load(Ordering::Relaxed);
        println!(
            "| {name} | {ops} | {:.0} | {} | {} | {} | {} |",
            ops as f64 * a.batch as f64 / elapsed,
            ms(h.quantile(0.50)),
            ms(h.quantile(0.99)),
            ms(h.quantile(0.999)),
            ms(h.max())
        );
    }
    println!();
    println!("| time | node RssAnon | node VmRSS |");
    println!("|---|---|---|");
    for (t, (anon, rss)) in samples {
        println!(
            "| {t:.0} s | {:.1} MiB | {:.1} MiB |",
            mib(*anon),
            mib(*rss)
        );
    }
    println!();
    println!(
        "Errors: {}. Wrong answers: {}. Keys checked at the end: {verified}.",
        tally.errors.load(Ordering::Relaxed),
        tally.wrong.load(Ordering::Relaxed)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
