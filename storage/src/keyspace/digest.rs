//! The keyspace's anti-entropy digest: for each leaf of the fixed partition tree
//! ([`dstash_cluster::partition`]), the XOR of the digest items of the (key, version) the
//! index holds, tombstones included. Two replicas' leaves match when they hold the same
//! versions of the same keys.
//!
//! Apply keeps it current under the tables write lock: a write toggles out the old
//! version's item and toggles in the new one. At open it is rebuilt from the index by a
//! paced scan over hash ranges; until the scan ends, the digest is not ready. Writes
//! during the scan update the rebuilt leaves too when their index hash is below the
//! scan's cursor, and are left for the scan to find otherwise. A record whose checksum
//! fails contributes nothing (so its leaf differs from a healthy replica's and
//! anti-entropy brings the same version back), and is remembered so that replacing it
//! toggles nothing out.

use std::collections::HashSet;

use dstash_cluster::partition::{
    digest_item, first_leaf, leaf_of_point, point, LEAVES, LEAVES_PER_PARTITION, PARTITIONS,
};
use dstash_cluster::Version;
use parking_lot::RwLockUpgradableReadGuard;

use super::{record_at, Keyspace, Tables};
use crate::digest_file;
use crate::index::Loc;
use crate::record;

const END: u128 = 1 << 64;

pub(crate) struct Digest {
    leaves: Vec<u64>,
    rebuild: Option<Rebuild>,
    /// Records found damaged by the rebuild scan: in no leaf.
    damaged: HashSet<Loc>,
}

struct Rebuild {
    /// Index hashes below this are in `leaves`.
    done_below: u128,
    leaves: Vec<u64>,
}

/// One indexed record as anti-entropy lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafEntry {
    pub key: Vec<u8>,
    pub version: Version,
    pub tombstone: bool,
    /// Bytes of the value (0 for a tombstone).
    pub value_len: u32,
}

impl Digest {
    /// A digest that a scan must rebuild before it is ready.
    pub(crate) fn rebuilding() -> Self {
        Self {
            leaves: vec![0; LEAVES as usize],
            rebuild: Some(Rebuild {
                done_below: 0,
                leaves: vec![0; LEAVES as usize],
            }),
            damaged: HashSet::new(),
        }
    }

    /// A digest as a clean close saved it.
    pub(crate) fn loaded(leaves: Vec<u64>) -> Self {
        Self {
            leaves,
            rebuild: None,
            damaged: HashSet::new(),
        }
    }

    pub(crate) fn ready(&self) -> bool {
        self.rebuild.is_none()
    }

    /// Adds or removes (they are the same) the item of `key` at `version`, indexed
    /// under `hash` at `loc`. A damaged record was never added, so it is not removed.
    pub(crate) fn toggle(&mut self, hash: u64, loc: Loc, key: &[u8], version: Version) {
        if !self.damaged.is_empty() && self.damaged.remove(&loc) {
            return;
        }
        let (leaf, item) = digest_item(key, version);
        self.leaves[leaf as usize] ^= item;
        if let Some(r) = &mut self.rebuild {
            if (hash as u128) < r.done_below {
                r.leaves[leaf as usize] ^= item;
            }
        }
    }

    /// Compaction moved the record at `from` to `to` (same key and version).
    pub(crate) fn moved(&mut self, from: Loc, to: Loc) {
        if self.damaged.remove(&from) {
            self.damaged.insert(to);
        }
    }
}

impl Keyspace {
    /// Saves the digest for the next open; called on a clean close, after the clean
    /// checkpoint. A digest that is not ready, or knows of damage, is not saved.
    pub(super) fn save_digest(&self) {
        let t = self.tables.read();
        if !t.digest.ready() || !t.digest.damaged.is_empty() {
            return;
        }
        let io = self.opts.io.as_ref();
        let r = digest_file::write(io, &self.dir, t.applied_end, t.index.gen, &t.digest.leaves);
        if let Err(e) = r {
            tracing::warn!(ns = %self.ns, "saving the digest failed (the next open rebuilds it): {e}");
        }
    }

