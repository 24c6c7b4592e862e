//! A client whose node set comes from Consul: the watch's passing set becomes the
//! placement, swapped whole at each change. Channels to nodes that stay are kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use dstash_membership::{Consul, Instance, WatchOptions};

use crate::client::Client;
use crate::config::ClientConfig;
use crate::conn::channel;
use crate::error::{Error, Result};
use crate::view::{NodeHandle, View};

fn handles(cfg: &ClientConfig, view: &View, set: &[Instance]) -> Result<Vec<NodeHandle>> {
    let existing: HashMap<(&str, &str), &NodeHandle> = view
        .nodes
        .iter()
        .map(|n| ((n.id.as_str(), n.addr.as_str()), n))
        .collect();
    set.iter()
        .map(|i| {
            let addr = i.addr();
            match existing.get(&(i.id.as_str(), addr.as_str())) {
                Some(n) => Ok((*n).clone()),
                None => Ok(NodeHandle::new(
                    cfg,
                    i.id.clone(),
                    addr.clone(),
                    channel(cfg, &addr)?,
                )),
            }
        })
        .collect()
}

impl Client {
    /// Connects through Consul: waits (up to `first_within`) for a first non-empty set of
    /// passing nodes, then follows the set for as long as the client lives. An empty set
    /// (Consul up, every node failing) keeps the last one.
    pub async fn connect_consul(
        cfg: ClientConfig,
        consul_url: &str,
        opts: WatchOptions,
        first_within: Duration,
    ) -> Result<Client> {
        let consul = Consul::new(consul_url).map_err(|e| Error::Config(e.to_string()))?;
        let mut rx = dstash_membership::watch(consul, opts.clone());
        let first = tokio::time::timeout(first_within, async {
            loop {
                if !rx.borrow_and_update().is_empty() {
                    return Some(rx.borrow().clone());
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Error::Connect {
            addr: consul_url.to_string(),
            reason: format!(
                "no passing {:?} service within {first_within:?}",
                opts.service
            ),
        })?;
        let client = Client::empty(cfg);
        client.set_nodes(handles(&client.cfg, &client.view(), &first)?)?;
        if let Err(e) = client.refresh_layout().await {
            tracing::warn!("cannot route by the cluster's layout yet: {e}");
        }
        let weak: Weak<RwLock<Arc<View>>> = Arc::downgrade(&client.view_cell());
        let cfg = client.cfg.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let set = rx.borrow_and_update().clone();
                let Some(cell) = weak.upgrade() else {
                    return; // the client is gone
                };
                if set.is_empty() {
                    continue;
                }
                let follower = Client::from_parts(cfg.clone(), cell);
                match handles(&cfg, &follower.view(), &set).and_then(|h| follower.set_nodes(h)) {
                    Ok(()) => tracing::info!(
                        nodes = ?set.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
                        "membership changed"
                    ),
                    Err(e) => tracing::warn!("membership change not applied: {e}"),
                }
            }
        });
        Ok(client)
    }
}
