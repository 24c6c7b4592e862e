//! Namespace settings in the store: a namespace bounded by `max_bytes` drops its oldest
//! segments whole and keeps its newest writes; a default TTL applies to puts that give
//! none; settings survive a crash and are refused out of range.

mod common;

use common::*;
use dstash_storage::{Error, ManualClock, Options, SettingsChange, Store, MIN_MAX_BYTES};

const VALUE: usize = 4_000;

fn bounded(dir: &std::path::Path, clock: &ManualClock) -> Store {
    let o = Options {
        segment_size: 256 << 20,
        ..opts(clock)
    };
    Store::open(dir, o).unwrap()
}

fn max_bytes(b: u64) -> SettingsChange {
    SettingsChange {
        max_bytes: Some(b),
        ..SettingsChange::default()
    }
}

fn load(s: &Store, from: u64, n: u64) {
    put_range(s, "c", from..from + n, &[7u8; VALUE], 0);
}

#[test]
fn a_bounded_namespace_drops_its_oldest_data_and_keeps_its_newest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = bounded(dir.path(), &clock);
    let max = MIN_MAX_BYTES;
    s.set_namespace("c", max_bytes(max)).unwrap();
    // Six times the bound, a slice at a time, with the background's work between.
    let per = 1_000;
    let slices = 6 * max / (per * VALUE as u64);
    for i in 0..slices {
        load(&s, i * per, per);
        s.compact_now().unwrap();
        let data = s.stats()[0].kv.data_bytes;
        assert!(data <= max, "{data} bytes after slice {i}");
    }
    let total = slices * per;
    let newest = key(total - 1);
    assert!(s.get("c", &newest).unwrap().is_some());
    assert!(
        s.get("c", &key(0)).unwrap().is_none(),
        "the oldest key stayed"
    );
    // Keys go oldest first: every key still present is newer than every key gone.
    let present: Vec<bool> = (0..total)
        .map(|i| s.get("c", &key(i)).unwrap().is_some())
        .collect();
    let first = present.iter().position(|p| *p).unwrap();
    assert!(
        present[first..].iter().all(|p| *p),
        "a gap after key {first}"
    );
    assert!(s.stats()[0].kv.evicted_segments > 0);

    s.crash();
    let s = bounded(dir.path(), &clock);
    assert_eq!(s.namespace_settings("c").unwrap().max_bytes, max);
    assert!(
        s.get("c", &key(0)).unwrap().is_none(),
        "an evicted key came back"
    );
    assert!(s.get("c", &newest).unwrap().is_some());
}

#[test]
fn a_default_ttl_applies_to_puts_that_give_none() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = bounded(dir.path(), &clock);
    let change = SettingsChange {
        default_ttl_secs: Some(10),
        ..SettingsChange::default()
    };
    s.set_namespace("t", change).unwrap();
    s.put("t", b"plain", b"v", 0).unwrap();
    s.put("t", b"own", b"v", 100).unwrap();
    let found = s.lookup_many("t", &[b"plain", b"own"]).unwrap();
    let ttls: Vec<u32> = found.iter().map(|f| f.as_ref().unwrap().ttl_secs).collect();
    assert_eq!(ttls, vec![10, 100]);
    clock.advance(11);
    assert_eq!(s.get("t", b"plain").unwrap(), None);
    assert!(s.get("t", b"own").unwrap().is_some());
}

#[test]
fn settings_out_of_range_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = bounded(dir.path(), &clock);
    let before = s.namespace_settings("x").unwrap();
    let e = s.set_namespace("x", max_bytes(1000)).unwrap_err();
    assert!(matches!(e, Error::InvalidMaxBytes { .. }), "{e}");
    let bad_retention = SettingsChange {
        retention_secs: Some(0),
        max_bytes: Some(MIN_MAX_BYTES),
        ..SettingsChange::default()
    };
    assert!(s.set_namespace("x", bad_retention).is_err());
    assert_eq!(s.namespace_settings("x").unwrap(), before);
    // 0 lifts a bound.
    s.set_namespace("x", max_bytes(MIN_MAX_BYTES)).unwrap();
    assert_eq!(s.set_namespace("x", max_bytes(0)).unwrap().max_bytes, 0);
}

#[test]
fn the_newest_change_wins_and_a_retention_taken_with_counts_keeps_the_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = bounded(dir.path(), &clock);
    // Version timestamps: milliseconds shifted left 16 bits.
    let ts = |ms: u64| dstash_storage::Version::ts_at_millis(T0 * 1000 + ms);
    let at = |ms: u64, b: u64| SettingsChange {
        max_bytes: Some(b),
        at: Some(ts(ms)),
        ..SettingsChange::default()
    };
    let min = MIN_MAX_BYTES;
    assert_eq!(s.set_namespace("n", at(100, min)).unwrap().max_bytes, min);
    // Counts merged from a peer bring its retention, not a newer change.
    s.set_retention("n", 3600).unwrap();
    let now = s.namespace_settings("n").unwrap();
    assert_eq!((now.retention_secs, now.changed_at), (3600, ts(100)));
    // An older change is kept out; a newer one goes in.
    assert_eq!(
        s.set_namespace("n", at(50, 2 * min)).unwrap().max_bytes,
        min
    );
    assert_eq!(
        s.set_namespace("n", at(101, 2 * min)).unwrap().max_bytes,
        2 * min
    );
    // A stamp far ahead of this store's clock is refused.
    assert!(matches!(
        s.set_namespace("n", at(3_600_000, 3 * min)),
        Err(Error::VersionAhead { .. })
    ));
}
