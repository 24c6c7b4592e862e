//! What anti-entropy and layout changes ask of the store: partition digests, the
//! (key, version) of every record in chosen digest leaves, counter cells to hand off
//! and merge, and forgetting partitions this node no longer owns.

use dstash_cluster::partition::{LEAVES_PER_PARTITION, PARTITIONS};

use super::limits::{check_batch, check_key};
use super::Store;
use crate::counts::CounterCells;
use crate::error::{Error, Result};
use crate::keyspace::LeafEntry;

/// Index slots the digest rebuild scans per step: bounds how long one step holds writes.
pub(crate) const REBUILD_STEP_SLOTS: u64 = 8192;
/// Index slots one leaf listing examines per read lock.
const LIST_CHUNK_SLOTS: u64 = 4096;

impl Store {
    /// For each of `partitions`, its digest, or with `leaves` its
    /// [`LEAVES_PER_PARTITION`] leaf digests in order. `None` while the namespace's digest
    /// is being rebuilt after open (a store without a background thread rebuilds it
    /// here). A namespace that does not exist has the empty digest, all zeros.
    pub fn digests(&self, ns: &str, partitions: &[u32], leaves: bool) -> Result<Option<Vec<u64>>> {
        if let Some(&p) = partitions.iter().find(|&&p| p >= PARTITIONS) {
            return Err(Error::PartitionOutOfRange {
                partition: p,
                partitions: PARTITIONS,
            });
        }
        let Some(n) = self.existing(ns)? else {
            let per = if leaves {
                LEAVES_PER_PARTITION as usize
            } else {
                1
            };
            return Ok(Some(vec![0; partitions.len() * per]));
        };
        if !self.registry.opts.background {
            while !n.kv.rebuild_digest_step(REBUILD_STEP_SLOTS) {}
        }
        Ok(n.kv.digests(partitions, leaves))
    }

    /// The key, version and kind of every record indexed in the given digest leaves
    /// (tombstones and expired puts included; damaged records left out).
    pub fn leaf_entries(&self, ns: &str, leaves: &[u32]) -> Result<Vec<LeafEntry>> {
        Ok(match self.existing(ns)? {
            Some(n) => n.kv.leaf_entries(leaves, LIST_CHUNK_SLOTS),
            None => Vec::new(),
        })
    }

    /// Forgets every record of `ns` in a partition for which `drop` is true, leaving no
    /// tombstone (see `keyspace/forget.rs`), and checkpoints; clears those keys'
    /// counts too. Returns how many records and counter keys went.
    pub fn forget(&self, ns: &str, drop: &dyn Fn(u32) -> bool) -> Result<u64> {
        match self.existing(ns)? {
            Some(n) => Ok(n.kv.forget(drop, LIST_CHUNK_SLOTS)? + n.counters.forget(drop)?),
            None => Ok(0),
        }
    }

    /// The live counter cells of `ns`'s keys in partitions `pick` is true for, among
    /// the keys whose counter hash is in `[lo, hi)` (cut the hash space to bound each
    /// answer).
    pub fn counter_cells(
        &self,
        ns: &str,
        pick: &dyn Fn(u32) -> bool,
        lo: u64,
        hi: u128,
    ) -> Result<Vec<CounterCells>> {
        Ok(match self.existing(ns)? {
            Some(n) => n.counters.cells(pick, lo, hi),
            None => Vec::new(),
        })
    }

    /// Merges counter cells into `ns` (created if needed), by the maximum per key and
    /// cell (see `counts/transfer.rs`); returns the cells merged.
    pub fn merge_counters(&self, ns: &str, items: &[CounterCells]) -> Result<u64> {
        check_batch(&self.registry.opts, items.len())?;
        items.iter().try_for_each(|c| check_key(&c.key))?;
        self.namespace(ns)?.counters.merge(items)
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Test hook: one rebuild step over `slots` index slots of `ns`; true once ready.
    #[doc(hidden)]
    pub fn rebuild_digest_partially_for_test(&self, ns: &str, slots: u64) -> bool {
        match self.existing(ns) {
            Ok(Some(n)) => n.kv.rebuild_digest_step(slots),
            _ => true,
        }
    }

    /// True when every namespace's digest is ready.
    pub fn digests_ready(&self) -> bool {
        self.registry.all().iter().all(|n| n.kv.digest_ready())
    }
}
