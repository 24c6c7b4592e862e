//! The checkpoint: how far the index is known to reflect the log.
//!
//! `CHECKPOINT` is replaced atomically (temporary, fsync, rename, fsync directory), so a
//! crash mid-checkpoint leaves the previous one. Layout:
//!
//! ```text
//! 0    68  header: magic "DSTCKPT\0", version, fields
//!          [replay-from position, deleted keys, used slots, freed slots, index generation, flags]
//! 68   8   the largest version timestamp in the log (u64 LE): a reopened store's
//!          clock starts above it, so its new writes sort after its old ones
//! 76   4   segment count n (u32 LE)
//! 80   48n per segment: id u32, out-of-order records u32, dead bytes u64, ttl bytes u64,
//!          ttl max expiry u64, tombstone bytes u64, tombstones droppable from (Unix s) u64
//! ..   4   crc32 of bytes 68..
//! ```
//! Invariant: every record before the position is durable and applied to the index
//! generation named here, and that index file was flushed before this file was written.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::header::{self, HEADER_LEN};
use crate::io::Io;
use crate::le::{u32_at, u64_at};

pub const FILE: &str = "CHECKPOINT";
const FLAG_CLEAN: u64 = 1;
/// A segment table entry: id u32, out-of-order count u32, then five u64.
const ENTRY_ID_AT: usize = 0;
const ENTRY_OUT_OF_ORDER_AT: usize = ENTRY_ID_AT + 4;
const ENTRY_DEAD_AT: usize = ENTRY_OUT_OF_ORDER_AT + 4;
const ENTRY_TTL_BYTES_AT: usize = ENTRY_DEAD_AT + 8;
const ENTRY_TTL_MAX_AT: usize = ENTRY_TTL_BYTES_AT + 8;
const ENTRY_TOMB_BYTES_AT: usize = ENTRY_TTL_MAX_AT + 8;
const ENTRY_TOMB_UNTIL_AT: usize = ENTRY_TOMB_BYTES_AT + 8;
const ENTRY: usize = ENTRY_TOMB_UNTIL_AT + 8;

/// The checkpoint's header fields.
struct CheckpointHeader {
    position: u64,
    deleted: u64,
    live: u64,
    tombstones: u64,
    index_gen: u64,
    flags: u64,
}

impl header::FileHeader for CheckpointHeader {
    const MAGIC: &'static [u8; 8] = b"DSTCKPT\0";
    const VERSION: u32 = 2;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [
            self.position,
            self.deleted,
            self.live,
            self.tombstones,
            self.index_gen,
            self.flags,
        ]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        if f[5] & !FLAG_CLEAN != 0 {
            return Err(format!("unknown checkpoint flags {:#x}", f[5]));
        }
        Ok(Self {
            position: f[0],
            deleted: f[1],
            live: f[2],
            tombstones: f[3],
            index_gen: f[4],
            flags: f[5],
        })
    }
}

/// What the compactor knows about one segment's garbage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// Bytes of records nothing points at any more (overwritten, deleted, delete markers).
    pub dead: u64,
    /// Bytes of records written with a TTL...
    pub ttl_bytes: u64,
    /// ...all of which have expired once this time (Unix seconds) has passed.
    pub ttl_max_expiry: u64,
    /// Bytes of tombstones the index points at...
    pub tomb_bytes: u64,
    /// ...all of which are past their grace period once this time has passed.
    pub tomb_until: u64,
    /// Records that arrived after a newer version of their key was already in the log
    /// (a race between concurrent batches). While any exist outside a segment, its
    /// tombstones are kept: such a record could outlive them.
    pub out_of_order: u32,
}

