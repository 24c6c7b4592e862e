//! Injected I/O faults: a failed write loses nothing acknowledged; a failed fsync makes
//! the namespace read-only until restart.

mod common;

use std::sync::Arc;

use common::*;
use dstash_storage::io::{Fault, FaultyIo};
use dstash_storage::{Error, ManualClock, Options, Store, SyncMode};

fn faulty(dir: &std::path::Path, clock: &ManualClock) -> (Store, Arc<FaultyIo>) {
    let io = Arc::new(FaultyIo::new());
    let s = Store::open(
        dir,
        Options {
            io: io.clone(),
            ..opts(clock)
        },
    )
    .unwrap();
    (s, io)
}

#[test]
fn enospc_growing_a_segment_fails_the_write_and_the_namespace_goes_on() {
    // Under `Always` segments reserve space with fallocate; otherwise by writing zeros.
    enospc_growing_a_segment(SyncMode::Always, Fault::AllocateEnospc);
    enospc_growing_a_segment(SyncMode::Never, Fault::Enospc);
}

fn enospc_growing_a_segment(sync: SyncMode, fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let io = Arc::new(FaultyIo::new());
    let s = Store::open(
        dir.path(),
        Options {
            io: io.clone(),
            sync,
            ..opts(&clock)
        },
    )
    .unwrap();
    for i in 0..100 {
        s.put("f", &key(i), &value(i, 0), 0).unwrap();
    }
    // Segments reserve disk in steps: keep writing until one must grow.
    io.arm(fault, 0);
    let big = vec![7u8; 60_000];
    let mut written = 0;
    let err = loop {
        match s.put("f", format!("big-{written}").as_bytes(), &big, 0) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1000, "the fault never fired");
    };
    assert!(err.to_string().contains("No space left"), "{err}");
    io.disarm();
    // Nothing was written past the last record: the namespace keeps working.
    s.put("f", b"after", b"space freed", 0).unwrap();
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(
        s.get("f", format!("big-{written}").as_bytes()).unwrap(),
        None
    );
    for b in 0..written {
        assert_eq!(
            s.get("f", format!("big-{b}").as_bytes())
                .unwrap()
                .as_deref(),
            Some(&big[..])
        );
    }
    assert_eq!(
        s.get("f", b"after").unwrap().as_deref(),
        Some(&b"space freed"[..])
    );
    for i in 0..100 {
        assert_eq!(s.get("f", &key(i)).unwrap(), Some(value(i, 0)));
    }
    assert_eq!(s.stats()[0].kv.corrupt_records, 0);
}

#[test]
fn a_torn_data_write_stops_writes_until_restart_and_recovers_only_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    for i in 0..100 {
        s.put("f", &key(i), &value(i, 0), 0).unwrap();
    }
    // Half the batch reaches the file, then the disk fails and keeps failing, so the
    // half cannot even be zeroed.
    io.arm(Fault::ShortWriteThenEnospc, 0);
    let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("torn-{i}").into_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 500]).collect();
    let err = s.put_many("f", &entries(&keys, &values)).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    io.disarm();
    let err = s.put("f", b"after", b"v", 0).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert_eq!(s.get("f", b"torn-0").unwrap(), None, "never acknowledged");

    s.crash();
    let s = open(dir.path(), &clock);
    // A failed write's outcome is unknown, as after a crash before the ack: records of
    // it that reached the disk whole may come back, but only with the values given, and
    // the half-written record is cut.
    let mut back = 0;
    for (k, v) in keys.iter().zip(&values) {
        if let Some(got) = s.get("f", k).unwrap() {
            assert_eq!(&got, v, "{}", String::from_utf8_lossy(k));
            back += 1;
        }
    }
    assert!(back < keys.len(), "the second half never reached the file");
    for i in 0..100 {
        assert_eq!(s.get("f", &key(i)).unwrap(), Some(value(i, 0)));
    }
    s.put("f", b"after", b"v", 0).unwrap();
}

#[test]
fn failed_fsync_poisons_writes_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    s.put("f", b"acked", b"1", 0).unwrap();
    io.arm(Fault::SyncFails, 0);
    assert!(s.put("f", b"unacked", b"2", 0).is_err());
    io.disarm();
    let err = s.put("f", b"later", b"3", 0).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(s.get("f", b"acked").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        s.get("f", b"unacked").unwrap(),
        None,
        "never acknowledged, never visible"
    );
    // Other namespaces have their own files and keep working.
    s.put("g", b"k", b"v", 0).unwrap();
    s.crash();
    let s = open(dir.path(), &clock);
    s.put("f", b"later", b"3", 0).unwrap();
    assert_eq!(s.get("f", b"acked").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn enospc_for_a_new_count_generation_fails_the_batch_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    s.add("c", b"k", 1).unwrap();
    io.arm(Fault::AllocateEnospc, 0);
    clock.advance(30);
    assert_eq!(
        s.add("c", b"k", 1).unwrap(),
        2,
        "the generation it is in has room"
    );
    clock.advance(3600);
    let err = s.add("c", b"k", 1).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    io.disarm();
    // Nothing of the failed batch was logged or applied, and the namespace still writes.
    assert_eq!(s.add("c", b"k", 1).unwrap(), 1);
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("c", b"k", 0).unwrap(), 1);
}

#[test]
fn enospc_while_growing_the_index_fails_the_write_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    s.put("g", &key(0), b"v", 0).unwrap();
    let slots = s.stats()[0].kv.index_slots;
    // The index grows when a put would take it past three-quarters full: with
    // 3/4 * slots - 1 live keys, the next new key needs a bigger index.
    let full = slots * 3 / 4 - 1;
    for i in 1..full {
        s.put("g", &key(i), b"v", 0).unwrap();
    }
    assert_eq!(s.stats()[0].kv.index_slots, slots);
    // Growing writes the new index first, before the record is appended.
    io.arm(Fault::Enospc, 0);
    let err = s.put("g", &key(full), b"v", 0).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    io.disarm();
    assert_eq!(s.stats()[0].kv.index_slots, slots);
    assert_eq!(
        s.get("g", &key(full)).unwrap(),
        None,
        "the failed write left nothing"
    );
    s.put("g", &key(full), b"v", 0).unwrap();
    assert!(
        s.stats()[0].kv.index_slots > slots,
        "grew once space came back"
    );
    for j in 0..=full {
        assert_eq!(
            s.get("g", &key(j)).unwrap().as_deref(),
            Some(&b"v"[..]),
            "key {j}"
        );
    }
}
