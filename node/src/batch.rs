//! One batch of a batch stream, request to answer: what the stream handlers run on a
//! blocking thread for each message. Each converts the message, makes one store call,
//! and converts the result; the store checks every limit.

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use dstash_storage::{Found, Lookup, PutEntry, Result, Store};

pub fn put(s: &Store, b: PutBatch) -> Result<PutBatchAck> {
    let entries: Vec<PutEntry> = b
        .entries
        .iter()
        .map(|e| PutEntry {
            key: &e.key,
            value: &e.value,
            ttl_secs: e.ttl_seconds,
        })
        .collect();
    s.put_many(&b.namespace, &entries)?;
    Ok(PutBatchAck {
        batch_id: b.batch_id,
        written: entries.len() as u32,
    })
}

/// Each key answered on its own: a damaged record marks its key `damaged` (and is
/// logged and counted by the store) instead of failing the batch.
pub fn lookup(s: &Store, b: LookupBatch) -> Result<LookupBatchResult> {
    let found = s.lookup_each(&b.namespace, &keys_of(&b.keys))?;
    Ok(LookupBatchResult {
        batch_id: b.batch_id,
        results: found
            .into_iter()
            .map(|l| match l {
                Lookup::Found(f) => answer(Some(f)),
                Lookup::Missing => answer(None),
                Lookup::Damaged(_) => LookupResponse {
                    damaged: true,
                    ..LookupResponse::default()
                },
            })
            .collect(),
    })
}

/// One event for each key (a key named twice counts twice).
pub fn add(s: &Store, b: AddBatch) -> Result<CountBatchResult> {
    let items: Vec<(&[u8], u32)> = b.keys.iter().map(|k| (k.as_ref(), 1)).collect();
    Ok(CountBatchResult {
        batch_id: b.batch_id,
        counts: s.add_many(&b.namespace, &items)?,
    })
}

pub fn count(s: &Store, b: CountBatch) -> Result<CountBatchResult> {
    Ok(CountBatchResult {
        batch_id: b.batch_id,
        counts: s.count_many(&b.namespace, &keys_of(&b.keys), b.window_seconds)?,
    })
}

pub fn answer(found: Option<Found>) -> LookupResponse {
    match found {
        Some(f) => LookupResponse {
            found: true,
            value: Bytes::from(f.value),
            ttl_seconds: f.ttl_secs,
            damaged: false,
        },
        None => LookupResponse::default(),
    }
}

fn keys_of(keys: &[Bytes]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.as_ref()).collect()
}