impl SegmentStats {
    /// Dead bytes at `now`, counting TTL records once all of them have expired, and
    /// tombstones past their grace period when the segment is the oldest (only then
    /// can compaction drop them).
    pub fn dead_at(&self, now: u64, oldest: bool) -> u64 {
        let mut dead = self.dead;
        if self.ttl_bytes > 0 && self.ttl_max_expiry <= now {
            dead += self.ttl_bytes;
        }
        if oldest && self.tomb_bytes > 0 && self.tomb_until <= now {
            dead += self.tomb_bytes;
        }
        dead
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log position (see `index::Loc`) replay starts from.
    pub position: u64,
    /// Index slots pointing at delete records.
    pub deleted: u64,
    pub live: u64,
    pub tombstones: u64,
    pub index_gen: u64,
    /// The largest version timestamp of any record applied.
    pub max_ts: u64,
    /// Written by a clean close: the counts can be trusted without a recount.
    pub clean: bool,
    pub segments: Vec<(u32, SegmentStats)>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let flags = if self.clean { FLAG_CLEAN } else { 0 };
        let hdr = header::encode(&CheckpointHeader {
            position: self.position,
            deleted: self.deleted,
            live: self.live,
            tombstones: self.tombstones,
            index_gen: self.index_gen,
            flags,
        });
        let mut b = Vec::with_capacity(HEADER_LEN + 16 + ENTRY * self.segments.len());
        b.extend_from_slice(&hdr);
        b.extend_from_slice(&self.max_ts.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for (id, s) in &self.segments {
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&s.out_of_order.to_le_bytes());
            b.extend_from_slice(&s.dead.to_le_bytes());
            b.extend_from_slice(&s.ttl_bytes.to_le_bytes());
            b.extend_from_slice(&s.ttl_max_expiry.to_le_bytes());
            b.extend_from_slice(&s.tomb_bytes.to_le_bytes());
            b.extend_from_slice(&s.tomb_until.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[HEADER_LEN..]);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(path: &Path, b: &[u8]) -> Result<Self> {
        let h: CheckpointHeader = header::decode(path, b)?;
        let bad = |reason: &str| Error::BadFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let rest = &b[HEADER_LEN..];
        let max_ts = u64_at(rest, 0).ok_or_else(|| bad("segment table truncated"))?;
        let n = u32_at(rest, 8).ok_or_else(|| bad("segment table truncated"))? as usize;
        let body = n
            .checked_mul(ENTRY)
            .and_then(|x| x.checked_add(12))
            .filter(|&len| len.checked_add(4) == Some(rest.len()))
            .ok_or_else(|| bad("segment table length does not match the file"))?;
        let crc = u32_at(rest, body).ok_or_else(|| bad("segment table truncated"))?;
        if crc != crc32fast::hash(&rest[..body]) {
            return Err(bad("segment table checksum mismatch"));
        }
        let entry = |e: &[u8]| -> Option<(u32, SegmentStats)> {
            let s = SegmentStats {
                dead: u64_at(e, ENTRY_DEAD_AT)?,
                ttl_bytes: u64_at(e, ENTRY_TTL_BYTES_AT)?,
                ttl_max_expiry: u64_at(e, ENTRY_TTL_MAX_AT)?,
                tomb_bytes: u64_at(e, ENTRY_TOMB_BYTES_AT)?,
                tomb_until: u64_at(e, ENTRY_TOMB_UNTIL_AT)?,
                out_of_order: u32_at(e, ENTRY_OUT_OF_ORDER_AT)?,
            };
            Some((u32_at(e, ENTRY_ID_AT)?, s))
        };
        let segments = rest[12..body]
            .chunks_exact(ENTRY)
            .map(entry)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("segment table truncated"))?;
        Ok(Self {
            position: h.position,
            deleted: h.deleted,
            live: h.live,
            tombstones: h.tombstones,
            index_gen: h.index_gen,
            max_ts,
            clean: h.flags & FLAG_CLEAN != 0,
            segments,
        })
    }

    /// The checkpoint in `dir`; None when there is none yet.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => Self::decode(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    pub fn write(&self, io: &dyn Io, dir: &Path) -> Result<()> {
        write_atomic(io, &dir.join(FILE), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let c = Checkpoint {
            position: 1 << 33 | 77,
            deleted: 9,
            live: 3,
            tombstones: 1,
            index_gen: 2,
            max_ts: 12,
            clean: true,
            segments: vec![
                (
                    1,
                    SegmentStats {
                        dead: 5,
                        ttl_bytes: 6,
                        ttl_max_expiry: 7,
                        tomb_bytes: 8,
                        tomb_until: 10,
                        out_of_order: 11,
                    },
                ),
                (4, SegmentStats::default()),
            ],
        };
        let p = Path::new("CHECKPOINT");
        let b = c.encode();
        assert_eq!(Checkpoint::decode(p, &b).unwrap(), c);
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(Checkpoint::decode(p, &d).is_err(), "bit {bit}");
        }
        for cut in 0..b.len() {
            assert!(Checkpoint::decode(p, &b[..cut]).is_err(), "cut {cut}");
        }
    }
}
