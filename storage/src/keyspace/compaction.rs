//! Compaction: move a sealed segment's live records to the log's tail, then drop it.
//!
//! Invariants:
//! - Only segments wholly before the last checkpoint are compacted, so replay never
//!   reads them: a delete marker dropped here cannot let an older put come back.
//! - Copies are byte-for-byte (same version and crc) and go through the normal
//!   commit path, so they are durable before the index points at them. An expired put
//!   is copied as a tombstone of the same version (TTL expiry is an implicit delete).
//! - An index entry moves only if it still points at the original (the key may have
//!   changed meanwhile).
//! - A tombstone (or expired put) is dropped only after its grace period, only from
//!   the oldest segment, and only while no other segment holds an out-of-order record.
//!   Every older record of its key then lies in this segment, before it (a write older
//!   than the indexed version is never appended, except in a race, which apply counts
//!   as out of order), so it goes with this segment and no full reindex can bring an
//!   older value back.
//! - The segment file is removed only after a checkpoint that covers the copies.

use std::sync::atomic::Ordering;

use dstash_cluster::Version;

use super::{Keyspace, Pending, Tables};
use crate::error::Result;
use crate::hash::key_hash;
use crate::index::Loc;
use crate::record::{self, Header, Kind};
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

/// What compaction does with an indexed record.
enum Action {
    /// Copy it to the tail as it is.
    Move { deleted: bool },
    /// An expired put: copy it as a tombstone of its version.
    Tombstone { version: Version, expires_at: u64 },
    /// Past its grace period: take it out of the index.
    Drop,
}

struct Live {
    loc: Loc,
    hash: u64,
    len: u32,
    action: Action,
}

/// Whether tombstones of the segment being compacted may be dropped at `now`; when
/// evicting (a bounded namespace), everything is dropped.
struct DropRule {
    now: u64,
    grace: u64,
    allowed: bool,
    evict: bool,
}

impl DropRule {
    fn action(&self, h: &Header) -> Action {
        let deleted = h.deleted_at(self.now);
        let past_grace =
            deleted && self.allowed && h.tombstone_since().saturating_add(self.grace) <= self.now;
        if self.evict || past_grace {
            Action::Drop
        } else if h.kind == Kind::Put && deleted {
            Action::Tombstone {
                version: h.version,
                expires_at: h.expires_at,
            }
        } else {
            Action::Move { deleted }
        }
    }
}

impl Keyspace {
    /// The sealed, checkpointed segment with the largest dead fraction above the threshold.
    pub fn compaction_candidate(&self) -> Option<u32> {
        let now = self.now();
        let before = self.ckpt.lock().segment;
        let active = self.writer.lock().active.id;
        let t = self.tables.read();
        let oldest = t.segments.keys().next().copied();
        t.segments
            .iter()
            .filter(|(id, _)| **id < before && **id != active)
            .filter_map(|(id, seg)| {
                let size = seg.len().saturating_sub(DATA_START);
                let dead = t
                    .stats
                    .get(id)
                    .map_or(0, |s| s.dead_at(now, Some(*id) == oldest))
                    .min(size);
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
        self.rewrite(id, max_steps, false, pace)
    }

    /// Drops segment `id` whole: every record the index points at in it is taken out
    /// of the index (a bounded namespace's eviction), then the file goes.
    pub fn evict(&self, id: u32, pace: &mut dyn FnMut(u64) -> bool) -> Result<CompactionReport> {
        self.rewrite(id, usize::MAX, true, pace)
    }

    fn rewrite(
        &self,
        id: u32,
        max_steps: usize,
        evict: bool,
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
            let (live, dead, next) = self.scan_step(&seg, off, evict)?;
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
        let m = &self.metrics;
        let (segments, bytes) = match evict {
            true => (&m.evicted_segments, &m.evicted_bytes),
            false => (&m.compacted_segments, &m.compacted_bytes),
        };
        segments.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(report.scanned_bytes, Ordering::Relaxed);
        report.finished = true;
        match evict {
            true => {
                tracing::info!(ns = %self.ns, segment = id, dropped = report.dropped_records, "segment evicted: the namespace passed its max bytes")
            }
            false => {
                tracing::info!(ns = %self.ns, segment = id, moved = report.moved_records, "segment compacted")
            }
        }
        Ok(report)
    }

    /// Reads one step of records from `off`: the indexed ones with what to do with each,
    /// the count of dead ones, and where the step ended.
    fn scan_step(
        &self,
        seg: &crate::segment::Segment,
        off: u64,
        evict: bool,
    ) -> Result<(Vec<Live>, u64, Option<u64>)> {
        let t = self.tables.read();
        let rule = DropRule {
            now: self.now(),
            grace: self.opts.tombstone_grace_secs,
            allowed: may_drop_tombstones(&t, seg.id),
            evict,
        };
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
            let indexed = t
                .index
                .find(hash, |l| super::key_at(&t.segments, l) == Some(key))
                == Some(loc);
            if indexed {
                live.push(Live {
                    loc,
                    hash,
                    len,
                    action: rule.action(&h),
                });
            } else {
                dead += 1;
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
            let (to, len, deleted) = match l.action {
                Action::Drop => {
                    pending.push(Pending::Unindex {
                        hash: l.hash,
                        loc: l.loc,
                    });
                    report.dropped_records += 1;
                    continue;
                }
                Action::Move { deleted } => {
                    let Some(bytes) = seg.read(l.loc.offset(), l.len as usize) else {
                        continue;
                    };
                    let to = self.stage(&mut w, |buf| buf.extend_from_slice(bytes))?;
                    (to, l.len, deleted)
                }
                Action::Tombstone {
                    version,
                    expires_at,
                } => {
                    let Some(key) = seg
                        .read(l.loc.offset(), l.len as usize)
                        .and_then(record::key_of)
                    else {
                        continue;
                    };
                    let to = self.stage(&mut w, |buf| {
                        record::encode(buf, Kind::Delete, version, expires_at, key, &[])
                    })?;
                    (to, record::encoded_len(key, &[]) as u32, true)
                }
            };
            pending.push(Pending::Relocate {
                hash: l.hash,
                from: l.loc,
                to,
                len,
                deleted,
            });
            report.moved_records += 1;
            report.moved_bytes += len as u64;
        }
        self.commit(w, &pending).map(|_| ())
    }
}

/// Tombstones in segment `id` may go only if it is the oldest segment and no other
/// segment holds a record that arrived out of order (see the module's invariants).
fn may_drop_tombstones(t: &Tables, id: u32) -> bool {
    t.segments.keys().next() == Some(&id)
        && t.stats
            .iter()
            .all(|(sid, s)| *sid == id || s.out_of_order == 0)
}
