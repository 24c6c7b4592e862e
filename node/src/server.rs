//! A running node: the gRPC listener (Dstash behind auth, plus grpc.health.v1), the
//! optional metrics listener, recovery in the background, and a draining shutdown.
//!
//! Order of events:
//! - start: bind, serve health as NOT_SERVING, open (recover) the store on a blocking
//!   thread; Dstash calls meanwhile get `UNAVAILABLE`;
//! - ready: the store is open and health says SERVING;
//! - shutdown: health says NOT_SERVING, the listener closes, in-flight calls get up to
//!   the drain timeout to finish, and the store is closed cleanly so that the next
//!   start replays nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstash_proto::DstashServer;
use dstash_storage::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::error::{Error, Result};
use crate::hints::deliver::Delivery;
use crate::hints::Hints;
use crate::layout::driver::Driver;
use crate::layout::handoff::Handoff;
use crate::layout::{LayoutCell, CURSOR_FILE, LAYOUT_FILE};
use crate::metrics::{self, Metrics};
use crate::service::{NodeConfig, NodeService};
use crate::slot::StoreSlot;
use crate::sync::dial::Dialer;
use crate::sync::{SyncOptions, Syncer};
use crate::tls::TlsFiles;
use crate::TokenAuth;

/// Everything `dstash node` configures.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub store: dstash_storage::Options,
    pub service: NodeConfig,
    pub tls: Option<TlsFiles>,
    pub auth: TokenAuth,
    pub metrics_listen: Option<SocketAddr>,
    /// How long in-flight calls may run after a shutdown starts.
    pub drain_timeout: Duration,
    /// Co-replicas and anti-entropy.
    pub sync: SyncOptions,
}

impl NodeOptions {
    /// A plaintext node without auth or metrics, with default store settings. Only for
    /// loopback and tests: `dstash node` asks the operator to choose.
    pub fn insecure(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen,
            store: dstash_storage::Options::default(),
            service: NodeConfig::default(),
            tls: None,
            auth: TokenAuth::disabled(),
            metrics_listen: None,
            drain_timeout: Duration::from_secs(10),
            sync: SyncOptions::default(),
        }
    }
}

pub struct Node {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    health: HealthReporter,
    slot: StoreSlot,
    drain_timeout: Duration,
    recovery: Option<JoinHandle<Result<Duration>>>,
    stop_grpc: oneshot::Sender<()>,
    grpc: JoinHandle<Result<()>>,
    stop_metrics: Option<oneshot::Sender<()>>,
    metrics_task: Option<JoinHandle<Result<()>>>,
    serving: tokio::sync::watch::Sender<bool>,
    sync_task: JoinHandle<()>,
    hints: Arc<Hints>,
    hint_task: JoinHandle<()>,
    layout_tasks: Vec<JoinHandle<()>>,
    local: crate::local::LocalReads,
    local_batches: crate::local::LocalBatches,
}

type Served = DstashServer<NodeService>;

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    // "" is the whole server, which is what probes ask about by default.
    health.set_service_status("", status).await;
    health
        .set_service_status(<Served as tonic::server::NamedService>::NAME, status)
        .await;
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

impl Node {
    /// Binds the listeners and starts serving; the store recovers in the background
    /// (see [`Node::ready`]).
    pub async fn start(opts: NodeOptions) -> Result<Node> {
        let (dir, store_opts) = (opts.data_dir.clone(), opts.store.clone());
        Self::start_opening(opts, move || Store::open(dir, store_opts)).await
    }

