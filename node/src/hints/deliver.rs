//! Handing hints over: every round, the hints waiting in the hint store are grouped by
//! owner and namespace and written to each owner that is a known peer, as one batch
//! per group, versions kept. Once the owner acknowledges a batch (durably, as every
//! batch ack is), its hints are deleted. An owner that does not answer keeps its hints
//! for the next round; owners are served concurrently, so one frozen owner delays no
//! other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dstash_proto::v1::{Entry, PutBatch};
use dstash_proto::Bytes;
use dstash_storage::{Change, DeleteEntry, Lookup, Store, Version};
use tokio::sync::watch;
use tonic::Status;

use super::key::{after, HintKey, DELETE};
use super::Hints;
use crate::batch::version_out;
use crate::sync::dial::Dialer;
use crate::sync::Peer;

/// Hints read from the store per round, at most.
const ROUND_LIMIT: usize = 20_000;
/// Entries per batch sent to an owner.
const BATCH: usize = 500;
/// How long an owner has to acknowledge one batch.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// One hint due for delivery.
struct Due {
    hint_key: Vec<u8>,
    version: Version,
    entry: Entry,
}

pub struct Delivery {
    pub hints: Arc<Hints>,
    pub peers: watch::Receiver<Vec<Peer>>,
    pub dialer: Dialer,
    /// Time between rounds that found nothing to hand over; zero turns delivery off.
    pub interval: Duration,
}

impl Delivery {
    /// Delivers rounds for as long as the node runs.
    pub async fn run(self) {
        if self.interval.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.interval).await;
            // A full round may have left more behind: go again at once while it helps.
            while self.round().await >= ROUND_LIMIT / 2 {}
        }
    }

    /// One round; returns how many hints were handed over.
    pub async fn round(&self) -> usize {
        let Ok(store) = self.hints.slot.get() else {
            return 0;
        };
        let due = match tokio::task::spawn_blocking(move || collect(&store)).await {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!("reading the hint store: {e}");
                return 0;
            }
            Err(_) => return 0,
        };
        let found: usize = due.values().map(Vec::len).sum();
        self.hints.metrics.pending.set(found as i64);
        let peers = self.peers.borrow().clone();
        let mut by_owner: BTreeMap<String, Vec<(String, Vec<Due>)>> = BTreeMap::new();
        for ((owner, ns), list) in due {
            by_owner.entry(owner).or_default().push((ns, list));
        }
        let sends = by_owner.into_iter().filter_map(|(owner, groups)| {
            let addr = peers.iter().find(|p| p.id == owner)?.addr.clone();
            Some(self.hand_over(owner, addr, groups))
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .sum()
    }

    /// Every group of one owner, a batch at a time; stops at the first failure.
    async fn hand_over(
        &self,
        owner: String,
        addr: String,
        groups: Vec<(String, Vec<Due>)>,
    ) -> usize {
        let mut done = 0;
        for (ns, list) in groups {
            for chunk in list.chunks(BATCH) {
                match self.send(&addr, &ns, chunk).await {
                    Ok(()) => done += self.forget(&ns, chunk).await,
                    Err(e) => {
                        self.hints.metrics.failed.inc();
                        tracing::debug!(owner, "handing hints over: {}", e.message());
                        return done;
                    }
                }
            }
        }
        done
    }

    async fn send(&self, addr: &str, ns: &str, chunk: &[Due]) -> Result<(), Status> {
        let mut remote = self.dialer.remote(addr)?;
        let batch = PutBatch {
            namespace: ns.to_string(),
            entries: chunk.iter().map(|d| d.entry.clone()).collect(),
            batch_id: 1,
        };
        let call = async {
            let mut acks = remote
                .batch_put(futures_util::stream::iter([batch]))
                .await?
                .into_inner();
            match acks.message().await? {
                Some(_) => Ok(()),
                None => Err(Status::unavailable("the stream ended without an ack")),
            }
        };
        tokio::time::timeout(ACK_TIMEOUT, call)
            .await
            .map_err(|_| Status::deadline_exceeded("no ack in time"))?
    }

    /// Deletes delivered hints; returns how many.
    async fn forget(&self, ns: &str, chunk: &[Due]) -> usize {
        let Ok(store) = self.hints.slot.get() else {
            return 0;
        };
        let ns = ns.to_string();
        let keys: Vec<(Vec<u8>, Version)> = chunk
            .iter()
            .map(|d| (d.hint_key.clone(), after(d.version)))
            .collect();
        let n = keys.len();
        let deleted = tokio::task::spawn_blocking(move || {
            let changes: Vec<Change> = keys
                .iter()
                .map(|(k, v)| {
                    Change::Delete(DeleteEntry {
                        key: k,
                        version: Some(*v),
                    })
                })
                .collect();
            store.write_each(&ns, &changes)
        })
        .await;
        match deleted {
            Ok(Ok(_)) => {
                self.hints.metrics.delivered.inc_by(n as u64);
                n
            }
            // Delivered but not deleted: the next round sends them again, which the
            // owner answers as stale.
            _ => 0,
        }
    }
}

/// Up to [`ROUND_LIMIT`] live hints, by (owner, namespace).
fn collect(store: &Store) -> dstash_storage::Result<BTreeMap<(String, String), Vec<Due>>> {
    let mut due: BTreeMap<(String, String), Vec<Due>> = BTreeMap::new();
    let mut total = 0;
    for ns in store.namespaces() {
        let mut keys = store.keys(&ns, "")?;
        while let Some(chunk) = keys.next_chunk()? {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            for (k, found) in chunk.iter().zip(store.lookup_each(&ns, &refs)?) {
                let (Lookup::Found(f), Some(h)) = (found, HintKey::decode(k)) else {
                    continue; // expired with its value, or not a hint
                };
                let Some((&kind, value)) = f.value.split_first() else {
                    continue;
                };
                let entry = Entry {
                    key: Bytes::copy_from_slice(h.key),
                    value: Bytes::copy_from_slice(value),
                    ttl_seconds: f.ttl_secs,
                    version: version_out(h.version),
                    tombstone: kind == DELETE,
                };
                due.entry((h.owner.to_string(), ns.clone()))
                    .or_default()
                    .push(Due {
                        hint_key: k.clone(),
                        version: f.version,
                        entry,
                    });
                total += 1;
                if total >= ROUND_LIMIT {
                    return Ok(due);
                }
            }
        }
    }
    Ok(due)
}
