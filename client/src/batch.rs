//! Batches: split by owning node (rayon for the hashing of large batches), one
//! bidirectional stream per node, all nodes at once, a bounded number of unanswered
//! messages per stream, and results put back in input order.
//!
//! - Writes go to each key's R replicas; a key is written once W of them acknowledged
//!   the batch holding it. A node that fails mid-stream fails its unacknowledged
//!   batches, and the keys that then miss their quorum are reported, one by one.
//! - Reads go to each key's best replica; keys that have not yet had the read quorum of
//!   answers with a version (a failed node, a replica that holds nothing or a damaged
//!   record) are asked of the next replica. The newest version wins and is written back
//!   to the replicas found lagging (`resolve.rs` states the rules).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use rayon::prelude::*;
use tokio::sync::{mpsc, Semaphore};
use tonic::{Status, Streaming};

use crate::client::{failure, Client};
use crate::conn::Rpc;
use crate::error::{is_rejection, Error, NodeFailure, Result};
use crate::health::NodeState;
use crate::quorum::{Outcome, Tally};
use crate::resolve::{wire_version, Held, Replies};
use crate::view::{NodeHandle, View};

/// One key to write.
#[derive(Debug, Clone)]
pub struct PutItem {
    pub key: Bytes,
    pub value: Bytes,
    pub ttl_seconds: u32,
}

/// What a batch write did, key by key.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub written: u64,
    /// Input positions of the keys that missed their quorum, with why.
    pub failed: Vec<(usize, Error)>,
}

/// Above this many keys, placement is computed on rayon's threads.
const PARALLEL_PLACEMENT: usize = 4096;

fn replicas_of<'a>(
    view: &View,
    keys: impl IndexedParallelIterator<Item = &'a [u8]>,
) -> Vec<Vec<usize>> {
    if keys.len() >= PARALLEL_PLACEMENT {
        keys.map(|k| view.replicas(k)).collect()
    } else {
        let keys: Vec<&[u8]> = keys.collect();
        keys.into_iter().map(|k| view.replicas(k)).collect()
    }
}

/// A replica's answer that it holds the key's record damaged.
fn damaged(node: &NodeHandle) -> NodeFailure {
    NodeFailure {
        node: node.id.clone(),
        code: tonic::Code::DataLoss,
        message: "the replica's record for this key is damaged".into(),
    }
}

/// How a batch stream is run: unanswered messages at most, how long to wait for each
/// answer, and whether answers feed the node's latency estimate (reads do).
#[derive(Clone, Copy)]
struct Pace {
    in_flight: usize,
    deadline: Duration,
    sample: bool,
    /// Ask even a node marked down: a retry of one an earlier attempt cut short.
    patient: bool,
    /// `deadline` is a read's attempt deadline: missing it makes the node suspect, not
    /// down.
    short: bool,
}

/// Sends `batches` on one stream opened by `open`, paced by `pace`. Returns the answers
/// received, in order, and the failure that ended the stream early, if one did: a node
/// that gives no answer within the deadline fails with DEADLINE_EXCEEDED.
async fn stream<Req, Resp, F, Fut>(
    node: &NodeHandle,
    batches: Vec<Req>,
    pace: Pace,
    open: F,
) -> (Vec<Resp>, Option<NodeFailure>)
where
    Req: Send + 'static,
    F: FnOnce(Rpc, tokio_stream::wrappers::ReceiverStream<Req>) -> Fut,
    Fut: Future<Output = std::result::Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    let total = batches.len();
    if total == 0 {
        return (Vec::new(), None);
    }
    if let Some(left) = node
        .health
        .down_for(Instant::now())
        .filter(|_| !pace.patient)
    {
        let s = Status::unavailable(format!(
            "marked down for another {left:.1?} after failed calls"
        ));
        return (Vec::new(), Some(failure(node, &s)));
    }
    let permits = Arc::new(Semaphore::new(pace.in_flight.max(1)));
    let (tx, rx) = mpsc::channel::<Req>(1);
    let feeder = {
        let permits = permits.clone();
        tokio::spawn(async move {
            for b in batches {
                let Ok(p) = permits.clone().acquire_owned().await else {
                    return;
                };
                p.forget(); // given back when the answer arrives
                if tx.send(b).await.is_err() {
                    return; // the stream ended
                }
            }
        })
    };
    let mut answers = Vec::with_capacity(total);
    let result: std::result::Result<(), Status> = async {
        let late = || Status::deadline_exceeded(format!("no answer within {:?}", pace.deadline));
        let opened = open(
            node.rpc.clone(),
            tokio_stream::wrappers::ReceiverStream::new(rx),
        );
        let mut responses = tokio::time::timeout(pace.deadline, opened)
            .await
            .map_err(|_| late())??
            .into_inner();
        let mut since = Instant::now();
        while answers.len() < total {
            let next = tokio::time::timeout(pace.deadline, responses.message())
                .await
                .map_err(|_| late())??;
            match next {
                Some(r) => {
                    if pace.sample {
                        node.health.sample(since.elapsed());
                        since = Instant::now();
                    }
                    answers.push(r);
                    permits.add_permits(1);
                }
                None => return Err(Status::unavailable("the node ended the stream early")),
            }
        }
        Ok(())
    }
    .await;
    feeder.abort();
    let code = result.as_ref().err().map(Status::code);
    match code {
        Some(tonic::Code::DeadlineExceeded) if pace.short => node.health.suspect(Instant::now()),
        _ => node.health.record(code, Instant::now()),
    }
    (answers, result.err().map(|s| failure(node, &s)))
}

