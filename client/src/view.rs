//! The cluster as the client sees it: nodes with their channels, where reads and
//! writes of a key go, and R and W. One snapshot is swapped whole when membership or
//! the layout changes.
//!
//! Without a layout, keys are placed over the nodes the client was given. With one,
//! over the layout's members: reads over the set its stage reads from, writes over
//! each set its stage writes to (both during a transition), acknowledged only with W
//! in each; and every request carries the layout's epoch.

use std::sync::Arc;
use std::time::Instant;

use crate::config::ClientConfig;
use crate::conn::{Conn, Rpc};
use crate::error::{Error, Result};
use crate::health::{NodeHealth, NodeState};
use dstash_cluster::{Layout, LayoutMember, Member, Placement};

/// A node the client talks to.
#[derive(Clone)]
pub struct NodeHandle {
    pub id: String,
    pub addr: String,
    /// Calls made with this carry the epoch of the view the handle belongs to.
    pub rpc: Rpc,
    pub(crate) conn: Conn,
    /// Shared by every clone, so a failure seen by one call is seen by all.
    pub(crate) health: Arc<NodeHealth>,
    /// Permits for `put_many` streams left answering in the background.
    pub(crate) behind: Arc<tokio::sync::Semaphore>,
    /// The layout epoch `rpc`'s calls carry (0: none).
    pub(crate) epoch: u64,
    /// Set when the node runs in this process: batch messages go to it by a call.
    pub(crate) local: Option<Arc<dyn crate::local::LocalNode>>,
}

impl NodeHandle {
    pub fn new(cfg: &ClientConfig, id: String, addr: String, conn: Conn) -> Self {
        Self {
            addr,
            rpc: conn.rpc(0),
            conn,
            health: Arc::new(NodeHealth::new(cfg.node_down)),
            behind: Arc::new(tokio::sync::Semaphore::new(crate::batch::WRITES_BEHIND)),
            epoch: 0,
            local: cfg
                .local
                .as_ref()
                .filter(|l| l.0.id() == id)
                .map(|l| l.0.clone()),
            id,
        }
    }

    /// The same node, its calls carrying `epoch`.
    pub(crate) fn at_epoch(&self, epoch: u64) -> Self {
        Self {
            rpc: self.conn.rpc(epoch),
            epoch,
            ..self.clone()
        }
    }

    /// How the client sees the node now.
    pub fn state(&self) -> NodeState {
        self.health.state_at(Instant::now())
    }
}

/// Placement over one member set, answering in view indexes.
struct Routing {
    placement: Placement,
    /// View index of each of `placement.members()`.
    to_view: Vec<usize>,
    /// By placement index: members declared gone, which keep their place but are
    /// never asked.
    gone: Vec<bool>,
}

impl Routing {
    fn over(members: Vec<Member>, nodes: &[NodeHandle]) -> Routing {
        Self::without(members, nodes, &[])
    }

    fn without(members: Vec<Member>, nodes: &[NodeHandle], gone: &[String]) -> Routing {
        let placement = Placement::new(members);
        let to_view = placement
            .members()
            .iter()
            .map(|m| nodes.iter().position(|n| n.id == m.id).unwrap_or(0))
            .collect();
        let gone = placement
            .members()
            .iter()
            .map(|m| gone.contains(&m.id))
            .collect();
        Routing {
            placement,
            to_view,
            gone,
        }
    }

    /// The R replicas of `key` but the gone, best first.
    fn replicas(&self, key: &[u8], r: usize) -> Vec<usize> {
        let found = self.placement.replicas(key, r).into_iter();
        found
            .filter(|&i| !self.gone[i])
            .map(|i| self.to_view[i])
            .collect()
    }

    fn has_gone(&self) -> bool {
        self.gone.iter().any(|g| *g)
    }
}

/// Where one key's write goes: the nodes, and for each the sets (bits) it counts in.
pub struct WriteTargets {
    pub nodes: Vec<usize>,
    pub sets: Vec<u8>,
    /// Acknowledgements needed in each set.
    pub needs: Vec<usize>,
}

impl WriteTargets {
    /// True when some set cannot reach its acknowledgements with up nodes alone, its
    /// replicas written to `sent` (by replica: the replica, or a stand-in for it).
    pub fn short_of_up(&self, sent: &[usize], states: &[NodeState]) -> bool {
        self.needs.iter().enumerate().any(|(s, &need)| {
            let up = (0..self.nodes.len())
                .filter(|&i| self.sets[i] & (1 << s) != 0 && states[sent[i]] == NodeState::Up)
                .count();
            up < need
        })
    }
}

/// The cluster as one snapshot: swapped whole when membership or the layout changes, so
/// a call sees one consistent placement from start to end.
pub struct View {
    /// Sorted by id.
    pub nodes: Vec<NodeHandle>,
    read: Routing,
    /// One set, or the old and new during a transition.
    writes: Vec<Routing>,
    pub r: usize,
    pub w: usize,
    /// Read quorum: replicas with a version a read compares, at most R.
    pub q: usize,
    /// The layout routed by; None: the nodes as given.
    pub layout: Option<Arc<Layout>>,
}

