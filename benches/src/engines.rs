//! The three engines behind one small interface, and the workloads run through it, so
//! every engine does exactly the same operations. Each workload returns operations per
//! second and checks what it reads.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use dstash_storage::{Options, PutEntry, Store, SyncMode};

use crate::workload::{key, mix, value, Shuffle};

pub fn dstash_opts(sync: SyncMode) -> Options {
    Options {
        sync,
        ..Options::default()
    }
}

/// One write: a put of `value`, or a delete when it is `None`.
pub struct Op {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A point read: the key's value, or `None` when absent.
pub type Reader<'a> = dyn Fn(&[u8]) -> Option<Vec<u8>> + 'a;

/// What a workload needs of an engine.
pub trait Engine {
    /// Applies `ops` in order. `batched`: as one durable batch (dstash `put_many`); else
    /// one call per op. heed always commits `ops` as one transaction.
    fn write(&self, ops: &[Op], batched: bool);
    /// Runs `f` with a point reader (heed: inside one read transaction).
    fn read(&self, f: &mut dyn FnMut(&Reader));
}

impl Engine for Store {
    fn write(&self, ops: &[Op], batched: bool) {
        if !batched {
            for op in ops {
                match &op.value {
                    Some(v) => self.put("bench", &op.key, v, 0).expect("put"),
                    None => {
                        self.delete("bench", &op.key).expect("delete");
                    }
                }
            }
            return;
        }
        let entries: Vec<PutEntry> = ops
            .iter()
            .map(|op| PutEntry {
                key: &op.key,
                value: op.value.as_deref().expect("batched writes are puts"),
                ttl_secs: 0,
                version: None,
            })
            .collect();
        self.put_many("bench", &entries).expect("put_many");
    }

    fn read(&self, f: &mut dyn FnMut(&Reader)) {
        f(&|k| self.get("bench", k).expect("get"))
    }
}

/// A dstash store that can be reopened under another sync mode.
pub struct Dstash {
    dir: std::path::PathBuf,
    store: Option<Store>,
}

impl Dstash {
    pub fn open(dir: &Path, sync: SyncMode) -> Dstash {
        let store = Store::open(dir, dstash_opts(sync)).expect("open dstash");
        Dstash {
            dir: dir.to_path_buf(),
            store: Some(store),
        }
    }

    /// Closes the store and opens its files again, fsyncing every write (`true`) or none.
    pub fn set_sync(&mut self, sync: bool) {
        // The old store must close before the new one takes the directory's lock.
        drop(self.store.take());
        let mode = if sync {
            SyncMode::Always
        } else {
            SyncMode::Never
        };
        self.store = Some(Store::open(&self.dir, dstash_opts(mode)).expect("reopen dstash"));
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("open")
    }
}

impl Engine for Dstash {
    fn write(&self, ops: &[Op], batched: bool) {
        self.store().write(ops, batched)
    }

    fn read(&self, f: &mut dyn FnMut(&Reader)) {
        self.store().read(f)
    }
}

pub struct Heed {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

impl Heed {
    /// `no_sync`: opened with NO_SYNC, the no-fsync baseline.
    pub fn open(dir: &Path, no_sync: bool) -> Heed {
        let mut o = heed::EnvOpenOptions::new();
        o.map_size(64 << 30).max_dbs(1);
        // SAFETY: the directory is ours alone and not opened twice.
        let env = unsafe {
            if no_sync {
                o.flags(heed::EnvFlags::NO_SYNC);
            }
            o.open(dir).expect("open lmdb")
        };
        let mut w = env.write_txn().expect("txn");
        let db = env.create_database(&mut w, Some("bench")).expect("db");
        w.commit().expect("commit");
        Heed { env, db }
    }

    /// From here on, fsync every commit (`true`) or none (NO_SYNC).
    pub fn set_sync(&self, sync: bool) {
        let mode = if sync {
            heed::FlagSetMode::Disable
        } else {
            heed::FlagSetMode::Enable
        };
        // SAFETY: no other thread uses this environment.
        unsafe { self.env.set_flags(heed::EnvFlags::NO_SYNC, mode) }.expect("set NO_SYNC");
    }
}

impl Engine for Heed {
    fn write(&self, ops: &[Op], _batched: bool) {
        let mut w = self.env.write_txn().expect("txn");
        for op in ops {
            match &op.value {
                Some(v) => self.db.put(&mut w, &op.key, v).expect("put"),
                None => {
                    self.db.delete(&mut w, &op.key).expect("delete");
                }
            }
        }
        w.commit().expect("commit");
    }

    fn read(&self, f: &mut dyn FnMut(&Reader)) {
        let r = self.env.read_txn().expect("txn");
        // Copied out, as dstash's get does.
        f(&|k| self.db.get(&r, k).expect("get").map(<[u8]>::to_vec))
    }
}

pub struct Candy(candystore::CandyStore);

impl Candy {
    pub fn open(dir: &Path) -> Candy {
        Candy(
            candystore::CandyStore::open(dir, candystore::Config::default())
                .expect("open candystore"),
        )
    }
}

impl Engine for Candy {
    fn write(&self, ops: &[Op], _batched: bool) {
        for op in ops {
            match &op.value {
                Some(v) => {
                    self.0.set(&op.key, v).expect("set");
                }
                None => {
                    self.0.remove(&op.key).expect("remove");
                }
            }
        }
    }

