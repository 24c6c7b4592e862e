//! A namespace's key/value keyspace: append-only segments, the hash index over them,
//! group commit and checkpoints. Recovery, compaction and listing live beside it.
//!
//! Locking: `writer` orders appends; `tables` guards the index and segment set (readers
//! share it, index updates take it briefly, nothing holds it across an fsync); `ckpt`
//! serialises checkpoints.

mod compaction;
mod listing;
mod open;

pub use listing::KeyLister;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{Checkpoint, SegmentStats};
use crate::commit::{GroupCommit, Turnstile};
use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::index::{Index, Loc};
use crate::options::{Options, SyncMode};
use crate::record::{self, Kind, RECORD_HEADER_LEN};
use crate::segment::{Segment, WritePath};

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
fn key_of(rec: &[u8]) -> &[u8] {
    let klen = u16::from_le_bytes([rec[6], rec[7]]) as usize;
    &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + klen]
}

#[inline]
pub(crate) fn key_at(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> Option<&[u8]> {
    record_at(segments, loc).map(key_of)
}

impl Keyspace {
    pub fn open(dir: &Path, ns: &str, opts: Arc<Options>) -> Result<Self> {
        open::open(dir, ns, opts)
    }

    fn now(&self) -> u64 {
        self.opts.clock.now_secs()
    }

    /// The value stored under `key`, if present and unexpired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.tables.read();
        Ok(self.get_locked(&t, key)?.map(|(v, _)| v))
    }

    /// Looks up every key under one read lock; results are in key order.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Stored>>> {
        let t = self.tables.read();
        keys.iter().map(|k| self.get_locked(&t, k)).collect()
    }

    fn get_locked(&self, t: &Tables, key: &[u8]) -> Result<Option<Stored>> {
        let hash = key_hash(self.seed, key);
        let Some(loc) = t.index.find(hash, |l| key_at(&t.segments, l) == Some(key)) else {
            return Ok(None);
        };
        let rec = record_at(&t.segments, loc).unwrap_or(&[]);
        match record::decode(rec) {
            // The clock is read only for records that carry a TTL.
            Ok((h, _, value)) if h.kind == Kind::Put => Ok((h.expires_at == 0
                || !h.expired(self.now()))
            .then(|| (value.to_vec(), h.expires_at))),
            Ok(_) => Ok(None),
            Err(e) => Err(self.corrupt(&t.segments, loc, e.describe())),
        }
    }

    fn corrupt(&self, segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc, reason: &str) -> Error {
        self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
        let path = segments
            .get(&loc.segment())
            .map(|s| s.path().to_path_buf())
            .unwrap_or_else(|| self.dir.clone());
        tracing::error!(ns = %self.ns, path = %path.display(), offset = loc.offset(), "{reason}");
        Error::Corrupt {
            path,
            offset: loc.offset(),
            reason: reason.to_string(),
        }
    }

    /// Applies `writes` atomically with respect to durability: under `Always`, one fsync
    /// covers the batch (shared with concurrent batches) before anything becomes visible.
    /// Returns, per write, whether the key was present before.
    pub fn write(&self, writes: &[Write<'_>]) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.writer.lock();
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
        self.reserve(writes.len() as u64)?;
        let mut pending = Vec::with_capacity(writes.len());
        for write in writes {
            let (kind, key, value, expires_at) = match *write {
                Write::Put {
                    key,
                    value,
                    expires_at,
                } => (Kind::Put, key, value, expires_at),
                Write::Delete { key } => (Kind::Delete, key, &[][..], 0),
            };
            let seq = w.next_seq;
            w.next_seq += 1;
            let loc = self.stage(&mut w, |buf| {
                record::encode(buf, kind, seq, expires_at, key, value)
            })?;
            let hash = key_hash(self.seed, key);
            let len = record::encoded_len(key, value) as u32;
            pending.push(match kind {
                Kind::Put => Pending::Put {
                    hash,
                    loc,
                    len,
                    expires_at,
                },
                Kind::Delete => Pending::Delete { hash, loc, len },
            });
        }
        self.commit(w, &pending)
    }

    /// Encodes one record into the writer's buffer, first flushing and rolling the segment
    /// if it would not fit, and returns where it will live.
    fn stage(&self, w: &mut Writer, encode: impl FnOnce(&mut Vec<u8>)) -> Result<Loc> {
        let before = w.buf.len();
        encode(&mut w.buf);
        let len = (w.buf.len() - before) as u64;
        if (before as u64) + len > w.active.remaining() {
            let rec = w.buf.split_off(before);
            self.flush_buf(w)?;
            self.roll(w)?;
            w.buf = rec;
        }
        let offset = w.active.len() + (w.buf.len() as u64 - len);
        Ok(Loc::new(w.active.id, offset))
    }

    fn flush_buf(&self, w: &mut Writer) -> Result<()> {
        if w.buf.is_empty() {
            return Ok(());
        }
        let r = w.active.append(&w.buf);
        w.buf.clear();
        match r {
            Ok(_) => Ok(()),
            // ENOSPC and the like: nothing was left behind, later writes may succeed.
            Err(e) if e.tail_clean => Err(e.error),
            Err(e) => {
                w.poisoned = Some(e.error.to_string());
                Err(e.error)
            }
        }
    }

    /// Seals the active segment (synced, so group commit only ever syncs the active one)
    /// and starts the next.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        w.active
            .seal()
            .inspect_err(|e| w.poisoned = Some(e.to_string()))?;
        let next = Arc::new(Segment::create(
            &self.dir,
            w.active.id + 1,
            self.opts.segment_size,
            self.opts.io.clone(),
            WritePath::for_sync(self.opts.sync),
        )?);
        let mut t = self.tables.write();
        t.segments.insert(next.id, next.clone());
        t.stats.insert(next.id, SegmentStats::default());
        w.active = next;
        Ok(())
    }

    /// Writes the staged records and makes them visible, in ticket order.
    fn commit(
        &self,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        pending: &[Pending],
    ) -> Result<Vec<bool>> {
        self.flush_buf(&mut w)?;
        let end = Loc::new(w.active.id, w.active.len()).0;
        let bytes: u64 = pending.iter().map(Pending::len).sum();
        self.metrics
            .bytes_since_checkpoint
            .fetch_add(bytes, Ordering::Relaxed);
        if self.opts.sync != SyncMode::Always {
            let mut t = self.tables.write();
            return Ok(self.apply(&mut t, pending, end, false));
        }
        let ticket = w.next_ticket;
        w.next_ticket += 1;
        self.in_flight
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        drop(w);
        let durable = self.group.wait_durable(ticket, || {
            let (active, covered) = {
                let w = self.writer.lock();
                (w.active.clone(), w.next_ticket - 1)
            };
            active.sync().map(|()| covered)
        });
        let in_flight = &self.in_flight;
        let done = || in_flight.fetch_sub(pending.len() as u64, Ordering::Relaxed);
        self.turnstile.pass(ticket, || match durable {
            Ok(()) => {
                let mut t = self.tables.write();
                let out = self.apply(&mut t, pending, end, false);
                done();
                Ok(out)
            }
            Err(e) => {
                done();
                self.writer
                    .lock()
                    .poisoned
                    .get_or_insert_with(|| e.to_string());
                Err(match e {
                    Error::Poisoned { cause, .. } => self.poisoned(&cause),
                    e => e,
                })
            }
        })
    }

    fn poisoned(&self, cause: &str) -> Error {
        Error::Poisoned {
            ns: self.ns.clone(),
            cause: cause.to_string(),
        }
    }

    /// Applies index changes in log order. `dedup` is for replay over an index a crash
    /// may have left with stray copies.
    pub(crate) fn apply(
        &self,
        t: &mut Tables,
        pending: &[Pending],
        end: u64,
        dedup: bool,
    ) -> Vec<bool> {
        let now = self.now();
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(apply_one(t, p, dedup, now));
        }
        t.applied_end = t.applied_end.max(end);
        out
    }

    /// Makes sure the index has room for `n` more keys beyond those applied and in
    /// flight, growing it first if not. Called before anything is appended, so a failure
    /// (a full disk) fails the write cleanly instead of leaving a record unindexable.
    fn reserve(&self, n: u64) -> Result<()> {
        let extra = n + self.in_flight.load(Ordering::Relaxed);
        if !needs_room(&self.tables.read(), extra) {
            return Ok(());
        }
        self.grow(&mut self.tables.write(), extra)
    }

    /// Replaces the index with a generation sized for its keys plus `extra` at half load.
    /// The old file stays until a checkpoint names the new one, so recovery always finds
    /// the generation its checkpoint names.
    pub(crate) fn grow(&self, t: &mut Tables, extra: u64) -> Result<()> {
        if !needs_room(t, extra) {
            return Ok(());
        }
        let next = t.index.rebuilt(&self.dir, t.next_index_gen, extra)?;
        tracing::info!(ns = %self.ns, slots = next.capacity(), "index grown");
        t.next_index_gen += 1;
        t.index = Arc::new(next);
        Ok(())
    }

    /// Makes the index durable up to the applied position and records it, so recovery
    /// replays only what comes after.
    pub fn checkpoint(&self, clean: bool) -> Result<()> {
        let mut ck = self.ckpt.lock();
        let (mut snap, index) = {
            let t = self.tables.read();
            let snap = Checkpoint {
                position: t.applied_end,
                next_seq: 0,
                live: t.index.live(),
                tombstones: t.index.tombstones(),
                index_gen: t.index.gen,
                clean,
                segments: t.stats.iter().map(|(id, s)| (*id, *s)).collect(),
            };
            (snap, t.index.clone())
        };
        let active = {
            let w = self.writer.lock();
            snap.next_seq = w.next_seq;
            w.active.clone()
        };
        // Sealed segments were synced when sealed; the active one holds the rest.
        if let Err(e) = active.sync() {
            self.writer
                .lock()
                .poisoned
                .get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        index.flush()?;
        snap.write(self.opts.io.as_ref(), &self.dir)?;
        self.remove_index_files_before(snap.index_gen);
        ck.segment = Loc(snap.position).segment();
        ck.at_secs = self.now();
        self.metrics
            .bytes_since_checkpoint
            .store(0, Ordering::Relaxed);
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn remove_index_files_before(&self, gen: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if let Some(g) = name.to_str().and_then(crate::index::parse_name_pub) {
                if g < gen {
                    let _ = crate::fsutil::remove_file(&e.path());
                }
            }
        }
    }

    /// True when enough was written, or enough time passed with writes, to checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        let bytes = self.metrics.bytes_since_checkpoint.load(Ordering::Relaxed);
        if bytes == 0 {
            return false;
        }
        bytes >= self.opts.checkpoint_bytes
            || self.now().saturating_sub(self.ckpt.lock().at_secs)
                >= self.opts.checkpoint_interval.as_secs()
    }

    /// fdatasync the active segment (the `Interval` mode's tick).
    pub fn sync(&self) -> Result<()> {
        let active = self.writer.lock().active.clone();
        active.sync()
    }

    /// Trims the active segment and checkpoints with the clean flag: nothing to replay.
    pub fn close(&self) -> Result<()> {
        let active = self.writer.lock().active.clone();
        active.seal()?;
        self.checkpoint(true)
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

impl Pending {
    fn len(&self) -> u64 {
        match *self {
            Pending::Put { len, .. }
            | Pending::Delete { len, .. }
            | Pending::Relocate { len, .. } => len as u64,
            Pending::Unindex { .. } => 0,
        }
    }
}

/// True when `extra` more keys would push the index past three-quarters full.
fn needs_room(t: &Tables, extra: u64) -> bool {
    (t.index.live() + t.index.tombstones() + extra + 1) * 4 > (t.index.capacity() as u64) * 3
}

fn record_len(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> u64 {
    record_at(segments, loc).map_or(0, |r| r.len() as u64)
}

fn add_dead(stats: &mut BTreeMap<u32, SegmentStats>, loc: Loc, bytes: u64) {
    if let Some(s) = stats.get_mut(&loc.segment()) {
        s.dead += bytes;
    }
}

fn add_ttl(stats: &mut BTreeMap<u32, SegmentStats>, loc: Loc, bytes: u64, expires_at: u64) {
    if expires_at != 0 {
        if let Some(s) = stats.get_mut(&loc.segment()) {
            s.ttl_bytes += bytes;
            s.ttl_max_expiry = s.ttl_max_expiry.max(expires_at);
        }
    }
}

/// One index change; returns whether a live key was there before.
fn apply_one(t: &mut Tables, p: &Pending, dedup: bool, now: u64) -> bool {
    let Tables {
        index,
        segments,
        stats,
        ..
    } = t;
    let live = |loc: Loc| {
        record_at(segments, loc)
            .and_then(|r| record::peek_header(r).ok())
            .is_some_and(|h| !h.expired(now))
    };
    match *p {
        Pending::Put {
            hash,
            loc,
            len,
            expires_at,
        } => {
            let Some(key) = key_at(segments, loc) else {
                return false;
            };
            let old = index.upsert(hash, loc, |l| key_at(segments, l) == Some(key), dedup);
            let existed = old.is_some_and(|o| o != loc && live(o));
            if let Some(o) = old.filter(|&o| o != loc) {
                add_dead(stats, o, record_len(segments, o));
            }
            add_ttl(stats, loc, len as u64, expires_at);
            existed
        }
        Pending::Delete { hash, loc, len } => {
            let Some(key) = key_at(segments, loc) else {
                return false;
            };
            let old = index.remove(hash, |l| key_at(segments, l) == Some(key));
            let existed = old.is_some_and(live);
            if let Some(o) = old {
                add_dead(stats, o, record_len(segments, o));
            }
            add_dead(stats, loc, len as u64);
            existed
        }
        Pending::Relocate {
            hash,
            from,
            to,
            len,
            expires_at,
        } => {
            if index.relocate(hash, from, to) {
                add_dead(stats, from, len as u64);
                add_ttl(stats, to, len as u64, expires_at);
                true
            } else {
                add_dead(stats, to, len as u64);
                false
            }
        }
        Pending::Unindex { hash, loc } => index.remove_loc(hash, loc),
    }
}
