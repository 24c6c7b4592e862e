//! The write path: stage records in the writer's buffer, append, roll segments, share
//! one fsync per group of batches, and make the batch visible in ticket order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::{key_at, supersedes, Applied, Keyspace, Pending, Tables, Write, Writer};
use crate::checkpoint::SegmentStats;
use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::index::Loc;
use crate::options::SyncMode;
use crate::record::{self, Kind};
use crate::segment::{Segment, WritePath, DATA_START};

impl Keyspace {
    /// Applies `writes` atomically with respect to durability: under `Always`, one fsync
    /// covers the batch (shared with concurrent batches) before anything becomes visible.
    /// A write no newer than what the key holds is [`Applied::Stale`] and appends nothing.
    pub fn write(&self, writes: &[Write<'_>]) -> Result<Vec<Applied>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.writer.lock();
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
        let fresh = self.fresh(writes);
        self.reserve(fresh.iter().filter(|f| **f).count() as u64)?;
        let mut pending = Vec::with_capacity(writes.len());
        for (write, _) in writes.iter().zip(&fresh).filter(|(_, f)| **f) {
            let (kind, key, value, expires_at, version) = match *write {
                Write::Put {
                    key,
                    value,
                    expires_at,
                    version,
                } => (Kind::Put, key, value, expires_at, version),
                Write::Delete { key, version } => (Kind::Delete, key, &[][..], 0, version),
            };
            let loc = self.stage(&mut w, |buf| {
                record::encode(buf, kind, version, expires_at, key, value)
            })?;
            self.max_ts.fetch_max(version.ts, Ordering::Relaxed);
            let hash = key_hash(self.seed, key);
            let len = record::encoded_len(key, value) as u32;
            pending.push(Pending::of_record(kind, hash, loc, len));
        }
        if pending.is_empty() {
            return Ok(vec![Applied::Stale; writes.len()]);
        }
        let mut applied = self.commit(w, &pending)?.into_iter();
        Ok(fresh
            .iter()
            .map(|&f| match f {
                true => applied.next().unwrap_or(Applied::Stale),
                false => Applied::Stale,
            })
            .collect())
    }

    /// Per write, whether it is newer than the key's indexed record. Apply checks again:
    /// batches still in group commit are not indexed yet. A version above every one the
    /// log holds (`max_ts`, read under the writer lock) needs no index probe: the usual
    /// case, since writers' clocks move forward.
    fn fresh(&self, writes: &[Write<'_>]) -> Vec<bool> {
        let mut newest = self.max_ts.load(Ordering::Relaxed);
        let t = self.tables.read();
        writes
            .iter()
            .map(|w| {
                let (key, version) = match *w {
                    Write::Put { key, version, .. } | Write::Delete { key, version } => {
                        (key, version)
                    }
                };
                if version.ts > newest {
                    newest = version.ts;
                    return true;
                }
                let hash = key_hash(self.seed, key);
                t.index
                    .find(hash, |l| key_at(&t.segments, l) == Some(key))
                    .is_none_or(|l| supersedes(&t.segments, l, version))
            })
            .collect()
    }

    /// Encodes one record into the writer's buffer, first flushing and rolling the segment
    /// if it would not fit, and returns where it will live.
    pub(super) fn stage(&self, w: &mut Writer, encode: impl FnOnce(&mut Vec<u8>)) -> Result<Loc> {
        let before = w.buf.len();
        encode(&mut w.buf);
        let len = (w.buf.len() - before) as u64;
        let roll_at = self.roll_at.load(Ordering::Relaxed);
        let held = w.active.len().saturating_sub(DATA_START) + before as u64;
        let past_roll = roll_at > 0 && held > 0 && held + len > roll_at;
        if (before as u64) + len > w.active.remaining() || past_roll {
            let rec = w.buf.split_off(before);
            self.flush_buf(w)?;
            self.roll(w)?;
            w.buf = rec;
        }
        let offset = w.active.len() + (w.buf.len() as u64 - len);
        Ok(Loc::new(w.active.id, offset))
    }

    pub(super) fn flush_buf(&self, w: &mut Writer) -> Result<()> {
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
    pub(super) fn roll(&self, w: &mut Writer) -> Result<()> {
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
    pub(super) fn commit(
        &self,
        mut w: MutexGuard<'_, Writer>,
        pending: &[Pending],
    ) -> Result<Vec<Applied>> {
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

    /// Makes sure the index has room for `n` more keys beyond those applied and in
    /// flight, growing it first if not. Called before anything is appended, so a failure
    /// (a full disk) fails the write cleanly instead of leaving a record unindexable.
    fn reserve(&self, n: u64) -> Result<()> {
        let extra = n + self.in_flight.load(Ordering::Relaxed);
        if !super::apply::needs_room(&self.tables.read(), extra) {
            return Ok(());
        }
        self.grow(&mut self.tables.write(), extra)
    }

    /// Replaces the index with a generation sized for its keys plus `extra` at half load.
    /// The old file stays until a checkpoint names the new one, so recovery always finds
    /// the generation its checkpoint names.
    pub(crate) fn grow(&self, t: &mut Tables, extra: u64) -> Result<()> {
        if !super::apply::needs_room(t, extra) {
            return Ok(());
        }
        let next = t.index.rebuilt(&self.dir, t.next_index_gen, extra)?;
        tracing::info!(ns = %self.ns, slots = next.capacity(), "index grown");
        t.next_index_gen += 1;
        t.index = Arc::new(next);
        Ok(())
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
        self.checkpoint(true)?;
        self.save_digest();
        Ok(())
    }
}
