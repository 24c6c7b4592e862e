//! Counts handed from one store to another: cells read on an old owner and merged on a
//! new one give the same counts over every window, merging again or from a second
//! replica never counts an event twice, and forgetting clears them; all across a crash.

mod common;

use common::*;
use dstash_cluster::partition::partition_of;
use dstash_storage::{CounterCells, ManualClock, Store};

const ALL: (u64, u128) = (0, 1 << 64);

fn cells(s: &Store, pick: &dyn Fn(u32) -> bool) -> Vec<CounterCells> {
    s.counter_cells("rl", pick, ALL.0, ALL.1).unwrap()
}

/// 50 keys, key i counted i + 1 times at each of 30 seconds.
fn counted(dir: &std::path::Path, clock: &ManualClock) -> Store {
    let s = open(dir, clock);
    for _ in 0..30 {
        for i in 0..50u32 {
            s.add("rl", &key(i as u64), i + 1).unwrap();
        }
        clock.advance(1);
    }
    clock.advance(10);
    s
}

fn counts(s: &Store, window: u32) -> Vec<u64> {
    (0..50)
        .map(|i| s.count("rl", &key(i), window).unwrap())
        .collect()
}

#[test]
fn merged_cells_give_the_same_counts_and_merging_twice_counts_nothing_twice() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let a = counted(a_dir.path(), &clock);
    let b = open(b_dir.path(), &clock);
    let sent = cells(&a, &|_| true);
    assert_eq!(sent.len(), 50);
    assert!(sent
        .iter()
        .all(|c| c.cells.len() == 30 && c.cells.is_sorted()));
    b.merge_counters("rl", &sent).unwrap();
    for w in [0, 1, 11, 15, 40] {
        assert_eq!(counts(&b, w), counts(&a, w), "window {w}");
    }
    // Again, and from a replica that missed the first ten seconds: no change.
    b.merge_counters("rl", &sent).unwrap();
    let partial: Vec<CounterCells> = sent
        .iter()
        .map(|c| CounterCells {
            key: c.key.clone(),
            cells: c.cells[10..].to_vec(),
        })
        .collect();
    b.merge_counters("rl", &partial).unwrap();
    assert_eq!(counts(&b, 0), counts(&a, 0));
    b.crash();
    let b = open(b_dir.path(), &clock);
    assert_eq!(counts(&b, 0), counts(&a, 0), "merged counts are durable");
    // An event the new owner counted itself (a double write) stays counted once.
    a.add("rl", &key(0), 5).unwrap();
    b.add("rl", &key(0), 5).unwrap();
    b.merge_counters("rl", &cells(&a, &|_| true)).unwrap();
    assert_eq!(counts(&b, 0), counts(&a, 0));
}

#[test]
fn only_picked_partitions_and_live_seconds_move() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let a = counted(dir.path(), &clock);
    let odd = |p: u32| !p.is_multiple_of(2);
    let sent = cells(&a, &odd);
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|c| odd(partition_of(&c.key))));
    let want = (0..50).filter(|&i| odd(partition_of(&key(i)))).count();
    assert_eq!(sent.len(), want);
    // Cut by hash range, the chunks add up to the whole.
    let mid = 1u64 << 63;
    let lo = a.counter_cells("rl", &odd, 0, mid as u128).unwrap();
    let hi = a.counter_cells("rl", &odd, mid, ALL.1).unwrap();
    assert_eq!(lo.len() + hi.len(), sent.len());
    // Seconds older than the retention are neither sent nor merged.
    let retention = a.stats()[0].retention_secs as u64;
    // Counted at T0..T0+29, now T0+40: ten seconds on, the first ten have expired.
    clock.advance(retention - 31);
    assert!(cells(&a, &odd).iter().all(|c| c.cells.len() == 20));
    let b_dir = tempfile::tempdir().unwrap();
    let b = open(b_dir.path(), &clock);
    b.merge_counters("rl", &sent).unwrap();
    assert_eq!(
        counts(&b, 0),
        counts(&a, 0)
            .iter()
            .enumerate()
            .map(|(i, c)| if odd(partition_of(&key(i as u64))) {
                *c
            } else {
                0
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn forgotten_partitions_count_nothing_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = counted(dir.path(), &clock);
    let before = counts(&s, 0);
    let even = |p: u32| p.is_multiple_of(2);
    s.forget("rl", &even).unwrap();
    s.crash();
    let s = open(dir.path(), &clock);
    for (i, c) in counts(&s, 0).into_iter().enumerate() {
        let want = if even(partition_of(&key(i as u64))) {
            0
        } else {
            before[i]
        };
        assert_eq!(c, want, "key {i}");
    }
    let mut listed = Vec::new();
    let mut ks = s.counter_keys("rl", "").unwrap();
    while let Some(chunk) = ks.next_chunk().unwrap() {
        listed.extend(chunk);
    }
    assert!(listed.iter().all(|k| !even(partition_of(k))));
    assert!(!listed.is_empty());
}
