//! The node beside the front end, as its client's in-process node: the client's batch
//! messages for it are applied to its store by a call (the node's [`LocalBatches`])
//! instead of a gRPC stream to itself. This crate sits above both the node and the
//! client, so the join is made here.

use std::sync::Arc;

use dstash_client::proto::{
    AddBatch, CountBatchResult, DeleteBatch, DeleteBatchAck, LookupBatch, LookupBatchResult,
    PutBatch, PutBatchAck,
};
use dstash_client::{LocalCall, LocalHook, LocalNode};
use dstash_node::local::LocalBatches;

struct InProcess {
    id: String,
    batches: LocalBatches,
}

/// The hook for a client's configuration: node `id` is the one `batches` serves.
pub fn hook(id: &str, batches: LocalBatches) -> LocalHook {
    LocalHook(Arc::new(InProcess {
        id: id.to_string(),
        batches,
    }))
}

impl LocalNode for InProcess {
    fn id(&self) -> &str {
        &self.id
    }
    fn put(&self, epoch: u64, b: PutBatch) -> LocalCall<PutBatchAck> {
        let l = self.batches.clone();
        Box::pin(async move { l.put(epoch, b).await })
    }
    fn delete(&self, epoch: u64, b: DeleteBatch) -> LocalCall<DeleteBatchAck> {
        let l = self.batches.clone();
        Box::pin(async move { l.delete(epoch, b).await })
    }
    fn add(&self, epoch: u64, b: AddBatch) -> LocalCall<CountBatchResult> {
        let l = self.batches.clone();
        Box::pin(async move { l.add(epoch, b).await })
    }
    fn lookup(&self, epoch: u64, b: LookupBatch) -> LocalCall<LookupBatchResult> {
        let l = self.batches.clone();
        Box::pin(async move { l.lookup(epoch, b).await })
    }
}
