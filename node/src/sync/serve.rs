//! The anti-entropy handlers: convert, delegate to the store or the syncer, answer.

use std::sync::Arc;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use tonic::{Response, Status};

use super::pass::{PassPlan, Syncer};
use super::{Peer, Tally};
use crate::batch::version_out;
use crate::metrics::Rpc;
use crate::service::{Answers, Ctx};

/// Entries per `LeafEntriesChunk`.
const ENTRIES_PER_CHUNK: usize = 2000;

fn closed(_: tokio::sync::AcquireError) -> Status {
    Status::unavailable("the node is shutting down")
}

pub async fn digest(ctx: &Ctx, r: DigestRequest) -> Result<Response<DigestResponse>, Status> {
    let n = r.partitions.len();
    let d = ctx
        .run(Rpc::Digest, n, move |s| {
            s.digests(&r.namespace, &r.partitions, r.leaves)
        })
        .await?;
    Ok(Response::new(DigestResponse {
        ready: d.is_some(),
        digests: d.unwrap_or_default(),
    }))
}

pub async fn leaf_entries(
    ctx: &Ctx,
    r: LeafEntriesRequest,
) -> Result<Response<Answers<LeafEntriesChunk>>, Status> {
    let n = r.leaves.len();
    let _permit = ctx.peer_work.acquire().await.map_err(closed)?;
    let found = ctx
        .run(Rpc::LeafEntries, n, move |s| {
            s.leaf_entries(&r.namespace, &r.leaves)
        })
        .await?;
    let mut chunks = Vec::new();
    for part in found.chunks(ENTRIES_PER_CHUNK) {
        let entries = part
            .iter()
            .map(|e| LeafEntry {
                key: Bytes::copy_from_slice(&e.key),
                version: version_out(e.version),
                tombstone: e.tombstone,
                value_len: e.value_len,
            })
            .collect();
        chunks.push(Ok(LeafEntriesChunk { entries }));
    }
    Ok(Response::new(Box::pin(futures_util::stream::iter(chunks))))
}

pub async fn merge_counters(
    ctx: &Ctx,
    r: MergeCountersRequest,
) -> Result<Response<MergeCountersResponse>, Status> {
    let items = r
        .keys
        .into_iter()
        .map(crate::layout::counters::from_wire)
        .collect::<Result<Vec<_>, Status>>()?;
    let (ns, n, retention) = (r.namespace, items.len(), r.count_retention_seconds);
    let _permit = ctx.peer_work.acquire().await.map_err(closed)?;
    let merged = ctx
        .run(Rpc::MergeCounters, n, move |s| {
            // The cells are kept by the sender's schedule: take its retention first.
            if retention != 0 {
                s.set_retention(&ns, retention)?;
            }
            s.merge_counters(&ns, &items)
        })
        .await?;
    Ok(Response::new(MergeCountersResponse {
        cells_merged: merged,
    }))
}

pub async fn repair(
    syncer: Option<Arc<Syncer>>,
    r: RepairRequest,
) -> Result<Response<Answers<RepairProgress>>, Status> {
    let syncer = syncer.ok_or_else(|| Status::unimplemented("this node runs no anti-entropy"))?;
    let (members, own_replicas) = if r.members.is_empty() {
        syncer.members_now().ok_or_else(|| {
            Status::failed_precondition(
                "a layout transition is running; its handoff moves the data (dstash layout show)",
            )
        })?
    } else {
        let given = r.members.into_iter().map(|m| Peer {
            id: m.id,
            addr: m.address,
        });
        (given.collect(), syncer.opts.replicas)
    };
    if members.is_empty() {
        return Err(Status::failed_precondition(
            "no members given and this node has no --peers",
        ));
    }
    let plan = PassPlan {
        members,
        replicas: match r.replicas {
            0 => own_replicas,
            n => n as usize,
        },
        higher_peers_only: r.higher_peers_only,
        keys_per_sec: 0,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let last = syncer
            .run(plan, |t| {
                let _ = tx.try_send(Ok(progress(t, false)));
            })
            .await;
        let _ = tx.send(Ok(progress(&last, true))).await;
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

fn progress(t: &Tally, done: bool) -> RepairProgress {
    RepairProgress { done, ..t.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::service::PEER_WORK;
    use crate::slot::StoreSlot;
    use std::time::Duration;

    #[tokio::test]
    async fn heavy_peer_calls_wait_their_turn() {
        let dir = tempfile::tempdir().unwrap();
        let store = dstash_storage::Store::open(dir.path(), Default::default()).unwrap();
        let slot = StoreSlot::open(Arc::new(store));
        let ctx = Ctx::new(slot.clone(), Arc::new(Metrics::new(slot)));
        let req = || LeafEntriesRequest {
            namespace: "ns".into(),
            leaves: vec![1],
        };
        let held = ctx.peer_work.acquire_many(PEER_WORK as u32).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(100), leaf_entries(&ctx, req()));
        assert!(waiting.await.is_err(), "served with every permit taken");
        drop(held);
        assert!(leaf_entries(&ctx, req()).await.is_ok());
    }
}
