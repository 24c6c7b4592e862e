//! What the store's API takes and gives back.

use dstash_cluster::Version;

use crate::counts::{CounterLister, CounterStats};
use crate::error::Result;
use crate::keyspace::{KeyLister, KeyspaceStats};

/// One entry of a batch put.
#[derive(Debug, Clone, Copy)]
pub struct PutEntry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Seconds to live; 0 = no TTL.
    pub ttl_secs: u32,
    /// The write's version; None: the store stamps one from its own clock.
    pub version: Option<Version>,
}

/// One entry of a batch delete.
#[derive(Debug, Clone, Copy)]
pub struct DeleteEntry<'a> {
    pub key: &'a [u8],
    /// The delete's version; None: the store stamps one from its own clock.
    pub version: Option<Version>,
}

/// One change of a mixed batch ([`Store::write_each`]).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Put(PutEntry<'a>),
    Delete(DeleteEntry<'a>),
}

/// One key's answer from [`Store::lookup_each`].
#[derive(Debug)]
pub enum Lookup {
    Found(Found),
    /// A tombstone, or a value whose TTL passed: deleted at this version.
    Deleted(Version),
    /// Nothing is stored for the key.
    Missing,
    /// The key's record is damaged (`Error::Corrupt`): another replica may have it.
    Damaged(crate::Error),
}

/// A value found by [`Store::lookup_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: Vec<u8>,
    /// Seconds left to live; 0 when the key never expires.
    pub ttl_secs: u32,
    pub version: Version,
}

/// Figures for one namespace.
#[derive(Debug, Clone)]
pub struct NamespaceStats {
    pub name: String,
    pub kv: KeyspaceStats,
    pub counters: CounterStats,
    pub retention_secs: u32,
    pub settings: crate::ns_settings::Settings,
    /// How the settings were found when the namespace opened.
    pub settings_found: crate::ns_settings::Found,
}

/// A listing of keys, a chunk at a time.
pub enum KeyStream {
    Empty,
    Kv(KeyLister),
    Counters(CounterLister),
}

impl KeyStream {
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        match self {
            KeyStream::Empty => Ok(None),
            KeyStream::Kv(l) => l.next_chunk(),
            KeyStream::Counters(l) => l.next_chunk(),
        }
    }
}
