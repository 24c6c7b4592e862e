//! The node's layout: held in memory, kept in `<data>/layout`, and the fence that
//! orders requests against layout changes.
//!
//! Invariant: once [`LayoutCell::install`] returns for epoch E, no request routed by
//! an epoch below E is running or will run here. Each request holds a read guard of
//! the fence for as long as it touches the store; installing takes the write guard, so
//! it waits for those running and the epoch check refuses those that follow. That is
//! what lets a driver start streaming once every node acknowledged the write-both
//! stage: no write acknowledged after that went to the old owners only.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dstash_cluster::{Layout, Stage};
use dstash_proto::v1::{LayoutState, RepairProgress};
use parking_lot::Mutex;
use tokio::sync::{watch, RwLock, RwLockReadGuard};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The metadata a request names the layout epoch it was routed by in.
pub const EPOCH_HEADER: &str = "dstash-epoch";
/// The metadata a refusal names the node's epoch in.
pub const CURRENT_EPOCH_HEADER: &str = "dstash-layout-epoch";

#[derive(Default)]
struct Held {
    layout: Option<Arc<Layout>>,
    stage_done: bool,
    handoff: RepairProgress,
    handoff_epoch: u64,
    handoff_secs: f64,
}

pub struct LayoutCell {
    /// None: kept in memory only (tests, tools).
    path: Option<PathBuf>,
    held: Mutex<Held>,
    epoch: AtomicU64,
    fence: RwLock<()>,
    changed: watch::Sender<Option<Arc<Layout>>>,
}

/// Why the layout file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason}); restore it from another node's (dstash layout show) or remove it to rejoin without one")]
    Damaged { path: String, reason: String },
}

/// Whether a node has its part of `stage` done the moment it installs it: all but
/// streaming, which it finishes by sending, and cleanup, by forgetting.
fn done_on_install(stage: Stage) -> bool {
    !matches!(stage, Stage::Streaming | Stage::Cleanup)
}

impl LayoutCell {
    /// A cell with no layout, kept in memory only.
    pub fn in_memory() -> Self {
        Self::with(None, None)
    }

    /// The cell kept at `path`, with the layout stored there, if any.
    pub fn open(path: PathBuf) -> Result<Self, LayoutFileError> {
        let shown = path.display().to_string();
        let layout = match std::fs::read(&path) {
            Ok(b) => Some(Layout::decode(&b).map_err(|e| LayoutFileError::Damaged {
                path: shown,
                reason: e.0,
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(LayoutFileError::Read {
                    path: shown,
                    source,
                })
            }
        };
        Ok(Self::with(Some(path), layout))
    }

    fn with(path: Option<PathBuf>, layout: Option<Layout>) -> Self {
        let layout = layout.map(Arc::new);
        let epoch = layout.as_ref().map_or(0, |l| l.epoch);
        let stage_done = layout.as_ref().is_some_and(|l| done_on_install(l.stage));
        Self {
            path,
            held: Mutex::new(Held {
                layout: layout.clone(),
                stage_done,
                ..Held::default()
            }),
            epoch: AtomicU64::new(epoch),
            fence: RwLock::new(()),
            changed: watch::channel(layout).0,
        }
    }

    pub fn current(&self) -> Option<Arc<Layout>> {
        self.held.lock().layout.clone()
    }

    /// 0 with no layout.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Follows installs.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Layout>>> {
        self.changed.subscribe()
    }

    /// Enters the fence for a request routed by `routed` (0: by no layout, as clients
    /// of a cluster without one are; [`PEER`]: a node's own call, anti-entropy or
    /// hints, which no layout refuses). Refused with ABORTED, naming this node's
    /// epoch, when the request's is older: a client without the layout gets it too.
    pub async fn enter(&self, routed: u64) -> Result<RwLockReadGuard<'_, ()>, Status> {
        let guard = self.fence.read().await;
        let current = self.epoch();
        if routed < current {
            return Err(stale(routed, current));
        }
        Ok(guard)
    }

    /// Installs `layout` if it is newer than the one held and, with `expect`, only if
    /// the one held is at that epoch (0: none). Persists it before the epoch moves. True
    /// when installed; false when the node already holds this epoch or a later one.
    pub async fn install(&self, layout: Layout, expect: Option<u64>) -> Result<bool, Status> {
        let _fence = self.fence.write().await;
        let current = self.epoch();
        if let Some(e) = expect.filter(|&e| e != current) {
            return Err(Status::failed_precondition(format!(
                "the layout is at epoch {current}, not {e}: another change came first; show it and try again"
            )));
        }
        if layout.epoch <= current {
            return Ok(false);
        }
        if let Some(path) = &self.path {
            let (path, bytes) = (path.clone(), layout.encode());
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                dstash_storage::write_file_atomic(&path, &bytes).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| Status::internal(format!("layout task failed: {e}")))?
            .map_err(|e| Status::internal(format!("storing the layout: {e}")))?;
        }
        let layout = Arc::new(layout);
        {
            let mut held = self.held.lock();
            held.stage_done = done_on_install(layout.stage);
            held.layout = Some(layout.clone());
        }
        self.epoch.store(layout.epoch, Ordering::Release);
        self.changed.send_replace(Some(layout.clone()));
        tracing::info!(
            epoch = layout.epoch,
            stage = layout.stage.as_str(),
            members = layout.members.len(),
            "layout installed"
        );
        Ok(true)
    }

    /// The node's part of the stage at `epoch` is done (ignored if the layout moved on).
    pub fn mark_done(&self, epoch: u64) {
        let mut held = self.held.lock();
        if held.layout.as_ref().is_some_and(|l| l.epoch == epoch) {
            held.stage_done = true;
        }
    }

    /// The progress of the handoff sent at `epoch`, `secs` into it.
    pub fn set_handoff(&self, epoch: u64, progress: RepairProgress, secs: f64) {
        let mut held = self.held.lock();
        held.handoff_epoch = epoch;
        held.handoff = progress;
        held.handoff_secs = secs;
    }

    pub fn state(&self, node_id: &str) -> LayoutState {
        let held = self.held.lock();
        LayoutState {
            node_id: node_id.to_string(),
            layout: held
                .layout
                .as_ref()
                .map(|l| l.encode().into())
                .unwrap_or_default(),
            epoch: held.layout.as_ref().map_or(0, |l| l.epoch),
            stage_done: held.stage_done,
            handoff: Some(held.handoff.clone()),
            handoff_epoch: held.handoff_epoch,
            handoff_seconds: held.handoff_secs,
        }
    }
}

