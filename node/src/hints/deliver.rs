//! Handing hints over: every round, the hints waiting in the hint store are grouped by
//! owner and namespace and written to each owner that is a known peer, as one batch
//! per group, versions kept. Once the owner acknowledges a batch (durably, as every
//! batch ack is), its hints are deleted. An owner that does not answer keeps its hints
//! for the next round; owners are served concurrently, so one frozen owner delays no
//! other.

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Hints read per owner per round, at most: an owner with a large backlog, or one that
/// does not answer, does not keep the others' hints from being read.
const OWNER_LIMIT: usize = 4_000;
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
            // A round that handed hints over may have left more behind: go again at once.
            while self.round().await > 0 {}
        }
    }

    /// One round; returns how many hints were handed over.
    pub async fn round(&self) -> usize {
        let Ok(store) = self.hints.slot.get() else {
            return 0;
        };
        let peers = self.peers.borrow().clone();
        let known: HashSet<String> = peers.iter().map(|p| p.id.clone()).collect();
        let due = match tokio::task::spawn_blocking(move || collect(&store, &known)).await {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!("reading the hint store: {e}");
                return 0;
            }
            Err(_) => return 0,
        };
        let found: usize = due.values().map(Vec::len).sum();
        self.hints.metrics.pending.set(found as i64);
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

/// Live hints for the `known` owners, up to [`OWNER_LIMIT`] each, by (owner,
/// namespace). Hints for owners not known (yet) are left where they are.
fn collect(
    store: &Store,
    known: &HashSet<String>,
) -> dstash_storage::Result<BTreeMap<(String, String), Vec<Due>>> {
    let mut due: BTreeMap<(String, String), Vec<Due>> = BTreeMap::new();
    let mut per_owner: HashMap<String, usize> = HashMap::new();
    for ns in store.namespaces() {
        let mut keys = store.keys(&ns, "")?;
        while let Some(chunk) = keys.next_chunk()? {
            let wanted: Vec<&Vec<u8>> = chunk
                .iter()
                .filter(|k| {
                    let Some(h) = HintKey::decode(k).filter(|h| known.contains(h.owner)) else {
                        return false;
                    };
                    let n = per_owner.entry(h.owner.to_string()).or_default();
                    *n += 1;
                    *n <= OWNER_LIMIT
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let refs: Vec<&[u8]> = wanted.iter().map(|k| k.as_slice()).collect();
            for (k, found) in wanted.into_iter().zip(store.lookup_each(&ns, &refs)?) {
                if let Some((owner, d)) = due_of(k, found) {
                    due.entry((owner, ns.clone())).or_default().push(d);
                }
            }
        }
    }
    Ok(due)
}

/// A hint's owner and what to send it; None when the hint expired with its value.
fn due_of(k: &[u8], found: Lookup) -> Option<(String, Due)> {
    let (Lookup::Found(f), Some(h)) = (found, HintKey::decode(k)) else {
        return None;
    };
    let (&kind, value) = f.value.split_first()?;
    let entry = Entry {
        key: Bytes::copy_from_slice(h.key),
        value: Bytes::copy_from_slice(value),
        ttl_seconds: f.ttl_secs,
        version: version_out(h.version),
        tombstone: kind == DELETE,
    };
    let due = Due {
        hint_key: k.to_vec(),
        version: f.version,
        entry,
    };
    Some((h.owner.to_string(), due))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hints::key::PUT;
    use dstash_storage::{Options, PutEntry, SyncMode};

    #[test]
    fn a_round_reads_known_owners_only_and_caps_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Options {
                sync: SyncMode::Never,
                ..Options::default()
            },
        )
        .unwrap();
        let mut keys = Vec::new();
        for (owner, n) in [("a", OWNER_LIMIT + 10), ("b", 5), ("gone", 3)] {
            for i in 0..n {
                let k = format!("k{i}");
                let h = HintKey {
                    owner,
                    version: Version::new(1 << 20, i as u64),
                    key: k.as_bytes(),
                };
                keys.push(h.encode().unwrap());
            }
        }
        let value = [PUT, b'v'];
        for chunk in keys.chunks(1000) {
            let changes: Vec<Change> = chunk
                .iter()
                .map(|k| {
                    Change::Put(PutEntry {
                        key: k,
                        value: &value,
                        ttl_secs: 0,
                        version: Some(Version::new(1 << 20, 1)),
                    })
                })
                .collect();
            store.write_each("kv", &changes).unwrap();
        }
        let known: HashSet<String> = ["a", "b"].map(String::from).into();
        let due = collect(&store, &known).unwrap();
        let count = |o: &str| {
            due.get(&(o.to_string(), "kv".to_string()))
                .map_or(0, Vec::len)
        };
        assert_eq!(count("a"), OWNER_LIMIT);
        assert_eq!(count("b"), 5);
        assert_eq!(
            count("gone"),
            0,
            "an owner that is not a peer is left alone"
        );
        let one = &due[&("b".to_string(), "kv".to_string())][0];
        assert_eq!(&one.entry.value[..], b"v");
        assert!(!one.entry.tombstone);
    }
}