fn members_of(ms: &[LayoutMember]) -> Vec<Member> {
    ms.iter()
        .map(|m| Member {
            id: m.id.clone(),
            weight: m.weight,
            zone: m.zone.clone(),
        })
        .collect()
}

impl View {
    pub(crate) fn empty() -> View {
        View {
            nodes: vec![],
            read: Routing::over(vec![], &[]),
            writes: vec![],
            r: 0,
            w: 0,
            q: 0,
            layout: None,
        }
    }

    /// The layout epoch requests carry; 0 without a layout.
    pub fn epoch(&self) -> u64 {
        self.layout.as_ref().map_or(0, |l| l.epoch)
    }

    /// The replicas reads of `key` ask, best first.
    pub fn replicas(&self, key: &[u8]) -> Vec<usize> {
        self.read.replicas(key, self.r)
    }

    /// The ids of the replicas reads of `key` ask, best first.
    pub fn replica_ids(&self, key: &[u8]) -> Vec<&str> {
        let ids = self.replicas(key).into_iter();
        ids.map(|i| self.nodes[i].id.as_str()).collect()
    }

    /// Where a write of `key` goes. Stable: its R replicas, W of which must acknowledge.
    /// In a transition: the replicas in the old set and in the new, W of each (or all
    /// of a set's, when it has fewer, as when one is gone).
    pub fn write_targets(&self, key: &[u8]) -> WriteTargets {
        let mut t = WriteTargets {
            nodes: Vec::with_capacity(self.r * self.writes.len()),
            sets: Vec::with_capacity(self.r * self.writes.len()),
            needs: Vec::with_capacity(self.writes.len()),
        };
        for (s, routing) in self.writes.iter().enumerate() {
            let replicas = routing.replicas(key, self.r);
            t.needs
                .push(match self.writes.len() == 1 && !routing.has_gone() {
                    true => self.w,
                    false => self.w.min(replicas.len()),
                });
            for n in replicas {
                match t.nodes.iter().position(|&x| x == n) {
                    Some(i) => t.sets[i] |= 1 << s,
                    None => {
                        t.nodes.push(n);
                        t.sets.push(1 << s);
                    }
                }
            }
        }
        t
    }

    /// Every node in the order a write of `key` prefers them; what sloppy quorum takes
    /// stand-ins from. Only outside transitions (None during one).
    pub fn spares(&self, key: &[u8]) -> Option<Vec<usize>> {
        match self.writes.as_slice() {
            [one] => Some(one.replicas(key, self.nodes.len())),
            _ => None,
        }
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
    pub(crate) fn new(cfg: &ClientConfig, nodes: Vec<NodeHandle>) -> Result<View> {
        let nodes = sorted(nodes)?;
        let (r, w) = cfg.replication(nodes.len())?;
        let members: Vec<Member> = nodes.iter().map(|n| Member::new(n.id.clone())).collect();
        Ok(View {
            read: Routing::over(members.clone(), &nodes),
            writes: vec![Routing::over(members, &nodes)],
            nodes,
            r,
            w,
            q: cfg.read_quorum.clamp(1, r),
            layout: None,
        })
    }

    /// The view `layout` routes by. `nodes` must hold a handle for each node it names
    /// (see [`View::handles_for`]); its R is the layout's.
    pub(crate) fn routed(
        cfg: &ClientConfig,
        layout: Arc<Layout>,
        nodes: Vec<NodeHandle>,
    ) -> Result<View> {
        let epoch = layout.epoch;
        let nodes: Vec<NodeHandle> = sorted(nodes)?.iter().map(|n| n.at_epoch(epoch)).collect();
        let mut c = cfg.clone();
        c.replicas = layout.replicas as usize;
        let widest = layout.members.len().max(layout.previous.len());
        let (r, w) = c.replication(widest)?;
        let gone = &layout.gone;
        let writes = layout
            .write_members()
            .into_iter()
            .map(|set| Routing::without(members_of(set), &nodes, gone))
            .collect();
        Ok(View {
            read: Routing::without(members_of(layout.read_members()), &nodes, gone),
            writes,
            nodes,
            r,
            w,
            q: cfg.read_quorum.clamp(1, r),
            layout: Some(layout),
        })
    }
}

fn sorted(mut nodes: Vec<NodeHandle>) -> Result<Vec<NodeHandle>> {
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(d) = nodes.windows(2).find(|p| p[0].id == p[1].id) {
        return Err(Error::Config(format!(
            "two nodes claim the id {:?} ({} and {})",
            d[0].id, d[0].addr, d[1].addr
        )));
    }
    Ok(nodes)
}
