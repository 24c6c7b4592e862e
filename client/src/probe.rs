//! Background probing: every node the client holds suspect or down is asked for its
//! status a few times a second, so reads stop paying for a frozen node while it stays
//! frozen, and it is used again within one probe of answering.
//!
//! A node stays doubted while its probe runs. A probe that answers, or that the node
//! refuses (a wrong token), clears it (up); one that fails or finds no answer within the
//! probe interval keeps it suspect (or down, after a transport failure) at least until
//! the next probe has had its time, whatever the while it was marked for. Up nodes are
//! not probed: their calls are the probe.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use dstash_proto::v1::StatusRequest;

use crate::error::is_rejection;
use crate::health::{is_transport, NodeState};
use crate::view::{NodeHandle, View};

/// Probes the nodes of `view` that are not up every `every`, for as long as the
/// client lives.
pub(crate) async fn probe_while_alive(view: Weak<RwLock<Arc<View>>>, every: Duration) {
    let every = every.max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let Some(cell) = view.upgrade() else {
            return; // the client is gone
        };
        let snapshot = cell.read().unwrap_or_else(|e| e.into_inner()).clone();
        drop(cell);
        let now = Instant::now();
        let doubted = snapshot
            .nodes
            .iter()
            .filter(|n| n.health.state_at(now) != NodeState::Up)
            .map(|n| probe(n.clone(), every));
        futures_util::future::join_all(doubted).await;
    }
}

/// One probe of `node`, answered within `deadline` or held against it.
async fn probe(node: NodeHandle, deadline: Duration) {
    // Doubted until this probe says otherwise: the mark must not lapse while it runs.
    node.health.suspect_for(Instant::now(), deadline * 3);
    let mut rpc = node.rpc.clone();
    let answer = tokio::time::timeout(deadline, rpc.status(StatusRequest {})).await;
    let now = Instant::now();
    match answer {
        Ok(Ok(_)) => node.health.answered(),
        Ok(Err(s)) if is_transport(s.code()) => node.health.failed(now),
        // The node answered, refusing the request (auth): it is up to calls, which
        // report that error themselves.
        Ok(Err(s)) if is_rejection(s.code()) => node.health.answered(),
        // Anything else (a broken stream, an internal error) proves nothing.
        Ok(Err(_)) => node.health.suspect_for(now, deadline * 3),
        // Until past the next probe's deadline, so the mark cannot lapse between probes.
        Err(_) => node.health.suspect_for(now, deadline * 3),
    }
}
