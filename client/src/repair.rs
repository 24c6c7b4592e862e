//! A full repair pass driven by the client: every key any node lists is read from all
//! of its replicas, and the newest version (value or tombstone) is written to every
//! replica that lags. Convergence, not efficiency: it reads every key once per replica.
//! (Digest-based anti-entropy between nodes, whose traffic grows with the differences
//! only, is not built yet.)

use std::sync::atomic::Ordering;

use dstash_proto::Bytes;

use crate::client::Client;
use crate::error::{Error, Result};

/// What a repair pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub namespaces: u64,
    pub keys: u64,
    /// Replica writes made to bring lagging replicas up to the newest version.
    pub pushed: u64,
    /// Of those, the ones that failed (the pass must run again).
    pub failed: u64,
}

/// Told how far a repair pass got.
pub trait RepairProgress {
    fn keys(&self, ns: &str, done: u64, total: u64);
}

impl Client {
    /// Repairs every namespace on every node; see the module docs. Fails when some
    /// node cannot be asked (a pass over part of the cluster proves nothing).
    pub async fn repair_all(
        &self,
        chunk: usize,
        progress: &dyn RepairProgress,
    ) -> Result<RepairReport> {
        let mut namespaces = std::collections::BTreeSet::new();
        let mut failures = Vec::new();
        for n in self.status().await {
            match n.status {
                Ok(s) => namespaces.extend(s.namespaces.into_iter().map(|ns| ns.name)),
                Err(e) => failures.push(crate::client::failure_of(&n.id, &e)),
            }
        }
        if !failures.is_empty() {
            return Err(Error::Unavailable { failures });
        }
        let started = self.repairs_started.load(Ordering::Relaxed);
        let failed = self.repairs_failed.load(Ordering::Relaxed);
        let r = self.view().r;
        let mut report = RepairReport::default();
        for ns in &namespaces {
            let keys: Vec<Bytes> = self.keys(ns, "", false).await?.into_iter().collect();
            let total = keys.len() as u64;
            for (i, part) in keys.chunks(chunk.max(1)).enumerate() {
                self.get_many_quorum(ns, part, r).await?;
                progress.keys(ns, (i * chunk.max(1) + part.len()) as u64, total);
            }
            report.keys += total;
            report.namespaces += 1;
        }
        self.finish_repairs().await;
        report.pushed = self.repairs_started.load(Ordering::Relaxed) - started;
        report.failed = self.repairs_failed.load(Ordering::Relaxed) - failed;
        Ok(report)
    }
}
