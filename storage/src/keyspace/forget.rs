//! Forgetting: taking records out of the index, with nothing written to the log, when
//! this node no longer owns their partitions (the cleanup after a layout change).
//!
//! Invariants:
//! - An entry goes only if the index still points at the record the scan saw, so a
//!   write that landed meanwhile stays (drop only if unchanged).
//! - Nothing is appended: a forgotten key reads as absent, not deleted, and takes a
//!   later write of any version (this node no longer owns it, so none should come).
//! - The checkpoint at the end makes it durable. A crash before it brings back some of
//!   what was forgotten, as it was; forgetting again is harmless.
//! - The records' bytes count as dead, so compaction reclaims them.

use dstash_cluster::partition::partition_of;

use super::apply::{add_dead, record_len};
use super::{key_at, record_at, Keyspace};
use crate::error::Result;
use crate::index::Loc;
use crate::record;

const END: u128 = 1 << 64;

impl Keyspace {
    /// Forgets every record of a partition for which `drop` is true (tombstones too),
    /// walking the index `chunk_slots` slots per lock; returns how many went.
    pub fn forget(&self, drop: &dyn Fn(u32) -> bool, chunk_slots: u64) -> Result<u64> {
        let mut forgotten = 0;
        let mut next: u128 = 0;
        while next < END {
            let (hi, found) = {
                let t = self.tables.read();
                let hi = (next + t.index.hash_span(chunk_slots.max(1))).min(END);
                let mut found: Vec<(u64, Loc)> = Vec::new();
                t.index.scan_range(next as u64, hi, |hash, e| {
                    let key = record_at(&t.segments, e.loc).and_then(record::key_of);
                    if key.is_some_and(|k| drop(partition_of(k))) {
                        found.push((hash, e.loc));
                    }
                });
                (hi, found)
            };
            if !found.is_empty() {
                let mut t = self.tables.write();
                for (hash, loc) in found {
                    let item = super::header_at(&t.segments, loc)
                        .zip(key_at(&t.segments, loc).map(<[u8]>::to_vec));
                    if t.index.remove_loc(hash, loc) {
                        if let Some((h, key)) = item {
                            t.digest.toggle(hash, loc, &key, h.version);
                        }
                        let len = record_len(&t.segments, loc);
                        add_dead(&mut t.stats, loc, len);
                        forgotten += 1;
                    }
                }
            }
            next = hi;
        }
        if forgotten > 0 {
            self.checkpoint(false)?;
        }
        Ok(forgotten)
    }
}
