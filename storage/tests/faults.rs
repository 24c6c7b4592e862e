//! Injected I/O faults: a failed write loses nothing acknowledged; a failed fsync makes
//! the namespace read-only until restart.

mod common;

use std::sync::Arc;

use common::*;
use dstash_storage::io::{Fault, FaultyIo};
use dstash_storage::{Error, ManualClock, Options, Store};

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
fn short_write_then_enospc_fails_the_write_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    for i in 0..100 {
        s.put("f", &key(i), &value(i, 0), 0).unwrap();
    }
    // Segments grow in steps written through the seam: keep writing until one must grow.
    io.arm(Fault::ShortWriteThenEnospc, 0);
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
    // Only zeros went past the last record: the namespace keeps working.
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
    assert_eq!(
        s.stats()[0].kv.corrupt_records,
        0,
        "no torn bytes were left behind"
    );
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
fn enospc_when_growing_a_counter_bucket_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    s.add("c", b"k", 1).unwrap();
    io.arm(Fault::AllocateEnospc, 0);
    clock.advance(3600);
    assert!(s.add("c", b"k", 1).is_err(), "a new bucket needs space");
    io.disarm();
    assert_eq!(s.add("c", b"k", 1).unwrap(), 1);
}

#[test]
fn enospc_while_growing_the_index_fails_the_write_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (s, io) = faulty(dir.path(), &clock);
    s.put("g", b"first", b"v", 0).unwrap();
    let slots = s.stats()[0].kv.index_slots;
    // Fill to just below the growth threshold (three-quarters of the slots).
    let below = slots * 3 / 4 - 2;
    for i in 1..below {
        s.put("g", &key(i), b"v", 0).unwrap();
    }
    io.arm(Fault::Enospc, 0);
    let mut failed = None;
    for i in below..below + 4 {
        if let Err(e) = s.put("g", &key(i), b"v", 0) {
            failed = Some((i, e));
            break;
        }
    }
    let (i, err) = failed.expect("growing the index needed space");
    assert!(err.to_string().contains("No space left"), "{err}");
    io.disarm();
    assert_eq!(
        s.get("g", &key(i)).unwrap(),
        None,
        "the failed write left nothing"
    );
    s.put("g", &key(i), b"v", 0).unwrap();
    assert!(
        s.stats()[0].kv.index_slots > slots,
        "grew once space came back"
    );
    for j in 1..=i {
        assert_eq!(
            s.get("g", &key(j)).unwrap().as_deref(),
            Some(&b"v"[..]),
            "key {j}"
        );
    }
}
