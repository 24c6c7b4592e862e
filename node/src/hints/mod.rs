//! Hinted handoff: writes a sloppy-quorum client sent to this node for a replica it
//! found suspect or down. They are kept durable in a store of their own
//! (`<data>/hints`, apart from the served namespaces, so neither reads, listings nor
//! anti-entropy see them) and handed to the replica when it answers again.
//!
//! - [`key`]: how a hint is laid out in the hint store.
//! - [`deliver`]: the background loop that hands hints over and deletes them once the
//!   replica has acknowledged them durably.
//!
//! A hint is acknowledged only once it is durable under the store's sync mode, like
//! any write, so a write acknowledged through a hint survives this node's crash; it
//! is deleted only after the replica acknowledged it, so it survives the replica's.

pub mod deliver;
pub mod key;

use std::sync::Arc;

use dstash_proto::Bytes;
use dstash_storage::{Applied, Change, PutEntry, Store, Version};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tonic::Status;

use crate::slot::StoreSlot;
use key::HintKey;

/// A write to hold for `owner`.
pub struct HintedWrite {
    pub owner: String,
    pub key: Bytes,
    /// None: a delete.
    pub value: Option<Bytes>,
    pub ttl_secs: u32,
    pub version: Option<Version>,
}

#[derive(Debug, Default)]
pub struct HintMetrics {
    stored: Counter,
    delivered: Counter,
    failed: Counter,
    pending: Gauge,
}

impl HintMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "dstash_hints_stored",
            "Writes held as hints for a replica that was suspect or down",
            self.stored.clone(),
        );
        r.register(
            "dstash_hints_delivered",
            "Hints handed to their replica and deleted",
            self.delivered.clone(),
        );
        r.register(
            "dstash_hints_delivery_failures",
            "Attempts to hand hints to a replica that failed",
            self.failed.clone(),
        );
        r.register(
            "dstash_hints_pending",
            "Hints found waiting at the last delivery round",
            self.pending.clone(),
        );
    }
}

/// The hint store and what this node counts of it.
pub struct Hints {
    pub slot: StoreSlot,
    pub metrics: Arc<HintMetrics>,
}

impl Hints {
    pub fn new(metrics: Arc<HintMetrics>) -> Self {
        Self {
            slot: StoreSlot::default(),
            metrics,
        }
    }

    /// Keeps `w` for its owner, durably; refuses a write without a version (it could
    /// not be ordered against the owner's copy) or with a bad owner id.
    pub fn hold(&self, store: &Store, ns: &str, w: HintedWrite) -> Result<Applied, Status> {
        let version = w
            .version
            .ok_or_else(|| Status::invalid_argument("a hinted write needs a version"))?;
        let key = HintKey {
            owner: &w.owner,
            version,
            key: &w.key,
        }
        .encode()
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "hint_for must be a node id of 1 to {} bytes",
                key::MAX_OWNER_LEN
            ))
        })?;
        let mut value = vec![if w.value.is_some() {
            key::PUT
        } else {
            key::DELETE
        }];
        value.extend_from_slice(w.value.as_deref().unwrap_or_default());
        let e = PutEntry {
            key: &key,
            value: &value,
            ttl_secs: if w.value.is_some() { w.ttl_secs } else { 0 },
            version: Some(version),
        };
        let applied = store
            .write_each(ns, &[Change::Put(e)])
            .map_err(crate::status::status)?;
        self.metrics.stored.inc();
        Ok(applied.into_iter().next().unwrap_or(Applied::Stale))
    }
}
