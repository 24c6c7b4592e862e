//! The store against a HashMap model: puts, deletes, TTLs, clock moves, checkpoints,
//! compaction, clean reopens and crashes, in any order proptest picks.

mod common;

use std::collections::HashMap;

use common::*;
use dstash_storage::{ManualClock, Options, Store};

/// Small segments so a few hundred operations roll several and give compaction work.
fn open_small(dir: &std::path::Path, clock: &ManualClock) -> Store {
    let o = Options {
        segment_size: 128 << 10,
        max_value_len: 4096,
        ..opts(clock)
    };
    Store::open(dir, o).unwrap()
}

use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put { k: u8, v: u16, ttl: u8 },
    Delete { k: u8 },
    Advance { secs: u8 },
    Checkpoint,
    Compact,
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<u8>(), any::<u16>(), prop_oneof![3 => Just(0u8), 1 => 1u8..20]).prop_map(|(k, v, ttl)| Op::Put { k, v, ttl }),
        4 => any::<u8>().prop_map(|k| Op::Delete { k }),
        1 => (1u8..10).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// Model entry: value and expiry (0 = never).
type Model = HashMap<u8, (Vec<u8>, u64)>;

fn val(k: u8, v: u16) -> Vec<u8> {
    // Large enough that segments (1 MiB in tests) roll and compaction has work.
    let mut b = format!("{k}:{v}:").into_bytes();
    b.resize(600 + (v as usize % 1500), b'.');
    b
}

fn check(s: &Store, model: &Model, now: u64) {
    for k in 0..=255u8 {
        let want = model
            .get(&k)
            .filter(|(_, exp)| *exp == 0 || *exp > now)
            .map(|(v, _)| v.clone());
        assert_eq!(s.get("m", &[k]).unwrap(), want, "key {k}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_a_hashmap(ops in proptest::collection::vec(op(), 1..300)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut s = Some(open_small(dir.path(), &clock));
        let mut model: Model = HashMap::new();
        for op in ops {
            let now = clock.now_secs_for_test();
            let st = s.as_ref().unwrap();
            match op {
                Op::Put { k, v, ttl } => {
                    st.put("m", &[k], &val(k, v), ttl as u32).unwrap();
                    let exp = if ttl == 0 { 0 } else { now + ttl as u64 };
                    model.insert(k, (val(k, v), exp));
                }
                Op::Delete { k } => {
                    let live = model.remove(&k).is_some_and(|(_, e)| e == 0 || e > now);
                    prop_assert_eq!(st.delete("m", &[k]).unwrap(), live);
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
            }
        }
        let now = clock.now_secs_for_test();
        check(s.as_ref().unwrap(), &model, now);
        s.take().unwrap().crash();
        let s = open_small(dir.path(), &clock);
        check(&s, &model, now);
        let live = model.values().filter(|(_, e)| *e == 0 || *e > now).count() as u64;
        let listed = drain(s.keys("m", "").unwrap()).len() as u64;
        prop_assert_eq!(listed, live);
    }
}

#[test]
fn model_run_exercised_compaction() {
    // The property picks compaction at random; this fixed sequence makes sure it has work.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open_small(dir.path(), &clock);
    for round in 0..4u16 {
        for k in 0..=255u8 {
            s.put("m", &[k], &val(k, round), 0).unwrap();
        }
    }
    s.checkpoint().unwrap();
    assert!(
        s.compact_now().unwrap() > 0,
        "overwritten segments were compacted"
    );
    for k in 0..=255u8 {
        assert_eq!(s.get("m", &[k]).unwrap(), Some(val(k, 3)));
    }
}

trait NowForTest {
    fn now_secs_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_secs_for_test(&self) -> u64 {
        dstash_storage::Clock::now_secs(self)
    }
}
