//! The `Dstash` service: each handler converts the request, runs the store call on a
//! blocking thread, and converts the answer back.
//!
//! Batch streams keep up to `max_in_flight` batches of one stream running at once and
//! answer them in order (`buffered`); concurrent batches share fsyncs through the
//! store's group commit, and each ack is sent only once its batch is durable.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::{Dstash, DstashServer};
use dstash_storage::Store;
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::TokenAuth;
use crate::batch::{self, answer, version_in};
pub use crate::ctx::{Ctx, PEER_WORK};
use crate::hints::{HintedWrite, Hints};
use crate::layout::{self, routed_epoch, LayoutCell};
use crate::metrics::{Metrics, Rpc};
use crate::oversize::OversizeIsInvalid;
use crate::slot::StoreSlot;
use crate::sync::{serve, Syncer};
use dstash_storage::{Applied, DeleteEntry, Lookup, PutEntry};
use tonic::service::interceptor::InterceptedService;

pub type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Settings the service needs beyond the store.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    /// Batches of one stream processed at once.
    pub max_in_flight: usize,
    /// Keys per `KeysChunk`.
    pub keys_chunk: usize,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: "dstash".into(),
            max_in_flight: 8,
            keys_chunk: 1000,
            max_message_bytes: 64 << 20,
        }
    }
}

#[derive(Clone)]
pub struct NodeService {
    ctx: Ctx,
    config: Arc<NodeConfig>,
    started: Instant,
    syncer: Option<Arc<Syncer>>,
    hints: Option<Arc<Hints>>,
    layout: Arc<LayoutCell>,
}

/// A message on a batch stream that tonic refused (too large, or malformed).
fn stream_error(e: Status, max_message_bytes: usize) -> Status {
    if e.code() == tonic::Code::OutOfRange {
        // tonic reports an oversized message as OUT_OF_RANGE; the contract says
        // INVALID_ARGUMENT naming the limit.
        return Status::invalid_argument(format!(
            "a message is larger than the {max_message_bytes}-byte limit ({})",
            e.message()
        ));
    }
    e
}

/// One kind of batch stream: how to size a batch and how to run it.
struct BatchRpc<In, Out> {
    rpc: Rpc,
    keys: fn(&In) -> usize,
    run: fn(&Store, In) -> dstash_storage::Result<Out>,
}

impl NodeService {
    pub fn new(slot: StoreSlot, metrics: Arc<Metrics>, config: NodeConfig) -> Self {
        Self {
            ctx: Ctx::new(slot, metrics),
            config: Arc::new(config),
            started: Instant::now(),
            syncer: None,
            hints: None,
            layout: Arc::new(LayoutCell::in_memory()),
        }
    }

    /// Serves and fences by this layout; without it, one kept in memory only.
    pub fn with_layout(mut self, layout: Arc<LayoutCell>) -> Self {
        self.layout = layout;
        self
    }

    /// Serves `Repair` with this syncer; without one, `Repair` is `UNIMPLEMENTED`.
    pub fn with_syncer(mut self, syncer: Arc<Syncer>) -> Self {
        self.syncer = Some(syncer);
        self
    }

    /// Holds writes sent with `hint_for` another node in `hints`; without it, they are
    /// refused as `FAILED_PRECONDITION`.
    pub fn with_hints(mut self, hints: Arc<Hints>) -> Self {
        self.hints = Some(hints);
        self
    }

    /// A write the client sent here with `hint_for` set: held as a hint. None when it
    /// names this node, and is served as usual.
    async fn hold(&self, rpc: Rpc, ns: String, w: HintedWrite) -> Option<Result<Applied, Status>> {
        if w.owner.is_empty() || w.owner == self.config.node_id {
            return None;
        }
        let Some(hints) = self.hints.clone() else {
            return Some(Err(Status::failed_precondition(
                "this node keeps no hints (sloppy quorum is not served here)",
            )));
        };
        let slot = hints.slot.clone();
        Some(
            self.ctx
                .run_in(&slot, rpc, 1, move |s| hints.hold(s, &ns, w))
                .await,
        )
    }

