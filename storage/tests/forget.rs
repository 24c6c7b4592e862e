//! Forgetting the partitions a node no longer owns: their records (tombstones too)
//! leave the index with no tombstone, the rest is untouched, it holds across a crash,
//! and compaction reclaims the space.

mod common;

use common::*;
use dstash_cluster::partition::{partition_of, PARTITIONS};
use dstash_storage::{Lookup, ManualClock, Store};

const N: u64 = 4000;

fn dropped(p: u32) -> bool {
    !p.is_multiple_of(3)
}

fn load(s: &Store) {
    for i in 0..N {
        s.put("f", &key(i), &value(i, 0), 0).unwrap();
    }
    for i in (0..N).step_by(10) {
        s.delete("f", &key(i)).unwrap();
    }
}

/// Per key: Missing for a dropped partition, else the value or the tombstone.
fn check(s: &Store) {
    let keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    for (i, got) in s.lookup_each("f", &refs).unwrap().into_iter().enumerate() {
        let i = i as u64;
        match got {
            Lookup::Missing if dropped(partition_of(&key(i))) => {}
            Lookup::Deleted(_) if !dropped(partition_of(&key(i))) && i.is_multiple_of(10) => {}
            Lookup::Found(f) if !dropped(partition_of(&key(i))) && !i.is_multiple_of(10) => {
                assert_eq!(f.value, value(i, 0), "key {i}")
            }
            other => panic!("key {i} (partition {}): {other:?}", partition_of(&key(i))),
        }
    }
}

#[test]
fn forgotten_partitions_read_as_missing_and_stay_so_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    load(&s);
    let all: Vec<u32> = (0..PARTITIONS).collect();
    let before = s.digests("f", &all, false).unwrap().unwrap();
    let kept_keys = (0..N).filter(|&i| !dropped(partition_of(&key(i)))).count();

    let gone = s.forget("f", &dropped).unwrap();
    assert_eq!(
        gone,
        N - kept_keys as u64,
        "every record of a dropped partition"
    );
    check(&s);
    let after = s.digests("f", &all, false).unwrap().unwrap();
    for p in 0..PARTITIONS as usize {
        let want = if dropped(p as u32) { 0 } else { before[p] };
        assert_eq!(after[p], want, "digest of partition {p}");
    }
    assert_eq!(
        s.forget("f", &dropped).unwrap(),
        0,
        "forgetting again finds nothing"
    );

    s.crash();
    let s = open(dir.path(), &clock);
    check(&s);
    assert_eq!(s.digests("f", &all, false).unwrap().unwrap(), after);
}

#[test]
fn a_forgotten_key_takes_any_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    load(&s);
    s.forget("f", &dropped).unwrap();
    let i = (0..N).find(|&i| dropped(partition_of(&key(i)))).unwrap();
    s.put("f", &key(i), b"back", 0).unwrap();
    assert_eq!(s.get("f", &key(i)).unwrap().as_deref(), Some(&b"back"[..]));
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(s.get("f", &key(i)).unwrap().as_deref(), Some(&b"back"[..]));
}

#[test]
fn compaction_reclaims_what_was_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    // Enough data for several sealed segments.
    for round in 0..3 {
        for i in 0..N {
            s.put("f", &key(i + round * N), &[b'v'; 600], 0).unwrap();
        }
    }
    s.checkpoint().unwrap();
    let stats = |s: &Store| s.stats().into_iter().find(|n| n.name == "f").unwrap().kv;
    let before = stats(&s);
    s.forget("f", &|_| true).unwrap();
    let mid = stats(&s);
    assert_eq!(mid.keys, 0);
    assert!(
        mid.dead_bytes > before.dead_bytes + before.data_bytes / 2,
        "{mid:?}"
    );
    // The active segment holds the rest; roll it with one more write, then compact.
    s.put("f", b"last", &[b'v'; 600], 0).unwrap();
    s.checkpoint().unwrap();
    while s.compact_now().unwrap() > 0 {}
    let after = stats(&s);
    assert!(
        after.data_bytes < before.data_bytes / 2,
        "before {before:?}\nafter {after:?}"
    );
    assert_eq!(
        s.get("f", b"last").unwrap().as_deref(),
        Some(&[b'v'; 600][..])
    );
}
