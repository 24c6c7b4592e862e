//! Writes of single keys: sent to every replica at once, answered once W acknowledge;
//! with sloppy quorum, a replica that is suspect or down is stood in for by the next
//! node in placement order, which holds the write as a hint.

use std::future::Future;
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tonic::Status;

use crate::client::{failure, rejected, Client};
use crate::conn::Rpc;
use crate::error::Result;
use crate::health::{is_transport, NodeState};
use crate::quorum::{Outcome, Tally};
use crate::resolve::wire_version;
use crate::view::View;

/// A unary write as a closure over a cloned request, with `hint_for` set per call.
macro_rules! hinted {
    ($req:expr, $method:ident) => {{
        let req = $req;
        move |mut rpc: Rpc, hint_for: String| {
            let mut req = req.clone();
            req.hint_for = hint_for;
            async move { rpc.$method(req).await }
        }
    }};
}

/// Where one replica's copy of a write goes: the replica itself, or (sloppy quorum) a
/// stand-in further down the placement order that holds it as a hint for the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    node: usize,
    hint_for: Option<usize>,
    /// The replica's place in the write's tally: a stand-in shares its owner's.
    slot: usize,
}

/// The targets of one write, and (sloppy quorum) the stand-ins not used yet.
struct Plan {
    targets: Vec<Target>,
    /// Nodes after the replicas in placement order that were up, best first.
    spare: std::vec::IntoIter<usize>,
}

impl Plan {
    /// One target per replica. Without `sloppy`, the replicas themselves. With it, a
    /// replica that is not up is stood in for by the next spare; a replica with no
    /// spare left is written itself. A layout transition has no spares: its writes go
    /// to the old and the new owners themselves.
    fn new(
        view: &View,
        replicas: &[usize],
        key: &[u8],
        states: &[NodeState],
        sloppy: bool,
    ) -> Plan {
        let spare: Vec<usize> = match sloppy {
            true => view.spares(key).unwrap_or_default(),
            false => Vec::new(),
        }
        .into_iter()
        .filter(|i| !replicas.contains(i) && states[*i] == NodeState::Up)
        .collect();
        let mut plan = Plan {
            targets: Vec::with_capacity(replicas.len()),
            spare: spare.into_iter(),
        };
        for (slot, &i) in replicas.iter().enumerate() {
            let own = Target {
                node: i,
                hint_for: None,
                slot,
            };
            let t = match states[i] {
                NodeState::Up => None,
                _ => plan.stand_in(own),
            };
            plan.targets.push(t.unwrap_or(own));
        }
        plan
    }

    /// Sloppy quorum hedges: when each replica written itself gets a stand-in beside
    /// it if still silent (its attempt deadline, `floor` to `cap`). Both may land; the
    /// owner keeps the newest version. None when there is no spare.
    fn hedge_times(&self, view: &View, floor: Duration, cap: Duration) -> Vec<(Instant, Target)> {
        if self.spare.len() == 0 {
            return Vec::new();
        }
        let now = Instant::now();
        self.targets
            .iter()
            .filter(|t| t.hint_for.is_none())
            .map(|&t| {
                let d = view.nodes[t.node].health.attempt_deadline(floor, cap);
                (now + d, t)
            })
            .collect()
    }

    /// The next spare, to hold the write for `t`'s replica.
    fn stand_in(&mut self, t: Target) -> Option<Target> {
        self.spare.next().map(|node| Target {
            node,
            hint_for: Some(t.node),
            slot: t.slot,
        })
    }
}

fn describe(view: &View, t: &Target) -> String {
    match t.hint_for {
        Some(o) => format!("{} (hint for {})", view.nodes[t.node].id, view.nodes[o].id),
        None => view.nodes[t.node].id.clone(),
    }
}

