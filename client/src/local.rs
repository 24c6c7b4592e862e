//! A node in the client's own process: its batch messages are applied by a call
//! instead of a stream, with the same answers and the same errors. The client crate
//! does not know the node library; whoever joins the two (the `dstash` binary's Redis
//! front end) implements [`LocalNode`] over the node's local handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dstash_proto::v1::{
    AddBatch, CountBatchResult, DeleteBatch, DeleteBatchAck, LookupBatch, LookupBatchResult,
    PutBatch, PutBatchAck,
};
use tonic::Status;

/// A call's answer, as the node's stream would have given it for the message.
pub type LocalCall<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

/// One node's batch handlers, called in process. Each takes the layout epoch the
/// message was routed by (0: none), as the stream's metadata would carry it.
pub trait LocalNode: Send + Sync + 'static {
    /// The node's id among the client's nodes.
    fn id(&self) -> &str;
    fn put(&self, epoch: u64, b: PutBatch) -> LocalCall<PutBatchAck>;
    fn delete(&self, epoch: u64, b: DeleteBatch) -> LocalCall<DeleteBatchAck>;
    fn add(&self, epoch: u64, b: AddBatch) -> LocalCall<CountBatchResult>;
    fn lookup(&self, epoch: u64, b: LookupBatch) -> LocalCall<LookupBatchResult>;
}

/// [`LocalNode`] in a client's configuration.
#[derive(Clone)]
pub struct LocalHook(pub Arc<dyn LocalNode>);

impl fmt::Debug for LocalHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalHook({})", self.0.id())
    }
}

/// A batch message a [`LocalNode`] can apply.
pub(crate) trait LocalMessage: Sized {
    type Answer;
    fn apply(self, node: &dyn LocalNode, epoch: u64) -> LocalCall<Self::Answer>;
}

impl LocalMessage for PutBatch {
    type Answer = PutBatchAck;
    fn apply(self, node: &dyn LocalNode, epoch: u64) -> LocalCall<PutBatchAck> {
        node.put(epoch, self)
    }
}

impl LocalMessage for DeleteBatch {
    type Answer = DeleteBatchAck;
    fn apply(self, node: &dyn LocalNode, epoch: u64) -> LocalCall<DeleteBatchAck> {
        node.delete(epoch, self)
    }
}

impl LocalMessage for AddBatch {
    type Answer = CountBatchResult;
    fn apply(self, node: &dyn LocalNode, epoch: u64) -> LocalCall<CountBatchResult> {
        node.add(epoch, self)
    }
}

impl LocalMessage for LookupBatch {
    type Answer = LookupBatchResult;
    fn apply(self, node: &dyn LocalNode, epoch: u64) -> LocalCall<LookupBatchResult> {
        node.lookup(epoch, self)
    }
}
