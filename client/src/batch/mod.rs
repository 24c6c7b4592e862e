//! Batches: split by owning node (rayon for the hashing of large batches), one
//! bidirectional stream per node, all nodes at once, a bounded number of unanswered
//! messages per stream, and results put back in input order.
//!
//! - Writes go to each key's R replicas; a key is written once W of them acknowledged
//!   the batch holding it. A node that fails mid-stream fails its unacknowledged
//!   batches, and the keys that then miss their quorum are reported, one by one.
//! - Reads go to each key's best replica; keys that have not yet had the read quorum of
//!   answers with a version (a failed node, a replica that holds nothing or a damaged
//!   record) are asked of the next replica. The newest version wins and is written back
//!   to the replicas found lagging (`resolve.rs` states the rules).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstash_proto::Bytes;
use rayon::prelude::*;
use tokio::sync::{mpsc, Semaphore};
use tonic::{Status, Streaming};

use crate::client::failure;
use crate::conn::Rpc;
use crate::error::{Error, NodeFailure};
use crate::local::{LocalMessage, LocalNode};
use crate::view::NodeHandle;

mod count;
mod read;
mod write;

pub use write::WRITES_BEHIND;

/// One key to write.
#[derive(Debug, Clone)]
pub struct PutItem {
    pub key: Bytes,
    pub value: Bytes,
    pub ttl_seconds: u32,
}

/// What a batch write did, key by key.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub written: u64,
    /// Deletes only: keys some replica held a live value for.
    pub existed: u64,
    /// Input positions of the keys that missed their quorum, with why.
    pub failed: Vec<(usize, Error)>,
}

/// Above this many keys, placement is computed on rayon's threads.
const PARALLEL_PLACEMENT: usize = 4096;

/// `place` of each key: its read replicas or its write targets.
fn placed<'a, T: Send>(
    keys: impl IndexedParallelIterator<Item = &'a [u8]>,
    place: impl Fn(&[u8]) -> T + Sync + Send,
) -> Vec<T> {
    if keys.len() >= PARALLEL_PLACEMENT {
        keys.map(place).collect()
    } else {
        let keys: Vec<&[u8]> = keys.collect();
        keys.into_iter().map(place).collect()
    }
}

/// A replica's answer that it holds the key's record damaged.
fn damaged(node: &NodeHandle) -> NodeFailure {
    NodeFailure {
        node: node.id.clone(),
        code: tonic::Code::DataLoss,
        message: "the replica's record for this key is damaged".into(),
    }
}

/// How a batch stream is run: unanswered messages at most, how long to wait for each
/// answer, and whether answers feed the node's latency estimate (reads do).
#[derive(Clone, Copy)]
struct Pace {
    in_flight: usize,
    deadline: Duration,
    sample: bool,
    /// Ask even a node marked down: a retry of one an earlier attempt cut short.
    patient: bool,
    /// `deadline` is a read's attempt deadline: missing it makes the node suspect, not
    /// down.
    short: bool,
}

/// Sends `batches` on one stream opened by `open`, paced by `pace`, calling `answered`
/// with each answer and the count of answers so far. Returns the answers received, in order, and the failure that ended the stream early, if one did: a node
/// that gives no answer within the deadline fails with DEADLINE_EXCEEDED.
async fn stream<Req, Resp, F, Fut>(
    node: &NodeHandle,
    batches: Vec<Req>,
    pace: Pace,
    mut answered: impl FnMut(&Resp, usize),
    open: F,
) -> (Vec<Resp>, Option<NodeFailure>)
where
    Req: Send + 'static + LocalMessage<Answer = Resp>,
    F: FnOnce(Rpc, tokio_stream::wrappers::ReceiverStream<Req>) -> Fut,
    Fut: Future<Output = std::result::Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    let total = batches.len();
    if total == 0 {
        return (Vec::new(), None);
    }
    if let Some(local) = node.local.clone() {
        return in_process(node, local.as_ref(), batches, pace, answered).await;
    }
    if let Some(left) = node
        .health
        .down_for(Instant::now())
        .filter(|_| !pace.patient)
    {
        let s = Status::unavailable(format!(
            "marked down for another {left:.1?} after failed calls"
        ));
        return (Vec::new(), Some(failure(node, &s)));
    }
    let permits = Arc::new(Semaphore::new(pace.in_flight.max(1)));
    let (tx, rx) = mpsc::channel::<Req>(1);
    let feeder = {
        let permits = permits.clone();
        tokio::spawn(async move {
            for b in batches {
                let Ok(p) = permits.clone().acquire_owned().await else {
                    return;
                };
                p.forget(); // given back when the answer arrives
                if tx.send(b).await.is_err() {
                    return; // the stream ended
                }
            }
        })
    };
    let mut answers = Vec::with_capacity(total);
    let result: std::result::Result<(), Status> = async {
        let late = || Status::deadline_exceeded(format!("no answer within {:?}", pace.deadline));
        let opened = open(
            node.rpc.clone(),
            tokio_stream::wrappers::ReceiverStream::new(rx),
        );
        let mut responses = tokio::time::timeout(pace.deadline, opened)
            .await
            .map_err(|_| late())??
            .into_inner();
        let mut since = Instant::now();
        while answers.len() < total {
            let next = tokio::time::timeout(pace.deadline, responses.message())
                .await
                .map_err(|_| late())??;
            match next {
                Some(r) => {
                    if pace.sample {
                        node.health.sample(since.elapsed());
                        since = Instant::now();
                    }
                    answered(&r, answers.len() + 1);
                    answers.push(r);
                    permits.add_permits(1);
                }
                None => return Err(Status::unavailable("the node ended the stream early")),
            }
        }
        Ok(())
    }
    .await;
    feeder.abort();
    let code = result.as_ref().err().map(Status::code);
    match code {
        Some(tonic::Code::DeadlineExceeded) if pace.short => node.health.suspect(Instant::now()),
        _ => node.health.record(code, Instant::now()),
    }
    (answers, result.err().map(|s| failure(node, &s)))
}

/// [`stream`] for a node in this process: each message applied by a call, up to
/// `pace.in_flight` at once, answers in order, with the stream's deadline per answer.
async fn in_process<Req, Resp>(
    node: &NodeHandle,
    local: &dyn LocalNode,
    batches: Vec<Req>,
    pace: Pace,
    mut answered: impl FnMut(&Resp, usize),
) -> (Vec<Resp>, Option<NodeFailure>)
where
    Req: LocalMessage<Answer = Resp>,
{
    use futures_util::StreamExt;
    let mut answers = Vec::with_capacity(batches.len());
    let calls = batches.into_iter().map(|b| b.apply(local, node.epoch));
    let mut calls = futures_util::stream::iter(calls).buffered(pace.in_flight.max(1));
    let result = loop {
        match tokio::time::timeout(pace.deadline, calls.next()).await {
            Err(_) => {
                let late = format!("no answer within {:?}", pace.deadline);
                break Err(Status::deadline_exceeded(late));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(s))) => break Err(s),
            Ok(Some(Ok(a))) => {
                answered(&a, answers.len() + 1);
                answers.push(a);
            }
        }
    };
    node.health
        .record(result.as_ref().err().map(Status::code), Instant::now());
    (answers, result.err().map(|s| failure(node, &s)))
}