impl Client {
    /// Sends a write to every replica of `key` at once and returns the answers of the
    /// first W. The other calls run on: they are not cancelled. `f` makes the call,
    /// given the id of the node a stand-in holds the write for ("" for none).
    ///
    /// With `sloppy` (and [`ClientConfig::sloppy_quorum`]), a replica that is not up,
    /// that fails at the transport during the write, or that is still silent at its
    /// attempt deadline (its latency estimate, at least
    /// [`ClientConfig::batch_attempt`]), is stood in for by the next node in placement
    /// order, which holds the write as a hint. One acknowledgement per replica counts.
    ///
    /// When fewer than W targets are up, the write cannot reach W without a doubted
    /// node: each of those gets only [`ClientConfig::batch_attempt`] to answer, so the
    /// write fails fast, naming it, instead of waiting out the call's deadline.
    ///
    /// [`ClientConfig::sloppy_quorum`]: crate::ClientConfig::sloppy_quorum
    /// [`ClientConfig::batch_attempt`]: crate::ClientConfig::batch_attempt
    async fn write<T, F, Fut>(&self, key: &[u8], retry: bool, sloppy: bool, f: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Rpc, String) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>> + Send + 'static,
    {
        let view = self.view();
        let states = view.states(Instant::now());
        let targets = view.write_targets(key);
        let sloppy = sloppy && self.cfg.sloppy_quorum;
        let mut plan = Plan::new(&view, &targets.nodes, key, &states, sloppy);
        let names = plan.targets.iter().map(|t| describe(&view, t)).collect();
        let mut tally = Tally::of(names, &targets);
        // W above the replicas: refuse before sending anything.
        if tally.outcome() == Outcome::Failed {
            return Err(tally.error());
        }
        let sent: Vec<usize> = plan.targets.iter().map(|t| t.node).collect();
        let doubt = targets
            .short_of_up(&sent, &states)
            .then_some(self.cfg.batch_attempt);
        let send = |t: Target| {
            let node = view.nodes[t.node].clone();
            let owner = t.hint_for.map(|o| view.nodes[o].id.clone());
            let limit = doubt.filter(|_| states[t.node] != NodeState::Up);
            let (client, f) = (self.clone(), f.clone());
            tokio::spawn(async move {
                let owner = owner.unwrap_or_default();
                let call = client.call(&node, retry, |rpc| f(rpc, owner.clone()));
                let r = match limit {
                    None => call.await,
                    Some(d) => tokio::time::timeout(d, call).await.unwrap_or_else(|_| {
                        node.health.suspect(Instant::now());
                        Err(Status::deadline_exceeded(format!(
                            "suspect, and no answer within {d:?}"
                        )))
                    }),
                };
                (t, node, r)
            })
        };
        let mut answers: FuturesUnordered<_> = plan.targets.iter().map(|&t| send(t)).collect();
        // Per replica slot: attempts running, and whether it is settled (acked or failed).
        let mut running = vec![1usize; plan.targets.len()];
        let mut settled = vec![false; plan.targets.len()];
        let mut hedges = plan.hedge_times(&view, self.cfg.batch_attempt, self.cfg.timeout);
        let mut acked = Vec::new();
        while !answers.is_empty() {
            let next_hedge = hedges.iter().map(|h| h.0).min();
            let hedge = async {
                match next_hedge {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let joined = tokio::select! {
                Some(joined) = answers.next() => joined,
                _ = hedge => {
                    let now = Instant::now();
                    let (due, rest) = hedges.into_iter().partition(|h| h.0 <= now);
                    hedges = rest;
                    for (_, t) in due as Vec<(Instant, Target)> {
                        if settled[t.slot] {
                            continue;
                        }
                        view.nodes[t.node].health.suspect(now);
                        if let Some(s) = plan.stand_in(t) {
                            running[t.slot] += 1;
                            answers.push(send(s));
                        }
                    }
                    continue;
                }
            };
            let Ok((t, node, r)) = joined else { continue };
            running[t.slot] -= 1;
            if settled[t.slot] {
                continue; // the other attempt for this replica answered first
            }
            let outcome = match r {
                Ok(v) => {
                    acked.push(v);
                    settled[t.slot] = true;
                    tally.ack(t.slot)
                }
                Err(s) => match rejected(&node, &s) {
                    Some(e) => return Err(e),
                    None => {
                        let again = match t.hint_for {
                            None if running[t.slot] == 0 && is_transport(s.code()) => {
                                plan.stand_in(t)
                            }
                            _ => None,
                        };
                        if let Some(t) = again {
                            running[t.slot] += 1;
                            answers.push(send(t));
                        }
                        if running[t.slot] > 0 {
                            continue;
                        }
                        settled[t.slot] = true;
                        tally.fail(t.slot, failure(&node, &s))
                    }
                },
            };
            match outcome {
                Outcome::Done => {
                    // The other replicas' calls run on; a process about to exit waits
                    // for them (`finish_background`).
                    self.spawn_background(async move { while answers.next().await.is_some() {} });
                    return Ok(acked);
                }
                Outcome::Failed => return Err(tally.error()),
                Outcome::Waiting => {}
            }
        }
        Err(tally.error())
    }

    pub async fn put(&self, ns: &str, key: &[u8], value: &[u8], ttl_seconds: u32) -> Result<()> {
        self.routed(|| self.put_once(ns, key, value, ttl_seconds))
            .await
    }

    async fn put_once(&self, ns: &str, key: &[u8], value: &[u8], ttl_seconds: u32) -> Result<()> {
        let req = PutRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_seconds,
            version: wire_version(self.next_version()),
            hint_for: String::new(),
        };
        self.write(key, true, true, hinted!(req, put))
            .await
            .map(drop)
    }

    /// Deletes `key` from its replicas, leaving a tombstone of this delete's version on
    /// each; true when any replica that answered had a live value.
    pub async fn delete(&self, ns: &str, key: &[u8]) -> Result<bool> {
        self.routed(|| self.delete_once(ns, key)).await
    }

    async fn delete_once(&self, ns: &str, key: &[u8]) -> Result<bool> {
        let req = DeleteRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            version: wire_version(self.next_version()),
            hint_for: String::new(),
        };
        let answers = self.write(key, true, true, hinted!(req, delete)).await?;
        Ok(answers.iter().any(|a| a.found))
    }

    /// Adds `n` events to `key` on its replicas; returns the highest count among the W
    /// that acknowledged. Retried like a put, on a transport failure and when refused
    /// for an old layout: the add carries one request id through every retry, and a
    /// replica that has applied it answers without counting again.
    ///
    /// The events are stamped with this client's second, so every replica counts them
    /// in that same second (and a handoff that merges replicas' cells counts them once).
    pub async fn add(&self, ns: &str, key: &[u8], n: u32) -> Result<u64> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = crate::request_id::new();
        self.routed(|| self.add_once(ns, key, n, at, &id)).await
    }

    async fn add_once(&self, ns: &str, key: &[u8], n: u32, at: u64, id: &str) -> Result<u64> {
        let req = AddRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            n,
            at_seconds: at,
            request_id: id.to_string(),
        };
        // Counts carry no version to order a hint by: never sloppy.
        let answers = self
            .write(key, true, false, move |mut rpc: Rpc, _: String| {
                let req = req.clone();
                async move { rpc.add(req).await }
            })
            .await?;
        Ok(answers.iter().map(|a| a.count).max().unwrap_or(0))
    }
}
