//! The client: placement over the cluster's nodes, quorum writes and failover reads for
//! single keys. Batches are in `batch.rs`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tonic::{Code, Status};

use crate::config::ClientConfig;
use crate::conn::{channel, Rpc};
use crate::error::{is_rejection, Error, NodeFailure, Result};
use crate::placement::{Member, Placement};
use crate::quorum::{Outcome, Tally};

/// A node the client talks to.
#[derive(Clone)]
pub struct NodeHandle {
    pub id: String,
    pub addr: String,
    pub rpc: Rpc,
}

/// The cluster as one snapshot: swapped whole when membership changes, so a call sees
/// one consistent placement from start to end.
pub struct View {
    pub placement: Placement,
    /// Same order as `placement.members()`.
    pub nodes: Vec<NodeHandle>,
    pub r: usize,
    pub w: usize,
}

impl View {
    fn empty() -> View {
        View {
            placement: Placement::new(vec![]),
            nodes: vec![],
            r: 0,
            w: 0,
        }
    }

    /// The replicas of `key`, best first.
    pub fn replicas(&self, key: &[u8]) -> Vec<usize> {
        self.placement.replicas(key, self.r)
    }

    fn ids(&self, replicas: &[usize]) -> Vec<String> {
        replicas.iter().map(|&i| self.nodes[i].id.clone()).collect()
    }
}

#[derive(Clone)]
pub struct Client {
    pub(crate) cfg: Arc<ClientConfig>,
    view: Arc<RwLock<Arc<View>>>,
}

