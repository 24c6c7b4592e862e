//! One namespace against one peer, over the partitions they share. Bytes on the wire
//! grow with the differences: equal partitions cost one digest each, a differing one
//! its 64 leaf digests, and only differing leaves list their (key, version) pairs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dstash_cluster::partition::{first_leaf, LEAVES_PER_PARTITION};
use dstash_proto::v1::*;
use dstash_proto::Bytes;
use dstash_storage::{Store, Version};
use futures_util::StreamExt;
use prost::Message;
use tonic::Status;

use super::dial::Remote;
use super::Tally;
use crate::batch;

/// Partitions whose leaf digests are asked for in one request.
const PARTITIONS_PER_ASK: usize = 256;
/// Leaves listed in one round of entry comparison.
const LEAVES_PER_ROUND: usize = 2048;
/// How long a session waits for digests still being rebuilt.
const NOT_READY_WAIT: Duration = Duration::from_secs(120);
/// Keys per pushed or pulled batch.
const BATCH: usize = 1000;
/// Value bytes per pushed or pulled batch, well under the message limit.
const BATCH_BYTES: u64 = 4 << 20;

/// What one side holds for a key: its version, whether it is a tombstone, value bytes.
type Held = Option<(Version, bool, u32)>;

pub struct Session {
    pub store: Arc<Store>,
    pub remote: Remote,
    pub ns: String,
    /// Unix seconds now; a tombstone older than the grace period is not exchanged (both
    /// sides may already have dropped it).
    pub now: u64,
    pub grace: u64,
    pub tally: Tally,
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> dstash_storage::Result<T> + Send + 'static,
) -> Result<T, Status> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| Status::internal(format!("storage task failed: {e}")))?
        .map_err(crate::status::status)
}

impl Session {
    /// Compares and reconciles `partitions`; the tally says what moved.
    pub async fn run(&mut self, partitions: &[u32]) -> Result<(), Status> {
        let differing = self.differing(partitions.to_vec(), false).await?;
        self.tally.partitions_differing += differing.len() as u64;
        for chunk in differing.chunks(PARTITIONS_PER_ASK) {
            let leaves = self.differing(chunk.to_vec(), true).await?;
            for round in leaves.chunks(LEAVES_PER_ROUND) {
                self.reconcile(round).await?;
            }
        }
        self.tally.partitions_done += partitions.len() as u64;
        Ok(())
    }

    /// [`Session::compare`], waiting while either side still rebuilds its digests
    /// after a start (a few seconds per million keys). Other failures end the session.
    async fn differing(&mut self, partitions: Vec<u32>, leaves: bool) -> Result<Vec<u32>, Status> {
        let deadline = tokio::time::Instant::now() + NOT_READY_WAIT;
        loop {
            match self.compare(partitions.clone(), leaves).await? {
                Some(d) => return Ok(d),
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => {
                    return Err(Status::unavailable(
                        "digests still being rebuilt after two minutes",
                    ))
                }
            }
        }
    }

    /// The partitions (or, with `leaves`, the leaves of the partitions) whose digests
    /// differ between the two sides; None while either side's are being rebuilt.
    async fn compare(
        &mut self,
        partitions: Vec<u32>,
        leaves: bool,
    ) -> Result<Option<Vec<u32>>, Status> {
        let ns = self.ns.clone();
        let asked = partitions.clone();
        let Some(local) = blocking(&self.store, move |s| s.digests(&ns, &asked, leaves)).await?
        else {
            return Ok(None);
        };
        let req = DigestRequest {
            namespace: self.ns.clone(),
            partitions: partitions.clone(),
            leaves,
        };
        self.tally.bytes_sent += req.encoded_len() as u64;
        let resp = self.remote.digest(req).await?.into_inner();
        self.tally.bytes_received += resp.encoded_len() as u64;
        if !resp.ready {
            return Ok(None);
        }
        if resp.digests.len() != local.len() {
            return Err(Status::internal(format!(
                "the peer sent {} digests for {} asked",
                resp.digests.len(),
                local.len()
            )));
        }
        let per = if leaves {
            LEAVES_PER_PARTITION as usize
        } else {
            1
        };
        let id = |i: usize| match leaves {
            true => first_leaf(partitions[i / per]) + (i % per) as u32,
            false => partitions[i],
        };
        Ok(Some(
            (0..local.len())
                .filter(|&i| local[i] != resp.digests[i])
                .map(id)
                .collect(),
        ))
    }

