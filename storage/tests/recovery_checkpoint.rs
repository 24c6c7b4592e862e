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
