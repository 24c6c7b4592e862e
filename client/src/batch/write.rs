//! `put_many` and `delete_many`: every node's share streamed at once; the call returns as soon as every
//! key has its W acknowledgements or cannot get them, not when the slowest replica is
//! done. A replica still streaming then goes on in the background, up to
//! [`WRITES_BEHIND`] calls' worth per node; past that the call waits for it, so a slow
//! node slows its writers instead of piling up work, unless the node is suspect or
//! down: then its share is dropped (every key of it has W elsewhere; anti-entropy
//! brings the node the rest).

use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use rayon::prelude::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{placed, stream, LoadReport, Pace, PutItem};
use crate::client::Client;
use crate::error::{refused, NodeFailure, Result};
use crate::health::NodeState;
use crate::quorum::{Outcome, Tally};
use crate::resolve::wire_version;
use crate::view::View;

/// Streams of earlier `put_many` calls a node may still be answering in the
/// background.
pub const WRITES_BEHIND: usize = 4;

/// What a batch write sends: values, or tombstones.
#[derive(Clone, Copy)]
enum Writes<'a> {
    Puts(&'a [PutItem]),
    Deletes(&'a [Bytes]),
}

impl Writes<'_> {
    fn len(&self) -> usize {
        match self {
            Writes::Puts(i) => i.len(),
            Writes::Deletes(k) => k.len(),
        }
    }

    fn keys(&self) -> impl IndexedParallelIterator<Item = &[u8]> {
        let (puts, dels): (&[PutItem], &[Bytes]) = match self {
            Writes::Puts(i) => (i, &[]),
            Writes::Deletes(k) => (&[], k),
        };
        puts.par_iter()
            .map(|i| i.key.as_ref())
            .chain(dels.par_iter().map(|k| k.as_ref()))
    }
}

/// One node's share of a batch write.
struct Share<'a> {
    n: usize,
    ns: &'a str,
    items: Writes<'a>,
    versions: &'a [Option<Version>],
    positions: &'a [usize],
}

/// What a node's stream reports: batches acknowledged so far, then its end.
enum Progress {
    Acked {
        node: usize,
        batches: usize,
        /// Per key of the batch just acknowledged: the node held a live value (deletes).
        found: Vec<bool>,
    },
    Ended {
        node: usize,
        failed: Option<NodeFailure>,
    },
}

impl Client {
    /// Writes every item to its replicas. Per-key results: see [`LoadReport`]. Fails as
    /// a whole only when the input itself is refused (`Error::Rejected`).
    pub async fn put_many(&self, ns: &str, items: &[PutItem]) -> Result<LoadReport> {
        self.routed(|| self.write_many_once(ns, Writes::Puts(items), None))
            .await
    }

    /// [`put_many`](Self::put_many) with each item's version given (a restore): a
    /// replica holding a newer version of a key keeps it.
    pub async fn put_many_at(
        &self,
        ns: &str,
        items: &[PutItem],
        versions: &[dstash_cluster::Version],
    ) -> Result<LoadReport> {
        if versions.len() != items.len() {
            let e = format!("{} versions for {} items", versions.len(), items.len());
            return Err(crate::error::Error::Input(e));
        }
        for v in versions {
            self.hlc.observe(*v);
        }
        self.routed(|| self.write_many_once(ns, Writes::Puts(items), Some(versions)))
            .await
    }

    /// Deletes every key (a tombstone at a version taken now) on its replicas, with
    /// the same quorum and per-key results as [`put_many`](Self::put_many);
    /// `existed` counts the keys some replica held a live value for.
    pub async fn delete_many(&self, ns: &str, keys: &[Bytes]) -> Result<LoadReport> {
        self.routed(|| self.write_many_once(ns, Writes::Deletes(keys), None))
            .await
    }

