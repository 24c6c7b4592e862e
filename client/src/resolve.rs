//! Read resolution by version: what one replica holds for a key, and how the answers
//! of several replicas make one answer and the repairs it calls for.
//!
//! Rules: the newest version wins, a tombstone included; only the winner is written
//! back, and only to the replicas that answered with something older, nothing, or a
//! damaged record. A key is a miss when the winner is a tombstone, or when no replica
//! holds a version and at least one answered that it holds nothing.

use dstash_cluster::Version;
use dstash_proto::flat::FlatEntry;
use dstash_proto::v1::{self as wire, LookupResponse};
use dstash_proto::Bytes;

use crate::error::{Error, NodeFailure, Result};

/// A version from the wire (absent: the zero version, older than any write).
/// A value a read found: its newest version across the replicas asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: Bytes,
    /// Seconds left to live; 0: never expires.
    pub ttl_seconds: u32,
    pub version: Version,
}

pub(crate) fn version_of(v: Option<wire::Version>) -> Version {
    v.map_or(Version::default(), |v| Version::new(v.ts, v.writer))
}

pub(crate) fn wire_version(v: Version) -> Option<wire::Version> {
    Some(wire::Version {
        ts: v.ts,
        writer: v.writer,
    })
}

/// What one replica answered it holds for a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Held {
    Value {
        value: Bytes,
        ttl_seconds: u32,
        version: Version,
    },
    Tombstone(Version),
    Nothing,
    /// A record the replica cannot read.
    Damaged,
}

impl Held {
    pub(crate) fn of(r: &LookupResponse) -> Held {
        if r.found {
            Held::Value {
                value: r.value.clone(),
                ttl_seconds: r.ttl_seconds,
                version: version_of(r.version),
            }
        } else if r.tombstone {
            Held::Tombstone(version_of(r.version))
        } else if r.damaged {
            Held::Damaged
        } else {
            Held::Nothing
        }
    }

    /// A batch's answers, one per key of its `keys`, in its flat form or its per-key
    /// one; what is wrong when they are not one per key.
    pub(crate) fn of_batch(
        r: &wire::LookupBatchResult,
        keys: usize,
    ) -> std::result::Result<Vec<Held>, String> {
        let helds: Vec<Held> = match &r.flat {
            Some(flat) => flat.entries()?.into_iter().map(Held::of_flat).collect(),
            None => r.results.iter().map(Held::of).collect(),
        };
        match helds.len() == keys {
            true => Ok(helds),
            false => Err(format!("{} answers to a batch of {keys} keys", helds.len())),
        }
    }

    fn of_flat(e: FlatEntry) -> Held {
        match e {
            FlatEntry::Value {
                value,
                ttl_seconds,
                ts,
                writer,
            } => Held::Value {
                value,
                ttl_seconds,
                version: Version::new(ts, writer),
            },
            FlatEntry::Tombstone { ts, writer } => Held::Tombstone(Version::new(ts, writer)),
            FlatEntry::Nothing => Held::Nothing,
            FlatEntry::Damaged => Held::Damaged,
        }
    }

    /// The version held; None when the replica holds no readable record.
    pub(crate) fn version(&self) -> Option<Version> {
        match self {
            Held::Value { version, .. } | Held::Tombstone(version) => Some(*version),
            Held::Nothing | Held::Damaged => None,
        }
    }
}

/// The answers gathered for one key: replica (by the caller's handle) and what it held.
#[derive(Debug)]
pub(crate) struct Replies<N> {
    pub answers: Vec<(N, Held)>,
    pub failures: Vec<NodeFailure>,
}

impl<N> Default for Replies<N> {
    fn default() -> Self {
        Self {
            answers: Vec::new(),
            failures: Vec::new(),
        }
    }
}

impl<N: Clone> Replies<N> {
    /// Answers that hold a version (a value or a tombstone).
    pub fn informed(&self) -> usize {
        self.answers
            .iter()
            .filter(|(_, h)| h.version().is_some())
            .count()
    }

    /// The newest value or tombstone among the answers.
    pub fn winner(&self) -> Option<&Held> {
        self.answers
            .iter()
            .map(|(_, h)| h)
            .filter(|h| h.version().is_some())
            .max_by_key(|h| h.version())
    }

    /// The replicas that answered with something older than the winner, nothing, or
    /// damage: the ones to write the winner back to.
    pub fn lagging(&self) -> Vec<N> {
        let Some(best) = self.winner().and_then(Held::version) else {
            return Vec::new();
        };
        self.answers
            .iter()
            .filter(|(_, h)| h.version().is_none_or(|v| v < best))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The read's answer: the winning value; None for a tombstone or an agreed absence;
    /// `Unavailable` when no replica gave a usable answer.
    pub fn outcome(&mut self) -> Result<Option<Bytes>> {
        self.entry().map(|e| e.map(|(v, _)| v))
    }

    /// [`outcome`](Self::outcome) with the value's seconds to live (0: none).
    pub fn entry(&mut self) -> Result<Option<(Bytes, u32)>> {
        self.found().map(|f| f.map(|f| (f.value, f.ttl_seconds)))
    }

    /// [`entry`](Self::entry) with the winning version.
    pub fn found(&mut self) -> Result<Option<Found>> {
        match self.winner() {
            Some(Held::Value {
                value,
                ttl_seconds,
                version,
            }) => Ok(Some(Found {
                value: value.clone(),
                ttl_seconds: *ttl_seconds,
                version: *version,
            })),
            Some(_) => Ok(None),
            None if self.answers.iter().any(|(_, h)| *h == Held::Nothing) => Ok(None),
            None => Err(Error::Unavailable {
                failures: std::mem::take(&mut self.failures),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &'static [u8], ts: u64) -> Held {
        Held::Value {
            value: Bytes::from_static(v),
            ttl_seconds: 0,
            version: Version::new(ts, 1),
        }
    }

    #[test]
    fn the_newest_version_wins_a_tombstone_included() {
        let mut r = Replies::<u8>::default();
        r.answers.push((0, value(b"old", 5)));
        r.answers.push((1, Held::Tombstone(Version::new(9, 2))));
        r.answers.push((2, Held::Nothing));
        assert_eq!(r.outcome().unwrap(), None, "the newer delete wins");
        assert_eq!(r.lagging(), vec![0, 2]);
        r.answers.push((3, value(b"new", 12)));
        assert_eq!(r.outcome().unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(r.lagging(), vec![0, 1, 2]);
        assert_eq!(r.informed(), 3);
    }

    #[test]
    fn absence_is_a_miss_only_when_a_replica_says_so() {
        let mut r = Replies::<u8>::default();
        r.answers.push((0, Held::Damaged));
        assert!(matches!(r.outcome(), Err(Error::Unavailable { .. })));
        r.answers.push((1, Held::Nothing));
        assert_eq!(r.outcome().unwrap(), None);
        assert!(r.lagging().is_empty(), "nothing to write back");
    }
}
