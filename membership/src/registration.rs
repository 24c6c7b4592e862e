//! The node's side: keep this node registered in Consul with a TTL check that passes
//! only while the node is serving, re-register when the agent has lost it, and
//! deregister on a graceful shutdown.

use std::time::Duration;

use tokio::sync::watch;

use crate::consul::{Consul, Registration};

/// Runs until `stop` resolves, then deregisters. `serving` says whether the node is
/// serving (false while it recovers and while it drains).
pub async fn keep_registered(
    consul: Consul,
    reg: Registration,
    mut serving: watch::Receiver<bool>,
    stop: impl std::future::Future<Output = ()>,
) {
    let check = reg.check_id();
    // Pass well within the TTL, so one slow round trip does not turn the check critical.
    let every = (reg.ttl / 3).max(Duration::from_millis(50));
    let mut registered = false;
    // The node dropped its side: it is gone, so report not serving from now on.
    let mut node_gone = false;
    tokio::pin!(stop);
    loop {
        if !registered {
            match consul.register(&reg).await {
                Ok(()) => {
                    registered = true;
                    tracing::info!(consul = consul.url(), id = %reg.id, "registered");
                }
                Err(e) => tracing::warn!("registering with consul: {e}"),
            }
        }
        if registered {
            let ok = !node_gone && *serving.borrow();
            let note = if ok { "serving" } else { "not serving" };
            if let Err(e) = consul.update_check(&check, ok, note).await {
                // 404 or 500 "Unknown check ID": the agent lost the registration (a
                // restart, or a reap after the check stayed critical). Register again.
                tracing::warn!("updating the check: {e}; registering again");
                registered = false;
                continue;
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            changed = serving.changed(), if !node_gone => node_gone = changed.is_err(),
            _ = tokio::time::sleep(every) => {}
        }
    }
    match consul.deregister(&reg.id).await {
        Ok(()) => tracing::info!(id = %reg.id, "deregistered"),
        Err(e) => tracing::warn!("deregistering from consul: {e}"),
    }
}
