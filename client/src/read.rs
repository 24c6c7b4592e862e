//! Reads of single keys: the best replica first, failing over to the next on an error
//! or timeout; a value found after replicas that lacked it is written back to them.

use std::future::Future;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use tonic::{Code, Status};

use crate::client::{failure, rejected, unary, Client};
use crate::conn::Rpc;
use crate::error::{Error, Result};
use crate::view::NodeHandle;

/// One replica's reply to a failover read: its answer, or the error (not a rejection)
/// that moves the read on to the next replica.
pub(crate) enum Reply<'a, T> {
    Answer(T),
    Failed(&'a Status),
}

/// What one replica's reply means to a failover read.
pub(crate) enum Step<R> {
    /// The read is answered.
    Done(R),
    /// Ask the next replica.
    Next,
}

impl Client {
    /// Asks `key`'s replicas one at a time, best first, handing each reply to `reply`
    /// until it is `Done`. An error or timeout moves on to the next replica; a rejection
    /// ends the read. `Ok(None)`: every replica was asked and at least one answered;
    /// `Unavailable` when none did.
    pub(crate) async fn failover<T, R, F, Fut>(
        &self,
        key: &[u8],
        f: F,
        mut reply: impl FnMut(&NodeHandle, Reply<'_, T>) -> Step<R>,
    ) -> Result<Option<R>>
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let view = self.view();
        let mut failures = Vec::new();
        let mut answered = false;
        for i in view.replicas(key) {
            let node = &view.nodes[i];
            match self.call(node, true, &f).await {
                Ok(a) => {
                    answered = true;
                    if let Step::Done(r) = reply(node, Reply::Answer(a)) {
                        return Ok(Some(r));
                    }
                }
                Err(s) => match rejected(node, &s) {
                    Some(e) => return Err(e),
                    None => {
                        failures.push(failure(node, &s));
                        if let Step::Done(r) = reply(node, Reply::Failed(&s)) {
                            return Ok(Some(r));
                        }
                    }
                },
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(Error::Unavailable { failures })
        }
    }

    /// Reads `key` from its best replica, failing over to the next on an error or
    /// timeout. A replica that lacks a key another has, or holds it damaged
    /// (`DATA_LOSS`), gets it written back.
    pub async fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let req = LookupRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
        };
        let mut lacking = Vec::new();
        let found = self
            .failover(
                key,
                unary!(req, lookup),
                |node, r: Reply<'_, LookupResponse>| {
                    match r {
                        Reply::Answer(a) if a.found => return Step::Done(a),
                        Reply::Answer(_) => lacking.push(node.clone()),
                        Reply::Failed(s) if s.code() == Code::DataLoss => {
                            lacking.push(node.clone())
                        }
                        Reply::Failed(_) => {}
                    }
                    Step::Next
                },
            )
            .await?;
        Ok(found.map(|a| {
            self.repair(&lacking, ns, key, a.value.clone(), a.ttl_seconds);
            a.value
        }))
    }

    /// Writes a value back to replicas found lacking it, in the background.
    pub(crate) fn repair(
        &self,
        lacking: &[NodeHandle],
        ns: &str,
        key: &[u8],
        value: Bytes,
        ttl_seconds: u32,
    ) {
        for node in lacking {
            let req = PutRequest {
                namespace: ns.into(),
                key: Bytes::copy_from_slice(key),
                value: value.clone(),
                ttl_seconds,
            };
            let (client, node) = (self.clone(), node.clone());
            tokio::spawn(async move {
                if let Err(e) = client.call(&node, true, unary!(req, put)).await {
                    tracing::warn!(node = %node.id, "read repair failed: {}", e.message());
                }
            });
        }
    }

    /// Counts `key`'s events in the last `window_seconds` (0: the retention) on its best
    /// answering replica, or with `max_over_replicas` the highest count of all of them.
    pub async fn count(
        &self,
        ns: &str,
        key: &[u8],
        window_seconds: u32,
        max_over_replicas: bool,
    ) -> Result<u64> {
        let req = CountRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            window_seconds,
        };
        let mut best = 0;
        let first = self
            .failover(key, unary!(req, count), |_, r: Reply<'_, CountResponse>| {
                let Reply::Answer(a) = r else {
                    return Step::Next;
                };
                if max_over_replicas {
                    best = best.max(a.count);
                    Step::Next
                } else {
                    Step::Done(a.count)
                }
            })
            .await?;
        Ok(first.unwrap_or(best))
    }
}
