//! Namespace settings across peers: a peer's settings changed later than this node's
//! are taken, with their stamp, so a node that missed a `dstash ns set` (down at the
//! time) catches up at its next pass. Each node takes; none pushes.

use std::sync::Arc;

use dstash_proto::v1::NamespaceStatus;
use dstash_storage::{SettingsChange, Store};

/// Takes each of `theirs` that is newer than this node's; how many were taken.
pub(super) async fn take_newer(
    store: &Arc<Store>,
    peer: &str,
    theirs: &[NamespaceStatus],
) -> usize {
    let newer: Vec<(String, SettingsChange)> = theirs
        .iter()
        .filter(|n| n.settings_changed_at != 0)
        .map(|n| {
            let change = SettingsChange {
                retention_secs: Some(n.retention_seconds),
                max_bytes: Some(n.max_bytes),
                default_ttl_secs: Some(n.default_ttl_seconds),
                at: Some(n.settings_changed_at),
            };
            (n.name.clone(), change)
        })
        .collect();
    let store = store.clone();
    let peer = peer.to_string();
    let taken = tokio::task::spawn_blocking(move || {
        let mut taken = 0;
        for (ns, change) in newer {
            let ours = match store.namespace_settings(&ns) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(ns, %peer, "anti-entropy: reading settings: {e}");
                    continue;
                }
            };
            if change.at.is_some_and(|at| at <= ours.changed_at) {
                continue;
            }
            match store.set_namespace(&ns, change) {
                Ok(_) => {
                    tracing::info!(ns, %peer, "anti-entropy: took the peer's newer namespace settings");
                    taken += 1;
                }
                Err(e) => tracing::warn!(ns, %peer, "anti-entropy: taking settings: {e}"),
            }
        }
        taken
    })
    .await;
    taken.unwrap_or(0)
}
