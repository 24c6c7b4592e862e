//! What an operator asks of the layout: each node's state, and changes, which go to
//! the layout's driver.

use dstash_cluster::{Layout, LayoutMember, Stage};
use dstash_proto::v1::{ChangeLayoutRequest, GetLayoutRequest, LayoutNode, LayoutState};
use tonic::Status;

use crate::client::{failure, Client};
use crate::error::{Error, Result};

/// One node's answer to `GetLayout`.
pub struct NodeLayout {
    pub id: String,
    pub addr: String,
    pub state: std::result::Result<LayoutState, Status>,
}

/// Times a change is made again when the driver held another epoch.
const EPOCH_RETRIES: usize = 10;

/// A change of the member set.
#[derive(Debug, Clone)]
pub enum LayoutChange {
    /// Move to `members`; the members left out that are named in `gone` are down for
    /// good (replaced or removed without them: the transition does not wait for them).
    Apply {
        members: Vec<LayoutMember>,
        gone: Vec<String>,
    },
    /// Return to the members the running transition started from; the joining members
    /// named in `gone` died and are left for good.
    Abort { gone: Vec<String> },
    /// Members the running transition leaves died in it: stop waiting for them.
    Gone(Vec<String>),
}

fn node_of(m: &LayoutMember) -> LayoutNode {
    LayoutNode {
        id: m.id.clone(),
        address: m.addr.clone(),
        weight: m.weight,
        zone: m.zone.clone(),
    }
}

impl Client {
    /// Every known node's layout state, the layout's nodes included.
    pub async fn layout_states(&self) -> Vec<NodeLayout> {
        let _ = self.refresh_layout().await;
        let view = self.view();
        let asks = view.nodes.iter().map(|n| {
            let mut rpc = n.conn.rpc(0);
            let wait = self.cfg.timeout;
            async move {
                let state = tokio::time::timeout(wait, rpc.get_layout(GetLayoutRequest {}))
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
                    .map(tonic::Response::into_inner);
                NodeLayout {
                    id: n.id.clone(),
                    addr: n.addr.clone(),
                    state,
                }
            }
        });
        futures_util::future::join_all(asks).await
    }

    /// Asks the layout's driver for `change`; returns the layout it installed. A
    /// cluster with no layout yet starts from the nodes this client was given, with
    /// its R. When the driver holds another epoch than the one this client saw (one
    /// node had not caught up yet, or a stage moved on), the change is made again
    /// against the newest layout, a few times.
    pub async fn change_layout(&self, change: LayoutChange) -> Result<Layout> {
        let mut tries = 0;
        loop {
            match self.change_layout_once(&change).await {
                Err(Error::Rejected(f))
                    if tries < EPOCH_RETRIES && f.message.contains("another change came first") =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                r => return r,
            }
        }
    }

    async fn change_layout_once(&self, change: &LayoutChange) -> Result<Layout> {
        self.refresh_layout().await?;
        let view = self.view();
        let (members, gone, abort) = match change.clone() {
            LayoutChange::Apply { members, gone } => {
                (members.iter().map(node_of).collect(), gone, false)
            }
            LayoutChange::Abort { gone } => (Vec::new(), gone, true),
            LayoutChange::Gone(gone) if gone.is_empty() => {
                return Err(Error::Config("name at least one gone member".into()))
            }
            LayoutChange::Gone(gone) => (Vec::new(), gone, false),
        };
        let members_empty = members.is_empty();
        let mut req = ChangeLayoutRequest {
            expect_epoch: view.epoch(),
            members,
            abort,
            initial: Vec::new(),
            replicas: 0,
            gone,
        };
        let driver = match &view.layout {
            Some(l) => l.driver_without(&req.gone).to_string(),
            None if abort || members_empty => {
                return Err(Error::Config(
                    "the cluster has no layout: no transition to abort or amend".into(),
                ))
            }
            None => {
                req.initial = view
                    .nodes
                    .iter()
                    .map(|n| LayoutNode {
                        id: n.id.clone(),
                        address: n.addr.clone(),
                        weight: 1.0,
                        zone: String::new(),
                    })
                    .collect();
                req.replicas = view.r as u32;
                view.nodes
                    .iter()
                    .map(|n| n.id.clone())
                    .filter(|id| !req.gone.contains(id))
                    .min()
                    .unwrap_or_default()
            }
        };
        let node = view.nodes.iter().find(|n| n.id == driver).ok_or_else(|| {
            Error::Config(format!(
                "the layout's driver {driver} is not among the nodes"
            ))
        })?;
        let mut rpc = node.conn.rpc(0);
        let state = tokio::time::timeout(self.cfg.timeout, rpc.change_layout(req))
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
            .map_err(|s| Error::Rejected(failure(node, &s)))?
            .into_inner();
        let layout = Layout::decode(&state.layout).map_err(|e| {
            Error::Config(format!(
                "the driver answered a layout that does not decode: {e}"
            ))
        })?;
        let installed = std::sync::Arc::new(layout.clone());
        self.route_by(installed)?;
        Ok(layout)
    }

    /// True once the cluster's layout is stable at an epoch after `epoch` and every
    /// member that answers holds it (one that missed the driver's last message catches
    /// up within seconds; until it does, it still acts on the transition).
    pub async fn layout_settled_after(&self, epoch: u64) -> Result<bool> {
        self.refresh_layout().await?;
        let Some(l) = self
            .layout()
            .filter(|l| l.epoch > epoch && l.stage == Stage::Stable)
        else {
            return Ok(false);
        };
        let states = self.layout_states().await;
        let behind = states.iter().any(|n| {
            let member = l.members.iter().any(|m| m.id == n.id);
            member && n.state.as_ref().is_ok_and(|s| s.epoch < l.epoch)
        });
        Ok(!behind)
    }
}
