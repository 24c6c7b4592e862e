//! Key/value behaviour through the public Store API.

mod common;

use common::*;
use dstash_storage::{Error, ManualClock, PutEntry, Store};

#[test]
fn put_get_delete_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    assert_eq!(s.get("users", b"nobody").unwrap(), None);
    s.put("users", b"alice", b"1", 0).unwrap();
    s.put("users", b"alice", b"2", 0).unwrap();
    assert_eq!(
        s.get("users", b"alice").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        s.get("other", b"alice").unwrap(),
        None,
        "namespaces are separate"
    );

    let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
    let vals: Vec<Vec<u8>> = (0..500).map(|i| value(i, 1)).collect();
    s.put_many("users", &entries(&keys, &vals)).unwrap();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let got = s.get_many("users", &refs).unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.as_deref(), Some(vals[i].as_slice()));
    }
    let found = s
        .delete_many("users", &[&keys[0], b"missing", &keys[0]])
        .unwrap();
    assert_eq!(found, vec![true, false, false]);
    assert_eq!(s.get("users", &keys[0]).unwrap(), None);
    assert!(s.delete("users", b"alice").unwrap());
    let stats = s.stats();
    assert_eq!(stats.len(), 1, "reads never create a namespace");
    assert_eq!(stats[0].kv.keys, 499);
}

#[test]
fn limits_are_typed_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    s.put("ns", b"keep", b"v", 0).unwrap();
    assert!(matches!(
        s.put("ns", b"", b"v", 0),
        Err(Error::EmptyKey { max: 65535 })
    ));
    let big_key = vec![b'k'; 65536];
    assert!(matches!(
        s.put("ns", &big_key, b"v", 0),
        Err(Error::KeyTooLarge {
            len: 65536,
            max: 65535
        })
    ));
    s.put("ns", &big_key[..65535], b"max key", 0).unwrap();
    let big = vec![0u8; (64 << 10) + 1];
    let err = s.put("ns", b"k", &big, 0).unwrap_err();
    assert!(err.to_string().contains("65536"), "{err}");
    // A batch with one bad entry writes nothing.
    let bad = [
        PutEntry {
            key: b"a",
            value: b"1",
            ttl_secs: 0,
            version: None,
        },
        PutEntry {
            key: b"",
            value: b"2",
            ttl_secs: 0,
            version: None,
        },
    ];
    assert!(s.put_many("ns", &bad).is_err());
    assert_eq!(s.get("ns", b"a").unwrap(), None);
    for ns in ["../etc", "", &"n".repeat(65), "naïve", ".x"] {
        assert!(
            matches!(
                s.put(ns, b"k", b"v", 0),
                Err(Error::InvalidNamespace { .. })
            ),
            "{ns}"
        );
        assert!(
            matches!(s.get(ns, b"k"), Err(Error::InvalidNamespace { .. })),
            "{ns}"
        );
    }
    assert!(!dir.path().join("etc").exists());
    assert_eq!(s.get("ns", b"keep").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(
        s.get("ns", &big_key[..65535]).unwrap().as_deref(),
        Some(&b"max key"[..])
    );
}

