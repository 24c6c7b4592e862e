//! A pass: every namespace against every co-replica. On demand it runs as fast as it
//! can; in the background it paces itself to [`SyncOptions::keys_per_sec`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use dstash_cluster::{Member, Placement};
use dstash_proto::v1::{NamespaceStatus, StatusRequest};
use dstash_storage::Store;
use tonic::Status;

use super::dial::Dialer;
use super::metrics::SyncMetrics;
use super::session::Session;
use super::{Peer, SyncOptions, Tally};
use crate::layout::handoff::pace;
use crate::layout::LayoutCell;
use crate::slot::StoreSlot;

pub struct Syncer {
    pub self_id: String,
    pub opts: SyncOptions,
    dialer: Dialer,
    slot: StoreSlot,
    pub metrics: Arc<SyncMetrics>,
    layout: Arc<LayoutCell>,
}

/// How one pass runs.
pub struct PassPlan {
    pub members: Vec<Peer>,
    pub replicas: usize,
    /// Only peers whose id sorts after this node's.
    pub higher_peers_only: bool,
    /// Pace pushes and pulls to this many records per second (0: no pacing).
    pub keys_per_sec: u64,
}

impl Syncer {
    pub fn new(
        self_id: String,
        opts: SyncOptions,
        slot: StoreSlot,
        metrics: Arc<SyncMetrics>,
        max_message_bytes: usize,
        layout: Arc<LayoutCell>,
    ) -> Result<Self, String> {
        let dialer = Dialer::new(opts.tls.clone(), opts.token.as_deref(), max_message_bytes)?;
        Ok(Self {
            self_id,
            opts,
            dialer,
            slot,
            metrics,
            layout,
        })
    }

    pub(crate) fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    pub(crate) fn slot(&self) -> &StoreSlot {
        &self.slot
    }

    /// A session of `ns` against the peer at `addr`, with the store's clock and grace.
    pub(crate) fn session(
        &self,
        store: &Arc<Store>,
        addr: &str,
        ns: &str,
    ) -> Result<Session, Status> {
        Ok(Session {
            store: store.clone(),
            remote: self.dialer.remote(addr)?,
            ns: ns.to_string(),
            now: store.options().clock.now_secs(),
            grace: store.options().tombstone_grace_secs,
            tally: Tally::default(),
        })
    }

    /// The members and copies of each key anti-entropy runs over: the layout's when the
    /// node has one (None while a transition runs: its streaming moves the data), else
    /// `--peers` and `--replicas`.
    pub fn members_now(&self) -> Option<(Vec<Peer>, usize)> {
        match self.layout.current() {
            Some(l) if l.stage != dstash_cluster::Stage::Stable => None,
            Some(l) => Some((
                l.members
                    .iter()
                    .map(|m| Peer {
                        id: m.id.clone(),
                        addr: m.addr.clone(),
                    })
                    .collect(),
                l.replicas as usize,
            )),
            None => Some((self.opts.peers.borrow().clone(), self.opts.replicas)),
        }
    }

    /// One pass as planned, reporting the running tally after every session.
    pub async fn run(&self, plan: PassPlan, mut progress: impl FnMut(&Tally)) -> Tally {
        let mut tally = Tally::default();
        if let Err(e) = self.run_inner(&plan, &mut tally, &mut progress).await {
            tally.failed += 1;
            tally.error = e.message().to_string();
        }
        self.metrics.passes.inc();
        tally
    }

    async fn run_inner(
        &self,
        plan: &PassPlan,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Tally),
    ) -> Result<(), Status> {
        let store = self.slot.get()?;
        let placement = Placement::new(
            plan.members
                .iter()
                .map(|m| Member::new(m.id.clone()))
                .collect(),
        );
        let me = placement.position(&self.self_id).ok_or_else(|| {
            Status::invalid_argument(format!(
                "this node ({}) is not among the members given",
                self.self_id
            ))
        })?;
        let peers: Vec<(usize, &Peer)> = plan
            .members
            .iter()
            .filter_map(|p| placement.position(&p.id).map(|i| (i, p)))
            .filter(|(i, p)| *i != me && (!plan.higher_peers_only || p.id > self.self_id))
            .collect();
        let work: Vec<(&Peer, Vec<u32>)> = peers
            .iter()
            .map(|(i, p)| (*p, placement.shared_partitions(me, *i, plan.replicas)))
            .filter(|(_, parts)| !parts.is_empty())
            .collect();
        let mut namespaces: BTreeSet<String> = store.namespaces().into_iter().collect();
        let mut reachable = Vec::with_capacity(work.len());
        for (peer, parts) in work {
            match self.peer_namespaces(peer).await {
                Ok(ns) => {
                    super::settings::take_newer(&store, &peer.id, &ns).await;
                    namespaces.extend(ns.into_iter().map(|n| n.name));
                    reachable.push((peer, parts));
                }
                // An unreachable peer fails once, not once per namespace.
                Err(e) => self.fail(tally, peer, &e),
            }
        }
        let work = reachable;
        tally.partitions_total =
            (work.iter().map(|(_, p)| p.len()).sum::<usize>() * namespaces.len()) as u64;
        progress(tally);
        let started = Instant::now();
        for (peer, parts) in &work {
            for ns in &namespaces {
                let mut s = self.session(&store, &peer.addr, ns)?;
                if let Err(e) = s.run(parts).await {
                    self.fail(&mut s.tally, peer, &e);
                    s.tally.partitions_done = parts.len() as u64;
                }
                self.metrics.record(&s.tally);
                tally.add(&s.tally);
                progress(tally);
                pace(started, tally.pushed + tally.pulled, plan.keys_per_sec).await;
            }
        }
        Ok(())
    }

    async fn peer_namespaces(&self, peer: &Peer) -> Result<Vec<NamespaceStatus>, Status> {
        let mut remote = self.dialer.remote(&peer.addr)?;
        let st = remote.status(StatusRequest {}).await?.into_inner();
        if st.node_id != peer.id {
            return Err(Status::failed_precondition(format!(
                "{} answers as node {:?}, not {:?}",
                peer.addr, st.node_id, peer.id
            )));
        }
        Ok(st.namespaces)
    }

    fn fail(&self, tally: &mut Tally, peer: &Peer, e: &Status) {
        tracing::warn!(peer = %peer.id, "anti-entropy: {}", e.message());
        tally.failed += 1;
        tally.error = format!("{} ({}): {}", peer.id, peer.addr, e.message());
    }

    /// Background passes against the configured peers until the task is dropped.
    pub async fn background(self: Arc<Self>) {
        if self.opts.interval.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.opts.interval).await;
            let Some((members, replicas)) = self.members_now() else {
                continue;
            };
            // A node the layout released has no co-replicas.
            let member = members.iter().any(|m| m.id == self.self_id);
            if members.len() < 2 || !member || self.slot.get().is_err() {
                continue;
            }
            let plan = PassPlan {
                members,
                replicas,
                higher_peers_only: false,
                keys_per_sec: self.opts.keys_per_sec,
            };
            let t = self.run(plan, |_| {}).await;
            tracing::debug!(
                compared = t.keys_compared,
                pushed = t.pushed,
                pulled = t.pulled,
                failed = t.failed,
                "anti-entropy pass"
            );
        }
    }
}
