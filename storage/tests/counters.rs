//! Expiring counts on a fake clock: exact windows, whole-file expiry, restarts, listing.

mod common;

use common::*;
use dstash_storage::{Clock, Error, ManualClock, Store};

/// The namespace's count tables, one per generation.
fn generation_files(dir: &std::path::Path, ns: &str) -> usize {
    std::fs::read_dir(dir.join("ns").join(ns).join("counts"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".cgt")
        })
        .count()
}

#[test]
fn windows_are_exact_to_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    // One add at each of 60 consecutive seconds, i+1 entries at second i.
    for i in 0..60u64 {
        assert!(s.add("rl", b"ip", (i + 1) as u32).unwrap() > 0);
        clock.advance(1);
    }
    clock.set(T0 + 59);
    let total: u64 = (1..=60).sum();
    assert_eq!(
        s.count("rl", b"ip", 0).unwrap(),
        total,
        "0 = the full retention"
    );
    assert_eq!(s.count("rl", b"ip", 60).unwrap(), total);
    assert_eq!(
        s.count("rl", b"ip", 1).unwrap(),
        60,
        "the current second only"
    );
    assert_eq!(s.count("rl", b"ip", 10).unwrap(), (51..=60).sum::<u64>());
    clock.advance(1);
    assert_eq!(
        s.count("rl", b"ip", 0).unwrap(),
        total - 1,
        "second 0 left the window"
    );
    clock.advance(58);
    assert_eq!(
        s.count("rl", b"ip", 0).unwrap(),
        60,
        "only second 59 is left"
    );
    clock.advance(1);
    assert_eq!(s.count("rl", b"ip", 0).unwrap(), 0);
    assert_eq!(s.count("rl", b"other", 5).unwrap(), 0);
    assert!(matches!(
        s.count("rl", b"ip", 61),
        Err(Error::WindowTooLarge {
            window: 61,
            retention: 60
        })
    ));
}

#[test]
fn add_returns_the_count_and_n_zero_means_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    assert_eq!(s.add("c", b"k", 0).unwrap(), 1);
    assert_eq!(s.add("c", b"k", 5).unwrap(), 6);
    let counts = s.add_many("c", &[(b"a", 1), (b"k", 1), (b"a", 2)]).unwrap();
    assert_eq!(
        counts,
        vec![3, 7, 3],
        "counts are read after the whole batch"
    );
    assert_eq!(
        s.count_many("c", &[b"a", b"k", b"z"], 0).unwrap(),
        vec![3, 7, 0]
    );
}

#[test]
fn expired_generations_are_deleted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0 - T0 % 60);
    let start = clock.now_secs();
    let s = open(dir.path(), &clock);
    for i in 0..120u64 {
        clock.set(start + i);
        s.add("e", format!("k{}", i % 7).as_bytes(), 1).unwrap();
    }
    // Minute generations: keys touched in the second moved forward into it.
    assert_eq!(generation_files(dir.path(), "e"), 2);
    assert_eq!(
        s.count("e", b"k1", 0).unwrap(),
        8,
        "k1 at 64, 71, ... 113 of 60..119"
    );
    clock.set(start + 120);
    assert_eq!(
        s.expire_counters().unwrap(),
        1,
        "the first minute's touches are all past"
    );
    assert_eq!(generation_files(dir.path(), "e"), 1);
    assert_eq!(
        s.count("e", b"k1", 0).unwrap(),
        8,
        "the moved copies still count"
    );
    clock.advance(60);
    assert_eq!(s.expire_counters().unwrap(), 1);
    assert_eq!(generation_files(dir.path(), "e"), 0);
    assert_eq!(s.count("e", b"k1", 0).unwrap(), 0);
}

#[test]
fn counts_survive_clean_restarts_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..3000u32 {
        s.add("r", format!("user:{}", i % 1000).as_bytes(), 1)
            .unwrap();
    }
    s.close().unwrap();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("r", b"user:7", 0).unwrap(), 3);
    s.add("r", b"user:7", 1).unwrap();
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("r", b"user:7", 0).unwrap(), 4);
    assert_eq!(s.count("r", b"user:999", 0).unwrap(), 3);
}

#[test]
fn retention_is_per_namespace_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    s.set_retention("long", 3600).unwrap();
    assert!(matches!(
        s.set_retention("bad", 0),
        Err(Error::InvalidRetention { .. })
    ));
    s.add("long", b"k", 1).unwrap();
    s.add("short", b"k", 1).unwrap();
    clock.advance(600);
    assert_eq!(s.count("long", b"k", 3600).unwrap(), 1);
    assert_eq!(s.count("short", b"k", 0).unwrap(), 0);
    assert!(s.count("short", b"k", 3600).is_err());
    s.close().unwrap();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("long", b"k", 3600).unwrap(), 1);
}

#[test]
fn listing_reports_each_live_key_once_across_generations() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..50u64 {
        clock.set(T0 + i);
        s.add("l", b"ip:1.2.3.4", 1).unwrap();
        s.add("l", format!("ip:10.0.0.{}", i % 5).as_bytes(), 1)
            .unwrap();
        s.add("l", b"user:bob", 1).unwrap();
    }
    let mut want: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("ip:10.0.0.{i}").into_bytes())
        .collect();
    want.push(b"ip:1.2.3.4".to_vec());
    want.sort();
    assert_eq!(drain(s.counter_keys("l", "ip:*").unwrap()), want);
    assert_eq!(drain(s.counter_keys("l", "").unwrap()).len(), 7);
    clock.set(T0 + 49 + 60);
    assert!(
        drain(s.counter_keys("l", "").unwrap()).is_empty(),
        "nothing is live"
    );
    assert!(
        drain(s.keys("l", "").unwrap()).is_empty(),
        "counters are not key/value keys"
    );
}

#[test]
fn many_keys_grow_a_table_without_losing_counts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s: Store = open(dir.path(), &clock);
    let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("k{i}").into_bytes()).collect();
    let items: Vec<(&[u8], u32)> = keys.iter().map(|k| (k.as_slice(), 2)).collect();
    s.add_many("g", &items).unwrap();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    assert!(s.count_many("g", &refs, 0).unwrap().iter().all(|&c| c == 2));
}

#[test]
fn an_add_stamped_by_its_caller_counts_in_that_second() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s: Store = open(dir.path(), &clock);
    // Seen by the caller 5 s ago: outside a 3 s window, inside a 6 s one.
    assert_eq!(s.add_many_at("t", &[(b"k", 2)], Some(T0 - 5)).unwrap(), [2]);
    assert_eq!(s.count("t", b"k", 3).unwrap(), 0);
    assert_eq!(s.count("t", b"k", 6).unwrap(), 2);
    // A second ahead (the caller's clock runs ahead): answered with it counted.
    assert_eq!(s.add_many_at("t", &[(b"k", 1)], Some(T0 + 1)).unwrap(), [3]);
    clock.advance(1);
    assert_eq!(s.count("t", b"k", 1).unwrap(), 1);
    for far in [T0 - 20, T0 + 20] {
        match s.add_many_at("t", &[(b"k", 1)], Some(far)) {
            Err(Error::EventTime { max: 10, .. }) => {}
            other => panic!("an add stamped {far}: {other:?}"),
        }
    }
    assert_eq!(
        s.count("t", b"k", 0).unwrap(),
        3,
        "refused adds count nothing"
    );
}