    /// Lists both sides' records in `leaves` and moves each key's newer record across.
    async fn reconcile(&mut self, leaves: &[u32]) -> Result<(), Status> {
        let ns = self.ns.clone();
        let asked = leaves.to_vec();
        let local = blocking(&self.store, move |s| s.leaf_entries(&ns, &asked)).await?;
        let req = LeafEntriesRequest {
            namespace: self.ns.clone(),
            leaves: leaves.to_vec(),
        };
        self.tally.bytes_sent += req.encoded_len() as u64;
        let mut stream = self.remote.leaf_entries(req).await?.into_inner();
        let mut both: HashMap<Bytes, (Held, Held)> = HashMap::new();
        for e in local {
            both.entry(Bytes::from(e.key)).or_default().0 =
                Some((e.version, e.tombstone, e.value_len));
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.tally.bytes_received += chunk.encoded_len() as u64;
            for e in chunk.entries {
                let v = batch::version_in(e.version).unwrap_or_default();
                both.entry(e.key).or_default().1 = Some((v, e.tombstone, e.value_len));
            }
        }
        self.tally.keys_compared += both.len() as u64;
        let (mut push, mut pull) = (Vec::new(), Vec::new());
        for (key, (mine, theirs)) in both {
            match (self.live(mine), self.live(theirs)) {
                (Some(a), b) if b.is_none_or(|b| a > b) => push.push((key, size(mine))),
                (a, Some(b)) if a.is_none_or(|a| b > a) => pull.push((key, size(theirs))),
                _ => {}
            }
        }
        for keys in batches(push) {
            self.push(keys).await?;
        }
        for keys in batches(pull) {
            self.pull(keys).await?;
        }
        Ok(())
    }

    /// The version held, unless it is a tombstone past its grace period.
    fn live(&self, held: Held) -> Option<Version> {
        match held {
            Some((v, true, _)) if v.secs().saturating_add(self.grace) <= self.now => None,
            Some((v, _, _)) => Some(v),
            None => None,
        }
    }

    /// Reads `keys` here and writes what this node holds to the peer.
    async fn push(&mut self, keys: Vec<Bytes>) -> Result<(), Status> {
        let ns = self.ns.clone();
        let found = blocking(&self.store, move |s| {
            batch::lookup(
                s,
                LookupBatch {
                    namespace: ns,
                    keys: keys.clone(),
                    batch_id: 0,
                    flat: false,
                },
            )
            .map(|r| entries(keys, r.results))
        })
        .await?;
        if found.is_empty() {
            return Ok(());
        }
        let sent = found.len() as u64;
        let msg = PutBatch {
            namespace: self.ns.clone(),
            entries: found,
            batch_id: 0,
        };
        self.tally.bytes_sent += msg.encoded_len() as u64;
        let mut acks = self
            .remote
            .batch_put(futures_util::stream::iter([msg]))
            .await?
            .into_inner();
        while let Some(ack) = acks.next().await {
            self.tally.bytes_received += ack?.encoded_len() as u64;
        }
        self.tally.pushed += sent;
        Ok(())
    }

    /// Reads `keys` from the peer and writes what it holds here.
    async fn pull(&mut self, keys: Vec<Bytes>) -> Result<(), Status> {
        let msg = LookupBatch {
            namespace: self.ns.clone(),
            keys: keys.clone(),
            batch_id: 0,
            flat: false,
        };
        self.tally.bytes_sent += msg.encoded_len() as u64;
        let mut results = self
            .remote
            .batch_lookup(futures_util::stream::iter([msg]))
            .await?
            .into_inner();
        let mut got = Vec::new();
        while let Some(r) = results.next().await {
            let r = r?;
            self.tally.bytes_received += r.encoded_len() as u64;
            got.extend(r.results);
        }
        let found = entries(keys, got);
        if found.is_empty() {
            return Ok(());
        }
        let n = found.len() as u64;
        let ns = self.ns.clone();
        blocking(&self.store, move |s| {
            batch::put(
                s,
                PutBatch {
                    namespace: ns,
                    entries: found,
                    batch_id: 0,
                },
            )
        })
        .await?;
        self.tally.pulled += n;
        Ok(())
    }
}

fn size(held: Held) -> u64 {
    held.map_or(0, |(_, _, len)| len as u64)
}

/// Keys cut into batches of at most [`BATCH`] keys and about [`BATCH_BYTES`] of values.
fn batches(keys: Vec<(Bytes, u64)>) -> Vec<Vec<Bytes>> {
    let mut out: Vec<Vec<Bytes>> = Vec::new();
    let mut bytes = 0;
    for (key, len) in keys {
        let full = out
            .last()
            .is_none_or(|b| b.len() >= BATCH || bytes + len > BATCH_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += len;
        if let Some(b) = out.last_mut() {
            b.push(key);
        }
    }
    out
}

/// The records a lookup answered, as entries to write elsewhere with their versions;
/// keys held as nothing, or damaged, are left out.
fn entries(keys: Vec<Bytes>, results: Vec<LookupResponse>) -> Vec<Entry> {
    keys.into_iter()
        .zip(results)
        .filter(|(_, r)| r.version.is_some() && !r.damaged)
        .map(|(key, r)| Entry {
            key,
            value: r.value,
            ttl_seconds: r.ttl_seconds,
            version: r.version,
            tombstone: !r.found,
        })
        .collect()
}
