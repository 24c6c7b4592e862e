//! Concurrent writers share fsyncs (group commit), readers see every acknowledged write,
//! and counts from many threads add up exactly.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dstash_storage::io::FaultyIo;
use dstash_storage::{ManualClock, Options, Store, SyncMode};

const WRITERS: u64 = 4;
const BATCHES: u64 = 60;
const PER_BATCH: u64 = 50;

fn wkey(w: u64, b: u64, i: u64) -> Vec<u8> {
    format!("w{w}-b{b}-{i}").into_bytes()
}

#[test]
fn writers_share_fsyncs_and_readers_see_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let io = Arc::new(FaultyIo::new());
    let store = Arc::new(
        Store::open(
            dir.path(),
            Options {
                io: io.clone(),
                ..opts(&clock)
            },
        )
        .unwrap(),
    );
    store.put("c", b"warm", b"up", 0).unwrap();
    let syncs_before = io.syncs.load(Ordering::SeqCst);
    // acked[w] = batches of writer w acknowledged so far.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, acked) = (store.clone(), acked.clone());
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let keys: Vec<Vec<u8>> = (0..PER_BATCH).map(|i| wkey(w, b, i)).collect();
                    // Each key is its own value, so readers can check what they get.
                    store.put_many("c", &entries(&keys, &keys)).unwrap();
                    store.add("c", b"batches", 1).unwrap();
                    acked[w as usize].store(b + 1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, acked) = (store.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut checked = 0u64;
                loop {
                    let done: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
                    for (w, &n) in done.iter().enumerate() {
                        if n == 0 {
                            continue;
                        }
                        let b = (checked + r) % n;
                        let k = wkey(w as u64, b, checked % PER_BATCH);
                        assert_eq!(
                            store.get("c", &k).unwrap().as_deref(),
                            Some(&k[..]),
                            "acked key missing"
                        );
                        checked += 1;
                    }
                    if done.iter().all(|&n| n == BATCHES) {
                        return checked;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let checked: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checked > 0);
    let syncs = io.syncs.load(Ordering::SeqCst) - syncs_before;
    let commits = WRITERS * BATCHES * 2;
    assert!(
        syncs < commits,
        "{syncs} syncs for {commits} durable commits: none were shared"
    );
    assert_eq!(store.count("c", b"batches", 0).unwrap(), WRITERS * BATCHES);
    for w in 0..WRITERS {
        for b in 0..BATCHES {
            assert!(store
                .get("c", &wkey(w, b, PER_BATCH - 1))
                .unwrap()
                .is_some());
        }
    }
    eprintln!("{syncs} fdatasyncs for {commits} durable commits");
}

#[test]
fn interval_mode_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let o = Options {
        sync: SyncMode::Interval(Duration::from_millis(20)),
        background: true,
        io: io.clone(),
        ..Options::default()
    };
    let store = Store::open(dir.path(), o).unwrap();
    store.put("i", b"k", b"v", 0).unwrap();
    let before = io.syncs.load(Ordering::SeqCst);
    // The background thread ticks every 100 ms; give it a few ticks.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while io.syncs.load(Ordering::SeqCst) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no background sync happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    store.crash();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get("i", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}
