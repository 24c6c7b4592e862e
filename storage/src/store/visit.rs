//! Lookups that hand each key's answer to a closure with its value borrowed from the
//! segment: no copy and no allocation per key (a batch answer appends the values
//! straight into its buffer). [`Store::lookup_each`] is this with the values copied.

use dstash_cluster::Version;

use super::limits::check_keys;
use super::{Found, Lookup, Store};
use crate::error::{Error, Result};
use crate::keyspace::StoredRef;

/// One key's answer, its value borrowed: [`Lookup`] without the copy.
#[derive(Debug)]
pub enum Seen<'a> {
    Found {
        value: &'a [u8],
        /// Seconds left to live; 0: never expires.
        ttl_secs: u32,
        version: Version,
    },
    Deleted(Version),
    Missing,
    Damaged(Error),
}

impl Seen<'_> {
    pub fn into_lookup(self) -> Lookup {
        match self {
            Seen::Found {
                value,
                ttl_secs,
                version,
            } => Lookup::Found(Found {
                value: value.to_vec(),
                ttl_secs,
                version,
            }),
            Seen::Deleted(v) => Lookup::Deleted(v),
            Seen::Missing => Lookup::Missing,
            Seen::Damaged(e) => Lookup::Damaged(e),
        }
    }
}

fn seen(r: Result<Option<StoredRef<'_>>>, now: u64) -> Seen<'_> {
    match r {
        Ok(Some(StoredRef::Value {
            value,
            expires_at,
            version,
        })) => Seen::Found {
            value,
            // An unexpired key has at least a second left.
            ttl_secs: match expires_at {
                0 => 0,
                at => at.saturating_sub(now).clamp(1, u32::MAX as u64) as u32,
            },
            version,
        },
        Ok(Some(StoredRef::Deleted(v))) => Seen::Deleted(v),
        Ok(None) => Seen::Missing,
        Err(e) => Seen::Damaged(e),
    }
}

impl Store {
    /// Looks up every key under one read lock and hands `f` each key's position and
    /// answer, in key order; a damaged record is [`Seen::Damaged`] for its key alone.
    /// Limits and a closed store fail the whole call before `f` is called.
    pub fn lookup_visit(
        &self,
        ns: &str,
        keys: &[&[u8]],
        mut f: impl FnMut(usize, Seen<'_>),
    ) -> Result<()> {
        check_keys(&self.registry.opts, keys.iter().copied())?;
        let Some(n) = self.existing(ns)? else {
            (0..keys.len()).for_each(|i| f(i, Seen::Missing));
            return Ok(());
        };
        let now = self.registry.opts.clock.now_secs();
        n.kv.visit_each(keys, |i, r| f(i, seen(r, now)));
        Ok(())
    }
}
