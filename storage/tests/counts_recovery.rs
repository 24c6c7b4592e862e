//! The count engine across crashes, checkpoints, generation moves and damage, on a fake
//! clock: resent batches count once, a damaged slot or table is zeroed or set aside
//! while the store serves, and long retentions match a model that keeps every event.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dstash_storage::{Clock, Error, ManualClock};

fn count_files(dir: &Path, ns: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("ns").join(ns).join("counts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn a_resent_batch_counts_once_across_a_crash_and_a_reused_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    let batch: &[(&[u8], u32)] = &[(b"a", 1), (b"b", 2), (b"a", 1)];
    assert_eq!(
        s.add_once("r", batch, None, Some("req-1")).unwrap(),
        [2, 2, 2]
    );
    assert_eq!(
        s.add_once("r", batch, None, Some("req-1")).unwrap(),
        [2, 2, 2]
    );
    let other: &[(&[u8], u32)] = &[(b"a", 5)];
    match s.add_once("r", other, None, Some("req-1")) {
        Err(Error::RequestReused { id }) => assert_eq!(id, "req-1"),
        r => panic!("a reused id with other events: {r:?}"),
    }
    // The id outlives a crash (in the log) and a checkpoint (copied forward).
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(
        s.add_once("r", batch, None, Some("req-1")).unwrap(),
        [2, 2, 2]
    );
    s.checkpoint().unwrap();
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(
        s.add_once("r", batch, None, Some("req-1")).unwrap(),
        [2, 2, 2]
    );
    assert_eq!(s.count_many("r", &[b"a", b"b"], 0).unwrap(), [2, 2]);
    // A new id counts; past the retention an id is forgotten and counts again.
    assert_eq!(s.add_once("r", other, None, Some("req-2")).unwrap(), [7]);
    clock.advance(61);
    s.expire_counters().unwrap();
    assert_eq!(s.add_once("r", other, None, Some("req-2")).unwrap(), [5]);
    assert!(matches!(
        s.add_once("r", other, None, Some("")),
        Err(Error::InvalidRequestId { .. })
    ));
}

#[test]
fn exact_windows_hold_across_generation_moves_checkpoints_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut s = open(dir.path(), &clock);
    // Key k gets k+1 events a second for 300 s, through five minute-long generations;
    // the store checkpoints now and then and crashes now and then.
    let mut events: Vec<(u64, u64, u32)> = Vec::new();
    for sec in 0..300u64 {
        clock.set(T0 + sec);
        let items: Vec<(Vec<u8>, u32)> = (0..20u64).map(|k| (key(k), k as u32 + 1)).collect();
        let refs: Vec<(&[u8], u32)> = items.iter().map(|(k, n)| (k.as_slice(), *n)).collect();
        s.add_many("w", &refs).unwrap();
        events.extend((0..20u64).map(|k| (T0 + sec, k, k as u32 + 1)));
        if sec % 37 == 0 {
            s.checkpoint().unwrap();
        }
        if sec % 53 == 0 {
            s.crash();
            s = open(dir.path(), &clock);
        }
        s.expire_counters().unwrap();
        if sec % 11 == 0 {
            let now = clock.now_secs();
            for w in [1u32, 7, 30, 60] {
                for k in [0u64, 7, 19] {
                    let want: u64 = events
                        .iter()
                        .filter(|(t, kk, _)| *kk == k && *t + w as u64 > now)
                        .map(|(_, _, n)| *n as u64)
                        .sum();
                    assert_eq!(
                        s.count("w", &key(k), w).unwrap(),
                        want,
                        "s {sec} w {w} k {k}"
                    );
                }
            }
        }
    }
    assert!(
        count_files(dir.path(), "w", "cgt").len() <= 3,
        "old generations went"
    );
}

#[test]
fn a_damaged_slot_is_zeroed_and_a_damaged_table_set_aside_while_the_store_serves() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    for k in 0..200u64 {
        s.add("d", &key(k), 3).unwrap();
    }
    s.close().unwrap();
    // Flip one byte in every 512-byte stretch of the slots: a few keys' cells fail
    // their crc.
    let table = &count_files(dir.path(), "d", "cgt")[0];
    let mut bytes = std::fs::read(table).unwrap();
    for at in (4096 + 40..bytes.len().min(4096 + 64 * 1024)).step_by(4096) {
        bytes[at] ^= 0x04;
    }
    std::fs::write(table, &bytes).unwrap();
    let s = open(dir.path(), &clock);
    let counts: Vec<u64> = (0..200)
        .map(|k| s.count("d", &key(k), 0).unwrap())
        .collect();
    let zeroed = counts.iter().filter(|&&c| c == 0).count();
    assert!(counts.iter().all(|&c| c == 0 || c == 3), "{counts:?}");
    // A flip in a slot's hash loses the key without a crc to fail; any other fails it.
    let quarantined = s.stats()[0].counters.quarantined;
    assert!(
        quarantined > 0 && quarantined <= zeroed as u64,
        "{quarantined} of {zeroed}"
    );
    // The zeroed keys count again from nothing.
    let k = counts.iter().position(|&c| c == 0).unwrap() as u64;
    assert_eq!(s.add("d", &key(k), 1).unwrap(), 1);
    s.close().unwrap();
    // A damaged header: the table is set aside, the namespace opens and counts anew.
    let mut bytes = std::fs::read(table).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(table, &bytes).unwrap();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("d", &key(1), 0).unwrap(), 0);
    assert_eq!(s.add("d", &key(1), 2).unwrap(), 2);
    assert!(table.with_extension("damaged").exists());
    assert_eq!(s.stats()[0].counters.quarantined, 1);
}