    /// Takes the saved digest after a clean close with nothing replayed.
    pub(super) fn restore_digest(&self, position: u64) {
        let mut t = self.tables.write();
        match digest_file::read(&self.dir, position, t.index.gen, LEAVES as usize) {
            Ok(Some(leaves)) => t.digest = Digest::loaded(leaves),
            Ok(None) => {}
            Err(e) => tracing::warn!(ns = %self.ns, "reading the saved digest: {e}"),
        }
    }

    /// Rebuilds the next `slots` slots' worth of hash range; true once the digest is
    /// ready. Holds an upgradable read lock while scanning: readers go on, writes wait.
    pub fn rebuild_digest_step(&self, slots: u64) -> bool {
        let t = self.tables.upgradable_read();
        let Some(lo) = t.digest.rebuild.as_ref().map(|r| r.done_below) else {
            return true;
        };
        let hi = (lo + t.index.hash_span(slots.max(1))).min(END);
        let mut found = Vec::new();
        let mut damaged = Vec::new();
        t.index.scan_range(lo as u64, hi, |_, e| {
            let rec = record_at(&t.segments, e.loc).unwrap_or(&[]);
            match record::decode(rec) {
                Ok((h, key, _)) => found.push(digest_item(key, h.version)),
                Err(_) => damaged.push(e.loc),
            }
        });
        let mut t = RwLockUpgradableReadGuard::upgrade(t);
        let Tables { digest, .. } = &mut *t;
        digest.damaged.extend(damaged);
        let Some(r) = &mut digest.rebuild else {
            return true;
        };
        for (leaf, item) in found {
            r.leaves[leaf as usize] ^= item;
        }
        r.done_below = hi;
        if hi < END {
            return false;
        }
        if let Some(r) = digest.rebuild.take() {
            digest.leaves = r.leaves;
        }
        true
    }

    pub fn digest_ready(&self) -> bool {
        self.tables.read().digest.ready()
    }

    /// For each partition asked, its digest (the XOR of its leaves), or with `leaves`
    /// every leaf of it in order. None while the digest is being rebuilt.
    pub fn digests(&self, partitions: &[u32], leaves: bool) -> Option<Vec<u64>> {
        let t = self.tables.read();
        if !t.digest.ready() {
            return None;
        }
        let all = &t.digest.leaves;
        let mut out = Vec::new();
        for &p in partitions.iter().filter(|&&p| p < PARTITIONS) {
            let first = first_leaf(p) as usize;
            let run = &all[first..first + LEAVES_PER_PARTITION as usize];
            if leaves {
                out.extend_from_slice(run);
            } else {
                out.push(run.iter().fold(0, |a, b| a ^ b));
            }
        }
        Some(out)
    }

    /// Every record the index holds in the given leaves, tombstones and expired puts
    /// included, a damaged one left out. Walks the whole index a chunk at a time.
    pub fn leaf_entries(&self, leaves: &[u32], chunk_slots: u64) -> Vec<LeafEntry> {
        let mut wanted = vec![false; LEAVES as usize];
        for &l in leaves.iter().filter(|&&l| l < LEAVES) {
            wanted[l as usize] = true;
        }
        let mut out = Vec::new();
        let mut next: u128 = 0;
        while next < END {
            let t = self.tables.read();
            let hi = (next + t.index.hash_span(chunk_slots.max(1))).min(END);
            t.index.scan_range(next as u64, hi, |_, e| {
                let rec = record_at(&t.segments, e.loc).unwrap_or(&[]);
                let Some(key) = record::key_of(rec) else {
                    return;
                };
                if !wanted[leaf_of_point(point(key)) as usize] {
                    return;
                }
                if let Ok((h, key, value)) = record::decode(rec) {
                    out.push(LeafEntry {
                        key: key.to_vec(),
                        version: h.version,
                        tombstone: h.kind == record::Kind::Delete,
                        value_len: value.len() as u32,
                    });
                }
            });
            next = hi;
        }
        out
    }
}
