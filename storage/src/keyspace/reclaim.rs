//! Early seals. Compaction and eviction take only sealed segments, so the active one
//! is sealed before it fills once its dead share reaches the compaction threshold (and
//! it holds at least `reclaim_min_bytes`): a namespace smaller than a segment is then
//! bounded to about `1 / (1 - ratio)` times its live bytes, plus its index and one
//! growth step. A namespace bounded to `max_bytes` has its segments sealed by the
//! writer at a quarter of the bound, so that eviction drops the oldest data a quarter
//! at a time.
//!
//! Invariant: the replay position moves into the new segment only when nothing is in
//! flight, so a checkpoint never skips a record the index does not hold yet.

use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;

use super::{Keyspace, Writer};
use crate::error::Result;
use crate::index::Loc;
use crate::segment::DATA_START;

impl Keyspace {
    /// Seals the active segment when it holds at least `reclaim_min_bytes` and its dead
    /// share has reached the compaction threshold. True when it sealed.
    pub fn roll_if_wasteful(&self) -> Result<bool> {
        let w = self.writer.lock();
        let id = w.active.id;
        let size = w.active.len().saturating_sub(DATA_START);
        if size < self.opts.reclaim_min_bytes.max(1) {
            return Ok(false);
        }
        let dead = {
            let t = self.tables.read();
            let oldest = t.segments.keys().next() == Some(&id);
            t.stats
                .get(&id)
                .map_or(0, |s| s.dead_at(self.now(), oldest))
        };
        if (dead as f64) < size as f64 * self.opts.compaction_min_dead_ratio {
            return Ok(false);
        }
        tracing::info!(ns = %self.ns, segment = id, size, dead, "segment sealed early to reclaim its dead bytes");
        self.seal_early(w).map(|()| true)
    }

    /// Bytes of records in every segment.
    pub fn data_bytes(&self) -> u64 {
        let t = self.tables.read();
        t.segments
            .values()
            .map(|s| s.len().saturating_sub(DATA_START))
            .sum()
    }

    /// Bounds the namespace to `max_bytes` (0: none): segments are sealed at a quarter
    /// of it, so eviction drops the oldest data a quarter at a time.
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.roll_at.store(max_bytes / 4, Ordering::Relaxed);
    }

    /// For a namespace bounded to `max_bytes` whose data passed the bound: the oldest
    /// sealed segment, once a checkpoint is past it (checkpointing if need be).
    pub fn eviction_candidate(&self, max_bytes: u64) -> Result<Option<u32>> {
        if max_bytes == 0 || self.data_bytes() <= max_bytes {
            return Ok(None);
        }
        let active = self.writer.lock().active.id;
        let Some(oldest) = self.tables.read().segments.keys().next().copied() else {
            return Ok(None);
        };
        if oldest == active {
            return Ok(None);
        }
        if oldest >= self.ckpt.lock().segment {
            self.checkpoint(false)?;
        }
        // The checkpoint's segment is the active one or older.
        Ok((oldest < self.ckpt.lock().segment).then_some(oldest))
    }

    /// Seals the active segment, starts the next and checkpoints, so that the sealed
    /// one lies before the checkpoint (when nothing was in flight).
    fn seal_early(&self, mut w: MutexGuard<'_, Writer>) -> Result<()> {
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
        self.flush_buf(&mut w)?;
        self.roll(&mut w)?;
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let mut t = self.tables.write();
            t.applied_end = t.applied_end.max(Loc::new(w.active.id, DATA_START).0);
        }
        drop(w);
        self.checkpoint(false)
    }
}
