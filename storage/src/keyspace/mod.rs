//! A namespace's key/value keyspace: append-only segments, the hash index over them,
//! group commit and checkpoints. Recovery, compaction and listing live beside it.
//!
//! Locking: `writer` orders appends; `tables` guards the index and segment set (readers
//! share it, index updates take it briefly, nothing holds it across an fsync); `ckpt`
//! serialises checkpoints.

mod apply;
mod checkpointing;
mod compaction;
mod listing;
mod open;
mod read;
mod replay;
mod write;

pub use listing::KeyLister;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::SegmentStats;
use crate::commit::{GroupCommit, Turnstile};
use crate::error::{Error, Result};
use crate::index::{Index, Loc};
use crate::options::Options;
use crate::record::{self, RECORD_HEADER_LEN};
use crate::segment::Segment;

/// One change to the keyspace.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        /// Unix seconds; 0 = never.
        expires_at: u64,
    },
    Delete {
        key: &'a [u8],
    },
}

/// An index change waiting for its records to be durable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pending {
    Put {
        hash: u64,
        loc: Loc,
        len: u32,
        expires_at: u64,
    },
    Delete {
        hash: u64,
        loc: Loc,
        len: u32,
    },
    /// Compaction moved a live record.
    Relocate {
        hash: u64,
        from: Loc,
        to: Loc,
        len: u32,
        expires_at: u64,
    },
    /// Compaction found an expired record still indexed.
    Unindex {
        hash: u64,
        loc: Loc,
    },
}

pub(crate) struct Tables {
    pub index: Arc<Index>,
    pub segments: BTreeMap<u32, Arc<Segment>>,
    pub stats: BTreeMap<u32, SegmentStats>,
    /// Log position up to which the index reflects the log.
    pub applied_end: u64,
    pub next_index_gen: u64,
}

struct Writer {
    active: Arc<Segment>,
    next_seq: u64,
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
    pub replayed_records: AtomicU64,
}

/// A live value and its expiry time in seconds (0: none).
pub type Stored = (Vec<u8>, u64);

/// A point-in-time view for metrics and status.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceStats {
    pub keys: u64,
    pub segments: u64,
    pub data_bytes: u64,
    pub dead_bytes: u64,
    pub index_bytes: u64,
    pub index_slots: u64,
    pub corrupt_records: u64,
    pub checkpoints: u64,
    pub compacted_segments: u64,
    pub compacted_bytes: u64,
    pub replayed_records: u64,
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
        KeyspaceStats {
            keys: t.index.live(),
            segments: t.segments.len() as u64,
            data_bytes: t.segments.values().map(|s| s.len()).sum(),
            dead_bytes: t.stats.values().map(|s| s.dead_at(now)).sum(),
            index_bytes: t.index.disk_bytes(),
            index_slots: t.index.capacity() as u64,
            corrupt_records: m.corrupt_records.load(Ordering::Relaxed),
            checkpoints: m.checkpoints.load(Ordering::Relaxed),
            compacted_segments: m.compacted_segments.load(Ordering::Relaxed),
            compacted_bytes: m.compacted_bytes.load(Ordering::Relaxed),
            replayed_records: m.replayed_records.load(Ordering::Relaxed),
        }
    }
}
