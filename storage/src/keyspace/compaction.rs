//! Compaction: move a sealed segment's live records to the log's tail, then drop it.
//!
//! Invariants:
//! - Only segments wholly before the last checkpoint are compacted, so replay never
//!   reads them: a delete marker dropped here cannot let an older put come back.
//! - Copies are byte-for-byte (same sequence number and crc) and go through the normal
//!   commit path, so they are durable before the index points at them.
//! - An index entry moves only if it still points at the original (the key may have
//!   changed meanwhile); expired entries are removed from the index.
//! - The segment file is removed only after a checkpoint that covers the copies.

use std::sync::atomic::Ordering;

use super::{key_at, Keyspace, Pending};
use crate::error::Result;
use crate::hash::key_hash;
use crate::index::Loc;
use crate::record::{self, Kind};
use crate::segment::DATA_START;

/// Bytes of a segment examined per step: bounds how long writers wait on compaction.
const STEP_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub segment: u32,
    pub scanned_bytes: u64,
    pub moved_records: u64,
    pub moved_bytes: u64,
    pub dropped_records: u64,
    /// False when it stopped early (step limit, or damage it would not discard).
    pub finished: bool,
}

struct Live {
    loc: Loc,
    hash: u64,
    len: u32,
    expires_at: u64,
}

impl Keyspace {
    /// The sealed, checkpointed segment with the largest dead fraction above the threshold.
    pub fn compaction_candidate(&self) -> Option<u32> {
        let now = self.now();
        let before = self.ckpt.lock().segment;
        let active = self.writer.lock().active.id;
        let t = self.tables.read();
        t.segments
            .iter()
            .filter(|(id, _)| **id < before && **id != active)
            .filter_map(|(id, seg)| {
                let size = seg.len().saturating_sub(DATA_START);
                let dead = t.stats.get(id).map_or(0, |s| s.dead_at(now)).min(size);
                let ratio = if size == 0 {
                    1.0
                } else {
                    dead as f64 / size as f64
                };
                (ratio >= self.opts.compaction_min_dead_ratio).then_some((ratio, *id))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, id)| id)
    }

    /// Compacts segment `id`. After each step `pace` is told the bytes scanned so far and
    /// may sleep (rate limit) or return false to stop, leaving the segment for later.
    pub fn compact(&self, id: u32, pace: &mut dyn FnMut(u64) -> bool) -> Result<CompactionReport> {
        self.compact_steps(id, usize::MAX, pace)
    }

    /// Like [`compact`](Self::compact) but stops after `max_steps` steps, leaving the
    /// segment in place: what a crash in the middle of compaction leaves behind.
    pub fn compact_steps(
        &self,
        id: u32,
        max_steps: usize,
        pace: &mut dyn FnMut(u64) -> bool,
    ) -> Result<CompactionReport> {
        let mut report = CompactionReport {
            segment: id,
            ..Default::default()
        };
        let Some(seg) = self.tables.read().segments.get(&id).cloned() else {
            return Ok(report);
        };
        let mut off = DATA_START;
        for _ in 0..max_steps {
            if off >= seg.len() {
                break;
            }
            let (live, dead, next) = self.scan_step(&seg, off)?;
            let Some(next) = next else {
                // Damage mid-segment: keep the file rather than drop what cannot be read.
                return Ok(report);
            };
            report.scanned_bytes += next - off;
            report.dropped_records += dead;
            off = next;
            if !live.is_empty() {
                self.move_records(&seg, &live, &mut report)?;
            }
            if !pace(report.scanned_bytes) {
                return Ok(report);
            }
        }
        if off < seg.len() {
            return Ok(report);
        }
        // The copies must be covered by a checkpoint before their originals disappear.
        self.checkpoint(false)?;
        let removed = {
            let mut t = self.tables.write();
            t.stats.remove(&id);
            t.segments.remove(&id)
        };
        if let Some(seg) = removed {
            crate::fsutil::remove_file(seg.path())?;
            crate::fsutil::sync_dir(&self.dir)?;
        }
        self.metrics
            .compacted_segments
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .compacted_bytes
            .fetch_add(report.scanned_bytes, Ordering::Relaxed);
        report.finished = true;
        tracing::info!(ns = %self.ns, segment = id, moved = report.moved_records, "segment compacted");
        Ok(report)
    }

    /// Reads one step of records from `off`: the live ones (and expired ones still indexed,
    /// marked by `expires_at == u64::MAX`), the count of dead ones, and where the step ended.
    fn scan_step(
        &self,
        seg: &crate::segment::Segment,
        off: u64,
    ) -> Result<(Vec<Live>, u64, Option<u64>)> {
        let now = self.now();
        let t = self.tables.read();
        let (mut live, mut dead) = (Vec::new(), 0);
        let mut at = off;
        while at < seg.len() && at - off < STEP_BYTES {
            let (h, key, _) = match record::decode(seg.tail(at)) {
                Ok(r) => r,
                Err(e) => {
                    self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(path = %seg.path().display(), offset = at, "{}: compaction skips this segment", e.describe());
                    return Ok((live, dead, None));
                }
            };
            let loc = Loc::new(seg.id, at);
            let len = h.total_len() as u32;
            at += len as u64;
            let hash = key_hash(self.seed, key);
            let indexed = h.kind == Kind::Put
                && t.index.find(hash, |l| key_at(&t.segments, l) == Some(key)) == Some(loc);
            if !indexed {
                dead += 1;
            } else if h.expired(now) {
                live.push(Live {
                    loc,
                    hash,
                    len,
                    expires_at: u64::MAX,
                });
            } else {
                live.push(Live {
                    loc,
                    hash,
                    len,
                    expires_at: h.expires_at,
                });
            }
        }
        Ok((live, dead, Some(at)))
    }

    /// Appends copies of the live records and repoints the index, through the commit path.
    fn move_records(
        &self,
        seg: &crate::segment::Segment,
        live: &[Live],
        report: &mut CompactionReport,
    ) -> Result<()> {
        let mut w = self.writer.lock();
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
        let mut pending = Vec::with_capacity(live.len());
        for l in live {
            if l.expires_at == u64::MAX {
                pending.push(Pending::Unindex {
                    hash: l.hash,
                    loc: l.loc,
                });
                report.dropped_records += 1;
                continue;
            }
            let Some(bytes) = seg.read(l.loc.offset(), l.len as usize) else {
                continue;
            };
            let to = self.stage(&mut w, |buf| buf.extend_from_slice(bytes))?;
            pending.push(Pending::Relocate {
                hash: l.hash,
                from: l.loc,
                to,
                len: l.len,
                expires_at: l.expires_at,
            });
            report.moved_records += 1;
            report.moved_bytes += l.len as u64;
        }
        self.commit(w, &pending).map(|_| ())
    }
}
