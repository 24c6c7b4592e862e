//! Real `kill -9` with adds in flight: a child process (this test binary, re-executed)
//! adds batches from two threads under request ids, checkpointing often, and prints
//! each batch before sending it and again once acknowledged; the parent kills it at a
//! random moment. After each restart every acknowledged add is counted exactly once:
//! the batches that were in flight are resent under their ids, as a client retry
//! would, and every key then counts exactly the batches sent. Rounds:
//! `DSTASH_KILL9_ROUNDS` (default 5).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

mod common;

use dstash_storage::{Options, Store};

const CHILD_DIR: &str = "DSTASH_COUNTS_KILL9_DIR";
const CHILD_ROUND: &str = "DSTASH_COUNTS_KILL9_ROUND";
const THREADS: u64 = 2;
const KEYS: u64 = 300;

fn opts() -> Options {
    Options {
        // Checkpoints every few batches, so kills land before, during and after them.
        checkpoint_bytes: 64 << 10,
        checkpoint_interval: Duration::from_millis(50),
        ..Options::default()
    }
}

fn key(round: u64, thread: u64, k: u64) -> Vec<u8> {
    format!("r{round}-t{thread}-k{k}").into_bytes()
}

/// Batch `b` of a thread adds one event to each of its keys, 2 to every seventh.
fn batch(round: u64, thread: u64) -> Vec<(Vec<u8>, u32)> {
    (0..KEYS)
        .map(|k| (key(round, thread, k), 1 + k.is_multiple_of(7) as u32))
        .collect()
}

fn id(round: u64, thread: u64, b: u64) -> String {
    format!("r{round}-t{thread}-b{b}")
}

fn add(store: &Store, round: u64, thread: u64, b: u64, at: u64) -> Vec<u64> {
    let items = batch(round, thread);
    let refs: Vec<(&[u8], u32)> = items.iter().map(|(k, n)| (k.as_slice(), *n)).collect();
    store
        .add_once("c", &refs, Some(at), Some(&id(round, thread, b)))
        .unwrap()
}

#[test]
#[ignore = "the child half of acknowledged_adds_count_once_after_kill_9"]
fn counts_kill9_child() {
    let dir = std::env::var(CHILD_DIR).expect("spawned by the parent test");
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let store = std::sync::Arc::new(Store::open(&dir, opts()).unwrap());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0.. {
                    let at = store.options().clock.now_secs();
                    println!("SEND {t} {b} {at}");
                    add(&store, round, t, b, at);
                    println!("ACK {t} {b}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Per thread: the batches sent (with their second) and the last acknowledged.
#[derive(Default, Debug)]
struct Seen {
    sent: BTreeMap<u64, u64>,
    acked: Option<u64>,
}

#[test]
fn acknowledged_adds_count_once_after_kill_9() {
    let rounds = common::kill9_rounds();
    let dir = tempfile::tempdir().unwrap();
    let seed = std::process::id() as u64;
    for round in 0..rounds {
        let envs = [
            (CHILD_DIR, dir.path().display().to_string()),
            (CHILD_ROUND, round.to_string()),
        ];
        let mut child = common::spawn_child("counts_kill9_child", &envs);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let f: Vec<u64> = line
                    .split(' ')
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                match (line.split(' ').next(), f.as_slice()) {
                    (Some("SEND"), [t, b, at]) => {
                        seen.entry(*t).or_default().sent.insert(*b, *at);
                    }
                    (Some("ACK"), [t, b]) => seen.entry(*t).or_default().acked = Some(*b),
                    _ => {}
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(
            200 + common::pseudo_random(seed + round) % 600,
        ));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let seen = reader.join().unwrap();

        let store = Store::open(dir.path(), opts()).unwrap();
        for (t, s) in &seen {
            let acked = s.acked.map_or(0, |b| b + 1);
            let sent = s.sent.len() as u64;
            assert!(sent <= acked + 1, "one batch in flight per thread");
            let per_batch = |k: u64| 1 + k.is_multiple_of(7) as u64;
            for k in 0..KEYS {
                let got = store.count("c", &key(round, *t, k), 0).unwrap();
                assert!(
                    got == acked * per_batch(k) || got == sent * per_batch(k),
                    "round {round} thread {t} key {k}: {got}, acked {acked} sent {sent}"
                );
            }
            // The batch in flight, resent under its id: counted once, wherever it got.
            if sent > acked {
                let at = s.sent[&acked];
                add(&store, round, *t, acked, at);
                add(&store, round, *t, acked, at);
            }
            for k in 0..KEYS {
                let got = store.count("c", &key(round, *t, k), 0).unwrap();
                assert_eq!(
                    got,
                    sent * per_batch(k),
                    "round {round} thread {t} key {k} after the resend"
                );
            }
        }
        assert!(
            seen.values().any(|s| s.acked.is_some()),
            "round {round}: the child acknowledged nothing"
        );
        store.close().unwrap();
    }
}