    /// The fence for a unary request: held while it runs.
    async fn enter<T>(
        &self,
        req: &Request<T>,
    ) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, Status> {
        self.layout.enter(routed_epoch(req.metadata())?).await
    }

    /// Batch messages applied here without the network, for a front end in this process.
    pub fn local_batches(&self) -> crate::local::LocalBatches {
        crate::local::LocalBatches::new(self.ctx.clone(), self.layout.clone())
    }

    /// The tonic service, with the configured message size limits, behind `auth`.
    pub fn into_server(
        self,
        auth: TokenAuth,
    ) -> OversizeIsInvalid<InterceptedService<DstashServer<Self>, TokenAuth>> {
        let max = self.config.max_message_bytes;
        let server = DstashServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        OversizeIsInvalid::new(InterceptedService::new(server, auth), max)
    }

    /// Answers a stream of batches in order, with up to `max_in_flight` of them running
    /// at once.
    /// Each message is fenced on its own: a long stream does not hold a layout change
    /// back, and its messages after one are refused.
    fn batches<In, Out>(&self, req: Request<Streaming<In>>, kind: BatchRpc<In, Out>) -> Answers<Out>
    where
        In: Send + 'static,
        Out: Send + 'static,
    {
        let routed = routed_epoch(req.metadata());
        let input = req.into_inner();
        let ctx = self.ctx.clone();
        let fence = self.layout.clone();
        let max = self.config.max_message_bytes;
        let answers = input
            .map(move |batch| {
                let (ctx, fence, routed) = (ctx.clone(), fence.clone(), routed.clone());
                async move {
                    let _fenced = fence.enter(routed?).await?;
                    let batch = batch.map_err(|e| stream_error(e, max))?;
                    let keys = (kind.keys)(&batch);
                    let run = kind.run;
                    ctx.run(kind.rpc, keys, move |s| run(s, batch)).await
                }
            })
            .buffered(self.config.max_in_flight.max(1));
        Box::pin(answers)
    }
}

