//! Listing keys: the whole listing as a stream of chunks (`Keys`), and one page of a
//! listing that resumes by position (`KeysPage`, the Redis front end's SCAN).

use dstash_proto::v1::{KeysChunk, KeysPageRequest, KeysPageResponse, KeysRequest};
use dstash_proto::Bytes;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::ctx::Ctx;
use crate::metrics::Rpc;
use crate::status::status;

/// The most keys a `KeysPage` may ask for.
const MAX_PAGE_KEYS: u32 = 10_000;

pub(crate) async fn page(ctx: &Ctx, r: KeysPageRequest) -> Result<KeysPageResponse, Status> {
    if !(1..=MAX_PAGE_KEYS).contains(&r.count) {
        return Err(Status::invalid_argument(format!(
            "count must be 1 to {MAX_PAGE_KEYS}, not {}",
            r.count
        )));
    }
    let (keys, next) = ctx
        .run(Rpc::KeysPage, 0, move |s| {
            s.keys_page(&r.namespace, &r.pattern, r.from, r.count as usize)
        })
        .await?;
    Ok(KeysPageResponse {
        keys: keys.into_iter().map(Bytes::from).collect(),
        next: next.unwrap_or(0),
        more: next.is_some(),
    })
}

/// Every matching key, in chunks of `chunk`, at most `r.limit` (0: all).
pub(crate) async fn keys(
    ctx: &Ctx,
    chunk: usize,
    r: KeysRequest,
) -> Result<ReceiverStream<Result<KeysChunk, Status>>, Status> {
    let (ns, pattern) = (r.namespace.clone(), r.pattern.clone());
    let mut listing = ctx
        .run(Rpc::Keys, 0, move |s| match r.counters {
            true => s.counter_keys(&ns, &pattern),
            false => s.keys(&ns, &pattern),
        })
        .await?;
    let limit = match r.limit {
        0 => usize::MAX,
        n => n as usize,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut sent = 0;
        let mut pending: Vec<Bytes> = Vec::new();
        while sent + pending.len() < limit {
            match listing.next_chunk() {
                Ok(Some(keys)) => {
                    pending.extend(keys.into_iter().map(Bytes::from));
                    pending.truncate(limit - sent);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(status(e)));
                    return;
                }
            }
            while pending.len() >= chunk {
                let rest = pending.split_off(chunk);
                sent += chunk;
                let keys = std::mem::replace(&mut pending, rest);
                if tx.blocking_send(Ok(KeysChunk { keys })).is_err() {
                    return; // the client went away
                }
            }
        }
        pending.truncate(limit.saturating_sub(sent));
        if !pending.is_empty() {
            let _ = tx.blocking_send(Ok(KeysChunk { keys: pending }));
        }
    });
    Ok(ReceiverStream::new(rx))
}
