//! Reads of single keys: the best answering replica first, failing over to the next on
//! an error and hedging to it when an attempt runs past its deadline; a value found
//! after replicas that lacked it is written back to them.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use tonic::{Code, Status};

use crate::client::{failure, rejected, unary, Client};
use crate::conn::Rpc;
use crate::error::{Error, Result};
use crate::resolve::{wire_version, Held, Replies};
use crate::view::NodeHandle;

/// One replica's reply to a failover read: its answer, or the error (not a rejection)
/// that moves the read on to the next replica.
pub(crate) enum Reply<'a, T> {
    Answer(T),
    Failed(&'a Status),
}

/// What one replica's reply means to a failover read.
pub(crate) enum Step<R> {
    /// The read is answered.
    Done(R),
    /// Ask the next replica.
    Next,
}

impl Client {
    /// Asks `key`'s replicas, best answering first (suspect and down nodes last), handing
    /// each reply to `reply` until it is `Done`. An error moves on to the next replica at
    /// once; an attempt still unanswered after its node's attempt deadline is hedged: the
    /// next replica is asked while the first may still answer, and the node is marked
    /// suspect. The first reply that makes the read `Done` wins and the others are
    /// dropped (cancelled). A rejection ends the read. `Ok(None)`: every replica was asked
    /// and at least one answered; `Unavailable` when none did.
    pub(crate) async fn failover<T, R, F, Fut>(
        &self,
        key: &[u8],
        f: F,
        mut reply: impl FnMut(&NodeHandle, Reply<'_, T>) -> Step<R>,
    ) -> Result<Option<R>>
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let view = self.view();
        let order = view.read_order(view.replicas(key), &view.states(Instant::now()));
        let mut failures = Vec::new();
        let mut answered = false;
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        // The attempt the hedge timer watches, and when it fires.
        let mut watched: Option<(usize, Instant)> = None;
        let mut hedged = false;
        let f = &f;
        loop {
            if running.is_empty() {
                let Some(&i) = order.get(next) else { break };
                next += 1;
                running.push(self.timed_attempt(&view.nodes[i], f));
                watched = Some((i, Instant::now() + self.hedge_deadline(&view.nodes[i])));
            }
            let hedge = async {
                match watched {
                    Some((i, at)) if next < order.len() => {
                        tokio::time::sleep_until(at.into()).await;
                        i
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((node, r)) = running.next() => {
                    let node: &NodeHandle = node;
                    let step = match r {
                        Ok(a) => {
                            answered = true;
                            reply(node, Reply::Answer(a))
                        }
                        Err(s) => match rejected(node, &s) {
                            Some(e) => return Err(e),
                            None => {
                                failures.push(failure(node, &s));
                                reply(node, Reply::Failed(&s))
                            }
                        },
                    };
                    if let Step::Done(r) = step {
                        if hedged {
                            let first = std::ptr::eq(node, &view.nodes[order[0]]);
                            let counter = match first {
                                true => &self.metrics.hedges_wasted,
                                false => &self.metrics.hedges_won,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        return Ok(Some(r));
                    }
                }
                slow = hedge => {
                    view.nodes[slow].health.suspect(Instant::now());
                    let i = order[next];
                    next += 1;
                    hedged = true;
                    self.metrics.hedges_sent.fetch_add(1, Ordering::Relaxed);
                    running.push(self.timed_attempt(&view.nodes[i], f));
                    watched = Some((i, Instant::now() + self.hedge_deadline(&view.nodes[i])));
                }
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(Error::Unavailable { failures })
        }
    }

    /// One read attempt on `node`; an answer feeds the node's latency estimate.
    async fn timed_attempt<'n, T, F, Fut>(
        &self,
        node: &'n NodeHandle,
        f: &F,
    ) -> (&'n NodeHandle, std::result::Result<T, Status>)
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let t = Instant::now();
        let r = self.call(node, true, f).await;
        if r.is_ok() {
            node.health.sample(t.elapsed());
        }
        (node, r)
    }

    /// How long a single read waits on `node` before asking the next replica too.
    fn hedge_deadline(&self, node: &NodeHandle) -> std::time::Duration {
        node.health
            .attempt_deadline(self.cfg.hedge_after, self.cfg.timeout)
    }

    /// Reads `key` from its replicas, best first, until the read quorum of them answered
    /// with a value or a tombstone (a replica that holds nothing, or fails, moves the
    /// read on). The newest version wins; replicas found lagging get it written back.
    pub async fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let entry = self.routed(|| self.get_once(ns, key)).await?;
        Ok(entry.map(|(v, _)| v))
    }

    /// [`get`](Self::get) with the value's seconds to live (0: it never expires).
    pub async fn get_with_ttl(&self, ns: &str, key: &[u8]) -> Result<Option<(Bytes, u32)>> {
        self.routed(|| self.get_once(ns, key)).await
    }

    async fn get_once(&self, ns: &str, key: &[u8]) -> Result<Option<(Bytes, u32)>> {
        let req = LookupRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
        };
        let q = self.view().q;
        let mut replies = Replies::<NodeHandle>::default();
        self.failover(
            key,
            unary!(req, lookup),
            |node, r: Reply<'_, LookupResponse>| {
                match r {
                    Reply::Answer(a) => replies.answers.push((node.clone(), Held::of(&a))),
                    Reply::Failed(s) if s.code() == Code::DataLoss => {
                        replies.answers.push((node.clone(), Held::Damaged))
                    }
                    Reply::Failed(_) => {}
                }
                match replies.informed() >= q {
                    true => Step::Done(()),
                    false => Step::Next,
                }
            },
        )
        .await?;
        self.settle(ns, key, &mut replies, NodeHandle::clone)?;
        replies.entry()
    }

    /// The read's answer from the replies; the winner is written back to the lagging.
    /// `replies` name their replicas by `N`; `node` turns one into its handle, for the
    /// repairs only (a batch keeps node indexes per key, not handles).
    pub(crate) fn settle<N: Clone>(
        &self,
        ns: &str,
        key: &[u8],
        replies: &mut Replies<N>,
        node: impl Fn(&N) -> NodeHandle,
    ) -> Result<Option<Bytes>> {
        if let Some(winner) = replies.winner().cloned() {
            if let Some(v) = winner.version() {
                self.hlc.observe(v);
            }
            let lagging: Vec<NodeHandle> = replies.lagging().iter().map(node).collect();
            self.repairs_started
                .fetch_add(lagging.len() as u64, Ordering::Relaxed);
            self.repair(&lagging, ns, key, &winner);
        }
        replies.outcome()
    }

    /// Writes the winning value or tombstone, with its version, back to replicas found
    /// lagging, in the background. A replica that meanwhile took a newer write keeps it:
    /// the repair is stale there.
    pub(crate) fn repair(&self, lagging: &[NodeHandle], ns: &str, key: &[u8], winner: &Held) {
        for node in lagging {
            let (client, node, winner) = (self.clone(), node.clone(), winner.clone());
            let (ns, key) = (ns.to_string(), Bytes::copy_from_slice(key));
            self.spawn_background(async move {
                let r = match winner {
                    Held::Value {
                        value,
                        ttl_seconds,
                        version,
                    } => {
                        let req = PutRequest {
                            namespace: ns,
                            key,
                            value,
                            ttl_seconds,
                            version: wire_version(version),
                            hint_for: String::new(),
                        };
                        client.call(&node, true, unary!(req, put)).await.map(drop)
                    }
                    Held::Tombstone(version) => {
                        let req = DeleteRequest {
                            namespace: ns,
                            key,
                            version: wire_version(version),
                            hint_for: String::new(),
                        };
                        client
                            .call(&node, true, unary!(req, delete))
                            .await
                            .map(drop)
                    }
                    Held::Nothing | Held::Damaged => Ok(()),
                };
                if let Err(e) = r {
                    client.repairs_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(node = %node.id, "read repair failed: {}", e.message());
                }
            });
        }
    }

    /// Counts `key`'s events in the last `window_seconds` (0: the retention) on its best
    /// answering replica, or with `max_over_replicas` the highest count of all of them.
    pub async fn count(
        &self,
        ns: &str,
        key: &[u8],
        window_seconds: u32,
        max_over_replicas: bool,
    ) -> Result<u64> {
        self.routed(|| self.count_once(ns, key, window_seconds, max_over_replicas))
            .await
    }

    async fn count_once(
        &self,
        ns: &str,
        key: &[u8],
        window_seconds: u32,
        max_over_replicas: bool,
    ) -> Result<u64> {
        let req = CountRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            window_seconds,
        };
        let mut best = 0;
        let first = self
            .failover(key, unary!(req, count), |_, r: Reply<'_, CountResponse>| {
                let Reply::Answer(a) = r else {
                    return Step::Next;
                };
                if max_over_replicas {
                    best = best.max(a.count);
                    Step::Next
                } else {
                    Step::Done(a.count)
                }
            })
            .await?;
        Ok(first.unwrap_or(best))
    }
}
