//! Following the cluster's layout. The nodes a client is given are where it finds the
//! cluster; the layout it routes by comes from the nodes: the newest any of them
//! holds. A node refuses a request routed by an older layout (or by none, once it has
//! one); the call then refreshes the layout and runs again, so no write lands only on
//! nodes that no longer own its key.

mod ops;

pub use ops::{LayoutChange, NodeLayout};

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dstash_cluster::Layout;
use dstash_proto::v1::GetLayoutRequest;

use crate::client::Client;
use crate::conn::channel;
use crate::error::{Error, Result};
use crate::view::{NodeHandle, View};

/// Times a call is run again after a refusal for an old layout.
const STALE_RETRIES: usize = 8;

impl Client {
    /// Runs `f`; while a node refuses it for an old layout, refreshes the layout and
    /// runs it again.
    pub(crate) async fn routed<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match f().await {
                Err(Error::StaleLayout(why)) if tries < STALE_RETRIES => {
                    tries += 1;
                    tracing::debug!("{why}; refreshing the layout");
                    if !matches!(self.refresh_layout().await, Ok(true)) {
                        // The node that refused may not have told the others yet.
                        tokio::time::sleep(Duration::from_millis(25 << tries.min(4))).await;
                    }
                }
                r => return r,
            }
        }
    }

    /// The layout the client routes by; None while the cluster has none.
    pub fn layout(&self) -> Option<Arc<Layout>> {
        self.view().layout.clone()
    }

    /// Asks every known node for its layout and routes by the newest, if it is newer
    /// than the one routed by. True when the view changed.
    pub async fn refresh_layout(&self) -> Result<bool> {
        let view = self.view();
        let asks = view.nodes.iter().map(|n| {
            let mut rpc = n.conn.rpc(0);
            let (wait, id) = (self.cfg.connect_timeout, n.id.clone());
            async move {
                let s = tokio::time::timeout(wait, rpc.get_layout(GetLayoutRequest {}))
                    .await
                    .ok()?
                    .ok()?
                    .into_inner();
                if s.node_id != id || s.layout.is_empty() {
                    return None;
                }
                Layout::decode(&s.layout).ok()
            }
        });
        let newest = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .max_by_key(|l| l.epoch);
        match newest {
            Some(l) if l.epoch > view.epoch() => self.route_by(Arc::new(l)).map(|_| true),
            _ => Ok(false),
        }
    }

    /// Routes by `layout` from now on, keeping the channels and health of nodes it
    /// already knows.
    pub(crate) fn route_by(&self, layout: Arc<Layout>) -> Result<()> {
        let current = self.view();
        let known: HashMap<(&str, &str), &NodeHandle> = current
            .nodes
            .iter()
            .map(|n| ((n.id.as_str(), n.addr.as_str()), n))
            .collect();
        let nodes = layout
            .union()
            .into_iter()
            .map(|m| match known.get(&(m.id.as_str(), m.addr.as_str())) {
                Some(n) => Ok((*n).clone()),
                None => Ok(NodeHandle::new(
                    &self.cfg,
                    m.id.clone(),
                    m.addr.clone(),
                    channel(&self.cfg, &m.addr)?,
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let view = View::routed(&self.cfg, layout, nodes)?;
        self.swap_view(|old| (view.epoch() > old.epoch()).then_some(view));
        Ok(())
    }
}
