//! The same workloads through each engine. Each function returns operations per second.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use dstash_storage::{Options, PutEntry, Store, SyncMode};

use crate::workload::{key, value, Shuffle};

pub fn dstash_opts(sync: SyncMode) -> Options {
    Options {
        sync,
        ..Options::default()
    }
}

/// Single puts, one call per key.
pub fn dstash_put_single(store: &Store, n: u64) -> f64 {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for i in 0..n {
        key(i, &mut k);
        value(i, &mut v);
        store.put("bench", &k, &v, 0).expect("put");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// put_many in batches of `batch`.
pub fn dstash_put_batched(store: &Store, n: u64, batch: u64) -> f64 {
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let kv: Vec<(Vec<u8>, Vec<u8>)> = (i..end)
            .map(|j| {
                let (mut k, mut v) = (Vec::new(), Vec::new());
                key(j, &mut k);
                value(j, &mut v);
                (k, v)
            })
            .collect();
        let entries: Vec<PutEntry> = kv
            .iter()
            .map(|(k, v)| PutEntry {
                key: k,
                value: v,
                ttl_secs: 0,
            })
            .collect();
        store.put_many("bench", &entries).expect("put_many");
        i = end;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Random-order gets of keys known to exist; every value is checked.
pub fn dstash_get_random(store: &Store, n: u64, reads: u64) -> f64 {
    let sh = Shuffle::new(n, 42);
    let mut k = Vec::new();
    let t = Instant::now();
    for r in 0..reads {
        let i = sh.at(r % n);
        key(i, &mut k);
        let v = store.get("bench", &k).expect("get").expect("present");
        assert_eq!(&v[..8], &i.to_le_bytes());
        black_box(v);
    }
    reads as f64 / t.elapsed().as_secs_f64()
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
                .add(
                    "rate",
                    &keys[(crate::workload::mix(e) % distinct) as usize],
                    1,
                )
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
        let k = &keys[(crate::workload::mix(c + 7) % distinct) as usize];
        let t = Instant::now();
        black_box(store.count("rate", k, 60).expect("count"));
        lat.push(t.elapsed().as_nanos() as f64);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99))
}

pub struct Heed {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

impl Heed {
    pub fn open(dir: &Path, no_sync: bool) -> Heed {
        let mut o = heed::EnvOpenOptions::new();
        o.map_size(64 << 30).max_dbs(1);
        // SAFETY: the directory is ours alone and not opened twice; NO_SYNC is the
        // no-fsync baseline this bench exists to compare against.
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

    /// Puts in transactions of `txn` keys (a commit per transaction).
    pub fn put(&self, n: u64, txn: u64) -> f64 {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let mut w = self.env.write_txn().expect("txn");
            for j in i..(i + txn).min(n) {
                key(j, &mut k);
                value(j, &mut v);
                self.db.put(&mut w, &k, &v).expect("put");
            }
            w.commit().expect("commit");
            i += txn;
        }
        n as f64 / t.elapsed().as_secs_f64()
    }

    pub fn get_random(&self, n: u64, reads: u64) -> f64 {
        let sh = Shuffle::new(n, 42);
        let mut k = Vec::new();
        let r = self.env.read_txn().expect("txn");
        let t = Instant::now();
        for x in 0..reads {
            let i = sh.at(x % n);
            key(i, &mut k);
            // Copy out, as dstash's get does.
            let v = self.db.get(&r, &k).expect("get").expect("present").to_vec();
            assert_eq!(&v[..8], &i.to_le_bytes());
            black_box(v);
        }
        reads as f64 / t.elapsed().as_secs_f64()
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

    pub fn put(&self, n: u64) -> f64 {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let t = Instant::now();
        for i in 0..n {
            key(i, &mut k);
            value(i, &mut v);
            self.0.set(&k, &v).expect("set");
        }
        n as f64 / t.elapsed().as_secs_f64()
    }

    pub fn get_random(&self, n: u64, reads: u64) -> f64 {
        let sh = Shuffle::new(n, 42);
        let mut k = Vec::new();
        let t = Instant::now();
        for x in 0..reads {
            let i = sh.at(x % n);
            key(i, &mut k);
            let v = self.0.get(&k).expect("get").expect("present");
            assert_eq!(&v[..8], &i.to_le_bytes());
            black_box(v);
        }
        reads as f64 / t.elapsed().as_secs_f64()
    }
}