#[test]
fn a_day_long_retention_matches_a_model_within_the_stated_bound_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut s = open(dir.path(), &clock);
    s.set_retention("day", 86_400).unwrap();
    let mut rng = Rng(99);
    let mut events: Vec<(u64, u64)> = Vec::new();
    let mut now = T0;
    for step in 0..3000u64 {
        now += match rng.below(20) {
            0 => rng.below(7200),
            _ => rng.below(30),
        };
        clock.set(now);
        let k = rng.below(4);
        s.add("day", &key(k), 1).unwrap();
        events.push((now, k));
        if step % 500 == 499 {
            s.crash();
            s = open(dir.path(), &clock);
            s.expire_counters().unwrap();
        }
        if step % 13 == 0 {
            let w = 1 + rng.below(86_400) as u32;
            let first = (now + 1).saturating_sub(w as u64);
            // Exact up to 64 s; else the start moves back by less than a minute up to
            // an hour, by less than an hour beyond (docs/design.md).
            let slack = match w {
                0..=64 => 0,
                65..=3600 => 59,
                _ => 3599,
            };
            let inside = |t: u64, lo: u64| {
                events
                    .iter()
                    .filter(|(e, kk)| *kk == k && *e >= lo && *e <= t)
                    .count() as u64
            };
            let got = s.count("day", &key(k), w).unwrap();
            assert!(
                got >= inside(now, first),
                "step {step} w {w}: {got} misses events"
            );
            assert!(
                got <= inside(now, first.saturating_sub(slack)),
                "step {step} w {w}: {got} too many"
            );
        }
    }
}

#[test]
fn a_retention_change_keeps_the_counts_both_retentions_hold() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &clock);
    s.set_retention("c", 3600).unwrap();
    for sec in 0..120u64 {
        clock.set(T0 + sec);
        s.add("c", b"k", 1).unwrap();
    }
    assert_eq!(s.count("c", b"k", 64).unwrap(), 64);
    // Longer windows read minute cells: from the minute holding the window's start.
    let start = T0 + 119 + 1 - 100;
    let want = 120 - (start - start % 60).saturating_sub(T0).min(120);
    assert_eq!(s.count("c", b"k", 100).unwrap(), want);
    s.set_retention("c", 60).unwrap();
    assert_eq!(s.count("c", b"k", 60).unwrap(), 60);
    assert!(s.count("c", b"k", 100).is_err(), "past the new retention");
    s.set_retention("c", 86_400).unwrap();
    assert_eq!(
        s.count("c", b"k", 60).unwrap(),
        60,
        "what the shorter retention held"
    );
    s.crash();
    let s = open(dir.path(), &clock);
    assert_eq!(s.count("c", b"k", 60).unwrap(), 60);
    assert_eq!(s.stats()[0].retention_secs, 86_400);
}

#[test]
fn without_fsync_a_crash_with_the_log_still_buffered_keeps_what_the_tables_hold() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let never = || dstash_storage::Options {
        sync: dstash_storage::SyncMode::Never,
        ..opts(&clock)
    };
    let s = dstash_storage::Store::open(dir.path(), never()).unwrap();
    for k in 0..500u64 {
        s.add("n", &key(k), 1 + (k % 3) as u32).unwrap();
    }
    s.crash();
    let s = dstash_storage::Store::open(dir.path(), never()).unwrap();
    for k in 0..500u64 {
        assert_eq!(s.count("n", &key(k), 0).unwrap(), 1 + k % 3, "key {k}");
    }
    // And across a checkpoint, which writes the buffer out first.
    s.add("n", &key(0), 5).unwrap();
    s.checkpoint().unwrap();
    s.crash();
    let s = dstash_storage::Store::open(dir.path(), never()).unwrap();
    assert_eq!(s.count("n", &key(0), 0).unwrap(), 6);
}
