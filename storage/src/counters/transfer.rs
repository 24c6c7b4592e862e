//! Counts moving between replicas: a handoff reads the live per-second cells of the
//! partitions a node gains from an old owner and merges them on the new owner.
//! Merging takes the maximum per key and second, never the sum: the same cells merged
//! twice, or from two old owners that both counted an event, count it once. A count
//! after a merge is at least what either side held, and never more than was added.
//!
//! Forgetting clears the cells of keys in partitions a node no longer owns; the keys
//! stay in their bucket, counting nothing, until it expires.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dstash_cluster::partition::partition_of;

use super::{Bucket, Counters, END};
use crate::error::Result;
use crate::hash::key_hash;

/// One key's live counts, as (Unix second, count), in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCells {
    pub key: Vec<u8>,
    pub cells: Vec<(u64, u32)>,
}

impl Counters {
    fn all_buckets(&self) -> Vec<Arc<Bucket>> {
        self.buckets.read().values().cloned().collect()
    }

    /// The live cells (nonzero, within the retention) of every key whose bucket hash is
    /// in `[lo, hi)` and whose partition `pick` is true for, one entry per key. The
    /// hash is the same in every bucket, so hash ranges cut the keys into chunks.
    pub fn cells(&self, pick: &dyn Fn(u32) -> bool, lo: u64, hi: u128) -> Vec<CounterCells> {
        let now = self.now();
        let oldest = (now + 1).saturating_sub(self.retention() as u64);
        let mut by_key: BTreeMap<Vec<u8>, Vec<(u64, u32)>> = BTreeMap::new();
        // Oldest bucket first, so each key's cells come in time order.
        for b in self.all_buckets() {
            b.scan_range(lo, hi, |slot, _, key| {
                if key.is_empty() || !pick(partition_of(key)) {
                    return;
                }
                let mut live = b
                    .cells(slot)
                    .filter(|(t, _)| (oldest..=now).contains(t))
                    .peekable();
                if live.peek().is_some() {
                    by_key.entry(key.to_vec()).or_default().extend(live);
                }
            });
        }
        by_key
            .into_iter()
            .map(|(key, cells)| CounterCells { key, cells })
            .collect()
    }

    /// Raises each key's count for each second given to at least the count given.
    /// Seconds outside the retention or ahead of the clock are skipped. Durable under
    /// `Always` before it returns; returns the cells merged.
    pub fn merge(&self, items: &[CounterCells]) -> Result<u64> {
        let now = self.now();
        let oldest = (now + 1).saturating_sub(self.retention() as u64);
        let mut merged = 0;
        let ticket = {
            let mut w = self.writer.lock();
            let mut touched = BTreeSet::new();
            for item in items {
                let hash = key_hash(self.seed, &item.key);
                for &(t, n) in &item.cells {
                    if t < oldest || t > now || n == 0 {
                        continue;
                    }
                    let mut b = self.bucket_for(t)?;
                    if b.is_full() {
                        b = self.grow(&b)?;
                    }
                    b.raise(hash, &item.key, t, n)?;
                    touched.insert(b.t0);
                    merged += 1;
                }
            }
            Self::written(&mut w, touched)
        };
        self.durable(ticket)?;
        Ok(merged)
    }

    /// Clears the counts of every key in a partition `drop` is true for, and syncs;
    /// returns how many (key, bucket) pairs were cleared.
    pub fn forget(&self, drop: &dyn Fn(u32) -> bool) -> Result<u64> {
        let _w = self.writer.lock();
        let mut cleared = 0;
        for b in self.all_buckets() {
            let before = cleared;
            b.scan_range(0, END, |slot, _, key| {
                if !key.is_empty() && drop(partition_of(key)) && b.cells(slot).next().is_some() {
                    b.clear(slot);
                    cleared += 1;
                }
            });
            if cleared > before {
                b.sync()?;
            }
        }
        Ok(cleared)
    }
}