pub(crate) fn failure(node: &NodeHandle, s: &Status) -> NodeFailure {
    NodeFailure {
        node: node.id.clone(),
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// Per-node status, as `dstash status` shows it.
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    pub status: std::result::Result<StatusResponse, Status>,
}

impl Client {
    /// Connects to the configured nodes, learning the ids of nodes given without one.
    pub async fn connect(cfg: ClientConfig) -> Result<Client> {
        if cfg.nodes.is_empty() {
            return Err(Error::Config(
                "no nodes given (--nodes ID=HOST:PORT,...)".into(),
            ));
        }
        let cfg = Arc::new(cfg);
        let mut nodes = Vec::new();
        for spec in &cfg.nodes {
            let mut rpc = channel(&cfg, &spec.addr)?;
            let id = match &spec.id {
                Some(id) => id.clone(),
                None => {
                    let asked =
                        tokio::time::timeout(cfg.connect_timeout, rpc.status(StatusRequest {}))
                            .await
                            .map_err(|_| Status::deadline_exceeded("no answer"))
                            .and_then(|r| r);
                    match asked {
                        Ok(s) => s.into_inner().node_id,
                        Err(e) => {
                            return Err(Error::Connect {
                                addr: spec.addr.clone(),
                                reason: format!(
                                    "asking its node id: {}; give the node as ID={}",
                                    e.message(),
                                    spec.addr
                                ),
                            })
                        }
                    }
                }
            };
            nodes.push(NodeHandle {
                id,
                addr: spec.addr.clone(),
                rpc,
            });
        }
        let client = Client {
            cfg,
            view: Arc::new(RwLock::new(Arc::new(View::empty()))),
        };
        client.set_nodes(nodes)?;
        Ok(client)
    }

    /// A client with no nodes yet.
    pub(crate) fn empty(cfg: ClientConfig) -> Client {
        Client {
            cfg: Arc::new(cfg),
            view: Arc::new(RwLock::new(Arc::new(View::empty()))),
        }
    }

    pub(crate) fn from_parts(cfg: Arc<ClientConfig>, view: Arc<RwLock<Arc<View>>>) -> Client {
        Client { cfg, view }
    }

    pub(crate) fn view_cell(&self) -> Arc<RwLock<Arc<View>>> {
        self.view.clone()
    }

    /// Replaces the node set (membership changes): one atomic swap of the whole view.
    pub fn set_nodes(&self, mut nodes: Vec<NodeHandle>) -> Result<()> {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(d) = nodes.windows(2).find(|p| p[0].id == p[1].id) {
            return Err(Error::Config(format!(
                "two nodes claim the id {:?} ({} and {})",
                d[0].id, d[0].addr, d[1].addr
            )));
        }
        let (r, w) = self.cfg.replication(nodes.len())?;
        let placement = Placement::new(
            nodes
                .iter()
                .map(|n| Member {
                    id: n.id.clone(),
                    weight: 1.0,
                })
                .collect(),
        );
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(View {
            placement,
            nodes,
            r,
            w,
        });
        Ok(())
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One call on one node, with the deadline, and retries with backoff while the node
    /// answers UNAVAILABLE (when `retry` allows: only idempotent calls).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        node: &NodeHandle,
        retry: bool,
        f: F,
    ) -> std::result::Result<T, Status>
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut attempt = 0;
        loop {
            let answer = match tokio::time::timeout(self.cfg.timeout, f(node.rpc.clone())).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    self.cfg.timeout
                ))),
            };
            match answer {
                Err(s) if retry && s.code() == Code::Unavailable && attempt < self.cfg.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Sends a write to every replica of `key` at once and returns the answers of the
    /// first W. The other replicas' calls run on: they are not cancelled.
    async fn write<T, F, Fut>(&self, key: &[u8], retry: bool, f: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Rpc) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>> + Send + 'static,
    {
        let view = self.view();
        let replicas = view.replicas(key);
        let mut tally = Tally::new(view.ids(&replicas), view.w);
        // W above the replicas: refuse before sending anything.
        if tally.outcome() == Outcome::Failed {
            return Err(tally.error());
        }
        let mut answers: FuturesUnordered<_> = replicas
            .iter()
            .map(|&i| {
                let (client, node, f) = (self.clone(), view.nodes[i].clone(), f.clone());
                tokio::spawn(async move {
                    let r = client.call(&node, retry, f).await;
                    (node, r)
                })
            })
            .collect();
        let mut acked = Vec::new();
        while let Some(joined) = answers.next().await {
            let Ok((node, r)) = joined else { continue };
            let outcome = match r {
                Ok(v) => {
                    acked.push(v);
                    tally.ack()
                }
                Err(s) if is_rejection(s.code()) => {
                    return Err(Error::Rejected(failure(&node, &s)))
                }
                Err(s) => tally.fail(failure(&node, &s)),
            };
            match outcome {
                Outcome::Done => return Ok(acked),
                Outcome::Failed => return Err(tally.error()),
                Outcome::Waiting => {}
            }
        }
        Err(tally.error())
    }

    pub async fn put(&self, ns: &str, key: &[u8], value: &[u8], ttl_seconds: u32) -> Result<()> {
        let req = PutRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_seconds,
        };
        self.write(key, true, move |mut rpc| {
            let req = req.clone();
            async move { rpc.put(req).await }
        })
        .await
        .map(drop)
    }

    /// Deletes `key` from its replicas; true when any replica that answered had it.
    pub async fn delete(&self, ns: &str, key: &[u8]) -> Result<bool> {
        let req = DeleteRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
        };
        let answers = self
            .write(key, true, move |mut rpc| {
                let req = req.clone();
                async move { rpc.delete(req).await }
            })
            .await?;
        Ok(answers.iter().any(|a| a.found))
    }

    /// Adds `n` events to `key` on its replicas; returns the highest count among the W
    /// that acknowledged. Not retried: a retry could count an event twice.
    pub async fn add(&self, ns: &str, key: &[u8], n: u32) -> Result<u64> {
        let req = AddRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            n,
        };
        let answers = self
            .write(key, false, move |mut rpc| {
                let req = req.clone();
                async move { rpc.add(req).await }
            })
            .await?;
        Ok(answers.iter().map(|a| a.count).max().unwrap_or(0))
    }

    /// Reads `key` from its best replica, failing over to the next on an error or
    /// timeout. A replica that lacks a key another has gets it written back.
    pub async fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let view = self.view();
        let req = LookupRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
        };
        let mut failures = Vec::new();
        let mut lacking = Vec::new();
        for i in view.replicas(key) {
            let node = &view.nodes[i];
            let r = self
                .call(node, true, |mut rpc| {
                    let req = req.clone();
                    async move { rpc.lookup(req).await }
                })
                .await;
            match r {
                Ok(a) if a.found => {
                    self.repair(&lacking, ns, key, a.value.clone(), a.ttl_seconds);
                    return Ok(Some(a.value));
                }
                Ok(_) => lacking.push(node.clone()),
                Err(s) if is_rejection(s.code()) => return Err(Error::Rejected(failure(node, &s))),
                Err(s) => failures.push(failure(node, &s)),
            }
        }
        if lacking.is_empty() {
            Err(Error::Unavailable { failures })
        } else {
            Ok(None)
        }
    }

    /// Writes a value back to replicas found lacking it, in the background.
    pub(crate) fn repair(
        &self,
        lacking: &[NodeHandle],
        ns: &str,
        key: &[u8],
        value: Bytes,
        ttl_seconds: u32,
    ) {
        for node in lacking {
            let req = PutRequest {
                namespace: ns.into(),
                key: Bytes::copy_from_slice(key),
                value: value.clone(),
                ttl_seconds,
            };
            let (client, node) = (self.clone(), node.clone());
            tokio::spawn(async move {
                let r = client
                    .call(&node, true, |mut rpc| {
                        let req = req.clone();
                        async move { rpc.put(req).await }
                    })
                    .await;
                if let Err(e) = r {
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
        let view = self.view();
        let req = CountRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            window_seconds,
        };
        let mut failures = Vec::new();
        let mut best = None;
        for i in view.replicas(key) {
            let node = &view.nodes[i];
            let r = self
                .call(node, true, |mut rpc| {
                    let req = req.clone();
                    async move { rpc.count(req).await }
                })
                .await;
            match r {
                Ok(a) if !max_over_replicas => return Ok(a.count),
                Ok(a) => best = Some(best.unwrap_or(0).max(a.count)),
                Err(s) if is_rejection(s.code()) => return Err(Error::Rejected(failure(node, &s))),
                Err(s) => failures.push(failure(node, &s)),
            }
        }
        best.ok_or(Error::Unavailable { failures })
    }

    /// Every key matching `pattern` on any node, each once, sorted.
    pub async fn keys(&self, ns: &str, pattern: &str, counters: bool) -> Result<BTreeSet<Bytes>> {
        let view = self.view();
        let req = KeysRequest {
            namespace: ns.into(),
            pattern: pattern.into(),
            limit: 0,
            counters,
        };
        let mut all = BTreeSet::new();
        let mut failures = Vec::new();
        let listings = view.nodes.iter().map(|node| {
            let req = req.clone();
            async move {
                let r: std::result::Result<Vec<Bytes>, Status> = async {
                    let mut stream = node.rpc.clone().keys(req).await?.into_inner();
                    let mut keys = Vec::new();
                    while let Some(chunk) = stream.message().await? {
                        keys.extend(chunk.keys);
                    }
                    Ok(keys)
                }
                .await;
                (node, r)
            }
        });
        for (node, r) in futures_util::future::join_all(listings).await {
            match r {
                Ok(keys) => all.extend(keys),
                Err(s) if is_rejection(s.code()) => return Err(Error::Rejected(failure(node, &s))),
                Err(s) => failures.push(failure(node, &s)),
            }
        }
        // A key lives on R nodes: with fewer than R failures every key was still seen.
        if failures.len() >= view.r {
            return Err(Error::Unavailable { failures });
        }
        Ok(all)
    }

    /// Status of every node, reachable or not.
    pub async fn status(&self) -> Vec<NodeStatus> {
        let view = self.view();
        let asks = view.nodes.iter().map(|node| async move {
            let status = self
                .call(node, false, |mut rpc| async move {
                    rpc.status(StatusRequest {}).await
                })
                .await;
            NodeStatus {
                id: node.id.clone(),
                addr: node.addr.clone(),
                status,
            }
        });
        futures_util::future::join_all(asks).await
    }
}
