//! Namespace settings: set on every node of the cluster, since each node keeps its own
//! copy (the counts' retention decides how a node lays out its cells).

use std::time::Instant;

use dstash_proto::v1::NamespaceSettings;
use tonic::Status;

use crate::client::Client;

/// One node's answer.
#[derive(Debug)]
pub struct NodeSettings {
    pub id: String,
    pub addr: String,
    pub settings: std::result::Result<NamespaceSettings, Status>,
}

impl Client {
    /// Sets what `req` names of its namespace's settings (a retention of 0 and absent
    /// fields are left as they are) on every node, all at once, stamped with one
    /// version (unless `req` carries one); each node's settings after, or why it failed.
    pub async fn set_namespace(&self, mut req: NamespaceSettings) -> Vec<NodeSettings> {
        // One stamp for every node, so that they agree on which change is newest.
        if req.changed_at == 0 {
            req.changed_at = self.next_version().ts;
        }
        let view = self.view();
        let req = &req;
        let asks = view.nodes.iter().map(|node| async move {
            let settings = self
                .call(node, true, |mut rpc| {
                    let req = req.clone();
                    async move { rpc.set_namespace(req).await }
                })
                .await;
            if settings.is_err() {
                node.health.suspect(Instant::now());
            }
            NodeSettings {
                id: node.id.clone(),
                addr: node.addr.clone(),
                settings,
            }
        });
        futures_util::future::join_all(asks).await
    }
}
