//! The cleanup stage: every node of the transition forgets, namespace by namespace,
//! the partitions it does not own in the set moved to. `Store::forget` leaves no
//! tombstone and takes a record only if it is unchanged since the scan saw it. The
//! owners hold all of it: reads moved to them only once streaming was done, and no
//! request routed by an older epoch runs once the stage is installed (the fence).
//!
//! A node that holds a stable layout that leaves it out, after one that named it (it
//! left, perhaps while it was down), forgets everything the same way. One started
//! under an id no layout it held ever named forgets nothing.

use std::sync::Arc;

use dstash_cluster::Layout;
use dstash_storage::Store;
use tonic::Status;

use crate::status::status;

/// Forgets, in every namespace, the partitions `me` does not own in `l`'s member set;
/// returns how many records went.
pub async fn forget_unowned(store: Arc<Store>, l: &Layout, me: &str) -> Result<u64, Status> {
    let owned = l.owned_by(me);
    if owned.iter().all(|o| *o) {
        return Ok(0);
    }
    tokio::task::spawn_blocking(move || {
        let drop = |p: u32| !owned[p as usize];
        let mut forgotten = 0;
        for ns in store.namespaces() {
            forgotten += store.forget(&ns, &drop).map_err(status)?;
        }
        Ok(forgotten)
    })
    .await
    .map_err(|e| Status::internal(format!("cleanup task failed: {e}")))?
}
