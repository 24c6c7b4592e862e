//! A crash tears the last record: cut it at every byte offset and reopen.

mod common;

use common::*;
use dstash_storage::ManualClock;

#[test]
fn last_record_cut_at_every_offset() {
    let base = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(base.path(), &clock);
    for i in 0..50 {
        s.put("t", &key(i), &value(i, 0), 0).unwrap();
    }
    // Overwrite a key from before the checkpoint, then add the record we will tear.
    s.checkpoint().unwrap();
    s.put("t", &key(3), &value(3, 1), 0).unwrap();
    // One segment: its logical length is where the next record starts (the file itself
    // runs on into preallocated zeros).
    let data_len = |s: &dstash_storage::Store| s.stats()[0].kv.data_bytes;
    let before = data_len(&s);
    s.put("t", &key(50), &value(50, 0), 0).unwrap();
    let after = data_len(&s);
    s.crash();
    assert!(after - before > 28);

    for cut in before..=after {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base.path(), img.path());
        let seg = kv_files(img.path(), "t", "seg-").pop().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let s = open(img.path(), &clock);
        for i in 0..50 {
            let want = if i == 3 { value(3, 1) } else { value(i, 0) };
            assert_eq!(
                s.get("t", &key(i)).unwrap(),
                Some(want),
                "cut {cut}, key {i}"
            );
        }
        let torn = s.get("t", &key(50)).unwrap();
        assert_eq!(torn, (cut == after).then(|| value(50, 0)), "cut {cut}");
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            if cut == after { after } else { before }
        );
        // The store goes on writing over the cut, and a later crash recovers it.
        s.put("t", b"next", b"after the cut", 0).unwrap();
        s.crash();
        let s = open(img.path(), &clock);
        assert_eq!(
            s.get("t", b"next").unwrap().as_deref(),
            Some(&b"after the cut"[..])
        );
        assert_eq!(
            s.get("t", &key(50)).unwrap(),
            (cut == after).then(|| value(50, 0)),
            "cut {cut}"
        );
        assert_eq!(s.stats()[0].kv.corrupt_records, 0);
    }
}

#[test]
fn last_record_torn_into_preallocated_zeros_is_cut_not_counted_as_damage() {
    // A crash in the middle of a write into space reserved ahead leaves the record's
    // start followed by zeros, not a short file.
    let base = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(base.path(), &clock);
    for i in 0..20 {
        s.put("t", &key(i), &value(i, 0), 0).unwrap();
    }
    let before = s.stats()[0].kv.data_bytes;
    s.put("t", &key(20), &value(20, 0), 0).unwrap();
    let after = s.stats()[0].kv.data_bytes;
    s.crash();

    for cut in (before + 1..after).step_by(7) {
        let img = tempfile::tempdir().unwrap();
        copy_dir(base.path(), img.path());
        let seg = kv_files(img.path(), "t", "seg-").pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        assert!(
            bytes.len() as u64 > after,
            "space is reserved past the last record"
        );
        bytes[cut as usize..after as usize].fill(0);
        std::fs::write(&seg, &bytes).unwrap();

        let s = open(img.path(), &clock);
        assert_eq!(s.get("t", &key(20)).unwrap(), None, "cut {cut}");
        for i in 0..20 {
            assert_eq!(s.get("t", &key(i)).unwrap(), Some(value(i, 0)), "cut {cut}");
        }
        assert_eq!(
            s.stats()[0].kv.corrupt_records,
            0,
            "cut {cut}: a torn write is not damage"
        );
    }
}
