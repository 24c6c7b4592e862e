//! Expiring counts: `add` records entries now, `count` sums those younger than a window.
//!
//! Time is cut into buckets of `span` seconds (about an eighth of the retention), one
//! file each, holding a per-second count per key. A count reads at most
//! `retention / span + 1` buckets; a bucket file is deleted whole once its last second
//! leaves the retention. Memory is O(live buckets): the counts themselves are file-backed.

mod bucket;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::commit::GroupCommit;
use crate::error::{Error, IoContext, Result};
use crate::glob::Glob;
use crate::hash::{key_hash, random_seed};
use crate::options::{Options, SyncMode};

pub use bucket::Bucket;
pub use transfer::CounterCells;

/// How far an add's own second may be from the node's clock.
pub const MAX_EVENT_SKEW: u64 = 10;

/// Span of a bucket for a given retention: about eight buckets cover the retention.
pub fn span_for(retention: u32) -> u32 {
    retention.div_ceil(8).clamp(1, 3600)
}

#[derive(Debug, Default)]
struct CounterWriter {
    /// Buckets written since the last sync.
    dirty: BTreeSet<u64>,
    next_ticket: u64,
}

pub struct Counters {
    ns: String,
    dir: PathBuf,
    opts: Arc<Options>,
    seed: u64,
    retention: AtomicU32,
    buckets: RwLock<BTreeMap<u64, Arc<Bucket>>>,
    writer: Mutex<CounterWriter>,
    group: GroupCommit,
}

/// Counter figures for metrics.
#[derive(Debug, Clone, Default)]
pub struct CounterStats {
    pub buckets: u64,
    pub bucket_keys: u64,
    pub disk_bytes: u64,
}

impl Counters {
    pub fn open(dir: &Path, ns: &str, retention: u32, opts: Arc<Options>) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let mut buckets = BTreeMap::new();
        for e in std::fs::read_dir(dir).at(dir)? {
            let path = e.at(dir)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(t0) = bucket::parse_name(name) {
                let b = Bucket::open(&path, opts.io.clone())?;
                if b.t0 != t0 {
                    return Err(Error::BadFile {
                        path,
                        reason: format!(
                            "header says the bucket starts at {}, the name says {t0}",
                            b.t0
                        ),
                    });
                }
                buckets.insert(t0, Arc::new(b));
            } else if name.ends_with(".grow") {
                // A grow a crash interrupted; the original is intact.
                crate::fsutil::remove_file(&path)?;
            }
        }
        let seed = buckets
            .values()
            .next()
            .map_or_else(random_seed, |b| b.seed());
        let c = Self {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            opts,
            seed,
            retention: AtomicU32::new(retention),
            buckets: RwLock::new(buckets),
            writer: Mutex::new(CounterWriter {
                next_ticket: 1,
                ..Default::default()
            }),
            group: GroupCommit::default(),
        };
        c.expire()?;
        Ok(c)
    }

    pub fn retention(&self) -> u32 {
        self.retention.load(Ordering::Relaxed)
    }

    pub fn set_retention(&self, secs: u32) {
        self.retention.store(secs, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.opts.clock.now_secs()
    }

    /// Adds `n` entries (0 counts as 1) for each key at second `at` (None: now), which
    /// must be within [`MAX_EVENT_SKEW`] of the clock; returns each key's count over
    /// the whole retention afterwards. Under `Always` the adds are durable first.
    pub fn add_many(&self, items: &[(&[u8], u32)], at: Option<u64>) -> Result<Vec<u64>> {
        let now = self.now();
        let t = at.unwrap_or(now);
        if t.abs_diff(now) > MAX_EVENT_SKEW {
            return Err(Error::EventTime {
                at: t,
                off: t.abs_diff(now),
                max: MAX_EVENT_SKEW,
            });
        }
        let ticket = {
            let mut w = self.writer.lock();
            let b = self.bucket_for(t)?;
            let mut b = b;
            for (key, n) in items {
                if b.is_full() {
                    b = self.grow(&b)?;
                }
                b.add(key_hash(self.seed, key), key, t, (*n).max(1))?;
            }
            Self::written(&mut w, [b.t0])
        };
        self.durable(ticket)?;
        let retention = self.retention();
        items
            .iter()
            .map(|(key, _)| self.count_at(key, retention, now.max(t)))
            .collect()
    }

    /// Under `Always`, waits until the writes of `ticket` are synced (one sync shared by
    /// the batches waiting at once).
    fn durable(&self, ticket: u64) -> Result<()> {
        if self.opts.sync != SyncMode::Always {
            return Ok(());
        }
        self.group
            .wait_durable(ticket, || self.sync_dirty())
            .map_err(|e| match e {
                Error::Poisoned { cause, .. } => Error::Poisoned {
                    ns: self.ns.clone(),
                    cause,
                },
                e => e,
            })
    }

    /// Takes a ticket for the buckets `touched`, which the caller (holding the writer
    /// lock) wrote.
    fn written(w: &mut CounterWriter, touched: impl IntoIterator<Item = u64>) -> u64 {
        w.dirty.extend(touched);
        let t = w.next_ticket;
        w.next_ticket += 1;
        t
    }

    /// Syncs the buckets written since the last sync; returns the last ticket covered.
    fn sync_dirty(&self) -> Result<u64> {
        let (dirty, covered) = {
            let mut w = self.writer.lock();
            (std::mem::take(&mut w.dirty), w.next_ticket - 1)
        };
        let buckets: Vec<_> = {
            let map = self.buckets.read();
            dirty.iter().filter_map(|t0| map.get(t0).cloned()).collect()
        };
        for b in buckets {
            b.sync()?;
        }
        Ok(covered)
    }

    /// fdatasync every bucket written since the last sync.
    pub fn sync(&self) -> Result<()> {
        self.sync_dirty().map(|_| ())
    }

    /// The bucket covering second `t`, created if needed. Caller holds the writer lock.
    fn bucket_for(&self, t: u64) -> Result<Arc<Bucket>> {
        {
            let map = self.buckets.read();
            if let Some((_, b)) = map.range(..=t).next_back() {
                if t < b.end() {
                    return Ok(b.clone());
                }
            }
        }
        let span = span_for(self.retention()) as u64;
        let map = self.buckets.read();
        let prev = map.range(..=t).next_back().map(|(_, b)| b.clone());
        let next_start = map.range(t + 1..).next().map(|(k, _)| *k);
        drop(map);
        // Buckets never overlap: each second belongs to exactly one.
        let t0 = (t - t % span).max(prev.as_ref().map_or(0, |b| b.end()));
        let end = (t0 + span).min(next_start.unwrap_or(u64::MAX));
        let bits = prev.map_or(bucket::MIN_BITS, |b| bits_for(b.live()));
        let path = self.dir.join(bucket::file_name(t0));
        let b = Arc::new(Bucket::create(
            &path,
            t0,
            (end - t0) as u32,
            bits,
            self.seed,
            self.opts.io.clone(),
        )?);
        crate::fsutil::sync_dir(&self.dir)?;
        self.buckets.write().insert(t0, b.clone());
        drop(self.expire());
        Ok(b)
    }

    fn grow(&self, b: &Arc<Bucket>) -> Result<Arc<Bucket>> {
        let next = Arc::new(b.grown()?);
        self.buckets.write().insert(next.t0, next.clone());
        Ok(next)
    }

    /// Entries added for `key` in the last `window` seconds (the current second included).
    pub fn count(&self, key: &[u8], window: u32) -> Result<u64> {
        self.count_at(key, window, self.now())
    }

    /// [`count`](Self::count) as of second `now`.
    fn count_at(&self, key: &[u8], window: u32, now: u64) -> Result<u64> {
        let retention = self.retention();
        if window > retention {
            return Err(Error::WindowTooLarge { window, retention });
        }
        let window = if window == 0 { retention } else { window };
        let lo = (now + 1).saturating_sub(window as u64);
        let hash = key_hash(self.seed, key);
        let map = self.buckets.read();
        let first = map.range(..=lo).next_back().map_or(lo, |(t0, _)| *t0);
        Ok(map
            .range(first..=now)
            .map(|(_, b)| b.sum(hash, key, lo, now))
            .sum())
    }

    /// Deletes the buckets whose every second is older than the retention.
    pub fn expire(&self) -> Result<usize> {
        let oldest_live = (self.now() + 1).saturating_sub(self.retention() as u64);
        let dead: Vec<Arc<Bucket>> = {
            let mut map = self.buckets.write();
            let (dead, live): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut *map)
                .into_iter()
                .partition(|(_, b)| b.end() <= oldest_live);
            *map = live;
            dead.into_values().collect()
        };
        for b in &dead {
            crate::fsutil::remove_file(b.path())?;
        }
        if !dead.is_empty() {
            crate::fsutil::sync_dir(&self.dir)?;
        }
        Ok(dead.len())
    }

    pub fn lister(self: &Arc<Self>, glob: Glob) -> CounterLister {
        CounterLister {
            counters: self.clone(),
            glob,
            bucket: None,
            next: 0,
        }
    }

    pub fn stats(&self) -> CounterStats {
        let map = self.buckets.read();
        CounterStats {
            buckets: map.len() as u64,
            bucket_keys: map.values().map(|b| b.live()).sum(),
            disk_bytes: map.values().map(|b| b.disk_bytes()).sum(),
        }
    }
}

