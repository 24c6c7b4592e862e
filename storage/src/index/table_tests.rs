//! The index against a hash map with colliding hashes, its range scans, and its header checks.
use super::*;
use crate::io::RealIo;
use std::collections::HashMap;
use std::fs::OpenOptions;

fn idx(dir: &Path) -> Index {
    Index::create(dir, 1, MIN_BITS, 7, Arc::new(RealIo)).unwrap()
}

#[test]
fn matches_a_hashmap_with_colliding_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let ix = idx(dir.path());
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut deleted: HashMap<u64, bool> = HashMap::new();
    // Keys are the low bits of loc; hashes collide in groups of 8 to force probing.
    let key_of = |l: Loc| l.offset() % 1000;
    for step in 0u64..700 {
        let key = (step * 7919) % 600;
        let hash = (key / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let loc = Loc::new(1, key + 1000 * (step % 3 + 1));
        if step % 5 == 4 {
            let got = ix.find(hash, |l| key_of(l) == key);
            assert_eq!(got.map(|l| l.0), model.get(&key).copied());
            if let Some(l) = got {
                assert!(ix.remove_loc(hash, l));
                model.remove(&key);
                deleted.remove(&key);
            }
        } else {
            let to = Entry {
                loc,
                deleted: step % 7 == 0,
            };
            let got = ix.upsert(hash, to, |l| key_of(l) == key, false);
            assert_eq!(got.map(|e| e.loc.0), model.insert(key, loc.0));
            deleted.insert(key, to.deleted);
        }
    }
    assert_eq!(ix.live(), model.len() as u64);
    let want_deleted = deleted.values().filter(|d| **d).count() as u64;
    assert_eq!(ix.deleted(), want_deleted);
    let mut seen = 0;
    ix.scan_range(0, 1u128 << 64, |_, e| {
        assert_eq!(model.get(&key_of(e.loc)), Some(&e.loc.0));
        assert_eq!(deleted.get(&key_of(e.loc)), Some(&e.deleted));
        seen += 1;
    });
    assert_eq!(seen, model.len());
    let next = ix.rebuilt(dir.path(), 2, 0).unwrap();
    assert_eq!((next.live(), next.deleted()), (ix.live(), want_deleted));
    let check = ix.verify();
    assert_eq!(
        (check.live, check.deleted, check.failed.len()),
        (model.len() as u64, want_deleted, 0)
    );
    assert!(next.verify().failed.is_empty());
}

/// Writes `bytes` at `at` in the index file behind the map.
fn damage(ix: &Index, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new().write(true).open(ix.path()).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

#[test]
fn a_changed_slot_fails_its_page_checksum_and_reseal_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let ix = idx(dir.path());
    for k in 1..300u64 {
        let hash = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ix.upsert(
            hash,
            Entry {
                loc: Loc::new(1, k),
                deleted: k % 3 == 0,
            },
            |l| l.offset() == k,
            false,
        );
    }
    let (pages, slots) = (ix.capacity() / SLOTS_PER_PAGE, ix.capacity() as u64);
    assert!(ix.verify().failed.is_empty());
    // One flipped bit in a slot of page 2, then one in the checksum of page 3.
    let slot_at = PAGE + (2 * SLOTS_PER_PAGE as u64 + 5) * SLOT;
    let byte = std::fs::read(ix.path()).unwrap()[slot_at as usize + 3];
    damage(&ix, slot_at + 3, &[byte ^ 0x10]);
    assert_eq!(ix.verify().failed, vec![2]);
    damage(&ix, PAGE + slots * SLOT + 3 * 8, &[1]);
    assert_eq!(ix.verify().failed, vec![2, 3]);
    ix.reseal(2);
    ix.reseal(3);
    assert!(ix.verify().failed.is_empty());
    assert_eq!(pages, 4);
    // A page's used slots are listed from the slots themselves.
    let listed: usize = (0..pages).map(|p| ix.page_entries(p).count()).sum();
    assert_eq!(listed as u64, ix.verify().live);
}

#[test]
fn range_scans_partition_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let ix = idx(dir.path());
    for k in 0u64..700 {
        let h = xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes());
        let to = Entry {
            loc: Loc::new(1, k + 100),
            deleted: false,
        };
        ix.upsert(h, to, |_| false, false);
    }
    let mut total = 0;
    let step = ix.hash_span(37);
    let mut lo: u128 = 0;
    while lo < 1u128 << 64 {
        let hi = (lo + step).min(1u128 << 64);
        ix.scan_range(lo as u64, hi, |h, _| {
            assert!((h as u128) >= lo && (h as u128) < hi);
            total += 1;
        });
        lo = hi;
    }
    assert_eq!(total, 700);
}

#[test]
fn open_rejects_bad_header_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let ix = idx(dir.path());
    let path = ix.path().to_path_buf();
    drop(ix);
    Index::open(&path, Arc::new(RealIo)).unwrap();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &[0xff], 20).unwrap();
    let err = Index::open(&path, Arc::new(RealIo))
        .unwrap_err()
        .to_string();
    assert!(err.contains("index-") && err.contains("checksum"), "{err}");
    f.set_len(100).unwrap();
    assert!(Index::open(&path, Arc::new(RealIo)).is_err());
}
