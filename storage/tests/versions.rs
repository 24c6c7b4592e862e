//! The versioned engine against a model of (key -> newest version): writes from several
//! writers with versions out of order, stale writes, tombstones, TTL expiry as an
//! implicit tombstone, grace expiry, compaction, crashes and reopens in any order.

mod common;

use std::collections::HashMap;

use common::*;
use dstash_cluster::partition::{digest_item, LEAVES, PARTITIONS};
use dstash_storage::{
    Applied, Clock, DeleteEntry, Lookup, ManualClock, Options, PutEntry, Store, Version,
};
use proptest::prelude::*;

const GRACE: u64 = 30;

fn open_small(dir: &std::path::Path, clock: &ManualClock) -> Store {
    let o = Options {
        segment_size: 128 << 10,
        max_value_len: 4096,
        tombstone_grace_secs: GRACE,
        ..opts(clock)
    };
    Store::open(dir, o).unwrap()
}

/// A version `back` milliseconds before now (writes race, so some arrive late).
fn version(clock: &ManualClock, back: u16, writer: u8) -> Version {
    let ms = clock.now_secs() * 1000 + 5_000 - back as u64;
    Version::new(Version::ts_at_millis(ms), writer as u64)
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        k: u8,
        back: u16,
        w: u8,
        ttl: u8,
    },
    Delete {
        k: u8,
        back: u16,
        w: u8,
    },
    Advance {
        secs: u8,
    },
    Checkpoint,
    Compact,
    Reopen,
    Crash,
    /// One step of the digest rebuild after open, over this many index slots.
    RebuildStep {
        slots: u8,
    },
    CheckDigest,
}

fn op() -> impl Strategy<Value = Op> {
    let back = prop_oneof![3 => 0u16..50, 1 => 0u16..5000];
    prop_oneof![
        10 => (0u8..64, back.clone(), 0u8..3, prop_oneof![4 => Just(0u8), 1 => 1u8..20])
            .prop_map(|(k, back, w, ttl)| Op::Put { k, back, w, ttl }),
        4 => (0u8..64, back, 0u8..3).prop_map(|(k, back, w)| Op::Delete { k, back, w }),
        2 => (1u8..20).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        2 => (1u8..=255).prop_map(|slots| Op::RebuildStep { slots }),
        1 => Just(Op::CheckDigest),
    ]
}

/// The newest write of a key: its version, and its value and expiry (None: a delete).
#[derive(Debug, Clone)]
struct Newest {
    version: Version,
    value: Option<(Vec<u8>, u64)>,
}

impl Newest {
    /// Deleted (or expired) since this Unix second, if it reads as deleted at `now`.
    fn deleted_since(&self, now: u64) -> Option<u64> {
        match &self.value {
            None => Some(self.version.secs()),
            Some((_, exp)) if *exp != 0 && *exp <= now => Some(self.version.secs().max(*exp)),
            Some(_) => None,
        }
    }
}

fn val(k: u8, v: Version) -> Vec<u8> {
    let mut b = format!("{k}:{v}:").into_bytes();
    b.resize(400 + (v.ts as usize % 1200), b'.');
    b
}

/// What the store answers for `k` must be what the model holds: the newest value, or
/// a tombstone of the newest version, which may be gone once past its grace period.
fn check_key(s: &Store, model: &mut HashMap<u8, Newest>, k: u8, now: u64) {
    let got = s.lookup_each("m", &[&[k][..]]).unwrap().pop().unwrap();
    let Some(want) = model.get(&k) else {
        assert!(
            matches!(got, Lookup::Missing),
            "key {k}: {got:?}, never written"
        );
        return;
    };
    match (want.deleted_since(now), got) {
        (None, Lookup::Found(f)) => {
            assert_eq!(f.version, want.version, "key {k}");
            assert_eq!(
                Some(&f.value),
                want.value.as_ref().map(|(v, _)| v),
                "key {k}"
            );
        }
        (Some(_), Lookup::Deleted(v)) => assert_eq!(v, want.version, "key {k}"),
        (Some(since), Lookup::Missing) => {
            assert!(
                since + GRACE <= now,
                "key {k}: tombstone gone within its grace period"
            );
            model.remove(&k);
        }
        (_, got) => panic!("key {k}: got {got:?}, want {want:?} at {now}"),
    }
}

fn check_all(s: &Store, model: &mut HashMap<u8, Newest>, now: u64) {
    for k in 0..64u8 {
        check_key(s, model, k, now);
    }
}

/// Applies a write to the model, checking the store's verdict on it. A write older
/// than a tombstone past its grace period may be taken (the tombstone may be gone).
fn write(model: &mut HashMap<u8, Newest>, k: u8, new: Newest, applied: Applied, now: u64) {
    let newer = model.get(&k).is_none_or(|cur| cur.version < new.version);
    let forgotten = model
        .get(&k)
        .and_then(|cur| cur.deleted_since(now))
        .is_some_and(|since| since + GRACE <= now);
    match applied {
        Applied::Written { .. } => {
            assert!(newer || forgotten, "key {k}: an older write was taken");
            model.insert(k, new);
        }
        Applied::Stale => assert!(!newer, "key {k}: a newer write was refused"),
    }
}