/// How a node's own calls to peers name their epoch.
pub const PEER_EPOCH: &str = "peer";
/// The epoch of a node's own calls: above every layout's.
pub const PEER: u64 = u64::MAX;

/// The epoch a request names in its metadata; 0 when it names none.
pub fn routed_epoch(md: &MetadataMap) -> Result<u64, Status> {
    match md.get(EPOCH_HEADER) {
        None => Ok(0),
        Some(v) if v == PEER_EPOCH => Ok(PEER),
        Some(v) => v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            Status::invalid_argument(format!("{EPOCH_HEADER} must be a decimal epoch"))
        }),
    }
}

fn stale(routed: u64, current: u64) -> Status {
    let mut s = Status::aborted(format!(
        "routed by layout epoch {routed}, but this node is at epoch {current}: refresh the layout and retry"
    ));
    if let Ok(v) = current.to_string().parse() {
        s.metadata_mut().insert(CURRENT_EPOCH_HEADER, v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use dstash_cluster::LayoutMember;

    fn layout(ids: &[&str]) -> Layout {
        let m = ids
            .iter()
            .map(|id| LayoutMember {
                id: id.to_string(),
                addr: format!("{id}:1"),
                weight: 1.0,
                zone: String::new(),
            })
            .collect();
        Layout::first(m, 2).unwrap()
    }

    #[tokio::test]
    async fn a_request_routed_by_an_older_epoch_is_refused_naming_the_current() {
        let cell = LayoutCell::in_memory();
        assert!(cell.enter(0).await.is_ok());
        let first = layout(&["a", "b"]);
        assert!(cell.install(first.clone(), Some(0)).await.unwrap());
        let next = first.apply(layout(&["a", "b", "c"]).members).unwrap();
        assert!(cell.install(next.clone(), Some(1)).await.unwrap());
        let e = cell.enter(1).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Aborted);
        assert!(
            e.message().contains("epoch 1") && e.message().contains("epoch 2"),
            "{}",
            e.message()
        );
        assert_eq!(e.metadata().get(CURRENT_EPOCH_HEADER).unwrap(), "2");
        assert!(cell.enter(2).await.is_ok() && cell.enter(3).await.is_ok());
        assert!(
            cell.enter(0).await.is_err(),
            "a client without the layout is told"
        );
        assert!(cell.enter(PEER).await.is_ok(), "a node's own calls pass");
        // An older or equal layout changes nothing; a change computed against another
        // epoch is refused.
        assert!(!cell.install(first.clone(), None).await.unwrap());
        assert!(cell.install(next.advance(), Some(1)).await.is_err());
        // Installing is a stage's whole part, except streaming's and cleanup's.
        assert!(cell.state("a").stage_done);
        let streaming = next.advance();
        assert!(cell.install(streaming.clone(), Some(2)).await.unwrap());
        assert!(!cell.state("a").stage_done);
        cell.mark_done(2);
        assert!(
            !cell.state("a").stage_done,
            "an older epoch's part changes nothing"
        );
        cell.mark_done(streaming.epoch);
        assert!(cell.state("a").stage_done);
        let read_new = streaming.advance();
        assert!(cell.install(read_new.clone(), None).await.unwrap());
        assert!(cell.state("a").stage_done);
        assert!(cell.install(read_new.advance(), None).await.unwrap());
        assert!(!cell.state("a").stage_done, "cleanup is done by forgetting");
    }

    #[tokio::test]
    async fn install_waits_for_requests_in_flight() {
        let cell = Arc::new(LayoutCell::in_memory());
        let guard = cell.enter(0).await.unwrap();
        let c = cell.clone();
        let installing = tokio::spawn(async move { c.install(layout(&["a"]), None).await });
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !installing.is_finished(),
            "a request still runs under epoch 0"
        );
        assert_eq!(cell.epoch(), 0);
        drop(guard);
        assert!(installing.await.unwrap().unwrap());
        assert_eq!(cell.epoch(), 1);
    }

    #[test]
    fn the_stored_layout_is_read_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cell = LayoutCell::open(path.clone()).unwrap();
        assert!(cell.current().is_none());
        rt.block_on(cell.install(layout(&["a", "b"]), None))
            .unwrap();
        let again = LayoutCell::open(path.clone()).unwrap();
        assert_eq!(again.epoch(), 1);
        assert_eq!(again.current().unwrap().members.len(), 2);
        let mut b = std::fs::read(&path).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&path, b).unwrap();
        let e = LayoutCell::open(path).err().unwrap().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
