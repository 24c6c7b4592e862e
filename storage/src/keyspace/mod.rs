//! A namespace's key/value keyspace: append-only segments, the hash index over them,
//! group commit and checkpoints. Recovery, compaction and listing live beside it.
//!
//! Locking: `writer` orders appends; `tables` guards the index and segment set (readers
//! share it, index updates take it briefly, nothing holds it across an fsync); `ckpt`
//! serialises checkpoints.

mod apply;
mod checkpointing;
mod compaction;
mod digest;
mod forget;
mod index_check;
mod listing;
mod open;
mod read;
mod reclaim;
mod replay;
mod write;

pub use compaction::CompactionReport;
pub use digest::LeafEntry;
pub use listing::KeyLister;
pub use read::StoredRef;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dstash_cluster::Version;
use parking_lot::{Mutex, RwLock};

use crate::checkpoint::SegmentStats;
use crate::commit::{GroupCommit, Turnstile};
use crate::error::{Error, Result};
use crate::index::{Index, Loc};
use crate::options::Options;
use crate::record::{self, Header, RECORD_HEADER_LEN};
use crate::segment::Segment;

/// One change to the keyspace, with its version: it takes effect only if newer than
/// what the keyspace holds for the key.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        /// Unix seconds; 0 = never.
        expires_at: u64,
        version: Version,
    },
    /// Writes a tombstone, whether or not the key is present.
    Delete { key: &'a [u8], version: Version },
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The write is now the key's newest version; `existed` when a live value was there.
    Written { existed: bool },
    /// The keyspace already holds this version or a newer one: nothing changed.
    Stale,
}

/// An index change waiting for its records to be durable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pending {
    /// A put or delete record: indexed if newer than the key's current one.
    Record {
        hash: u64,
        loc: Loc,
        len: u32,
        deleted: bool,
    },
    /// Compaction moved (or turned into a tombstone) the record the index points at.
    Relocate {
        hash: u64,
        from: Loc,
        to: Loc,
        len: u32,
        /// The new record is a tombstone.
        deleted: bool,
    },
    /// Compaction dropped a record past its grace period.
    Unindex { hash: u64, loc: Loc },
}

pub(crate) struct Tables {
    pub index: Arc<Index>,
    pub segments: BTreeMap<u32, Arc<Segment>>,
    pub stats: BTreeMap<u32, SegmentStats>,
    /// Log position up to which the index reflects the log.
    pub applied_end: u64,
    pub next_index_gen: u64,
    pub digest: digest::Digest,
}

struct Writer {
    active: Arc<Segment>,
    next_ticket: u64,
    buf: Vec<u8>,
    poisoned: Option<String>,
}

#[derive(Debug, Default)]
struct CheckpointState {
    /// Segment holding the last checkpoint's position: only older ones may be compacted.
    segment: u32,
    at_secs: u64,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct KeyspaceMetrics {
    pub corrupt_records: AtomicU64,
    pub bytes_since_checkpoint: AtomicU64,
    pub checkpoints: AtomicU64,
    pub compacted_segments: AtomicU64,
    pub compacted_bytes: AtomicU64,
    /// Segments a bounded namespace dropped whole, and their bytes.
    pub evicted_segments: AtomicU64,
    pub evicted_bytes: AtomicU64,
    pub replayed_records: AtomicU64,
    /// Index pages whose checksum failed at open and whose slots all checked out.
    pub index_pages_resealed: AtomicU64,
    /// Index pages found damaged at open (each time, the index was rebuilt from the log).
    pub index_pages_damaged: AtomicU64,
}

/// What the keyspace holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A value, with its expiry in Unix seconds (0: none).
    Value {
        value: Vec<u8>,
        expires_at: u64,
        version: Version,
    },
    /// A tombstone, or a put whose TTL has passed.
    Deleted(Version),
}

/// A point-in-time view for metrics and status.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceStats {
    pub keys: u64,
    /// Tombstones still held (deleted keys within or awaiting their grace period).
    pub tombstones: u64,
    pub segments: u64,
    pub data_bytes: u64,
    pub dead_bytes: u64,
    pub index_bytes: u64,
    pub index_slots: u64,
    pub corrupt_records: u64,
    pub checkpoints: u64,
    pub compacted_segments: u64,
    pub compacted_bytes: u64,
    pub evicted_segments: u64,
    pub evicted_bytes: u64,
    pub replayed_records: u64,
    pub index_pages_resealed: u64,
    pub index_pages_damaged: u64,
}