/// The digest the store maintains, and the one its listing gives, are the XOR of the
/// model's (key, newest version) items, tombstones included.
fn check_digest(s: &Store, model: &HashMap<u8, Newest>) {
    let all: Vec<u32> = (0..PARTITIONS).collect();
    let got = s.digests("m", &all, true).unwrap().unwrap();
    let mut want = vec![0u64; LEAVES as usize];
    for (k, n) in model {
        let (leaf, item) = digest_item(&[*k], n.version);
        want[leaf as usize] ^= item;
    }
    let differing = (0..LEAVES as usize).filter(|&l| got[l] != want[l]).count();
    assert_eq!(
        differing, 0,
        "{differing} digest leaves differ from the model"
    );
    let leaves: Vec<u32> = (0..LEAVES).collect();
    let mut listed: Vec<(u8, Version)> = s
        .leaf_entries("m", &leaves)
        .unwrap()
        .into_iter()
        .map(|e| (e.key[0], e.version))
        .collect();
    listed.sort();
    let mut held: Vec<(u8, Version)> = model.iter().map(|(k, n)| (*k, n.version)).collect();
    held.sort();
    assert_eq!(listed, held, "leaf listing");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn the_newest_version_wins_through_everything(ops in proptest::collection::vec(op(), 1..300)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut s = Some(open_small(dir.path(), &clock));
        let mut model: HashMap<u8, Newest> = HashMap::new();
        for op in ops {
            let now = clock.now_secs();
            let st = s.as_ref().unwrap();
            match op {
                Op::Put { k, back, w, ttl } => {
                    let v = version(&clock, back, w);
                    let value = val(k, v);
                    let e = PutEntry { key: &[k], value: &value, ttl_secs: ttl as u32, version: Some(v) };
                    let applied = st.put_many("m", &[e]).unwrap()[0];
                    let exp = if ttl == 0 { 0 } else { now + ttl as u64 };
                    write(&mut model, k, Newest { version: v, value: Some((value, exp)) }, applied, now);
                }
                Op::Delete { k, back, w } => {
                    let v = version(&clock, back, w);
                    let e = DeleteEntry { key: &[k], version: Some(v) };
                    let applied = st.delete_each("m", &[e]).unwrap()[0];
                    write(&mut model, k, Newest { version: v, value: None }, applied, now);
                }
                Op::Advance { secs } => clock.advance(secs as u64),
                Op::Checkpoint => st.checkpoint().unwrap(),
                Op::Compact => {
                    st.compact_now().unwrap();
                }
                Op::Reopen => {
                    s.take().unwrap().close().unwrap();
                    s = Some(open_small(dir.path(), &clock));
                }
                Op::Crash => {
                    s.take().unwrap().crash();
                    s = Some(open_small(dir.path(), &clock));
                }
                Op::RebuildStep { slots } => {
                    st.rebuild_digest_partially_for_test("m", slots as u64);
                }
                Op::CheckDigest => check_digest(st, &model),
            }
            check_all(s.as_ref().unwrap(), &mut model, clock.now_secs());
        }
        check_digest(s.as_ref().unwrap(), &model);
        let now = clock.now_secs();
        s.take().unwrap().crash();
        let s = open_small(dir.path(), &clock);
        check_all(&s, &mut model, now);
        check_digest(&s, &model);
    }
}

/// Every file of the keyspace's index and checkpoint removed: the next open reindexes
/// the whole log.
fn force_full_reindex(dir: &std::path::Path) {
    for p in kv_files(dir, "m", "index-")
        .into_iter()
        .chain(kv_files(dir, "m", "CHECKPOINT"))
    {
        std::fs::remove_file(p).unwrap();
    }
}

/// A tombstone past its grace period is dropped only once no older value of its key
/// can remain: a full reindex never brings the deleted value back.
#[test]
fn a_full_reindex_never_resurrects_a_deleted_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut s = open_small(dir.path(), &clock);
    let big = vec![b'x'; 4000];
    // The first segment: the value to delete among values that stay live; the delete
    // lands in the second.
    s.put("m", b"gone", b"old value", 0).unwrap();
    for i in 0..34u32 {
        s.put("m", format!("keep-{i}").as_bytes(), &big, 0).unwrap();
    }
    assert_eq!(s.stats()[0].kv.segments, 2);
    assert!(s.delete("m", b"gone").unwrap());
    // Overwrites seal and kill later segments, so compaction moves the tombstone on.
    let churn = |s: &Store| {
        for i in 0..40u32 {
            s.put("m", format!("fill-{i}").as_bytes(), &big, 0).unwrap();
        }
        s.checkpoint().unwrap();
        while s.compact_now().unwrap() > 0 {}
    };
    let reindex = |s: Store| {
        s.close().unwrap();
        force_full_reindex(dir.path());
        let s = open_small(dir.path(), &clock);
        assert_eq!(
            s.get("m", b"gone").unwrap(),
            None,
            "resurrected by a reindex"
        );
        assert_eq!(s.get("m", b"fill-3").unwrap().as_deref(), Some(&big[..]));
        s
    };
    for _ in 0..4 {
        churn(&s);
    }
    clock.advance(GRACE + 1);
    for _ in 0..4 {
        churn(&s);
    }
    assert_eq!(
        s.stats()[0].kv.tombstones,
        1,
        "kept past its grace period while the old value's segment lives"
    );
    s = reindex(s);
    // Once the first segment dies too, the tombstone goes.
    for i in 0..34u32 {
        s.put("m", format!("keep-{i}").as_bytes(), b"small", 0)
            .unwrap();
    }
    let mut rounds = 0;
    while s.stats()[0].kv.tombstones > 0 {
        rounds += 1;
        assert!(rounds < 20, "the tombstone was never dropped");
        churn(&s);
    }
    reindex(s);
}

