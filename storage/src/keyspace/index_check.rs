//! The index's page checksums at open, and what a failing page means.
//!
//! After a clean close every checksum was current when the index was flushed, so a
//! failing page is damage: the index is dropped and rebuilt from the log. After a crash
//! a page and its checksum may have reached the disk apart (they are separate stores),
//! so each used slot of a failing page is checked against the record it points at:
//! when all of them lead to a record of the slot's key (and kind), the page is resealed;
//! otherwise a slot may hide a key, and the index is rebuilt from the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::record_at;
use crate::checkpoint::Checkpoint;
use crate::hash::key_hash;
use crate::index::{Entry, Index};
use crate::record::{self, Kind};
use crate::segment::Segment;

/// The slot counts of a checked index, or why it must be rebuilt.
pub(super) enum Verdict {
    Sound {
        live: u64,
        tombstones: u64,
        deleted: u64,
        resealed: u64,
    },
    Damaged {
        pages: Vec<usize>,
    },
}

pub(super) fn check(
    index: &Index,
    ckpt: &Checkpoint,
    segments: &BTreeMap<u32, Arc<Segment>>,
) -> Verdict {
    let found = index.verify();
    let damaged = |p: &usize| {
        ckpt.clean
            || index
                .page_entries(*p)
                .any(|(hash, e)| !slot_leads_to_its_key(index.seed, segments, hash, e))
    };
    let pages: Vec<usize> = found.failed.iter().copied().filter(damaged).collect();
    if !pages.is_empty() {
        return Verdict::Damaged { pages };
    }
    for &p in &found.failed {
        index.reseal(p);
    }
    Verdict::Sound {
        live: found.live,
        tombstones: found.tombstones,
        deleted: found.deleted,
        resealed: found.failed.len() as u64,
    }
}

/// True when the slot points at a record whose key has the slot's hash and whose kind
/// matches the slot's delete mark. A record whose checksum fails still counts when its
/// key matches: that is damage to the log, which reads report per key.
fn slot_leads_to_its_key(
    seed: u64,
    segments: &BTreeMap<u32, Arc<Segment>>,
    hash: u64,
    e: Entry,
) -> bool {
    let Some(rec) = record_at(segments, e.loc) else {
        return false;
    };
    let (Ok(h), Some(key)) = (record::peek_header(rec), record::key_of(rec)) else {
        return false;
    };
    key_hash(seed, key) == hash && (h.kind == Kind::Delete) == e.deleted
}