#[test]
fn ttl_keys_expire_on_the_clock_and_compaction_reclaims_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    let v = vec![b'x'; 1000];
    for i in 0..3000 {
        s.put("ttl", &key(i), &v, 10).unwrap();
    }
    s.put("ttl", b"forever", b"v", 0).unwrap();
    // Seal the segments holding TTL records: the active segment is never compacted.
    for _ in 0..1100 {
        s.put("ttl", b"filler", &v, 0).unwrap();
    }
    clock.advance(9);
    assert!(s.get("ttl", &key(1)).unwrap().is_some());
    clock.advance(1);
    assert_eq!(
        s.get("ttl", &key(1)).unwrap(),
        None,
        "expired at exactly ttl seconds"
    );
    let listed = drain(s.keys("ttl", "").unwrap());
    assert_eq!(listed, vec![b"filler".to_vec(), b"forever".to_vec()]);

    let before = s.stats()[0].kv.clone();
    assert!(before.segments >= 3, "{before:?}");
    s.checkpoint().unwrap();
    let mut compacted = 0;
    while s.compact_now().unwrap() > 0 {
        compacted += 1;
    }
    let after = s.stats()[0].kv.clone();
    assert!(compacted >= 2, "compacted {compacted}");
    assert!(
        after.data_bytes < before.data_bytes / 2,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.keys, 2, "expired keys left the index");
    assert_eq!(
        s.get("ttl", b"forever").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn listing_streams_glob_matches_exactly_once_across_index_growth() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..3000 {
        s.put("l", format!("user:{i}").as_bytes(), b"v", 0).unwrap();
        s.put("l", format!("item:{i}").as_bytes(), b"v", 0).unwrap();
    }
    let mut stream = s.keys("l", "user:1*").unwrap();
    let mut got = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next_chunk().unwrap() {
        chunks += 1;
        got.extend(chunk);
        if chunks == 1 {
            // Grow the index mid-listing: the walk is by hash range, so nothing repeats.
            for i in 0..20_000 {
                s.put("l", format!("other:{i}").as_bytes(), b"v", 0)
                    .unwrap();
            }
        }
    }
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("user:{i}"))
        .filter(|k| k.starts_with("user:1"))
        .map(String::into_bytes)
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(matches!(
        s.keys("l", "bad\\"),
        Err(Error::InvalidPattern { .. })
    ));
}

#[test]
fn pages_resume_by_position_across_growth_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..3000 {
        s.put("p", format!("user:{i}").as_bytes(), b"v", 0).unwrap();
    }
    let (mut got, mut from, mut pages) = (Vec::new(), Some(0), 0);
    while let Some(at) = from {
        let (keys, next) = s.keys_page("p", "user:*", at, 50).unwrap();
        assert!(next.is_none_or(|n| n > at), "a page moves forward");
        got.extend(keys);
        from = next;
        pages += 1;
        if pages == 3 {
            // The index grows between pages: positions are hashes, not slots.
            for i in 0..20_000 {
                s.put("p", format!("other:{i}").as_bytes(), b"v", 0)
                    .unwrap();
            }
        }
    }
    assert!(pages > 10, "pages of about 50 keys: {pages}");
    got.sort();
    got.dedup();
    let mut want: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("user:{i}").into_bytes())
        .collect();
    want.sort();
    assert_eq!(got, want, "every key present throughout is in some page");
    assert_eq!(s.keys_page("none", "", 0, 10).unwrap(), (Vec::new(), None));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let _s = open(dir.path(), &clock);
    assert!(matches!(
        Store::open(dir.path(), opts(&clock)),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn values_survive_clean_reopen_without_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..5000 {
        s.put("r", &key(i), &value(i, 0), 0).unwrap();
    }
    s.delete("r", &key(7)).unwrap();
    s.close().unwrap();
    let s = open(dir.path(), &clock);
    let st = &s.stats()[0].kv;
    assert_eq!((st.keys, st.replayed_records), (4999, 0));
    assert_eq!(s.get("r", &key(7)).unwrap(), None);
    assert_eq!(s.get("r", &key(4999)).unwrap(), Some(value(4999, 0)));
}

#[test]
fn the_largest_allowed_record_fits_an_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    // The smallest segment the options accept for this value limit.
    let max_value = 64 << 10;
    let segment_size = (dstash_storage::record::RECORD_HEADER_LEN + 65_535 + max_value + 68) as u64;
    let o = dstash_storage::Options {
        segment_size,
        max_value_len: max_value,
        ..opts(&clock)
    };
    assert!(Store::open(
        dir.path(),
        dstash_storage::Options {
            segment_size: segment_size - 1,
            ..o.clone()
        }
    )
    .is_err());
    let s = Store::open(dir.path(), o).unwrap();
    let k = vec![b'k'; 65_535];
    let v = vec![b'v'; max_value];
    s.put("big", b"small", b"first", 0).unwrap();
    s.put("big", &k, &v, 0).unwrap();
    s.put("big", &k[..10], &v, 0).unwrap();
    assert_eq!(s.get("big", &k).unwrap().as_deref(), Some(&v[..]));
    assert_eq!(
        s.get("big", b"small").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(
        s.stats()[0].kv.segments >= 3,
        "each big record took a segment of its own"
    );
}
