//! Index changes, applied in log order: by the write path once a batch is durable, by
//! replay at open, and by compaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{key_at, record_at, Keyspace, Pending, Tables};
use crate::checkpoint::SegmentStats;
use crate::index::Loc;
use crate::record::{self, Kind};
use crate::segment::Segment;

impl Keyspace {
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
}

impl Pending {
    /// The index change that a put or delete record at `loc` makes.
    pub(super) fn of_record(kind: Kind, hash: u64, loc: Loc, len: u32, expires_at: u64) -> Self {
        match kind {
            Kind::Put => Pending::Put {
                hash,
                loc,
                len,
                expires_at,
            },
            Kind::Delete => Pending::Delete { hash, loc, len },
        }
    }

    pub(super) fn len(&self) -> u64 {
        match *self {
            Pending::Put { len, .. }
            | Pending::Delete { len, .. }
            | Pending::Relocate { len, .. } => len as u64,
            Pending::Unindex { .. } => 0,
        }
    }
}

/// True when `extra` more keys would push the index past three-quarters full.
pub(super) fn needs_room(t: &Tables, extra: u64) -> bool {
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