impl Client {
    /// Writes every item to its replicas. Per-key results: see [`LoadReport`]. Fails as
    /// a whole only when the input itself is refused (`Error::Rejected`).
    pub async fn put_many(&self, ns: &str, items: &[PutItem]) -> Result<LoadReport> {
        let view = self.view();
        if view.w > view.r {
            // No key can reach W: refuse before sending anything.
            let ids = view.nodes.iter().map(|n| n.id.clone()).collect();
            return Err(Tally::new(ids, view.w).error());
        }
        let placed = replicas_of(&view, items.par_iter().map(|i| i.key.as_ref()));
        // Per node: the positions of the items it holds, in input order.
        let mut per_node: Vec<Vec<usize>> = vec![Vec::new(); view.nodes.len()];
        for (pos, replicas) in placed.iter().enumerate() {
            for &n in replicas {
                per_node[n].push(pos);
            }
        }
        // One version per item, taken now: a later call's writes sort after these.
        let versions: Vec<_> = items
            .iter()
            .map(|_| wire_version(self.next_version()))
            .collect();
        let chunk = self.cfg.batch_keys.max(1);
        let runs = per_node.iter().enumerate().map(|(n, positions)| {
            let node = view.nodes[n].clone();
            let batches: Vec<PutBatch> = positions
                .chunks(chunk)
                .enumerate()
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
            let pace = Pace {
                in_flight: self.cfg.in_flight,
                deadline: self.cfg.timeout,
                sample: false,
                patient: false,
                short: false,
            };
            async move {
                let (acks, failed) = stream(&node, batches, pace, |mut rpc, s| async move {
                    rpc.batch_put(s).await
                })
                .await;
                (acks.len(), failed)
            }
        });
        let results = futures_util::future::join_all(runs).await;

        let mut tallies: Vec<Tally> = placed
            .iter()
            .map(|r| {
                Tally::new(
                    r.iter().map(|&n| view.nodes[n].id.clone()).collect(),
                    view.w,
                )
            })
            .collect();
        for (n, (acked_batches, failed)) in results.into_iter().enumerate() {
            let acked_keys = (acked_batches * chunk).min(per_node[n].len());
            for &p in &per_node[n][..acked_keys] {
                tallies[p].ack();
            }
            if let Some(f) = failed {
                if is_rejection(f.code) {
                    return Err(Error::Rejected(f));
                }
                for &p in &per_node[n][acked_keys..] {
                    tallies[p].fail(f.clone());
                }
            }
        }
        let mut report = LoadReport::default();
        for (p, t) in tallies.into_iter().enumerate() {
            match t.outcome() {
                Outcome::Done => report.written += 1,
                _ => report.failed.push((p, t.error())),
            }
        }
        Ok(report)
    }

    /// Looks up every key; results in input order. Each key is read as [`Client::get`]
    /// reads one (read quorum, newest version wins, lagging replicas repaired), rank by
    /// rank: all keys' best replicas at once, then the next replica of the keys still
    /// short of their quorum. Fails only if some key could be read from none of its
    /// replicas, or the input is refused.
    pub async fn get_many(&self, ns: &str, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        let q = self.view().q;
        self.get_many_quorum(ns, keys, q).await
    }

