//! Crashes around compaction: deleted keys stay deleted, live keys stay live.

mod common;

use common::*;
use dstash_storage::{ManualClock, Store};

/// Fills several segments: keys written twice (the first copies dead), a tenth deleted.
fn fill(s: &Store) {
    for round in 0..2 {
        for i in 0..3000 {
            s.put("k", &key(i), &value(i, round), 0).unwrap();
        }
    }
    for i in (0..3000).step_by(10) {
        s.delete("k", &key(i)).unwrap();
    }
    // Seal what was written so compaction may take it.
    s.put("k", b"filler", &vec![0; 60_000], 0).unwrap();
    for _ in 0..20 {
        s.put("k", b"filler", &vec![1; 60_000], 0).unwrap();
    }
    s.checkpoint().unwrap();
}

fn verify(s: &Store) {
    for i in 0..3000 {
        let want = (i % 10 != 0).then(|| value(i, 1));
        assert_eq!(s.get("k", &key(i)).unwrap(), want, "key {i}");
    }
}

#[test]
fn crash_in_the_middle_of_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    fill(&s);
    let before = s.stats()[0].kv.segments;
    // Half-compact a segment (some records moved, segment still there), then crash.
    let compacted_partially = {
        let ns = s.stats();
        assert!(ns[0].kv.dead_bytes > 0);
        s.compact_partially_for_test("k", 1)
    };
    assert!(compacted_partially, "a candidate segment exists");
    s.crash();
    let s = open(dir.path(), &clock);
    verify(&s);
    assert_eq!(
        s.stats()[0].kv.segments,
        before,
        "the half-compacted segment is still there"
    );
    // Finish compacting everything, crash again: deleted keys must not come back.
    s.checkpoint().unwrap();
    let mut n = 0;
    while s.compact_now().unwrap() > 0 {
        n += 1;
    }
    assert!(n >= 2, "compacted {n}");
    s.crash();
    let s = open(dir.path(), &clock);
    verify(&s);
    assert!(s.stats()[0].kv.segments < before);
}
