//! Replay: re-apply every record after the checkpoint's position, step over damage in
//! the middle of the log, and cut a torn tail.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Keyspace, Pending, Tables};
use crate::error::Result;
use crate::hash::key_hash;
use crate::index::Loc;
use crate::record::{self, DecodeError};
use crate::segment::{Segment, DATA_START};

/// Replay applies index changes in chunks of this many records, so a full reindex of a
/// large segment does not hold all of them in memory.
const REPLAY_CHUNK: usize = 1 << 16;

impl Keyspace {
    /// Applies and clears a chunk of replayed changes that ends at `end`.
    fn replay_chunk(&self, t: &mut Tables, batch: &mut Vec<Pending>, end: Loc) -> Result<u64> {
        self.grow(t, batch.len() as u64)?;
        self.apply(t, batch, end.0, true);
        let n = batch.len() as u64;
        batch.clear();
        Ok(n)
    }

    /// Re-applies every record from `start` to the end of the log, cutting a torn tail.
    /// Versions make this idempotent: a record no newer than the indexed one is a no-op.
    pub(super) fn replay(&self, start: Loc, last: Option<u32>) -> Result<()> {
        let mut t = self.tables.write();
        let segs: Vec<Arc<Segment>> = t
            .segments
            .range(start.segment()..)
            .map(|(_, s)| s.clone())
            .collect();
        let mut replayed = 0u64;
        for seg in segs {
            let mut off = if seg.id == start.segment() {
                start.offset().max(DATA_START)
            } else {
                DATA_START
            };
            let mut batch = Vec::new();
            loop {
                let rest = seg.tail(off);
                if rest.is_empty() {
                    break;
                }
                match record::decode(rest) {
                    Ok((h, key, _)) => {
                        let loc = Loc::new(seg.id, off);
                        let hash = key_hash(self.seed, key);
                        let len = h.total_len() as u32;
                        batch.push(Pending::of_record(h.kind, hash, loc, len));
                        self.max_ts.fetch_max(h.version.ts, Ordering::Relaxed);
                        off += len as u64;
                        if batch.len() >= REPLAY_CHUNK {
                            replayed +=
                                self.replay_chunk(&mut t, &mut batch, Loc::new(seg.id, off))?;
                        }
                    }
                    Err(_) if rest.iter().all(|&b| b == 0) => {
                        // Preallocated space past the last record: the clean end.
                        seg.truncate(off)?;
                        break;
                    }
                    Err(e) => {
                        if let Some(skip) = resync(rest) {
                            // Damage in the middle of the log, not a torn tail: valid
                            // records follow, so step over the bad bytes and keep them.
                            self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(path = %seg.path().display(), offset = off, skipped = skip,
                                "{}: damaged bytes skipped", e.describe());
                            off += skip as u64;
                            continue;
                        }
                        if Some(seg.id) == last {
                            if e != DecodeError::Truncated && !torn_write(rest) {
                                self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::warn!(path = %seg.path().display(), offset = off, "{}: cutting the log's torn tail", e.describe());
                            seg.truncate(off)?;
                        } else {
                            self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(path = %seg.path().display(), offset = off,
                                "{}: the rest of this sealed segment is unreadable and was skipped", e.describe());
                        }
                        break;
                    }
                }
            }
            replayed += self.replay_chunk(&mut t, &mut batch, Loc::new(seg.id, off))?;
        }
        self.metrics
            .replayed_records
            .fetch_add(replayed, Ordering::Relaxed);
        if replayed > 0 {
            tracing::info!(ns = %self.ns, records = replayed, "replayed the log after the checkpoint");
        }
        Ok(())
    }
}

/// True when `rest` holds the start of one record and nothing but zeros after some
/// point inside it: a write cut short by a crash into preallocated space. Only the last
/// record's own bytes are nonzero, so nothing was damaged; it was never finished.
fn torn_write(rest: &[u8]) -> bool {
    let claimed = record::peek_header(rest)
        .map(|h| h.total_len())
        .unwrap_or(record::RECORD_HEADER_LEN);
    rest.iter()
        .rposition(|&b| b != 0)
        .is_none_or(|last| last < claimed)
}

/// The distance to the next offset in `rest` (after the first byte) where a whole,
/// checksummed record starts; None when nothing valid follows (a torn tail).
fn resync(rest: &[u8]) -> Option<usize> {
    (1..rest.len())
        .find(|&i| record::peek_header(&rest[i..]).is_ok() && record::decode(&rest[i..]).is_ok())
}
