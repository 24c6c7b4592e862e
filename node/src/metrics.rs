//! Prometheus metrics: per-RPC requests, keys, errors and latency, recorded by the
//! handlers; store gauges and compaction and recovery figures, read from the store at
//! each scrape. Served as text at `/metrics` on their own listener.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::hints::HintMetrics;
use crate::layout::metrics::LayoutMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tonic::Code;

use crate::slot::StoreSlot;
use crate::sync::metrics::SyncMetrics;

/// The RPCs, as they are labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rpc {
    Put,
    Lookup,
    Delete,
    BatchPut,
    BatchLookup,
    BatchDelete,
    Add,
    Count,
    BatchAdd,
    BatchCount,
    Keys,
    KeysPage,
    Status,
    Digest,
    LeafEntries,
    MergeCounters,
    SetNamespace,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Put => "Put",
            Rpc::Lookup => "Lookup",
            Rpc::Delete => "Delete",
            Rpc::BatchPut => "BatchPut",
            Rpc::BatchLookup => "BatchLookup",
            Rpc::BatchDelete => "BatchDelete",
            Rpc::Add => "Add",
            Rpc::Count => "Count",
            Rpc::BatchAdd => "BatchAdd",
            Rpc::BatchCount => "BatchCount",
            Rpc::Keys => "Keys",
            Rpc::KeysPage => "KeysPage",
            Rpc::Status => "Status",
            Rpc::Digest => "Digest",
            Rpc::LeafEntries => "LeafEntries",
            Rpc::MergeCounters => "MergeCounters",
            Rpc::SetNamespace => "SetNamespace",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    rpc: &'static str,
    code: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RpcLabels, Counter>,
    keys: Family<RpcLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<RpcLabels, Histogram>,
    recovery_seconds: Gauge<f64, AtomicU64>,
    pub sync: Arc<SyncMetrics>,
    pub hints: Arc<HintMetrics>,
    pub layout: Arc<LayoutMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 20 µs to about 21 s.
    Histogram::new(exponential_buckets(20e-6, 2.0, 21))
}

