//! The crash loop of issue #6: one `dstash node` process, batches of overwrites and
//! counted events streamed through the client library, and `kill -9` at a random point
//! of every round. After each restart:
//!
//! - every acknowledged key holds its newest acknowledged value or a newer one it was
//!   sent, and no key holds a value it was never given;
//! - every acknowledged event is counted, and nothing that was never sent is;
//! - the time from restart to serving is reported.
//!
//! `DSTASH_CRASH_ROUNDS` sets the rounds (20 by default, as in CI) and
//! `DSTASH_CRASH_SEED` replays a run's kill points:
//! `DSTASH_CRASH_ROUNDS=100 cargo test -p dstash --test crash_loop -- --nocapture`.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};
use support::{env_or, seed, spawn_loopback, NodeProcess, Rng};

/// Keys overwritten round after round; every value names its key and version.
const KEYS: usize = 4_000;
const BATCH: usize = 500;
/// Keys that count events; each adder task owns a disjoint slice of them.
const COUNTED: usize = 64;
const ADDERS: usize = 4;
const NS: &str = "crash";
const COUNTS: &str = "events";

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{i:05}"))
}

fn value(i: usize, version: u64) -> Bytes {
    Bytes::from(format!("k{i:05}=v{version}"))
}

/// The version a value was written with, if it is one this test writes for key `i`.
fn version_of(i: usize, v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let rest = s.strip_prefix(&format!("k{i:05}=v"))?;
    rest.parse().ok()
}

/// What the writers were told, shared with the test thread.
#[derive(Default, Clone)]
struct Ledger {
    /// Per key: the newest acknowledged version, and the newest version ever sent.
    acked: Vec<Option<u64>>,
    sent: Vec<Option<u64>>,
    /// Per counted key: events acknowledged, and events sent (acknowledged or not).
    counted: Vec<u64>,
    attempted: Vec<u64>,
    acked_batches: u64,
    acked_events: u64,
}

impl Ledger {
    fn new() -> Self {
        Self {
            acked: vec![None; KEYS],
            sent: vec![None; KEYS],
            counted: vec![0; COUNTED],
            attempted: vec![0; COUNTED],
            ..Self::default()
        }
    }
}

fn config(addr: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(vec![format!("n0={addr}").parse::<NodeSpec>().unwrap()]);
    cfg.replicas = 1;
    cfg.timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg
}

fn start(dir: &Path) -> NodeProcess {
    // A long retention, so that no acknowledged event of the run ages out.
    spawn_loopback(dir, &["--count-retention", "3600"])
}

