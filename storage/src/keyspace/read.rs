//! The read path: one key or many under one read lock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dstash_cluster::Version;

use super::{key_at, record_at, Keyspace, Stored, Tables};
use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::index::Loc;
use crate::record::{self, Kind};
use crate::segment::Segment;

/// [`Stored`], the value borrowed from its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredRef<'a> {
    Value {
        value: &'a [u8],
        expires_at: u64,
        version: Version,
    },
    Deleted(Version),
}

impl StoredRef<'_> {
    pub fn into_stored(self) -> Stored {
        match self {
            StoredRef::Value {
                value,
                expires_at,
                version,
            } => Stored::Value {
                value: value.to_vec(),
                expires_at,
                version,
            },
            StoredRef::Deleted(v) => Stored::Deleted(v),
        }
    }
}

impl Keyspace {
    /// The value stored under `key`, if present and unexpired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.tables.read();
        Ok(match self.get_locked(&t, key)? {
            Some(Stored::Value { value, .. }) => Some(value),
            _ => None,
        })
    }

    /// Looks up every key under one read lock, in key order, tombstones included; a
    /// damaged record fails only its own key.
    pub fn get_each(&self, keys: &[&[u8]]) -> Vec<Result<Option<Stored>>> {
        let t = self.tables.read();
        keys.iter()
            .map(|k| Ok(self.read_locked(&t, k)?.map(StoredRef::into_stored)))
            .collect()
    }

    /// [`get_each`](Self::get_each) handing each key's answer to `f`, values borrowed
    /// from the segments (no copy, no allocation per key), under one read lock.
    pub fn visit_each(
        &self,
        keys: &[&[u8]],
        mut f: impl FnMut(usize, Result<Option<StoredRef<'_>>>),
    ) {
        let t = self.tables.read();
        for (i, k) in keys.iter().enumerate() {
            f(i, self.read_locked(&t, k));
        }
    }

    fn get_locked(&self, t: &Tables, key: &[u8]) -> Result<Option<Stored>> {
        Ok(self.read_locked(t, key)?.map(StoredRef::into_stored))
    }

    fn read_locked<'t>(&self, t: &'t Tables, key: &[u8]) -> Result<Option<StoredRef<'t>>> {
        let hash = key_hash(self.seed, key);
        let Some(loc) = t.index.find(hash, |l| key_at(&t.segments, l) == Some(key)) else {
            return Ok(None);
        };
        let rec = record_at(&t.segments, loc).unwrap_or(&[]);
        match record::decode(rec) {
            // The clock is read only for records that carry a TTL.
            Ok((h, _, value))
                if h.kind == Kind::Put && (h.expires_at == 0 || !h.expired(self.now())) =>
            {
                Ok(Some(StoredRef::Value {
                    value,
                    expires_at: h.expires_at,
                    version: h.version,
                }))
            }
            Ok((h, _, _)) => Ok(Some(StoredRef::Deleted(h.version))),
            Err(e) => Err(self.corrupt(&t.segments, loc, e.describe())),
        }
    }

    fn corrupt(&self, segments: &BTreeMap<u32, Arc<Segment>>, loc: Loc, reason: &str) -> Error {
        self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
        let path = segments
            .get(&loc.segment())
            .map(|s| s.path().to_path_buf())
            .unwrap_or_else(|| self.dir.clone());
        tracing::error!(ns = %self.ns, path = %path.display(), offset = loc.offset(), "{reason}");
        Error::Corrupt {
            path,
            offset: loc.offset(),
            reason: reason.to_string(),
        }
    }
}
