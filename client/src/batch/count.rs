//! `add_many`: one event for each key, every node's share on one stream at once; a key
//! is counted once W of its replicas counted it (W in each owner set during a layout
//! transition), and answers the highest count among them. Each message carries a
//! request id that follows its keys, so a stream cut by a transport failure is resent
//! from its first unanswered message, and a node that had applied one counts it once.

use std::time::Duration;

use dstash_proto::v1::{AddBatch, CountBatchResult};
use dstash_proto::Bytes;
use tonic::Code;

use super::{stream, Pace};
use crate::client::Client;
use crate::conn::Rpc;
use crate::error::{refused, Error, NodeFailure, Result};
use crate::quorum::{Outcome, Tally};
use crate::view::NodeHandle;

impl Client {
    /// Counts one event for each of `keys` (a key named twice counts twice), stamped
    /// with this client's second. Per key: its count, or why it missed its quorum.
    /// Fails as a whole only when the input itself is refused.
    pub async fn add_many(&self, ns: &str, keys: &[Bytes]) -> Result<Vec<Result<u64>>> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = crate::request_id::new();
        self.routed(|| self.add_many_once(ns, keys, at, &id)).await
    }

    async fn add_many_once(
        &self,
        ns: &str,
        keys: &[Bytes],
        at: u64,
        id: &str,
    ) -> Result<Vec<Result<u64>>> {
        let view = self.view();
        let chunk = self.cfg.batch_keys.max(1);
        let placed: Vec<_> = keys.iter().map(|k| view.write_targets(k)).collect();
        // Per node: the keys it counts, in input order, with its place among each
        // key's targets.
        let mut per_node: Vec<Vec<(usize, usize)>> = vec![Vec::new(); view.nodes.len()];
        for (p, t) in placed.iter().enumerate() {
            for (slot, &n) in t.nodes.iter().enumerate() {
                per_node[n].push((p, slot));
            }
        }
        let runs = per_node.iter().enumerate().map(|(n, share)| {
            let node = view.nodes[n].clone();
            let batches: Vec<AddBatch> = share
                .chunks(chunk)
                .enumerate()
                .map(|(i, ps)| {
                    let keys: Vec<Bytes> = ps.iter().map(|&(p, _)| keys[p].clone()).collect();
                    AddBatch {
                        namespace: ns.to_string(),
                        request_id: crate::request_id::for_message(id, i, &keys),
                        keys,
                        batch_id: i as u64,
                        at_seconds: at,
                    }
                })
                .collect();
            self.add_stream(node, batches)
        });
        let answers = futures_util::future::join_all(runs).await;
        let mut tallies: Vec<Tally> = Tally::for_each(&view, &placed);
        let mut best = vec![0u64; keys.len()];
        for (n, (batches, failed)) in answers.into_iter().enumerate() {
            let mut answered = 0;
            for (batch, ps) in batches.iter().zip(per_node[n].chunks(chunk)) {
                for (&count, &(p, slot)) in batch.counts.iter().zip(ps) {
                    best[p] = best[p].max(count);
                    tallies[p].ack(slot);
                }
                answered += ps.len();
            }
            if let Some(f) = failed {
                if let Some(e) = refused(&f) {
                    return Err(e);
                }
                for &(p, slot) in &per_node[n][answered..] {
                    tallies[p].fail(slot, f.clone());
                }
            }
        }
        Ok(tallies
            .iter()
            .zip(best)
            .map(|(t, count)| match t.outcome() {
                Outcome::Done => Ok(count),
                _ => Err(t.error()),
            })
            .collect::<Vec<std::result::Result<u64, Error>>>())
    }

    /// Sends `batches` to `node` on one stream; a stream cut by a transport failure is
    /// opened again for the unanswered messages, up to the configured retries.
    async fn add_stream(
        &self,
        node: NodeHandle,
        mut batches: Vec<AddBatch>,
    ) -> (Vec<CountBatchResult>, Option<NodeFailure>) {
        let mut answers = Vec::with_capacity(batches.len());
        let mut attempt = 0;
        loop {
            let pace = Pace {
                in_flight: self.cfg.in_flight,
                deadline: self.cfg.timeout,
                sample: false,
                patient: attempt > 0,
                short: false,
            };
            let open = |mut rpc: Rpc, s| async move { rpc.batch_add(s).await };
            let (got, failed) = stream(&node, batches.clone(), pace, |_, _| {}, open).await;
            batches.drain(..got.len());
            answers.extend(got);
            match failed {
                Some(f) if transport(f.code) && attempt < self.cfg.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                failed => return (answers, failed),
            }
        }
    }
}

/// A failure of the connection rather than an answer: the message may or may not have
/// been applied.
fn transport(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Cancelled)
}
