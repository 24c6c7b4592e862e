//! Moving a transition along. Every node runs this loop; only the driver of the layout
//! it holds acts on it, so each epoch has one successor (see `Layout::driver`).
//!
//! Each tick the driver sends its layout to every node the layout names. When every
//! one of them answers that it holds this epoch and has done its part of the stage
//! (for streaming: sent all it must; for the other stages, installing is the part,
//! since the fence drains requests routed by older epochs), it installs the next
//! stage and sends that. Members the transition declared gone are neither sent to nor
//! waited for. Every node also asks the others for their layout now and then
//! and installs a later one, so a node that was down when one was sent catches up; a
//! node with no layout (a new one, or one back with an empty disk) asks its peers
//! (`--peers` or Consul).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dstash_cluster::{Layout, LayoutMember, Stage};
use dstash_proto::v1::{GetLayoutRequest, LayoutState, SetLayoutRequest};
use futures_util::future::join_all;
use tonic::Status;

use super::metrics::LayoutMetrics;
use super::LayoutCell;
use crate::sync::Syncer;

const TICK: Duration = Duration::from_millis(200);
const CATCH_UP_EVERY: Duration = Duration::from_secs(2);
/// How long a node gets to answer a layout call.
const CALL: Duration = Duration::from_secs(3);

pub struct Driver {
    pub me: String,
    pub cell: Arc<LayoutCell>,
    pub syncer: Arc<Syncer>,
    pub metrics: Arc<LayoutMetrics>,
}

impl Driver {
    pub async fn run(self) {
        let mut caught_up = Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            let current = self.cell.current();
            self.metrics.held(current.as_deref());
            if caught_up.elapsed() >= CATCH_UP_EVERY {
                let (epoch, ask): (u64, Vec<(String, String)>) = match &current {
                    Some(l) => {
                        let named = l.awaited().into_iter();
                        (
                            l.epoch,
                            named.map(|m| (m.id.clone(), m.addr.clone())).collect(),
                        )
                    }
                    None => {
                        let peers = self.syncer.opts.peers.borrow().clone();
                        (0, peers.into_iter().map(|p| (p.id, p.addr)).collect())
                    }
                };
                self.catch_up(epoch, &ask).await;
                caught_up = Instant::now();
            }
            let Some(l) = current else {
                continue;
            };
            if l.stage != Stage::Stable && l.driver() == self.me {
                self.step(&l).await;
            }
        }
    }

    /// Sends `l` to every node it names but the gone; advances when all have done
    /// their part.
    async fn step(&self, l: &Layout) {
        let answers = self.send(l, &l.awaited()).await;
        let mut waiting = Vec::new();
        for (id, a) in &answers {
            match a {
                Ok(s) if s.epoch == l.epoch && s.stage_done => {}
                Ok(s) if s.epoch == l.epoch => waiting.push(format!("{id} (working)")),
                Ok(s) => waiting.push(format!("{id} (at epoch {})", s.epoch)),
                Err(e) => waiting.push(format!("{id} ({})", e.message())),
            }
        }
        if !self.cell.state(&self.me).stage_done {
            waiting.push(format!("{} (working)", self.me));
        }
        if !waiting.is_empty() {
            tracing::debug!(
                epoch = l.epoch,
                stage = l.stage.as_str(),
                ?waiting,
                "layout: waiting"
            );
            return;
        }
        let next = l.advance();
        match self.cell.install(next.clone(), Some(l.epoch)).await {
            Ok(true) => {
                tracing::info!(
                    epoch = next.epoch,
                    stage = next.stage.as_str(),
                    "layout: every node is done with {}; moving on",
                    l.stage.as_str()
                );
                // The nodes the last stage named: those leaving learn the end too.
                self.send(&next, &l.awaited()).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("layout: cannot move to the next stage: {}", e.message()),
        }
    }

    /// Sends `l` to `to` (this node left out), all at once.
    async fn send(
        &self,
        l: &Layout,
        to: &[&LayoutMember],
    ) -> Vec<(String, Result<LayoutState, Status>)> {
        let bytes: dstash_proto::Bytes = l.encode().into();
        let calls = to.iter().filter(|m| m.id != self.me).map(|m| {
            let req = SetLayoutRequest {
                layout: bytes.clone(),
            };
            let remote = self.syncer.dialer().remote(&m.addr);
            async move {
                let answer = match remote {
                    Ok(mut r) => tokio::time::timeout(CALL, r.set_layout(req))
                        .await
                        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
                        .map(|r| r.into_inner()),
                    Err(e) => Err(e),
                };
                let answer = answer.and_then(|s| match s.node_id == m.id {
                    true => Ok(s),
                    false => Err(Status::failed_precondition(format!(
                        "{} answers as node {:?}",
                        m.addr, s.node_id
                    ))),
                });
                (m.id.clone(), answer)
            }
        });
        join_all(calls).await
    }

    /// Installs any layout later than `epoch` that one of `ask` (id, address) holds.
    async fn catch_up(&self, epoch: u64, ask: &[(String, String)]) {
        let calls = ask
            .iter()
            .filter(|(id, _)| *id != self.me)
            .map(|(id, addr)| {
                let remote = self.syncer.dialer().remote(addr);
                async move {
                    let mut r = remote.ok()?;
                    let s = tokio::time::timeout(CALL, r.get_layout(GetLayoutRequest {}))
                        .await
                        .ok()?
                        .ok()?
                        .into_inner();
                    (s.node_id == *id && s.epoch > epoch)
                        .then(|| Layout::decode(&s.layout).ok())
                        .flatten()
                }
            });
        let newest = join_all(calls)
            .await
            .into_iter()
            .flatten()
            .max_by_key(|l| l.epoch);
        if let Some(n) = newest {
            let epoch = n.epoch;
            if let Err(e) = self.cell.install(n, None).await {
                tracing::warn!(
                    epoch,
                    "layout: cannot install a later layout: {}",
                    e.message()
                );
            }
        }
    }
}