    fn read(&self, f: &mut dyn FnMut(&Reader)) {
        f(&|k| self.0.get(k).expect("get"))
    }
}

fn put_op(i: u64) -> Op {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    key(i, &mut k);
    value(i, &mut v);
    Op {
        key: k,
        value: Some(v),
    }
}

fn check(i: u64, v: Option<Vec<u8>>) {
    let v = v.unwrap_or_else(|| panic!("key {i} is missing"));
    assert_eq!(&v[..8], &i.to_le_bytes(), "key {i} holds another value");
    black_box(v);
}

/// Puts of keys `from + order.at(j)` for j in `0..order.len()`, handed to the engine
/// `group` at a time (heed's transaction size). Returns puts/s.
pub fn puts(e: &dyn Engine, from: u64, order: &Shuffle, group: u64, batched: bool) -> f64 {
    let n = order.count();
    // One group's buffers, refilled in place so allocation is not what is measured.
    let mut ops: Vec<Op> = (0..group.min(n)).map(|_| put_op(0)).collect();
    let t = Instant::now();
    let mut j = 0;
    while j < n {
        let end = (j + group).min(n);
        ops.truncate((end - j) as usize);
        for (op, j) in ops.iter_mut().zip(j..end) {
            let i = from + order.at(j);
            key(i, &mut op.key);
            value(i, op.value.get_or_insert_with(Vec::new));
        }
        e.write(&ops, batched);
        j = end;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// `reads` gets of keys `0..n` in random order; every value is checked. Returns gets/s.
pub fn gets(e: &dyn Engine, n: u64, reads: u64) -> f64 {
    let sh = Shuffle::new(n, 42);
    let mut k = Vec::new();
    let t = Instant::now();
    e.read(&mut |get| {
        for r in 0..reads {
            let i = sh.at(r % n);
            key(i, &mut k);
            check(i, get(&k));
        }
    });
    reads as f64 / t.elapsed().as_secs_f64()
}

/// `ops` operations on random keys of `0..n`, 9 gets to 1 overwrite; each 100 operations
/// are run as their gets, then their puts as one group (heed: one transaction).
/// Returns operations/s.
pub fn mixed(e: &dyn Engine, n: u64, ops: u64) -> f64 {
    let mut k = Vec::new();
    let t = Instant::now();
    let mut j = 0;
    while j < ops {
        let end = (j + 100).min(ops);
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for j in j..end {
            let i = mix(j ^ 0x5eed) % n;
            if mix(j).is_multiple_of(10) {
                writes.push(put_op(i));
            } else {
                reads.push(i);
            }
        }
        e.read(&mut |get| {
            for &i in &reads {
                key(i, &mut k);
                check(i, get(&k));
            }
        });
        e.write(&writes, false);
        j = end;
    }
    ops as f64 / t.elapsed().as_secs_f64()
}

/// Deletes `count` of the keys `0..n` in random order, `group` at a time, then checks that
/// deleted keys are gone and the others stay. Returns deletes/s.
pub fn deletes(e: &dyn Engine, n: u64, count: u64, group: u64) -> f64 {
    let sh = Shuffle::new(n, 9);
    let t = Instant::now();
    let mut j = 0;
    while j < count {
        let end = (j + group).min(count);
        let ops: Vec<Op> = (j..end)
            .map(|j| {
                let mut k = Vec::new();
                key(sh.at(j), &mut k);
                Op {
                    key: k,
                    value: None,
                }
            })
            .collect();
        e.write(&ops, false);
        j = end;
    }
    let rate = count as f64 / t.elapsed().as_secs_f64();
    let mut k = Vec::new();
    e.read(&mut |get| {
        for j in (0..n).step_by((n / 1000).max(1) as usize) {
            let i = sh.at(j);
            key(i, &mut k);
            if j < count {
                assert!(get(&k).is_none(), "deleted key {i} is back");
            } else {
                check(i, get(&k));
            }
        }
    });
    rate
}

/// `add` of one entry per call over `distinct` keys.
pub fn dstash_add(store: &Store, events: u64, distinct: u64) -> f64 {
    let keys: Vec<Vec<u8>> = (0..distinct)
        .map(|i| format!("client:{i}").into_bytes())
        .collect();
    let t = Instant::now();
    for e in 0..events {
        black_box(
            store
                .add("rate", &keys[(mix(e) % distinct) as usize], 1)
                .expect("add"),
        );
    }
    events as f64 / t.elapsed().as_secs_f64()
}

/// Latency percentiles of `count` over a 60 s window, in nanoseconds: (p50, p99).
pub fn dstash_count_latency(store: &Store, calls: u64, distinct: u64) -> (f64, f64) {
    let keys: Vec<Vec<u8>> = (0..distinct)
        .map(|i| format!("client:{i}").into_bytes())
        .collect();
    let mut lat = Vec::with_capacity(calls as usize);
    for c in 0..calls {
        let k = &keys[(mix(c + 7) % distinct) as usize];
        let t = Instant::now();
        black_box(store.count("rate", k, 60).expect("count"));
        lat.push(t.elapsed().as_nanos() as f64);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99))
}
