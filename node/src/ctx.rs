//! What every handler needs: the store once recovered, the metrics each call records,
//! and the permits for heavy peer calls; and the one way a handler runs a store call.

use std::sync::Arc;
use std::time::Instant;

use dstash_storage::Store;
use tonic::Status;

use crate::metrics::{Metrics, Rpc};
use crate::slot::StoreSlot;
use crate::status::status;

/// What every handler needs: the store (once recovered) and the metrics it records.
#[derive(Clone)]
pub struct Ctx {
    slot: StoreSlot,
    metrics: Arc<Metrics>,
    /// Permits for the heavy calls other nodes make of this one (leaf listings, counter
    /// merges): a node that many senders stream to at once serves them in turn.
    pub(crate) peer_work: Arc<tokio::sync::Semaphore>,
}

/// Heavy peer calls a node serves at once ([`Ctx::peer_work`]).
pub const PEER_WORK: usize = 2;

fn join_error(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("storage task failed: {e}"))
}

impl Ctx {
    pub(crate) fn new(slot: StoreSlot, metrics: Arc<Metrics>) -> Self {
        Ctx {
            slot,
            metrics,
            peer_work: Arc::new(tokio::sync::Semaphore::new(PEER_WORK)),
        }
    }

    /// Runs a store call on a blocking thread (the engine is synchronous and may fsync)
    /// and records it as one request of `rpc` touching `keys` keys.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        rpc: Rpc,
        keys: usize,
        f: impl FnOnce(&Store) -> dstash_storage::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let slot = self.slot.clone();
        self.run_in(&slot, rpc, keys, move |s| f(s).map_err(status))
            .await
    }

    /// [`Ctx::run`] on the store in `slot` (the served one, or the hint store).
    pub(crate) async fn run_in<T: Send + 'static>(
        &self,
        slot: &StoreSlot,
        rpc: Rpc,
        keys: usize,
        f: impl FnOnce(&Store) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let result = match slot.get() {
            Ok(store) => tokio::task::spawn_blocking(move || f(&store))
                .await
                .map_err(join_error)
                .and_then(|r| r),
            Err(unavailable) => Err(unavailable),
        };
        self.metrics.observe(
            rpc,
            keys,
            started.elapsed(),
            result.as_ref().err().map(Status::code),
        );
        result
    }
}
