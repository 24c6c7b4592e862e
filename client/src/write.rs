//! Writes of single keys: sent to every replica at once, answered once W acknowledge.

use std::future::Future;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tonic::Status;

use crate::client::{failure, rejected, unary, Client};
use crate::conn::Rpc;
use crate::error::Result;
use crate::quorum::{Outcome, Tally};
use crate::resolve::wire_version;

impl Client {
    /// Sends a write to every replica of `key` at once and returns the answers of the
    /// first W. The other replicas' calls run on: they are not cancelled.
    async fn write<T, F, Fut>(&self, key: &[u8], retry: bool, f: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Rpc) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>> + Send + 'static,
    {
        let view = self.view();
        let replicas = view.replicas(key);
        let mut tally = Tally::new(view.ids(&replicas), view.w);
        // W above the replicas: refuse before sending anything.
        if tally.outcome() == Outcome::Failed {
            return Err(tally.error());
        }
        let mut answers: FuturesUnordered<_> = replicas
            .iter()
            .map(|&i| {
                let (client, node, f) = (self.clone(), view.nodes[i].clone(), f.clone());
                tokio::spawn(async move {
                    let r = client.call(&node, retry, f).await;
                    (node, r)
                })
            })
            .collect();
        let mut acked = Vec::new();
        while let Some(joined) = answers.next().await {
            let Ok((node, r)) = joined else { continue };
            let outcome = match r {
                Ok(v) => {
                    acked.push(v);
                    tally.ack()
                }
                Err(s) => match rejected(&node, &s) {
                    Some(e) => return Err(e),
                    None => tally.fail(failure(&node, &s)),
                },
            };
            match outcome {
                Outcome::Done => return Ok(acked),
                Outcome::Failed => return Err(tally.error()),
                Outcome::Waiting => {}
            }
        }
        Err(tally.error())
    }

    pub async fn put(&self, ns: &str, key: &[u8], value: &[u8], ttl_seconds: u32) -> Result<()> {
        let req = PutRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_seconds,
            version: wire_version(self.next_version()),
        };
        self.write(key, true, unary!(req, put)).await.map(drop)
    }

    /// Deletes `key` from its replicas, leaving a tombstone of this delete's version on
    /// each; true when any replica that answered had a live value.
    pub async fn delete(&self, ns: &str, key: &[u8]) -> Result<bool> {
        let req = DeleteRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            version: wire_version(self.next_version()),
        };
        let answers = self.write(key, true, unary!(req, delete)).await?;
        Ok(answers.iter().any(|a| a.found))
    }

    /// Adds `n` events to `key` on its replicas; returns the highest count among the W
    /// that acknowledged. Not retried: a retry could count an event twice.
    pub async fn add(&self, ns: &str, key: &[u8], n: u32) -> Result<u64> {
        let req = AddRequest {
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key),
            n,
        };
        let answers = self.write(key, false, unary!(req, add)).await?;
        Ok(answers.iter().map(|a| a.count).max().unwrap_or(0))
    }
}