pub struct Keyspace {
    ns: String,
    /// The index's hash seed: fixed for the keyspace's life (growth keeps it).
    seed: u64,
    dir: PathBuf,
    opts: Arc<Options>,
    tables: RwLock<Tables>,
    writer: Mutex<Writer>,
    group: GroupCommit,
    turnstile: Turnstile,
    ckpt: Mutex<CheckpointState>,
    /// Open replayed records that no checkpoint covers yet: checkpoint at the next tick.
    replay_unsaved: AtomicBool,
    /// Index entries appended but not yet applied (group commit in progress).
    in_flight: AtomicU64,
    /// A bounded namespace's segments are sealed at this size (0: at `segment_size`).
    roll_at: AtomicU64,
    /// The largest version timestamp in the log (checkpointed, and raised by replay).
    max_ts: AtomicU64,
    pub metrics: KeyspaceMetrics,
}

/// The whole record at `loc`, if it is inside a live segment's written range.
#[inline]
pub(crate) fn record_at(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> Option<&[u8]> {
    let seg = segments.get(&loc.segment())?;
    let head = seg.read(loc.offset(), RECORD_HEADER_LEN)?;
    let h = record::peek_header(head).ok()?;
    seg.read(loc.offset(), h.total_len())
}

/// The header of the record at `loc`.
#[inline]
pub(crate) fn header_at(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> Option<Header> {
    let seg = segments.get(&loc.segment())?;
    record::peek_header(seg.read(loc.offset(), RECORD_HEADER_LEN)?).ok()
}

/// True when a record of `version` should replace the one at `cur`: it is newer, or
/// the same version over a damaged copy (a repair).
pub(crate) fn supersedes(
    segments: &BTreeMap<u32, Arc<Segment>>,
    cur: Loc,
    version: Version,
) -> bool {
    match header_at(segments, cur) {
        Some(h) if h.version == version => {
            record_at(segments, cur).is_none_or(|r| record::decode(r).is_err())
        }
        Some(h) => h.version < version,
        None => true,
    }
}

#[inline]
pub(crate) fn key_at(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> Option<&[u8]> {
    record_at(segments, loc).and_then(record::key_of)
}

impl Keyspace {
    pub fn open(dir: &Path, ns: &str, opts: Arc<Options>) -> Result<Self> {
        open::open(dir, ns, opts)
    }

    fn now(&self) -> u64 {
        self.opts.clock.now_secs()
    }

    /// The largest version timestamp of any record written: a clock that stamps new
    /// writes must start above it.
    pub fn max_version_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Relaxed)
    }

    fn poisoned(&self, cause: &str) -> Error {
        Error::Poisoned {
            ns: self.ns.clone(),
            cause: cause.to_string(),
        }
    }

    pub fn stats(&self) -> KeyspaceStats {
        let now = self.now();
        let t = self.tables.read();
        let m = &self.metrics;
        let oldest = t.segments.keys().next().copied();
        KeyspaceStats {
            keys: t.index.live().saturating_sub(t.index.deleted()),
            tombstones: t.index.deleted(),
            segments: t.segments.len() as u64,
            data_bytes: t.segments.values().map(|s| s.len()).sum(),
            dead_bytes: t
                .stats
                .iter()
                .map(|(id, s)| s.dead_at(now, Some(*id) == oldest))
                .sum(),
            index_bytes: t.index.disk_bytes(),
            index_slots: t.index.capacity() as u64,
            corrupt_records: m.corrupt_records.load(Ordering::Relaxed),
            checkpoints: m.checkpoints.load(Ordering::Relaxed),
            compacted_segments: m.compacted_segments.load(Ordering::Relaxed),
            compacted_bytes: m.compacted_bytes.load(Ordering::Relaxed),
            evicted_segments: m.evicted_segments.load(Ordering::Relaxed),
            evicted_bytes: m.evicted_bytes.load(Ordering::Relaxed),
            replayed_records: m.replayed_records.load(Ordering::Relaxed),
            index_pages_resealed: m.index_pages_resealed.load(Ordering::Relaxed),
            index_pages_damaged: m.index_pages_damaged.load(Ordering::Relaxed),
        }
    }
}
