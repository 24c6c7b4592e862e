//! Space comes back without waiting for a segment to fill: after overwrite, delete and
//! expiry loops in a namespace far smaller than a segment, its segments return to at
//! most twice its live bytes plus one growth step (the active file's zero-filled room).

mod common;

use std::path::Path;

use common::*;
use dstash_storage::record::RECORD_HEADER_LEN;
use dstash_storage::{ManualClock, Options, Store};

const KEYS: u64 = 4_000;
const VALUE: usize = 1_000;
/// What the active file may hold past its last record (the segment's growth step).
const SLACK: u64 = 8 << 20;

fn reclaiming(dir: &Path, clock: &ManualClock) -> Store {
    let o = Options {
        segment_size: 256 << 20,
        reclaim_min_bytes: 1 << 20,
        ..opts(clock)
    };
    Store::open(dir, o).unwrap()
}

fn segment_bytes(dir: &Path) -> u64 {
    kv_files(dir, "r", "seg-")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn live_bytes(keys: u64, value: usize) -> u64 {
    keys * (RECORD_HEADER_LEN + key(0).len() + value) as u64
}

fn load(s: &Store, round: u8, ttl: u32) {
    put_range(s, "r", 0..KEYS, &vec![round; VALUE], ttl);
}

/// Compacts until nothing is left worth it.
fn reclaim(s: &Store) {
    for _ in 0..1_000 {
        if s.compact_now().unwrap() == 0 {
            return;
        }
    }
    panic!("compaction never settled");
}

#[test]
fn overwrites_come_back_to_twice_the_live_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = reclaiming(dir.path(), &clock);
    for round in 0..12 {
        load(&s, round, 0);
        reclaim(&s);
    }
    let used = segment_bytes(dir.path());
    assert!(
        used <= 2 * live_bytes(KEYS, VALUE) + SLACK,
        "{used} bytes on disk for {} live",
        live_bytes(KEYS, VALUE)
    );
    assert_eq!(s.get("r", &key(7)).unwrap(), Some(vec![11; VALUE]));
    assert!(s.stats()[0].kv.compacted_segments > 0);
}

#[test]
fn deleted_and_expired_values_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = reclaiming(dir.path(), &clock);
    for round in 0..4 {
        load(&s, round, 0);
        for k in (0..KEYS).map(key) {
            s.delete("r", &k).unwrap();
        }
        load(&s, round, 60);
        clock.advance(61);
        reclaim(&s);
    }
    // Only tombstones are left (kept for their grace period): no value bytes.
    let used = segment_bytes(dir.path());
    assert!(
        used <= 2 * live_bytes(KEYS, 0) + SLACK,
        "{used} bytes on disk for {} bytes of tombstones",
        live_bytes(KEYS, 0)
    );
    assert_eq!(s.get("r", &key(7)).unwrap(), None);
}

#[test]
fn an_early_seal_survives_a_crash_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = reclaiming(dir.path(), &clock);
    for round in 0..3 {
        load(&s, round, 0);
    }
    reclaim(&s);
    load(&s, 9, 0);
    s.crash();
    let s = reclaiming(dir.path(), &clock);
    for i in (0..KEYS).step_by(97) {
        assert_eq!(
            s.get("r", &key(i)).unwrap(),
            Some(vec![9; VALUE]),
            "key {i}"
        );
    }
}
