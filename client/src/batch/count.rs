//! `add_many`: one event for each key, every node's share on one stream at once; a key
//! is counted once W of its replicas counted it (W in each owner set during a layout
//! transition), and answers the highest count among them. Like `add`, not retried on
//! a transport failure: a retry could count an event twice.

use dstash_proto::v1::AddBatch;
use dstash_proto::Bytes;

use super::{stream, Pace};
use crate::client::Client;
use crate::error::{refused, Error, Result};
use crate::quorum::{Outcome, Tally};

impl Client {
    /// Counts one event for each of `keys` (a key named twice counts twice), stamped
    /// with this client's second. Per key: its count, or why it missed its quorum.
    /// Fails as a whole only when the input itself is refused.
    pub async fn add_many(&self, ns: &str, keys: &[Bytes]) -> Result<Vec<Result<u64>>> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.routed(|| self.add_many_once(ns, keys, at)).await
    }

    async fn add_many_once(&self, ns: &str, keys: &[Bytes], at: u64) -> Result<Vec<Result<u64>>> {
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
                .map(|(id, ps)| AddBatch {
                    namespace: ns.to_string(),
                    keys: ps.iter().map(|&(p, _)| keys[p].clone()).collect(),
                    batch_id: id as u64,
                    at_seconds: at,
                })
                .collect();
            let pace = Pace {
                in_flight: self.cfg.in_flight,
                deadline: self.cfg.timeout,
                sample: false,
                patient: false,
                short: false,
            };
            async move {
                stream(
                    &node,
                    batches,
                    pace,
                    |_| {},
                    |mut rpc, s| async move { rpc.batch_add(s).await },
                )
                .await
            }
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
}
