//! The cluster as the client sees it: nodes with their channels, placement over them,
//! and R and W. One snapshot is swapped whole when membership changes.

use std::sync::Arc;
use std::time::Instant;

use crate::config::ClientConfig;
use crate::conn::Rpc;
use crate::error::{Error, Result};
use crate::health::{NodeHealth, NodeState};
use dstash_cluster::{Member, Placement};

/// A node the client talks to.
#[derive(Clone)]
pub struct NodeHandle {
    pub id: String,
    pub addr: String,
    pub rpc: Rpc,
    /// Shared by every clone, so a failure seen by one call is seen by all.
    pub(crate) health: Arc<NodeHealth>,
    /// Permits for `put_many` streams left answering in the background.
    pub(crate) behind: Arc<tokio::sync::Semaphore>,
}

impl NodeHandle {
    pub fn new(cfg: &ClientConfig, id: String, addr: String, rpc: Rpc) -> Self {
        Self {
            id,
            addr,
            rpc,
            health: Arc::new(NodeHealth::new(cfg.node_down)),
            behind: Arc::new(tokio::sync::Semaphore::new(crate::batch::WRITES_BEHIND)),
        }
    }

    /// How the client sees the node now.
    pub fn state(&self) -> NodeState {
        self.health.state_at(Instant::now())
    }
}

/// The cluster as one snapshot: swapped whole when membership changes, so a call sees
/// one consistent placement from start to end.
pub struct View {
    pub placement: Placement,
    /// Same order as `placement.members()`.
    pub nodes: Vec<NodeHandle>,
    pub r: usize,
    pub w: usize,
    /// Read quorum: replicas with a version a read compares, at most R.
    pub q: usize,
}

impl View {
    pub(crate) fn empty() -> View {
        View {
            placement: Placement::new(vec![]),
            nodes: vec![],
            r: 0,
            w: 0,
            q: 0,
        }
    }

    /// The replicas of `key`, best first.
    pub fn replicas(&self, key: &[u8]) -> Vec<usize> {
        self.placement.replicas(key, self.r)
    }

    /// Every node's state at `now`, by view index: read once per call or rank, so
    /// ordering a batch's keys takes no lock per key.
    pub fn states(&self, now: Instant) -> Vec<NodeState> {
        self.nodes.iter().map(|n| n.health.state_at(now)).collect()
    }

    /// `replicas` in the order reads ask them: placement order, with suspect and down
    /// nodes (by `states`, from [`View::states`]) moved to the end. A stable sort, so
    /// placement breaks ties.
    pub fn read_order(&self, mut replicas: Vec<usize>, states: &[NodeState]) -> Vec<usize> {
        replicas.sort_by_key(|&i| states[i]);
        replicas
    }

    /// The view over `nodes`, sorted by id; two nodes with one id are refused.
    pub(crate) fn new(cfg: &ClientConfig, mut nodes: Vec<NodeHandle>) -> Result<View> {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(d) = nodes.windows(2).find(|p| p[0].id == p[1].id) {
            return Err(Error::Config(format!(
                "two nodes claim the id {:?} ({} and {})",
                d[0].id, d[0].addr, d[1].addr
            )));
        }
        let (r, w) = cfg.replication(nodes.len())?;
        let members = nodes.iter().map(|n| Member::new(n.id.clone())).collect();
        Ok(View {
            placement: Placement::new(members),
            nodes,
            r,
            w,
            q: cfg.read_quorum.clamp(1, r),
        })
    }
}