fn bits_for(live: u64) -> u32 {
    let mut bits = bucket::MIN_BITS;
    while (1u64 << bits) < live.saturating_mul(2) {
        bits += 1;
    }
    bits
}

/// Lists counter keys with a live count, newest bucket first. A key is reported from the
/// newest bucket where it is live, so it appears once without remembering what was sent.
pub struct CounterLister {
    counters: Arc<Counters>,
    glob: Glob,
    /// The bucket being walked (its t0); None before the first.
    bucket: Option<u64>,
    next: u128,
}

const CHUNK_SLOTS: u64 = 4096;
const END: u128 = 1 << 64;

impl CounterLister {
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        let c = &self.counters;
        let now = c.now();
        let lo_sec = (now + 1).saturating_sub(c.retention() as u64);
        loop {
            let map = c.buckets.read();
            let current = match self.bucket {
                None => map.keys().next_back().copied(),
                Some(t0) if self.next >= END => map.range(..t0).next_back().map(|(k, _)| *k),
                Some(t0) => Some(t0),
            };
            let Some(t0) = current else { return Ok(None) };
            if self.bucket != Some(t0) {
                self.bucket = Some(t0);
                self.next = 0;
            }
            let Some(b) = map.get(&t0).cloned() else {
                // Expired meanwhile: move on to older buckets.
                self.next = END;
                continue;
            };
            let newer: Vec<Arc<Bucket>> = map.range(t0 + 1..).map(|(_, b)| b.clone()).collect();
            drop(map);
            let hi = (self.next + b.hash_span(CHUNK_SLOTS)).min(END);
            let mut keys = Vec::new();
            b.scan_range(self.next as u64, hi, |slot, hash, key| {
                let live_here = b.sum_slot(slot, lo_sec, now) > 0;
                let live_newer = || newer.iter().any(|n| n.sum(hash, key, lo_sec, now) > 0);
                if live_here && !live_newer() && self.glob.matches(key) {
                    keys.push(key.to_vec());
                }
            });
            self.next = hi;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
    }
}
