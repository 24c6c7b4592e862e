//! One batch of a batch stream, request to answer: what the stream handlers run on a
//! blocking thread for each message. Each converts the message, makes one store call,
//! and converts the result; the store checks every limit.

use dstash_proto::flat::FlatBuilder;
use dstash_proto::v1::{self as wire, *};
use dstash_proto::Bytes;
use dstash_storage::{Applied, Change, DeleteEntry, Found, Lookup, PutEntry, Result, Seen, Store};

/// A version from the wire; None (the node stamps one) when the request has none.
pub fn version_in(v: Option<wire::Version>) -> Option<dstash_storage::Version> {
    v.map(|v| dstash_storage::Version::new(v.ts, v.writer))
}

pub fn version_out(v: dstash_storage::Version) -> Option<wire::Version> {
    Some(wire::Version {
        ts: v.ts,
        writer: v.writer,
    })
}

/// One store call for the whole batch, puts and tombstones together.
pub fn put(s: &Store, b: PutBatch) -> Result<PutBatchAck> {
    let changes: Vec<Change> = b
        .entries
        .iter()
        .map(|e| match e.tombstone {
            true => Change::Delete(DeleteEntry {
                key: &e.key,
                version: version_in(e.version),
            }),
            false => Change::Put(PutEntry {
                key: &e.key,
                value: &e.value,
                ttl_secs: e.ttl_seconds,
                version: version_in(e.version),
            }),
        })
        .collect();
    let applied = s.write_each(&b.namespace, &changes)?;
    Ok(PutBatchAck {
        batch_id: b.batch_id,
        written: applied.len() as u32,
        stale: applied.iter().filter(|a| **a == Applied::Stale).count() as u32,
    })
}

/// One store call for the batch's tombstones; a key is `found` when it held a live
/// value. Versions are one per key or none at all.
pub fn delete(s: &Store, b: DeleteBatch) -> Result<DeleteBatchAck> {
    if !b.versions.is_empty() && b.versions.len() != b.keys.len() {
        return Err(dstash_storage::Error::VersionsMismatch {
            versions: b.versions.len(),
            keys: b.keys.len(),
        });
    }
    let entries: Vec<DeleteEntry> = b
        .keys
        .iter()
        .enumerate()
        .map(|(i, key)| DeleteEntry {
            key,
            version: version_in(b.versions.get(i).copied()),
        })
        .collect();
    let applied = s.delete_each(&b.namespace, &entries)?;
    Ok(DeleteBatchAck {
        batch_id: b.batch_id,
        found: applied
            .iter()
            .map(|a| *a == Applied::Written { existed: true })
            .collect(),
        stale: applied.iter().filter(|a| **a == Applied::Stale).count() as u32,
    })
}

/// Each key answered on its own: a damaged record marks its key `damaged` (and is
/// logged and counted by the store) instead of failing the batch. Asked `flat`, the
/// answers are columns, the values copied once, from the segments into one buffer.
pub fn lookup(s: &Store, b: LookupBatch) -> Result<LookupBatchResult> {
    if b.flat {
        let mut f = FlatBuilder::with_capacity(b.keys.len());
        s.lookup_visit(&b.namespace, &keys_of(&b.keys), |_, seen| match seen {
            Seen::Found {
                value,
                ttl_secs,
                version,
            } => f.value(value, ttl_secs, version.ts, version.writer),
            Seen::Deleted(v) => f.tombstone(v.ts, v.writer),
            Seen::Missing => f.nothing(),
            Seen::Damaged(_) => f.damaged(),
        })?;
        return Ok(LookupBatchResult {
            batch_id: b.batch_id,
            flat: Some(f.finish()),
            ..Default::default()
        });
    }
    let found = s.lookup_each(&b.namespace, &keys_of(&b.keys))?;
    Ok(LookupBatchResult {
        batch_id: b.batch_id,
        results: found.into_iter().map(answer).collect(),
        flat: None,
    })
}

/// The events' second a request names; 0: the node's clock.
pub fn at(seconds: u64) -> Option<u64> {
    (seconds != 0).then_some(seconds)
}

/// A request id, if the caller gave one.
pub fn request_id(id: &str) -> Option<&str> {
    (!id.is_empty()).then_some(id)
}

/// One event for each key (a key named twice counts twice).
pub fn add(s: &Store, b: AddBatch) -> Result<CountBatchResult> {
    let items: Vec<(&[u8], u32)> = b.keys.iter().map(|k| (k.as_ref(), 1)).collect();
    Ok(CountBatchResult {
        batch_id: b.batch_id,
        counts: s.add_once(
            &b.namespace,
            &items,
            at(b.at_seconds),
            request_id(&b.request_id),
        )?,
    })
}

pub fn count(s: &Store, b: CountBatch) -> Result<CountBatchResult> {
    Ok(CountBatchResult {
        batch_id: b.batch_id,
        counts: s.count_many(&b.namespace, &keys_of(&b.keys), b.window_seconds)?,
    })
}

/// One key's answer: its value, tombstone, absence or damage, with the version held.
pub fn answer(l: Lookup) -> LookupResponse {
    match l {
        Lookup::Found(Found {
            value,
            ttl_secs,
            version,
        }) => LookupResponse {
            found: true,
            value: Bytes::from(value),
            ttl_seconds: ttl_secs,
            version: version_out(version),
            ..Default::default()
        },
        Lookup::Deleted(v) => LookupResponse {
            tombstone: true,
            version: version_out(v),
            ..Default::default()
        },
        Lookup::Missing => LookupResponse::default(),
        Lookup::Damaged(_) => LookupResponse {
            damaged: true,
            ..Default::default()
        },
    }
}

fn keys_of(keys: &[Bytes]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.as_ref()).collect()
}
