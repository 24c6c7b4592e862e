//! The client: a handle on the cluster's view, the one call every request goes
//! through (deadline, retries), listing and status. Writes are in `write.rs`, reads in
//! `read.rs`, batches in `batch.rs`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use dstash_cluster::{Hlc, Version};

use crate::config::ClientConfig;
use crate::conn::Rpc;
use crate::error::{Error, NodeFailure, Result};
use crate::view::{NodeHandle, View};

#[derive(Clone)]
pub struct Client {
    pub(crate) cfg: Arc<ClientConfig>,
    view: Arc<RwLock<Arc<View>>>,
    /// Versions every write of this client carries; moved past every version it reads.
    pub(crate) hlc: Arc<Hlc>,
    /// Read repairs still running in the background.
    repairs: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Replica writes read repair started, and those that failed.
    pub(crate) repairs_started: Arc<AtomicU64>,
    pub(crate) repairs_failed: Arc<AtomicU64>,
    pub(crate) metrics: Arc<ClientMetrics>,
}

/// What the client counts of its own calls, for `dstash status` and embedders.
#[derive(Debug, Default)]
pub struct ClientMetrics {
    /// Reads sent to a further replica because an attempt ran past its deadline: single
    /// reads, and batch messages whose node did not answer in time.
    pub hedges_sent: AtomicU64,
    /// Single reads a hedge answered first.
    pub hedges_won: AtomicU64,
    /// Single reads the first replica answered first after all, though hedged: the
    /// hedge was an extra request for nothing.
    pub hedges_wasted: AtomicU64,
}

/// A writer id for a new client: random, so two clients never share one.
fn writer_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(dstash_cluster::version::wall_millis() as u128);
    h.write_u32(std::process::id());
    h.finish()
}

pub(crate) fn failure(node: &NodeHandle, s: &Status) -> NodeFailure {
    failure_of(&node.id, s)
}

pub(crate) fn failure_of(node: &str, s: &Status) -> NodeFailure {
    NodeFailure {
        node: node.to_string(),
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// Turns a node's error into the call's error when it refuses the request itself
/// (bad input, auth, an old layout): asking another replica would not help.
pub(crate) fn rejected(node: &NodeHandle, s: &Status) -> Option<Error> {
    crate::error::refused(&failure(node, s))
}

/// A unary call as a closure over a cloned request, for [`Client::call`].
macro_rules! unary {
    ($req:expr, $method:ident) => {{
        let req = $req;
        move |mut rpc: $crate::conn::Rpc| {
            let req = req.clone();
            async move { rpc.$method(req).await }
        }
    }};
}
pub(crate) use unary;

/// Per-node status, as `dstash status` shows it.
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    pub status: std::result::Result<StatusResponse, Status>,
    /// How the client sees the node after this call.
    pub state: crate::health::NodeState,
    /// The node's smoothed read latency, once it answered a read.
    pub latency: Option<Duration>,
}

impl Client {
    /// A client with no nodes yet.
    pub(crate) fn empty(cfg: ClientConfig) -> Client {
        Self::empty_shared(Arc::new(cfg))
    }

    pub(crate) fn empty_shared(cfg: Arc<ClientConfig>) -> Client {
        Self::from_parts(cfg, Arc::new(RwLock::new(Arc::new(View::empty()))))
    }

    pub(crate) fn from_parts(cfg: Arc<ClientConfig>, view: Arc<RwLock<Arc<View>>>) -> Client {
        Client {
            cfg,
            view,
            hlc: Arc::new(Hlc::new(writer_id())),
            repairs: Arc::default(),
            repairs_started: Arc::default(),
            repairs_failed: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Runs a read repair, or the rest of a write that returned at W, in the
    /// background; [`finish_background`](Self::finish_background) waits for it.
    pub(crate) fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.repairs.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= 1024 {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(tokio::spawn(task));
    }

    /// Waits for the read repairs, and the replica writes still running after their
    /// write returned at W, started so far: what a process that is about to exit calls,
    /// so that they are not cut short.
    pub async fn finish_background(&self) {
        loop {
            let tasks =
                std::mem::take(&mut *self.repairs.lock().unwrap_or_else(|e| e.into_inner()));
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    /// The client's own counters.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.metrics
    }

    /// The version for a write made now.
    pub fn next_version(&self) -> Version {
        self.hlc.now()
    }

    pub(crate) fn view_cell(&self) -> Arc<RwLock<Arc<View>>> {
        self.view.clone()
    }

    /// Replaces the node set (membership changes): one atomic swap of the whole view.
    /// Once the client routes by a layout, the layout names the nodes and this changes
    /// nothing.
    pub fn set_nodes(&self, nodes: Vec<NodeHandle>) -> Result<()> {
        let view = View::new(&self.cfg, nodes)?;
        self.swap_view(|old| old.layout.is_none().then_some(view));
        Ok(())
    }

    /// Swaps in the view `make` returns from the current one, if it returns one.
    pub(crate) fn swap_view(&self, make: impl FnOnce(&View) -> Option<View>) {
        let mut cell = self.view.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = make(&cell) {
            *cell = Arc::new(v);
        }
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One call on one node, with the deadline, and retries with backoff while the node
    /// answers UNAVAILABLE at once (when `retry` allows: only idempotent calls).
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
        if let Some(left) = node.health.down_for(Instant::now()) {
            return Err(Status::unavailable(format!(
                "{} is marked down for another {left:.1?} after failed calls",
                node.id
            )));
        }
        let mut attempt = 0;
        // A node that took this long to fail (a connect timeout, a dropped keep-alive)
        // would likely take as long again: it is not retried.
        let slow_failure = self.cfg.connect_timeout.min(self.cfg.keepalive);
        loop {
            let started = Instant::now();
            let answer = match tokio::time::timeout(self.cfg.timeout, f(node.rpc.clone())).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    self.cfg.timeout
                ))),
            };
            match answer {
                Err(s)
                    if retry
                        && s.code() == Code::Unavailable
                        && attempt < self.cfg.retries
                        && started.elapsed() < slow_failure =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                other => {
                    let code = other.as_ref().err().map(Status::code);
                    node.health.record(code, Instant::now());
                    return other;
                }
            }
        }
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
                Err(s) => match rejected(node, &s) {
                    Some(e) => return Err(e),
                    None => failures.push(failure(node, &s)),
                },
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
            let t = Instant::now();
            let status = self
                .call(node, false, |mut rpc| async move {
                    rpc.status(StatusRequest {}).await
                })
                .await;
            if status.is_ok() {
                node.health.sample(t.elapsed());
            }
            NodeStatus {
                id: node.id.clone(),
                addr: node.addr.clone(),
                status,
                state: node.health.state_at(Instant::now()),
                latency: node.health.latency(),
            }
        });
        futures_util::future::join_all(asks).await
    }
}