    /// [`get_many`](Self::get_many) with read quorum `q` (capped at R).
    pub(crate) async fn get_many_quorum(
        &self,
        ns: &str,
        keys: &[Bytes],
        q: usize,
    ) -> Result<Vec<Option<Bytes>>> {
        let view = self.view();
        let mut placed = replicas_of(&view, keys.par_iter().map(|k| k.as_ref()));
        let now = Instant::now();
        let states = view.states(now);
        if states.iter().any(|&s| s != NodeState::Up) {
            // Suspect and down nodes are asked last: their share goes to the next replica.
            for replicas in &mut placed {
                *replicas = view.read_order(std::mem::take(replicas), &states);
            }
        }
        // Per key, replicas by index into the view: no handle clone per key.
        let mut replies: Vec<Replies<usize>> = keys.iter().map(|_| Replies::default()).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let chunk = self.cfg.batch_keys.max(1);
        // A replica that failed a key's read (cut short by its attempt deadline, skipped
        // as marked down, or broken) is appended to the key's list, past `base`: if the
        // key is still short of its quorum once its replicas were asked, it is asked
        // again, patiently (the call's deadline, even if marked down). A miss is thus
        // never decided while a replica that may hold the key went unheard.
        let base: Vec<usize> = placed.iter().map(Vec::len).collect();
        for rank in 0.. {
            pending.retain(|&p| placed[p].len() > rank);
            if pending.is_empty() {
                break;
            }
            let mut per_node: Vec<Vec<usize>> = vec![Vec::new(); view.nodes.len()];
            for &p in &pending {
                if let Some(&n) = placed[p].get(rank) {
                    per_node[n].push(p);
                }
            }
            // A node whose keys can all go on to an answering replica gets its attempt
            // deadline; one that is some key's last hope, the call's. States are read
            // again each rank: the last one may have marked nodes.
            let states = view.states(now);
            let short: Vec<bool> = per_node
                .iter()
                .map(|positions| {
                    positions.iter().all(|&p| {
                        rank + 1 < base[p] && states[placed[p][rank + 1]] == NodeState::Up
                    })
                })
                .collect();
            let runs = per_node.iter().enumerate().map(|(n, positions)| {
                let node = view.nodes[n].clone();
                let batches: Vec<LookupBatch> = positions
                    .chunks(chunk)
                    .enumerate()
                    .map(|(id, ps)| LookupBatch {
                        namespace: ns.to_string(),
                        keys: ps.iter().map(|&p| keys[p].clone()).collect(),
                        batch_id: id as u64,
                    })
                    .collect();
                let deadline = match short[n] {
                    true => node
                        .health
                        .attempt_deadline(self.cfg.batch_attempt, self.cfg.timeout),
                    false => self.cfg.timeout,
                };
                let pace = Pace {
                    in_flight: self.cfg.in_flight,
                    deadline,
                    sample: true,
                    patient: positions.iter().any(|&p| rank >= base[p]),
                    short: short[n],
                };
                async move {
                    stream(&node, batches, pace, |mut rpc, s| async move {
                        rpc.batch_lookup(s).await
                    })
                    .await
                }
            });
            let answers = futures_util::future::join_all(runs).await;
            for (n, (batches, failed)) in answers.into_iter().enumerate() {
                let node = &view.nodes[n];
                let mut answered = 0;
                for (batch, ps) in batches.iter().zip(per_node[n].chunks(chunk)) {
                    for (r, &p) in batch.results.iter().zip(ps) {
                        let held = Held::of(r);
                        if held == Held::Damaged {
                            replies[p].failures.push(damaged(node));
                        }
                        replies[p].answers.push((n, held));
                    }
                    answered += ps.len();
                }
                if let Some(f) = failed {
                    if is_rejection(f.code) {
                        return Err(Error::Rejected(f));
                    }
                    let cut_short = short[n] && f.code == tonic::Code::DeadlineExceeded;
                    if cut_short {
                        self.metrics.hedges_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    for &p in &per_node[n][answered..] {
                        replies[p].failures.push(f.clone());
                        if rank < base[p] {
                            placed[p].push(n);
                        }
                    }
                }
            }
            pending.retain(|&p| replies[p].informed() < q);
        }
        replies
            .iter_mut()
            .zip(keys)
            .map(|(r, key)| self.settle(ns, key, r, |&n| view.nodes[n].clone()))
            .collect()
    }
}
