//! Index changes, applied in log order: by the write path once a batch is durable, by
//! replay at open, and by compaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{header_at, key_at, record_at, supersedes, Applied, Keyspace, Pending, Tables};
use crate::checkpoint::SegmentStats;
use crate::index::{Entry, Loc};
use crate::record::{Header, Kind};
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
    ) -> Vec<Applied> {
        let ctx = ApplyCtx {
            now: self.now(),
            grace: self.opts.tombstone_grace_secs,
            dedup,
        };
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(apply_one(t, p, &ctx));
        }
        t.applied_end = t.applied_end.max(end);
        out
    }
}

struct ApplyCtx {
    now: u64,
    grace: u64,
    dedup: bool,
}

impl Pending {
    /// The index change that a put or delete record at `loc` makes.
    pub(super) fn of_record(kind: Kind, hash: u64, loc: Loc, len: u32) -> Self {
        Pending::Record {
            hash,
            loc,
            len,
            deleted: kind == Kind::Delete,
        }
    }

    pub(super) fn len(&self) -> u64 {
        match *self {
            Pending::Record { len, .. } | Pending::Relocate { len, .. } => len as u64,
            Pending::Unindex { .. } => 0,
        }
    }
}

/// True when `extra` more keys would push the index past three-quarters full.
pub(super) fn needs_room(t: &Tables, extra: u64) -> bool {
    (t.index.live() + t.index.tombstones() + extra + 1) * 4 > (t.index.capacity() as u64) * 3
}

pub(super) fn record_len(segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc) -> u64 {
    record_at(segments, loc).map_or(0, |r| r.len() as u64)
}

fn stats_of(stats: &mut BTreeMap<u32, SegmentStats>, loc: Loc) -> Option<&mut SegmentStats> {
    stats.get_mut(&loc.segment())
}

pub(super) fn add_dead(stats: &mut BTreeMap<u32, SegmentStats>, loc: Loc, bytes: u64) {
    if let Some(s) = stats_of(stats, loc) {
        s.dead += bytes;
    }
}

/// Accounts for the record now indexed at `loc`: a TTL put's bytes are garbage once it
/// expires, a tombstone's once its grace period is over.
fn add_indexed(
    stats: &mut BTreeMap<u32, SegmentStats>,
    loc: Loc,
    len: u64,
    h: &Header,
    grace: u64,
) {
    let Some(s) = stats_of(stats, loc) else {
        return;
    };
    if h.kind == Kind::Delete {
        s.tomb_bytes += len;
        s.tomb_until = s.tomb_until.max(h.tombstone_since().saturating_add(grace));
    } else if h.expires_at != 0 {
        s.ttl_bytes += len;
        s.ttl_max_expiry = s.ttl_max_expiry.max(h.expires_at);
    }
}

/// One index change.
fn apply_one(t: &mut Tables, p: &Pending, ctx: &ApplyCtx) -> Applied {
    match *p {
        Pending::Record {
            hash,
            loc,
            len,
            deleted,
        } => apply_record(t, hash, loc, len, deleted, ctx),
        Pending::Relocate {
            hash,
            from,
            to,
            len,
            deleted,
        } => {
            let Tables {
                index,
                segments,
                stats,
                digest,
                ..
            } = t;
            if index.relocate(hash, from, Entry { loc: to, deleted }) {
                digest.moved(from, to);
                add_dead(stats, from, record_len(segments, from));
                if let Some(h) = header_at(segments, to) {
                    add_indexed(stats, to, len as u64, &h, ctx.grace);
                }
                Applied::Written { existed: true }
            } else {
                add_dead(stats, to, len as u64);
                Applied::Stale
            }
        }
        Pending::Unindex { hash, loc } => {
            let item = header_at(&t.segments, loc).zip(key_at(&t.segments, loc));
            if t.index.remove_loc(hash, loc) {
                if let Some((h, key)) = item {
                    t.digest.toggle(hash, loc, key, h.version);
                }
                Applied::Written { existed: true }
            } else {
                Applied::Stale
            }
        }
    }
}

/// Indexes the record at `loc` if its version is newer than the key's indexed one.
fn apply_record(
    t: &mut Tables,
    hash: u64,
    loc: Loc,
    len: u32,
    deleted: bool,
    ctx: &ApplyCtx,
) -> Applied {
    let Tables {
        index,
        segments,
        stats,
        digest,
        ..
    } = t;
    let (Some(h), Some(key)) = (header_at(segments, loc), key_at(segments, loc)) else {
        return Applied::Stale;
    };
    let is_key = |l: Loc| key_at(segments, l) == Some(key);
    let newer = |cur: Entry| !supersedes(segments, cur.loc, h.version);
    let old = match index.upsert_unless(hash, Entry { loc, deleted }, is_key, ctx.dedup, newer) {
        Ok(old) => old,
        Err(cur) => {
            add_dead(stats, loc, len as u64);
            if cur.loc < loc {
                // An older version after a newer one in the log: tombstones must not be
                // dropped while this record exists (see compaction).
                if let Some(s) = stats_of(stats, loc) {
                    s.out_of_order = s.out_of_order.saturating_add(1);
                }
            }
            return Applied::Stale;
        }
    };
    let Some(old) = old.filter(|o| o.loc != loc) else {
        if old.is_none() {
            add_indexed(stats, loc, len as u64, &h, ctx.grace);
            digest.toggle(hash, loc, key, h.version);
        }
        return Applied::Written { existed: false };
    };
    let old_header = header_at(segments, old.loc);
    if let Some(o) = &old_header {
        digest.toggle(hash, old.loc, key, o.version);
    }
    digest.toggle(hash, loc, key, h.version);
    let existed = !old.deleted && old_header.is_some_and(|o| !o.deleted_at(ctx.now));
    add_dead(stats, old.loc, record_len(segments, old.loc));
    add_indexed(stats, loc, len as u64, &h, ctx.grace);
    Applied::Written { existed }
}
