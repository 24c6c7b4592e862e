//! Damaged bytes: the store opens (or refuses naming the file), never panics,
//! and never serves a value whose checksum fails.

mod common;

use common::*;
use dstash_storage::{Error, Lookup, ManualClock};

const N: u64 = 400;

/// A crash image with N keys, half before and half after the last checkpoint.
fn image() -> (tempfile::TempDir, ManualClock, u64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..N {
        s.put("c", &key(i), &value(i, 0), 0).unwrap();
        if i == N / 2 {
            s.checkpoint().unwrap();
        }
    }
    let data_len = s.stats()[0].kv.data_bytes;
    s.crash();
    (dir, clock, data_len)
}

/// Every key reads as its value, as absent, or as a corruption error: never a wrong value.
fn never_wrong(s: &dstash_storage::Store) -> (u64, u64, u64) {
    let (mut ok, mut missing, mut corrupt) = (0, 0, 0);
    for i in 0..N {
        match s.get("c", &key(i)) {
            Ok(Some(v)) => {
                assert_eq!(v, value(i, 0), "key {i} served a wrong value");
                ok += 1;
            }
            Ok(None) => missing += 1,
            Err(Error::Corrupt { path, .. }) => {
                assert!(path.to_string_lossy().contains("seg-"), "{path:?}");
                corrupt += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    (ok, missing, corrupt)
}

/// `lookup_each` over every key answers each key as `get` does, one damaged record
/// failing only its own key.
fn each_key_answered_alone(s: &dstash_storage::Store) {
    let keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let each = s.lookup_each("c", &refs).unwrap();
    for (i, got) in each.iter().enumerate() {
        match (got, s.get("c", &keys[i])) {
            (Lookup::Found(f), Ok(Some(v))) => assert_eq!(f.value, v),
            (Lookup::Missing, Ok(None)) => {}
            (Lookup::Damaged(Error::Corrupt { .. }), Err(Error::Corrupt { .. })) => {}
            (l, g) => panic!("key {i}: lookup_each {l:?}, get {g:?}"),
        }
    }
}

#[test]
fn flipped_bits_in_records_are_caught() {
    let (base, clock, len) = image();
    // Bits all over the segment: in checkpointed records (caught on read) and in
    // replayed ones (caught on open, skipped, counted).
    for (n, off) in (80..len).step_by(997).enumerate() {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base.path(), img.path());
        let seg = kv_files(img.path(), "c", "seg-").pop().unwrap();
        flip_bit(&seg, off, (n % 8) as u8);
        let s = open(img.path(), &clock);
        let (ok, missing, corrupt) = never_wrong(&s);
        each_key_answered_alone(&s);
        assert!(
            ok >= N - 3,
            "offset {off}: ok {ok} missing {missing} corrupt {corrupt}"
        );
        assert!(
            missing + corrupt >= 1 || s.stats()[0].kv.corrupt_records >= 1,
            "offset {off}: damage went unnoticed"
        );
    }
}

/// Every flipped bit in the slots or checksums of a crash image's index is caught at
/// open: either every slot of the failing page still leads to its key (a crash can
/// leave a checksum behind its page) and the page is resealed with no reindex, or a
/// slot does not and the index is rebuilt from the log. No key is hidden either way.
#[test]
fn flipped_bits_in_index_pages_are_caught_at_open_and_hide_no_key() {
    let (base, clock, _) = image();
    let index = kv_files(base.path(), "c", "index-").pop().unwrap();
    let len = std::fs::metadata(&index).unwrap().len();
    let (mut resealed, mut rebuilt) = (0, 0);
    for (n, off) in (4096..len).step_by(331).enumerate() {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base.path(), img.path());
        let index = kv_files(img.path(), "c", "index-").pop().unwrap();
        flip_bit(&index, off, (n % 8) as u8);
        let s = open(img.path(), &clock);
        assert_eq!(never_wrong(&s), (N, 0, 0), "offset {off}");
        let kv = s.stats()[0].kv.clone();
        match (kv.index_pages_resealed, kv.index_pages_damaged) {
            (1, 0) => {
                resealed += 1;
                assert!(
                    kv.replayed_records < N,
                    "offset {off}: resealed, not rebuilt"
                );
            }
            (0, 1) => {
                rebuilt += 1;
                assert_eq!(kv.replayed_records, N, "offset {off}: rebuilt from the log");
            }
            other => panic!("offset {off}: the flip went unnoticed or miscounted: {other:?}"),
        }
    }
    assert!(
        resealed > 0 && rebuilt > 0,
        "resealed {resealed} rebuilt {rebuilt}"
    );
}

/// After a clean close every checksum was flushed with its page, so any failing page
/// is damage, even in a slot that was empty: the index is rebuilt from the log.
#[test]
fn after_a_clean_close_a_failing_index_page_means_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for i in 0..N {
        s.put("c", &key(i), &value(i, 0), 0).unwrap();
    }
    s.close().unwrap();
    let index = kv_files(dir.path(), "c", "index-").pop().unwrap();
    let len = std::fs::metadata(&index).unwrap().len();
    // The last checksum word: no slot changes, only what the page must hash to.
    flip_bit(&index, len - 8, 0);
    let s = open(dir.path(), &clock);
    assert_eq!(never_wrong(&s), (N, 0, 0));
    let kv = s.stats()[0].kv.clone();
    assert_eq!((kv.index_pages_damaged, kv.replayed_records), (1, N));
    s.close().unwrap();
    let s = open(dir.path(), &clock);
    let kv = s.stats()[0].kv.clone();
    assert_eq!((kv.index_pages_damaged, kv.replayed_records), (0, 0));
    assert_eq!(never_wrong(&s), (N, 0, 0));
}

#[test]
fn damaged_index_header_or_checkpoint_means_a_full_reindex_not_a_failure() {
    let (base, clock, _) = image();
    for victim in ["index-", "CHECKPOINT"] {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base.path(), img.path());
        let path = kv_files(img.path(), "c", victim).pop().unwrap();
        flip_bit(&path, 20, 3);
        let s = open(img.path(), &clock);
        assert_eq!(never_wrong(&s), (N, 0, 0), "{victim}");
        assert_eq!(
            s.stats()[0].kv.replayed_records,
            N,
            "{victim}: rebuilt from the whole log"
        );
    }
}

#[test]
fn damaged_header_of_a_sealed_segment_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    let v = vec![b'v'; 4000];
    for i in 0..600 {
        s.put("c", &key(i), &v, 0).unwrap();
    }
    s.crash();
    let first = kv_files(dir.path(), "c", "seg-").remove(0);
    flip_bit(&first, 3, 0);
    let err = dstash_storage::Store::open(dir.path(), opts(&clock))
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains(first.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
}
