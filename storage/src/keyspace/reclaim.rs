//! Early rolls: compaction takes only sealed segments, so the active one is sealed
//! once its dead share reaches the compaction threshold rather than when it fills.
//! This bounds a namespace smaller than a segment to about `1 / (1 - ratio)` times its
//! live bytes, plus its index and one roll's minimum.
//!
//! Invariant: the replay position moves into the new segment only when nothing is in
//! flight, so a checkpoint never skips a record the index does not hold yet.

use std::sync::atomic::Ordering;

use super::Keyspace;
use crate::error::Result;
use crate::index::Loc;
use crate::segment::DATA_START;

impl Keyspace {
    /// Seals the active segment when it holds at least `reclaim_min_bytes` and its dead
    /// share has reached the compaction threshold, then checkpoints so that compaction
    /// may take it. True when it rolled.
    pub fn roll_if_wasteful(&self) -> Result<bool> {
        let mut w = self.writer.lock();
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
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
        self.flush_buf(&mut w)?;
        self.roll(&mut w)?;
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let mut t = self.tables.write();
            t.applied_end = t.applied_end.max(Loc::new(w.active.id, DATA_START).0);
        }
        drop(w);
        tracing::info!(ns = %self.ns, segment = id, size, dead, "segment sealed early to reclaim its dead bytes");
        self.checkpoint(false)?;
        Ok(true)
    }
}
