//! `get_many`: rank by rank over each key's replicas, see the module above.

use std::sync::atomic::Ordering;
use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use rayon::prelude::*;

use super::{damaged, placed, stream, Pace};
use crate::client::Client;
use crate::error::{refused, NodeFailure, Result};
use crate::health::NodeState;
use crate::resolve::{Found, Held, Replies};

impl Client {
    /// Looks up every key; results in input order. Each key is read as [`Client::get`]
    /// reads one (read quorum, newest version wins, lagging replicas repaired), rank by
    /// rank: all keys' best replicas at once, then the next replica of the keys still
    /// short of their quorum. Fails only if some key could be read from none of its
    /// replicas, or the input is refused.
    pub async fn get_many(&self, ns: &str, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        let found = self.get_many_with_ttl(ns, keys).await?;
        Ok(found.into_iter().map(|f| f.map(|(v, _)| v)).collect())
    }

    /// [`get_many`](Self::get_many) with each value's seconds to live (0: never
    /// expires).
    pub async fn get_many_with_ttl(
        &self,
        ns: &str,
        keys: &[Bytes],
    ) -> Result<Vec<Option<(Bytes, u32)>>> {
        let found = self.get_many_found(ns, keys).await?;
        Ok(found
            .into_iter()
            .map(|f| f.map(|f| (f.value, f.ttl_seconds)))
            .collect())
    }

    /// [`get_many`](Self::get_many) with each value's TTL and version.
    pub async fn get_many_found(&self, ns: &str, keys: &[Bytes]) -> Result<Vec<Option<Found>>> {
        self.routed(|| async {
            let q = self.view().q;
            self.get_many_quorum(ns, keys, q).await
        })
        .await
    }

    /// [`get_many_found`](Self::get_many_found) with read quorum `q` (capped at R).
    async fn get_many_quorum(
        &self,
        ns: &str,
        keys: &[Bytes],
        q: usize,
    ) -> Result<Vec<Option<Found>>> {
        let view = self.view();
        let mut placed = placed(keys.par_iter().map(|k| k.as_ref()), |k| view.replicas(k));
        let now = Instant::now();
        let states = view.states(now);
        if states.iter().any(|&s| s != NodeState::Up) {
            // Suspect and down nodes are asked last: their share goes to the next replica.
            for replicas in &mut placed {
                *replicas = view.read_order(std::mem::take(replicas), &states);
            }
        }
        // Per key, replicas by index into the view: no handle clone per key.
        let mut replies: Vec<Replies<usize>> = keys.iter().map(|_| Replies::default()).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let chunk = self.cfg.batch_keys.max(1);
        // A replica that failed a key's read (cut short by its attempt deadline, skipped
        // as marked down, or broken) is appended to the key's list, past `base`: if the
        // key is still short of its quorum once its replicas were asked, it is asked
        // again, patiently (the call's deadline, even if marked down). A miss is thus
        // never decided while a replica that may hold the key went unheard.
        let base: Vec<usize> = placed.iter().map(Vec::len).collect();
        for rank in 0.. {
            pending.retain(|&p| placed[p].len() > rank);
            if pending.is_empty() {
                break;
            }
            let mut per_node: Vec<Vec<usize>> = vec![Vec::new(); view.nodes.len()];
            for &p in &pending {
                if let Some(&n) = placed[p].get(rank) {
                    per_node[n].push(p);
                }
            }
            // A node whose keys can all go on to an answering replica gets its attempt
            // deadline; one that is some key's last hope, the call's. States are read
            // again each rank: the last one may have marked nodes.
            let states = view.states(now);
            let short: Vec<bool> = per_node
                .iter()
                .map(|positions| {
                    positions.iter().all(|&p| {
                        rank + 1 < base[p] && states[placed[p][rank + 1]] == NodeState::Up
                    })
                })
                .collect();
            let runs = per_node.iter().enumerate().map(|(n, positions)| {
                let node = view.nodes[n].clone();
                let batches: Vec<LookupBatch> = positions
                    .chunks(chunk)
                    .enumerate()
                    .map(|(id, ps)| LookupBatch {
                        namespace: ns.to_string(),
                        keys: ps.iter().map(|&p| keys[p].clone()).collect(),
                        batch_id: id as u64,
                        flat: true,
                    })
                    .collect();
                let deadline = match short[n] {
                    true => node
                        .health
                        .attempt_deadline(self.cfg.batch_attempt, self.cfg.timeout),
                    false => self.cfg.timeout,
                };
                let pace = Pace {
                    in_flight: self.cfg.in_flight,
                    deadline,
                    sample: true,
                    patient: positions.iter().any(|&p| rank >= base[p]),
                    short: short[n],
                };
                async move {
                    stream(
                        &node,
                        batches,
                        pace,
                        |_, _| {},
                        |mut rpc, s| async move { rpc.batch_lookup(s).await },
                    )
                    .await
                }
            });
            let answers = futures_util::future::join_all(runs).await;
            for (n, (batches, mut failed)) in answers.into_iter().enumerate() {
                let node = &view.nodes[n];
                let mut answered = 0;
                for (batch, ps) in batches.iter().zip(per_node[n].chunks(chunk)) {
                    let helds = match Held::of_batch(batch, ps.len()) {
                        Ok(h) => h,
                        Err(why) => {
                            // The rest of this node's share is read elsewhere.
                            failed = Some(NodeFailure {
                                node: node.id.clone(),
                                code: tonic::Code::Internal,
                                message: why,
                            });
                            break;
                        }
                    };
                    for (held, &p) in helds.into_iter().zip(ps) {
                        if held == Held::Damaged {
                            replies[p].failures.push(damaged(node));
                        }
                        replies[p].answers.push((n, held));
                    }
                    answered += ps.len();
                }
                if let Some(f) = failed {
                    if let Some(e) = refused(&f) {
                        return Err(e);
                    }
                    let cut_short = short[n] && f.code == tonic::Code::DeadlineExceeded;
                    if cut_short {
                        self.metrics.hedges_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    for &p in &per_node[n][answered..] {
                        replies[p].failures.push(f.clone());
                        if rank < base[p] {
                            placed[p].push(n);
                        }
                    }
                }
            }
            pending.retain(|&p| replies[p].informed() < q);
        }
        replies
            .iter_mut()
            .zip(keys)
            .map(|(r, key)| {
                self.settle(ns, key, r, |&n| view.nodes[n].clone())?;
                r.found()
            })
            .collect()
    }
}