/// Polls until the node answers a read: recovery is over and it serves.
async fn until_serving(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(NS, b"probe").await.is_err() {
        assert!(Instant::now() < deadline, "the node never served again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes versioned batches over the key set until the node goes away.
async fn writer(client: Client, ledger: Arc<Mutex<Ledger>>, first_version: u64) {
    let mut version = first_version;
    let mut next = 0usize;
    loop {
        let positions: Vec<usize> = (next..next + BATCH).map(|p| p % KEYS).collect();
        next = (next + BATCH) % KEYS;
        version += 1;
        let items: Vec<PutItem> = positions
            .iter()
            .map(|&i| PutItem {
                key: key(i),
                value: value(i, version),
                ttl_seconds: 0,
            })
            .collect();
        {
            let mut l = ledger.lock().unwrap();
            for &i in &positions {
                l.sent[i] = Some(version);
            }
        }
        let failed: Vec<usize> = match client.put_many(NS, &items).await {
            Ok(report) => report.failed.iter().map(|(p, _)| *p).collect(),
            Err(_) => return,
        };
        if !failed.is_empty() {
            return;
        }
        let mut l = ledger.lock().unwrap();
        for &i in &positions {
            l.acked[i] = Some(version);
        }
        l.acked_batches += 1;
    }
}

/// Adds one event at a time to its own keys until the node goes away.
async fn adder(client: Client, ledger: Arc<Mutex<Ledger>>, task: usize) {
    let mine: Vec<usize> = (task..COUNTED).step_by(ADDERS).collect();
    for n in 0.. {
        let k = mine[n % mine.len()];
        ledger.lock().unwrap().attempted[k] += 1;
        if client.add(COUNTS, &key(k), 1).await.is_err() {
            return;
        }
        let mut l = ledger.lock().unwrap();
        l.counted[k] += 1;
        l.acked_events += 1;
    }
}

/// Everything acknowledged is there; nothing is there that was never sent.
async fn verify(client: &Client, ledger: &Ledger, round: u32) -> usize {
    let keys: Vec<Bytes> = (0..KEYS).map(key).collect();
    let got = client.get_many(NS, &keys).await.unwrap();
    let mut verified = 0;
    for (i, g) in got.iter().enumerate() {
        match (g, ledger.acked[i], ledger.sent[i]) {
            (None, None, _) => {}
            (None, Some(v), _) => panic!("round {round}: key {i} lost (v{v} was acknowledged)"),
            (Some(g), acked, sent) => {
                let v = version_of(i, g).unwrap_or_else(|| {
                    panic!("round {round}: key {i} holds {g:?}, a value it was never given")
                });
                assert!(
                    sent.is_some_and(|s| v <= s),
                    "round {round}: key {i} holds v{v}, never sent (newest sent {sent:?})"
                );
                assert!(
                    acked.is_none_or(|a| v >= a),
                    "round {round}: key {i} went back to v{v} from acknowledged v{acked:?}"
                );
                verified += 1;
            }
        }
    }
    for k in 0..COUNTED {
        let n = client.count(COUNTS, &key(k), 0, false).await.unwrap();
        let (acked, sent) = (ledger.counted[k], ledger.attempted[k]);
        assert!(
            (acked..=sent).contains(&n),
            "round {round}: counted key {k} has {n} events; {acked} acknowledged, {sent} sent"
        );
    }
    verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_nothing_acknowledged() {
    let rounds: u32 = env_or("DSTASH_CRASH_ROUNDS", 20);
    let seed = seed("DSTASH_CRASH_SEED");
    eprintln!("crash loop: {rounds} rounds, DSTASH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let mut node = start(dir.path());
    let mut serving_ms = Vec::new();
    for round in 0..rounds {
        let client = Client::connect(config(&node.addr.to_string()))
            .await
            .unwrap();
        let first_version = u64::from(round) << 32;
        let mut tasks = vec![tokio::spawn(writer(
            client.clone(),
            ledger.clone(),
            first_version,
        ))];
        for t in 0..ADDERS {
            tasks.push(tokio::spawn(adder(client.clone(), ledger.clone(), t)));
        }
        // A random point: early rounds land mid-recovery checkpoints, later ones deep
        // into a stream.
        let kill_at = Duration::from_millis(50 + rng.below(450));
        tokio::time::sleep(kill_at).await;
        node.kill9();
        for t in tasks {
            t.await.unwrap();
        }

        let restarted = Instant::now();
        node = start(dir.path());
        let client = Client::connect(config(&node.addr.to_string()))
            .await
            .unwrap();
        until_serving(&client).await;
        let took = restarted.elapsed();
        serving_ms.push(took.as_millis());

        let snapshot = ledger.lock().unwrap().clone();
        let verified = verify(&client, &snapshot, round).await;
        eprintln!(
            "round {round}: kill -9 after {kill_at:?}; serving again after {took:?}; \
             {verified} keys and {} events verified ({} batches acknowledged so far)",
            snapshot.acked_events, snapshot.acked_batches
        );
    }
    serving_ms.sort_unstable();
    let l = ledger.lock().unwrap();
    assert!(
        l.acked_batches > 0 && l.acked_events > 0,
        "the loop acknowledged nothing, so it showed nothing"
    );
    eprintln!(
        "crash loop: {rounds} kills, {} batches of {BATCH} and {} events acknowledged, \
         none lost; time to serving min {} ms, median {} ms, max {} ms",
        l.acked_batches,
        l.acked_events,
        serving_ms[0],
        serving_ms[serving_ms.len() / 2],
        serving_ms[serving_ms.len() - 1]
    );
}