#[tonic::async_trait]
impl Dstash for NodeService {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        let mut r = req.into_inner();
        if !r.hint_for.is_empty() {
            let hint = HintedWrite {
                owner: std::mem::take(&mut r.hint_for),
                key: r.key.clone(),
                value: Some(r.value.clone()),
                ttl_secs: r.ttl_seconds,
                version: version_in(r.version),
            };
            if let Some(held) = self.hold(Rpc::Put, r.namespace.clone(), hint).await {
                return Ok(Response::new(PutResponse {
                    stale: held? == Applied::Stale,
                }));
            }
        }
        let applied = self
            .ctx
            .run(Rpc::Put, 1, move |s| {
                let e = PutEntry {
                    key: &r.key,
                    value: &r.value,
                    ttl_secs: r.ttl_seconds,
                    version: version_in(r.version),
                };
                Ok(s.put_many(&r.namespace, &[e])?[0])
            })
            .await?;
        Ok(Response::new(PutResponse {
            stale: applied == Applied::Stale,
        }))
    }

    async fn lookup(
        &self,
        req: Request<LookupRequest>,
    ) -> Result<Response<LookupResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        let r = req.into_inner();
        let found = self
            .ctx
            .run(Rpc::Lookup, 1, move |s| {
                match s.lookup_each(&r.namespace, &[&r.key])?.pop() {
                    // A unary lookup of a damaged record fails with DATA_LOSS.
                    Some(Lookup::Damaged(e)) => Err(e),
                    l => Ok(l.unwrap_or(Lookup::Missing)),
                }
            })
            .await?;
        Ok(Response::new(answer(found)))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        let mut r = req.into_inner();
        if !r.hint_for.is_empty() {
            let hint = HintedWrite {
                owner: std::mem::take(&mut r.hint_for),
                key: r.key.clone(),
                value: None,
                ttl_secs: 0,
                version: version_in(r.version),
            };
            if let Some(held) = self.hold(Rpc::Delete, r.namespace.clone(), hint).await {
                return Ok(Response::new(DeleteResponse {
                    found: false,
                    stale: held? == Applied::Stale,
                }));
            }
        }
        let applied = self
            .ctx
            .run(Rpc::Delete, 1, move |s| {
                let e = DeleteEntry {
                    key: &r.key,
                    version: version_in(r.version),
                };
                Ok(s.delete_each(&r.namespace, &[e])?[0])
            })
            .await?;
        Ok(Response::new(DeleteResponse {
            found: applied == Applied::Written { existed: true },
            stale: applied == Applied::Stale,
        }))
    }

    type BatchPutStream = Answers<PutBatchAck>;

    async fn batch_put(
        &self,
        req: Request<Streaming<PutBatch>>,
    ) -> Result<Response<Self::BatchPutStream>, Status> {
        Ok(Response::new(self.batches(
            req,
            BatchRpc {
                rpc: Rpc::BatchPut,
                keys: |b| b.entries.len(),
                run: batch::put,
            },
        )))
    }

    type BatchDeleteStream = Answers<DeleteBatchAck>;

    async fn batch_delete(
        &self,
        req: Request<Streaming<DeleteBatch>>,
    ) -> Result<Response<Self::BatchDeleteStream>, Status> {
        Ok(Response::new(self.batches(
            req,
            BatchRpc {
                rpc: Rpc::BatchDelete,
                keys: |b| b.keys.len(),
                run: batch::delete,
            },
        )))
    }

    type BatchLookupStream = Answers<LookupBatchResult>;

    async fn batch_lookup(
        &self,
        req: Request<Streaming<LookupBatch>>,
    ) -> Result<Response<Self::BatchLookupStream>, Status> {
        Ok(Response::new(self.batches(
            req,
            BatchRpc {
                rpc: Rpc::BatchLookup,
                keys: |b| b.keys.len(),
                run: batch::lookup,
            },
        )))
    }

    async fn add(&self, req: Request<AddRequest>) -> Result<Response<CountResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        let r = req.into_inner();
        let count = self
            .ctx
            .run(Rpc::Add, 1, move |s| {
                let (at, id) = (batch::at(r.at_seconds), batch::request_id(&r.request_id));
                Ok(s.add_once(&r.namespace, &[(&r.key[..], r.n)], at, id)?[0])
            })
            .await?;
        Ok(Response::new(CountResponse { count }))
    }

    async fn count(&self, req: Request<CountRequest>) -> Result<Response<CountResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        let r = req.into_inner();
        let count = self
            .ctx
            .run(Rpc::Count, 1, move |s| {
                s.count(&r.namespace, &r.key, r.window_seconds)
            })
            .await?;
        Ok(Response::new(CountResponse { count }))
    }

    type BatchAddStream = Answers<CountBatchResult>;

    async fn batch_add(
        &self,
        req: Request<Streaming<AddBatch>>,
    ) -> Result<Response<Self::BatchAddStream>, Status> {
        Ok(Response::new(self.batches(
            req,
            BatchRpc {
                rpc: Rpc::BatchAdd,
                keys: |b| b.keys.len(),
                run: batch::add,
            },
        )))
    }

    type BatchCountStream = Answers<CountBatchResult>;

    async fn batch_count(
        &self,
        req: Request<Streaming<CountBatch>>,
    ) -> Result<Response<Self::BatchCountStream>, Status> {
        Ok(Response::new(self.batches(
            req,
            BatchRpc {
                rpc: Rpc::BatchCount,
                keys: |b| b.keys.len(),
                run: batch::count,
            },
        )))
    }

    type KeysStream = Answers<KeysChunk>;

    /// Streams matching keys in chunks; a bounded channel makes the lister wait for a
    /// slow client instead of buffering the listing.
    async fn keys_page(
        &self,
        req: Request<KeysPageRequest>,
    ) -> Result<Response<KeysPageResponse>, Status> {
        crate::listing::page(&self.ctx, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn keys(&self, req: Request<KeysRequest>) -> Result<Response<Self::KeysStream>, Status> {
        let chunk = self.config.keys_chunk;
        let keys = crate::listing::keys(&self.ctx, chunk, req.into_inner()).await?;
        Ok(Response::new(Box::pin(keys)))
    }

    async fn digest(
        &self,
        req: Request<DigestRequest>,
    ) -> Result<Response<DigestResponse>, Status> {
        serve::digest(&self.ctx, req.into_inner()).await
    }

    type LeafEntriesStream = Answers<LeafEntriesChunk>;

    async fn leaf_entries(
        &self,
        req: Request<LeafEntriesRequest>,
    ) -> Result<Response<Self::LeafEntriesStream>, Status> {
        serve::leaf_entries(&self.ctx, req.into_inner()).await
    }

    async fn merge_counters(
        &self,
        req: Request<MergeCountersRequest>,
    ) -> Result<Response<MergeCountersResponse>, Status> {
        let _fenced = self.enter(&req).await?;
        serve::merge_counters(&self.ctx, req.into_inner()).await
    }

    async fn set_namespace(
        &self,
        req: Request<NamespaceSettings>,
    ) -> Result<Response<NamespaceSettings>, Status> {
        crate::settings::set(&self.ctx, req.into_inner()).await
    }

    type RepairStream = Answers<RepairProgress>;

    async fn repair(
        &self,
        req: Request<RepairRequest>,
    ) -> Result<Response<Self::RepairStream>, Status> {
        serve::repair(self.syncer.clone(), req.into_inner()).await
    }

    async fn get_layout(
        &self,
        _req: Request<GetLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        Ok(Response::new(self.layout.state(&self.config.node_id)))
    }

    async fn set_layout(
        &self,
        req: Request<SetLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        let me = &self.config.node_id;
        Ok(Response::new(
            layout::rpc::set(&self.layout, me, req.into_inner()).await?,
        ))
    }

    async fn change_layout(
        &self,
        req: Request<ChangeLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        let me = &self.config.node_id;
        Ok(Response::new(
            layout::rpc::change(&self.layout, me, req.into_inner()).await?,
        ))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let (stats, sync) = self
            .ctx
            .run(Rpc::Status, 0, |s| Ok((s.stats(), s.options().sync)))
            .await?;
        let namespaces: Vec<NamespaceStatus> = stats
            .iter()
            .map(|n| NamespaceStatus {
                name: n.name.clone(),
                keys: n.kv.keys,
                segments: n.kv.segments,
                data_bytes: n.kv.data_bytes,
                dead_bytes: n.kv.dead_bytes,
                index_bytes: n.kv.index_bytes,
                counter_buckets: n.counters.generations,
                counter_bytes: n.counters.disk_bytes,
                counter_slots: n.counters.slots,
                counter_quarantined: n.counters.quarantined,
                retention_seconds: n.retention_secs,
                corrupt_records: n.kv.corrupt_records,
                max_bytes: n.settings.max_bytes,
                default_ttl_seconds: n.settings.default_ttl_secs,
                settings: settings_state(n.settings_found).into(),
                evicted_segments: n.kv.evicted_segments,
                settings_changed_at: n.settings.changed_at,
            })
            .collect();
        let sync_mode = match sync {
            dstash_storage::SyncMode::Always => "always".to_string(),
            dstash_storage::SyncMode::Interval(d) => format!("interval:{}", d.as_millis()),
            dstash_storage::SyncMode::Never => "never".to_string(),
        };
        Ok(Response::new(StatusResponse {
            node_id: self.config.node_id.clone(),
            keys: namespaces.iter().map(|n| n.keys).sum(),
            disk_bytes: namespaces
                .iter()
                .map(|n| n.data_bytes + n.index_bytes + n.counter_bytes)
                .sum(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            sync_mode,
            uptime_seconds: self.started.elapsed().as_secs(),
            namespaces,
        }))
    }
}

fn settings_state(f: dstash_storage::ns_settings::Found) -> &'static str {
    use dstash_storage::ns_settings::Found;
    match f {
        Found::Sound => "sound",
        Found::Repaired => "repaired",
        Found::Lost => "lost",
    }
}
