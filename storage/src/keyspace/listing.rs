//! Listing keys by glob, a chunk at a time.
//!
//! The lister walks the index by hash range rather than by slot, so a resize between
//! chunks cannot make it skip or repeat: every key present for the whole listing is
//! returned exactly once. Keys written or deleted meanwhile may or may not appear.

use std::sync::Arc;

use super::{record_at, Keyspace};
use crate::error::Result;
use crate::glob::Glob;
use crate::record::{self, Kind};

/// Slots examined per chunk: bounds how long one chunk holds the read lock.
const CHUNK_SLOTS: u64 = 4096;
const END: u128 = 1 << 64;

pub struct KeyLister {
    ks: Arc<Keyspace>,
    glob: Glob,
    next: u128,
    chunk_slots: u64,
}

impl KeyLister {
    pub(crate) fn new(ks: Arc<Keyspace>, glob: Glob) -> Self {
        Self {
            ks,
            glob,
            next: 0,
            chunk_slots: CHUNK_SLOTS,
        }
    }

    /// Resumes a listing at hash `from` (a [`position`](Self::position) given earlier),
    /// examining about `slots` slots per chunk (at most the default).
    pub fn resume(mut self, from: u64, slots: u64) -> Self {
        self.next = from as u128;
        self.chunk_slots = slots.clamp(1, CHUNK_SLOTS);
        self
    }

    /// Where the listing goes on: every key hashed below it was examined. None at the end.
    pub fn position(&self) -> Option<u64> {
        u64::try_from(self.next).ok()
    }

    /// The next chunk of matching keys, possibly empty; None at the end.
    pub fn step(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        if self.next >= END {
            return Ok(None);
        }
        let now = self.ks.now();
        let mut keys = Vec::new();
        let t = self.ks.tables.read();
        let hi = (self.next + t.index.hash_span(self.chunk_slots)).min(END);
        t.index.scan_range(self.next as u64, hi, |_, e| {
            if e.deleted {
                return;
            }
            let Some(rec) = record_at(&t.segments, e.loc) else {
                return;
            };
            let Ok(h) = record::peek_header(rec) else {
                return;
            };
            let key = &rec[record::RECORD_HEADER_LEN..record::RECORD_HEADER_LEN + h.key_len];
            if h.kind == Kind::Put && !h.expired(now) && self.glob.matches(key) {
                keys.push(key.to_vec());
            }
        });
        self.next = hi;
        Ok(Some(keys))
    }

    /// The next non-empty chunk of matching keys, in no particular order; None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        while let Some(keys) = self.step()? {
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}
