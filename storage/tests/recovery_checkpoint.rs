//! Crashes in the middle of a checkpoint leave the previous one in force.

mod common;

use std::sync::Arc;

use common::*;
use dstash_storage::io::{Fault, FaultyIo};
use dstash_storage::{ManualClock, Options, Store};

#[test]
fn a_checkpoint_that_never_finished_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let io = Arc::new(FaultyIo::new());
    let o = Options {
        io: io.clone(),
        ..opts(&clock)
    };
    let s = Store::open(dir.path(), o).unwrap();
    for i in 0..500 {
        s.put("p", &key(i), &value(i, 0), 0).unwrap();
    }
    s.checkpoint().unwrap();
    for i in 500..1000 {
        s.put("p", &key(i), &value(i, 0), 0).unwrap();
    }
    // The checkpoint syncs the segment, then the index, then its temporary file: fail the last.
    io.arm(Fault::SyncFails, 2);
    assert!(s.checkpoint().is_err());
    io.disarm();
    s.crash();
    let kv = dir.path().join("ns/p/kv");
    assert!(
        kv.join("CHECKPOINT.tmp").exists(),
        "the crash left a half-written checkpoint"
    );

    let s = open(dir.path(), &clock);
    assert!(!kv.join("CHECKPOINT.tmp").exists());
    for i in 0..1000 {
        assert_eq!(s.get("p", &key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    assert!(
        s.stats()[0].kv.replayed_records >= 500,
        "replayed from the previous checkpoint"
    );
}

#[test]
fn a_recovery_that_replayed_records_checkpoints_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..2000 {
        s.put("c", &key(i), &value(i, 0), 0).unwrap();
    }
    s.crash();
    // With the background thread on, and the clock standing still: the checkpoint must
    // not wait for the interval, or a crash loop would replay more at every start.
    let s = Store::open(
        dir.path(),
        Options {
            background: true,
            ..opts(&clock)
        },
    )
    .unwrap();
    assert!(s.stats()[0].kv.replayed_records > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.stats()[0].kv.checkpoints == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after replay"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(
        s.stats()[0].kv.replayed_records,
        0,
        "the replay was checkpointed"
    );
    for i in 0..2000 {
        assert_eq!(s.get("c", &key(i)).unwrap(), Some(value(i, 0)));
    }
}