/// A write older than the stored version changes nothing, however it arrives, and a
/// tombstone refuses an older put until its grace period is over.
#[test]
fn stale_writes_are_no_ops_and_tombstones_refuse_older_puts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open_small(dir.path(), &clock);
    let (v1, v2, v3) = (
        version(&clock, 30, 0),
        version(&clock, 20, 1),
        version(&clock, 10, 0),
    );
    let put = |v: Version, value: &[u8]| {
        let e = PutEntry {
            key: b"k",
            value,
            ttl_secs: 0,
            version: Some(v),
        };
        s.put_many("m", &[e]).unwrap()[0]
    };
    assert_eq!(put(v2, b"two"), Applied::Written { existed: false });
    assert_eq!(put(v1, b"one"), Applied::Stale);
    assert_eq!(
        put(v2, b"two again"),
        Applied::Stale,
        "the same version is not newer"
    );
    assert_eq!(s.get("m", b"k").unwrap().as_deref(), Some(&b"two"[..]));
    let del = s
        .delete_each(
            "m",
            &[DeleteEntry {
                key: b"k",
                version: Some(v3),
            }],
        )
        .unwrap();
    assert_eq!(del, vec![Applied::Written { existed: true }]);
    assert_eq!(
        put(v2, b"late"),
        Applied::Stale,
        "the tombstone refuses an older put"
    );
    let got = s.lookup_each("m", &[b"k"]).unwrap().pop().unwrap();
    assert!(matches!(got, Lookup::Deleted(v) if v == v3), "{got:?}");
    // A delete of a key never written still leaves a tombstone.
    let absent = DeleteEntry {
        key: b"never",
        version: Some(v3),
    };
    assert_eq!(
        s.delete_each("m", &[absent]).unwrap(),
        vec![Applied::Written { existed: false }]
    );
    let e = PutEntry {
        key: b"never",
        value: b"x",
        ttl_secs: 0,
        version: Some(v1),
    };
    assert_eq!(s.put_many("m", &[e]).unwrap(), vec![Applied::Stale]);
}

/// A version far ahead of the store's clock is refused with the limit named; within the
/// limit it is taken, and the store's own next versions sort after it.
#[test]
fn versions_too_far_ahead_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open_small(dir.path(), &clock);
    let skew = s.options().max_clock_skew_ms;
    let ahead = |ms: u64| Version::new(Version::ts_at_millis(T0 * 1000 + ms), 7);
    let e = PutEntry {
        key: b"k",
        value: b"v",
        ttl_secs: 0,
        version: Some(ahead(skew + 1)),
    };
    let err = s.put_many("m", &[e]).unwrap_err().to_string();
    assert!(
        err.contains("ahead") && err.contains(&skew.to_string()),
        "{err}"
    );
    let near = ahead(skew - 1);
    let e = PutEntry {
        key: b"k",
        value: b"v",
        ttl_secs: 0,
        version: Some(near),
    };
    s.put_many("m", &[e]).unwrap();
    assert!(s.next_version() > near);
    assert!(
        s.delete("m", b"k").unwrap(),
        "the store's own delete is newer"
    );
}

/// A clean close saves the digest, so a clean open needs no rebuild scan; after a
/// crash the saved one is not trusted and the scan rebuilds it, to the same leaves.
#[test]
fn a_clean_restart_keeps_the_digest_and_a_crash_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let all: Vec<u32> = (0..PARTITIONS).collect();
    let s = open_small(dir.path(), &clock);
    for k in 0..50u8 {
        s.put("m", &[k], b"v", 0).unwrap();
    }
    let before = s.digests("m", &all, true).unwrap().unwrap();
    s.close().unwrap();
    let s = open_small(dir.path(), &clock);
    assert!(s.digests_ready(), "a clean open loads the saved digest");
    assert_eq!(s.digests("m", &all, true).unwrap().unwrap(), before);
    s.put("m", b"new", b"v", 0).unwrap();
    s.crash();
    let s = open_small(dir.path(), &clock);
    assert!(!s.digests_ready(), "after a crash the digest is rebuilt");
    let after = s.digests("m", &all, true).unwrap().unwrap();
    let differing = (0..after.len()).filter(|&i| after[i] != before[i]).count();
    assert_eq!(differing, 1, "only the new key's leaf changed");
}
