//! This node's own store for a front end in the same process (the Redis front end):
//! reads and batches answered as a peer's call here would answer them, without the
//! network. Like a request, each is answered only for a caller routing by the layout
//! epoch this node holds (the fence), and only once the store is open.

use std::sync::Arc;

use dstash_proto::v1::{
    AddBatch, CountBatchResult, DeleteBatch, DeleteBatchAck, LookupBatch, LookupBatchResult,
    PutBatch, PutBatchAck,
};
use dstash_storage::{Lookup, Store};
use tonic::Status;

use crate::batch;
use crate::ctx::Ctx;
use crate::layout::LayoutCell;
use crate::metrics::Rpc;
use crate::slot::StoreSlot;

#[derive(Clone)]
pub struct LocalReads {
    slot: StoreSlot,
    layout: Arc<LayoutCell>,
}

impl LocalReads {
    pub(crate) fn new(slot: StoreSlot, layout: Arc<LayoutCell>) -> Self {
        Self { slot, layout }
    }

    /// Per key, what this node holds; None when `epoch` is not the node's layout
    /// epoch, the store is not open, or the keys are refused (the caller then asks the
    /// cluster, and gets the error from there). Blocking: call it off the async
    /// threads.
    pub fn lookup(&self, epoch: u64, ns: &str, keys: &[&[u8]]) -> Option<Vec<Lookup>> {
        if self.layout.epoch() != epoch {
            return None;
        }
        let store = self.slot.get().ok()?;
        store.lookup_each(ns, keys).ok()
    }
}

/// Batch messages applied to this node's store as its stream handlers apply them: the
/// same fence, the same store call, the same metrics, and the same errors, with no
/// encoding and no connection. The store checks every key, value and batch limit.
#[derive(Clone)]
pub struct LocalBatches {
    ctx: Ctx,
    layout: Arc<LayoutCell>,
}

impl LocalBatches {
    pub(crate) fn new(ctx: Ctx, layout: Arc<LayoutCell>) -> Self {
        Self { ctx, layout }
    }

    /// A `BatchPut` message routed by layout `epoch` (0: none).
    pub async fn put(&self, epoch: u64, b: PutBatch) -> Result<PutBatchAck, Status> {
        let keys = b.entries.len();
        self.apply(epoch, Rpc::BatchPut, keys, move |s| batch::put(s, b))
            .await
    }

    /// A `BatchDelete` message routed by layout `epoch` (0: none).
    pub async fn delete(&self, epoch: u64, b: DeleteBatch) -> Result<DeleteBatchAck, Status> {
        let keys = b.keys.len();
        self.apply(epoch, Rpc::BatchDelete, keys, move |s| batch::delete(s, b))
            .await
    }

    /// A `BatchAdd` message routed by layout `epoch` (0: none).
    pub async fn add(&self, epoch: u64, b: AddBatch) -> Result<CountBatchResult, Status> {
        let keys = b.keys.len();
        self.apply(epoch, Rpc::BatchAdd, keys, move |s| batch::add(s, b))
            .await
    }

    /// A `BatchLookup` message routed by layout `epoch` (0: none).
    pub async fn lookup(&self, epoch: u64, b: LookupBatch) -> Result<LookupBatchResult, Status> {
        let keys = b.keys.len();
        self.apply(epoch, Rpc::BatchLookup, keys, move |s| batch::lookup(s, b))
            .await
    }

    async fn apply<T: Send + 'static>(
        &self,
        epoch: u64,
        rpc: Rpc,
        keys: usize,
        f: impl FnOnce(&Store) -> dstash_storage::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let _fenced = self.layout.enter(epoch).await?;
        self.ctx.run(rpc, keys, f).await
    }
}