    /// [`Node::start`] with the store opened by `open` (on a blocking thread): the seam
    /// tests use to hold recovery back.
    pub async fn start_opening(
        opts: NodeOptions,
        open: impl FnOnce() -> dstash_storage::Result<Store> + Send + 'static,
    ) -> Result<Node> {
        let tls = opts.tls.as_ref().map(TlsFiles::server_config).transpose()?;
        let listener = bind(opts.listen).await?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: opts.listen,
            source,
        })?;

        let slot = StoreSlot::default();
        let metrics = Arc::new(Metrics::new(slot.clone()));
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;

        let layout = Arc::new(LayoutCell::open(opts.data_dir.join(LAYOUT_FILE))?);
        let syncer = Arc::new(
            Syncer::new(
                opts.service.node_id.clone(),
                opts.sync.clone(),
                slot.clone(),
                metrics.sync.clone(),
                opts.service.max_message_bytes,
                layout.clone(),
            )
            .map_err(Error::Auth)?,
        );
        let sync_task = tokio::spawn(syncer.clone().background());
        let me = opts.service.node_id.clone();
        let layout_tasks = vec![
            tokio::spawn(
                Driver {
                    me: me.clone(),
                    cell: layout.clone(),
                    syncer: syncer.clone(),
                    metrics: metrics.layout.clone(),
                }
                .run(),
            ),
            tokio::spawn(
                Handoff {
                    me,
                    cell: layout.clone(),
                    syncer: syncer.clone(),
                    rate: opts.sync.handoff_rate,
                    cursor: Some(opts.data_dir.join(CURSOR_FILE)),
                    metrics: metrics.layout.clone(),
                }
                .run(),
            ),
        ];
        let hints = Arc::new(Hints::new(metrics.hints.clone()));
        let delivery = Delivery {
            hints: hints.clone(),
            peers: opts.sync.peers.clone(),
            dialer: Dialer::new(
                opts.sync.tls.clone(),
                opts.sync.token.as_deref(),
                opts.service.max_message_bytes,
            )
            .map_err(Error::Auth)?,
            interval: opts.sync.hint_interval,
        };
        let hint_task = tokio::spawn(delivery.run());
        let service = NodeService::new(slot.clone(), metrics.clone(), opts.service.clone())
            .with_syncer(syncer)
            .with_hints(hints.clone())
            .with_layout(layout.clone());
        let local = crate::local::LocalReads::new(slot.clone(), layout);
        let local_batches = service.local_batches();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let router = builder
            .add_service(health_service)
            .add_service(service.into_server(opts.auth.clone()));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop_grpc, stopped) = oneshot::channel::<()>();
        let grpc = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(Error::from)
        });

        let (mut stop_metrics, mut metrics_task, mut metrics_addr) = (None, None, None);
        if let Some(listen) = opts.metrics_listen {
            let metrics = metrics.clone();
            let listener = bind(listen).await?;
            metrics_addr = listener.local_addr().ok();
            let (tx, rx) = oneshot::channel::<()>();
            stop_metrics = Some(tx);
            metrics_task = Some(tokio::spawn(async move {
                metrics::serve(listener, metrics, async {
                    let _ = rx.await;
                })
                .await
                .map_err(Error::Metrics)
            }));
        }

        let (serving, _) = tokio::sync::watch::channel(false);
        let recovery = {
            let (slot, health, serving) = (slot.clone(), health.clone(), serving.clone());
            let hint_slot = hints.slot.clone();
            let (hint_dir, hint_opts) = (opts.data_dir.join(HINT_DIR), hint_options(&opts.store));
            tokio::spawn(async move {
                let started = Instant::now();
                let (store, hint_store) = tokio::task::spawn_blocking(move || {
                    let store = open()?;
                    Ok::<_, dstash_storage::Error>((store, Store::open(hint_dir, hint_opts)?))
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
                let took = started.elapsed();
                metrics.set_recovery_time(took);
                hint_slot.fill(Arc::new(hint_store));
                slot.fill(Arc::new(store));
                set_health(&health, ServingStatus::Serving).await;
                serving.send_replace(true);
                Ok(took)
            })
        };

        Ok(Node {
            addr,
            metrics_addr,
            health,
            slot,
            drain_timeout: opts.drain_timeout,
            recovery: Some(recovery),
            stop_grpc,
            grpc,
            stop_metrics,
            metrics_task,
            serving,
            sync_task,
            hints,
            hint_task,
            layout_tasks,
            local,
            local_batches,
        })
    }

    /// Reads of this node's store for a front end in the same process.
    pub fn local_reads(&self) -> crate::local::LocalReads {
        self.local.clone()
    }

    /// Batch messages applied to this node's store for a front end in the same process.
    pub fn local_batches(&self) -> crate::local::LocalBatches {
        self.local_batches.clone()
    }

    /// True while the node serves: after recovery, until a shutdown starts. What a
    /// membership check should report.
    pub fn serving(&self) -> tokio::sync::watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// The address the gRPC listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Waits for recovery; returns how long opening the store took.
    pub async fn ready(&mut self) -> Result<Duration> {
        match self.recovery.take() {
            Some(task) => task.await.map_err(|e| Error::Task(e.to_string()))?,
            None => Ok(Duration::ZERO),
        }
    }

    /// Drains and stops: see the module comment.
    pub async fn shutdown(mut self) -> Result<()> {
        self.serving.send_replace(false);
        set_health(&self.health, ServingStatus::NotServing).await;
        // A store still recovering is opened to completion so that it closes cleanly.
        let recovered = self.ready().await;
        self.serving.send_replace(false);
        self.sync_task.abort();
        self.hint_task.abort();
        for t in &self.layout_tasks {
            t.abort();
        }
        let _ = self.stop_grpc.send(());
        match tokio::time::timeout(self.drain_timeout, &mut self.grpc).await {
            Ok(joined) => joined.map_err(|e| Error::Task(e.to_string()))??,
            Err(_) => {
                tracing::warn!(
                    "calls still running after the {:?} drain timeout; cutting them off",
                    self.drain_timeout
                );
                self.grpc.abort();
            }
        }
        if let (Some(stop), Some(task)) = (self.stop_metrics.take(), self.metrics_task.take()) {
            let _ = stop.send(());
            let _ = task.await;
        }
        recovered?;
        if let Some(store) = self.slot.take() {
            close(store, self.drain_timeout).await?;
        }
        if let Some(store) = self.hints.slot.take() {
            close(store, self.drain_timeout).await?;
        }
        Ok(())
    }
}

/// The hint store's directory under the data directory: beside the served
/// namespaces (`ns/`), never among them.
pub const HINT_DIR: &str = "hints";

/// The served store's options for the hint store, with room for a hint's kind byte
/// beside a value of the largest size.
fn hint_options(o: &dstash_storage::Options) -> dstash_storage::Options {
    let mut h = o.clone();
    h.max_value_len = o.max_value_len.saturating_add(1);
    h
}

/// Closes the store once the last blocking call holding it has returned.
async fn close(mut store: Arc<Store>, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(store) {
            Ok(store) => {
                return tokio::task::spawn_blocking(move || store.close())
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
                    .map_err(Error::from);
            }
            Err(shared) if Instant::now() < deadline => {
                store = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                // Acknowledged writes are durable already; the next start replays the tail.
                tracing::warn!(
                    "storage calls still running at exit; the store was not closed cleanly"
                );
                return Ok(());
            }
        }
    }
}

/// The process's SIGTERM and SIGINT, installed once before serving so that a failure
/// to install them is an error at start, not a panic later.
pub struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Termination {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the next SIGTERM or SIGINT.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