impl Metrics {
    pub fn new(slot: StoreSlot) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RpcLabels, Counter>::default();
        let keys = Family::<RpcLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let recovery_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "dstash_requests",
            "Requests, or batches on a stream, handled per RPC",
            requests.clone(),
        );
        registry.register("dstash_keys_handled", "Keys handled per RPC", keys.clone());
        registry.register(
            "dstash_errors",
            "Requests or batches answered with an error, per RPC and gRPC code",
            errors.clone(),
        );
        registry.register(
            "dstash_request_duration_seconds",
            "Time to answer a request or a batch, per RPC",
            latency.clone(),
        );
        registry.register(
            "dstash_recovery_seconds",
            "Time the last start spent opening and recovering the store",
            recovery_seconds.clone(),
        );
        registry.register_collector(Box::new(StoreCollector { slot }));
        let sync = Arc::new(SyncMetrics::default());
        sync.register(&mut registry);
        let hints = Arc::new(HintMetrics::default());
        hints.register(&mut registry);
        let layout = Arc::new(LayoutMetrics::default());
        layout.register(&mut registry);
        Self {
            registry,
            requests,
            keys,
            errors,
            latency,
            recovery_seconds,
            sync,
            hints,
            layout,
        }
    }

    /// Records one request, or one batch of a stream.
    pub fn observe(&self, rpc: Rpc, keys: usize, took: Duration, error: Option<Code>) {
        let labels = RpcLabels { rpc: rpc.name() };
        self.requests.get_or_create(&labels).inc();
        self.keys.get_or_create(&labels).inc_by(keys as u64);
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(code) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    rpc: rpc.name(),
                    code: format!("{code:?}"),
                })
                .inc();
        }
    }

    pub fn set_recovery_time(&self, took: Duration) {
        self.recovery_seconds.set(took.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the store's own figures at scrape time, per namespace.
#[derive(Debug)]
struct StoreCollector {
    slot: StoreSlot,
}

type Figure = fn(&dstash_storage::NamespaceStats) -> u64;

const GAUGES: &[(&str, &str, Figure)] = &[
    ("dstash_store_keys", "Live keys", |n| n.kv.keys),
    ("dstash_store_segments", "Data segments", |n| n.kv.segments),
    ("dstash_store_data_bytes", "Bytes in data segments", |n| {
        n.kv.data_bytes
    }),
    (
        "dstash_store_dead_bytes",
        "Bytes of overwritten or deleted records, reclaimable by compaction",
        |n| n.kv.dead_bytes,
    ),
    ("dstash_store_index_bytes", "Bytes of the hash index", |n| {
        n.kv.index_bytes
    }),
    (
        "dstash_store_disk_bytes",
        "Bytes on disk: data, index, count tables and count log",
        |n| n.kv.data_bytes + n.kv.index_bytes + n.counters.disk_bytes,
    ),
    (
        "dstash_store_count_generations",
        "Live generations of expiring-count tables",
        |n| n.counters.generations,
    ),
    (
        "dstash_store_count_slots",
        "Expiring-count slots held (a key moved forward holds one per generation)",
        |n| n.counters.slots,
    ),
    (
        "dstash_store_max_bytes",
        "A cache namespace's bound in bytes of data (0: none)",
        |n| n.settings.max_bytes,
    ),
    (
        "dstash_store_settings_damaged",
        "Copies of the namespace's settings found damaged at open (2: defaults in force)",
        |n| n.settings_found as u64,
    ),
    (
        "dstash_store_count_quarantined",
        "Count slots or tables found damaged and zeroed since the node started",
        |n| n.counters.quarantined,
    ),
];

const COUNTERS: &[(&str, &str, Figure)] = &[
    (
        "dstash_store_compacted_segments",
        "Segments compacted since start",
        |n| n.kv.compacted_segments,
    ),
    (
        "dstash_store_compacted_bytes",
        "Bytes reclaimed by compaction since start",
        |n| n.kv.compacted_bytes,
    ),
    (
        "dstash_store_evicted_segments",
        "Segments a cache namespace dropped whole since start",
        |n| n.kv.evicted_segments,
    ),
    (
        "dstash_store_evicted_bytes",
        "Bytes a cache namespace dropped since start",
        |n| n.kv.evicted_bytes,
    ),
    (
        "dstash_store_checkpoints",
        "Index checkpoints written since start",
        |n| n.kv.checkpoints,
    ),
    (
        "dstash_store_replayed_records",
        "Log records replayed by recovery at the last start",
        |n| n.kv.replayed_records,
    ),
    (
        "dstash_store_corrupt_records",
        "Damaged records skipped by recovery",
        |n| n.kv.corrupt_records,
    ),
    (
        "dstash_store_index_pages_resealed",
        "Index pages a crash left behind their checksum, all slots checked, at the last start",
        |n| n.kv.index_pages_resealed,
    ),
    (
        "dstash_store_index_pages_damaged",
        "Index pages found damaged at the last start (the index was rebuilt from the log)",
        |n| n.kv.index_pages_damaged,
    ),
];

/// One family per figure, one sample per namespace.
fn encode_families<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    figures: &[(&str, &str, Figure)],
    stats: &[dstash_storage::NamespaceStats],
    metric: impl Fn(u64) -> M,
) -> Result<(), std::fmt::Error> {
    for (name, help, figure) in figures {
        let mut family = encoder.encode_descriptor(name, help, None, metric(0).metric_type())?;
        for n in stats {
            let labels = [("namespace", n.name.as_str())];
            metric(figure(n)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(store) = self.slot.get() else {
            return Ok(()); // recovering or closed: no store figures yet
        };
        let stats = store.stats();
        encode_families(&mut encoder, GAUGES, &stats, |v| ConstGauge::new(v as i64))?;
        encode_families(&mut encoder, COUNTERS, &stats, ConstCounter::new)
    }
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                // The store collector takes locks: keep it off the async threads.
                let body = tokio::task::spawn_blocking(move || metrics.render())
                    .await
                    .unwrap_or_default();
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