    async fn write_many_once(
        &self,
        ns: &str,
        items: Writes<'_>,
        given: Option<&[dstash_cluster::Version]>,
    ) -> Result<LoadReport> {
        let view = self.view();
        if view.w > view.r {
            // No key can reach W: refuse before sending anything.
            let ids = view.nodes.iter().map(|n| n.id.clone()).collect();
            return Err(Tally::new(ids, view.w).error());
        }
        let placed = placed(items.keys(), |k| view.write_targets(k));
        // Per node: the positions of the items it holds, in input order, with the
        // node's place among each item's targets.
        let mut per_node: Vec<Vec<usize>> = vec![Vec::new(); view.nodes.len()];
        let mut slot_of: Vec<Vec<u8>> = vec![Vec::new(); view.nodes.len()];
        for (pos, targets) in placed.iter().enumerate() {
            for (slot, &n) in targets.nodes.iter().enumerate() {
                per_node[n].push(pos);
                slot_of[n].push(slot as u8);
            }
        }
        // One version per item, given or taken now: a later call's writes sort after
        // these.
        let versions: Vec<_> = match given {
            Some(v) => v.iter().map(|v| wire_version(*v)).collect(),
            None => (0..items.len())
                .map(|_| wire_version(self.next_version()))
                .collect(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs: Vec<JoinHandle<()>> = (0..view.nodes.len())
            .map(|n| {
                let share = Share {
                    n,
                    ns,
                    items,
                    versions: &versions,
                    positions: &per_node[n],
                };
                self.spawn_share(&view, share, tx.clone())
            })
            .collect();
        drop(tx);

        let chunk = self.cfg.batch_keys.max(1);
        let mut tallies: Vec<Tally> = Tally::for_each(&view, &placed);
        // Keys not yet written nor out of reach of W, and each node's acknowledged keys.
        let mut open = items.len();
        let mut decided = vec![false; items.len()];
        let mut existed = vec![false; items.len()];
        let mut acked = vec![0usize; view.nodes.len()];
        let mut settle = |p: usize, outcome: Outcome, open: &mut usize| {
            if outcome != Outcome::Waiting && !decided[p] {
                decided[p] = true;
                *open -= 1;
            }
        };
        while open > 0 {
            let Some(event) = rx.recv().await else { break };
            let (n, batches, failed) = match event {
                Progress::Acked {
                    node,
                    batches,
                    found,
                } => {
                    let from = (batches.saturating_sub(1) * chunk).min(per_node[node].len());
                    for (&p, f) in per_node[node][from..].iter().zip(found) {
                        existed[p] |= f;
                    }
                    (node, batches, None)
                }
                Progress::Ended { node, failed } => (node, 0, failed),
            };
            let upto = (batches * chunk).min(per_node[n].len()).max(acked[n]);
            for (&p, &slot) in per_node[n][acked[n]..upto]
                .iter()
                .zip(&slot_of[n][acked[n]..upto])
            {
                settle(p, tallies[p].ack(slot as usize), &mut open);
            }
            acked[n] = upto;
            if let Some(f) = failed {
                if let Some(e) = refused(&f) {
                    return Err(e);
                }
                for (&p, &slot) in per_node[n][acked[n]..].iter().zip(&slot_of[n][acked[n]..]) {
                    settle(p, tallies[p].fail(slot as usize, f.clone()), &mut open);
                }
            }
        }
        // Nodes that answered none of their share while every key was decided.
        let silent: Vec<bool> = (0..view.nodes.len())
            .map(|n| !per_node[n].is_empty() && acked[n] == 0)
            .collect();
        self.leave_behind(&view, runs, &silent).await;
        let mut report = LoadReport {
            existed: existed.iter().filter(|e| **e).count() as u64,
            ..LoadReport::default()
        };
        for (p, t) in tallies.into_iter().enumerate() {
            match t.outcome() {
                Outcome::Done => report.written += 1,
                _ => report.failed.push((p, t.error())),
            }
        }
        Ok(report)
    }

    /// Starts node `n`'s share of the items: its positions, cut into messages, on one
    /// stream, reporting each acknowledgement and the end on `tx`.
    fn spawn_share(
        &self,
        view: &View,
        share: Share<'_>,
        tx: mpsc::UnboundedSender<Progress>,
    ) -> JoinHandle<()> {
        let Share {
            n,
            ns,
            items,
            versions,
            positions,
        } = share;
        let node = view.nodes[n].clone();
        let chunks = positions.chunks(self.cfg.batch_keys.max(1)).enumerate();
        // A doubted node gets the attempt deadline per answer, as a single write that
        // needs it does: keys that need it fail fast, and the others do not wait for it.
        let doubted = node.state() != NodeState::Up;
        let pace = Pace {
            in_flight: self.cfg.in_flight,
            deadline: match doubted {
                true => self.cfg.batch_attempt,
                false => self.cfg.timeout,
            },
            sample: false,
            patient: false,
            short: doubted,
        };
        let tx_end = tx.clone();
        let acked = move |batches, found| {
            let _ = tx.send(Progress::Acked {
                node: n,
                batches,
                found,
            });
        };
        let ended = move |tx: mpsc::UnboundedSender<Progress>, failed| {
            let _ = tx.send(Progress::Ended { node: n, failed });
        };
        match items {
            Writes::Puts(items) => {
                let batches: Vec<PutBatch> = chunks
                    .map(|(id, ps)| PutBatch {
                        namespace: ns.to_string(),
                        entries: ps
                            .iter()
                            .map(|&p| Entry {
                                key: items[p].key.clone(),
                                value: items[p].value.clone(),
                                ttl_seconds: items[p].ttl_seconds,
                                version: versions[p],
                                tombstone: false,
                            })
                            .collect(),
                        batch_id: id as u64,
                    })
                    .collect();
                tokio::spawn(async move {
                    let acks = |_: &PutBatchAck, done| acked(done, Vec::new());
                    let open = |mut rpc: crate::conn::Rpc, s| async move { rpc.batch_put(s).await };
                    let (_, failed) = stream(&node, batches, pace, acks, open).await;
                    ended(tx_end, failed);
                })
            }
            Writes::Deletes(keys) => {
                let batches: Vec<DeleteBatch> = chunks
                    .map(|(id, ps)| DeleteBatch {
                        namespace: ns.to_string(),
                        keys: ps.iter().map(|&p| keys[p].clone()).collect(),
                        versions: ps.iter().filter_map(|&p| versions[p]).collect(),
                        batch_id: id as u64,
                    })
                    .collect();
                tokio::spawn(async move {
                    let acks = |a: &DeleteBatchAck, done| acked(done, a.found.clone());
                    let open =
                        |mut rpc: crate::conn::Rpc, s| async move { rpc.batch_delete(s).await };
                    let (_, failed) = stream(&node, batches, pace, acks, open).await;
                    ended(tx_end, failed);
                })
            }
        }
    }

    /// The shares still streaming once every key is decided: each goes on in the
    /// background while its node has fewer than [`WRITES_BEHIND`] such; otherwise it
    /// is waited for here, or dropped if the node is suspect or down, or answered none
    /// of this call's share (`silent`).
    async fn leave_behind(&self, view: &View, runs: Vec<JoinHandle<()>>, silent: &[bool]) {
        for (n, run) in runs.into_iter().enumerate() {
            if run.is_finished() {
                continue;
            }
            match view.nodes[n].behind.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.spawn_background(async move {
                        let _ = run.await;
                        drop(permit);
                    });
                }
                // A doubted node's share is given up: its keys have their W elsewhere,
                // and anti-entropy brings it the rest. So is the share of a node silent
                // in this call too, with earlier calls' shares still unanswered: it is
                // marked suspect. An up node that is answering is waited for.
                Err(_) if silent[n] || view.nodes[n].state() != NodeState::Up => {
                    view.nodes[n].health.suspect(Instant::now());
                    run.abort();
                }
                Err(_) => {
                    let _ = run.await;
                }
            }
        }
    }
}
