//! Connecting: every node given without an id is asked for it, all at once. Keys are
//! placed over the nodes that could be identified; the others are warned about once
//! and asked again in the background, with backoff, joining the placement when they
//! answer.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use dstash_proto::v1::StatusRequest;
use tonic::Status;

use crate::client::Client;
use crate::config::{ClientConfig, NodeSpec};
use crate::conn::channel;
use crate::error::{Error, Result};
use crate::health::MAX_DOWN;
use crate::view::{NodeHandle, View};

/// A node, or why its id could not be learnt.
type Asked = std::result::Result<NodeHandle, String>;

impl Client {
    /// Connects to the configured nodes. Fails only when no node can be identified (or
    /// the configuration is wrong); nodes given as ID=HOST:PORT need no answer.
    pub async fn connect(cfg: ClientConfig) -> Result<Client> {
        if cfg.nodes.is_empty() {
            return Err(Error::Config(
                "no nodes given (--nodes ID=HOST:PORT,...)".into(),
            ));
        }
        let cfg = Arc::new(cfg);
        let asks = cfg.nodes.iter().map(|spec| identify(&cfg, spec));
        let mut nodes = Vec::new();
        let mut unknown = Vec::new();
        for (spec, asked) in cfg
            .nodes
            .iter()
            .zip(futures_util::future::join_all(asks).await)
        {
            match asked? {
                Ok(node) => nodes.push(node),
                Err(reason) => unknown.push((spec.clone(), reason)),
            }
        }
        if nodes.is_empty() {
            let reasons: Vec<String> = unknown
                .iter()
                .map(|(s, r)| format!("{}: {r}", s.addr))
                .collect();
            return Err(Error::Connect {
                addr: cfg
                    .nodes
                    .iter()
                    .map(|s| s.addr.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!("no node answered ({})", reasons.join("; ")),
            });
        }
        for (spec, reason) in &unknown {
            tracing::warn!(
                "{}: cannot learn its node id ({reason}); placing keys over the {} nodes that \
                 answered until it does (give it as ID={} to keep its place)",
                spec.addr,
                nodes.len(),
                spec.addr
            );
        }
        let client = Client::empty_shared(cfg.clone());
        client.set_nodes(nodes)?;
        if let Err(e) = client.refresh_layout().await {
            tracing::warn!("cannot route by the cluster's layout yet: {e}");
        }
        if !cfg.probe_every.is_zero() {
            tokio::spawn(crate::probe::probe_while_alive(
                Arc::downgrade(&client.view_cell()),
                cfg.probe_every,
            ));
        }
        if !unknown.is_empty() {
            let specs = unknown.into_iter().map(|(s, _)| s).collect();
            tokio::spawn(identify_later(
                cfg,
                Arc::downgrade(&client.view_cell()),
                specs,
            ));
        }
        Ok(client)
    }
}

/// The node behind `spec`: its given id, or the one it reports. The outer error is a
/// configuration error; the inner one says why the node did not answer.
async fn identify(cfg: &ClientConfig, spec: &NodeSpec) -> Result<Asked> {
    let conn = channel(cfg, &spec.addr)?;
    let mut rpc = conn.rpc(0);
    let id = match &spec.id {
        Some(id) => id.clone(),
        None => {
            let asked = tokio::time::timeout(cfg.connect_timeout, rpc.status(StatusRequest {}))
                .await
                .map_err(|_| Status::deadline_exceeded("no answer"))
                .and_then(|r| r);
            match asked {
                Ok(s) => s.into_inner().node_id,
                Err(e) => return Ok(Err(format!("asking its node id: {}", e.message()))),
            }
        }
    };
    Ok(Ok(NodeHandle::new(cfg, id, spec.addr.clone(), conn)))
}

/// Asks the unidentified nodes again, with backoff, for as long as the client lives;
/// each one that answers joins the view.
async fn identify_later(
    cfg: Arc<ClientConfig>,
    view: Weak<RwLock<Arc<View>>>,
    mut specs: Vec<NodeSpec>,
) {
    let mut wait = cfg.node_down.max(Duration::from_millis(100));
    while !specs.is_empty() {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_DOWN.max(cfg.node_down));
        let mut still = Vec::new();
        for spec in specs {
            let Some(cell) = view.upgrade() else {
                return; // the client is gone
            };
            match identify(&cfg, &spec).await {
                Ok(Ok(node)) => {
                    let client = Client::from_parts(cfg.clone(), cell);
                    let mut nodes = client.view().nodes.clone();
                    let (id, addr) = (node.id.clone(), node.addr.clone());
                    nodes.push(node);
                    match client.set_nodes(nodes) {
                        Ok(()) => {
                            tracing::info!("{addr}: node {id} answered and joins the placement")
                        }
                        Err(e) => tracing::warn!("{addr}: node {id} answered but cannot join: {e}"),
                    }
                }
                _ => still.push(spec),
            }
        }
        specs = still;
    }
}
