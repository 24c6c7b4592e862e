//! Reads and writes from every connection, gathered into batches: GETs become one
//! `get_many` per namespace, plain SETs one `put_many`, single-event CNT.ADDs one
//! `add_many`, so many clients' commands share one call per node and one group commit
//! there.
//!
//! Nothing waits on a timer. A request is sent at once when fewer than
//! [`IN_FLIGHT`] batches are out; otherwise it waits with the others that arrive, and
//! they leave together when a batch comes back. So an idle node answers one GET as
//! fast as the call allows, and a loaded one sends fewer, larger calls.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dstash_client::{Client, PutItem};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::command::failed;
use crate::reply::Reply;

/// Batches out at once; more requests wait and leave together.
const IN_FLIGHT: usize = 4;
/// Keys per batch, at most.
const MAX_BATCH: usize = 4096;

enum Op {
    Get(Vec<Bytes>),
    Put(Vec<PutItem>),
    Add(Vec<Bytes>),
}

impl Op {
    fn len(&self) -> usize {
        match self {
            Op::Get(k) | Op::Add(k) => k.len(),
            Op::Put(i) => i.len(),
        }
    }

    /// Which call the op joins: 0 get, 1 put, 2 add.
    fn kind(&self) -> u8 {
        match self {
            Op::Get(_) => 0,
            Op::Put(_) => 1,
            Op::Add(_) => 2,
        }
    }
}

struct Request {
    ns: String,
    op: Op,
    answer: oneshot::Sender<Vec<Reply>>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Request>,
}

impl Batcher {
    /// Starts the task that sends the batches through `client`.
    pub fn start(client: Client) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        Batcher { tx }
    }

    /// One reply per key: its value or nil.
    pub async fn get(&self, ns: &str, keys: Vec<Bytes>) -> Vec<Reply> {
        let n = keys.len();
        self.ask(ns, Op::Get(keys), n).await
    }

    /// One reply per item: OK, or why it was not written.
    pub async fn put(&self, ns: &str, items: Vec<PutItem>) -> Vec<Reply> {
        let n = items.len();
        self.ask(ns, Op::Put(items), n).await
    }

    /// One event for each key; one reply per key: its count, or why it was not counted.
    pub async fn add(&self, ns: &str, keys: Vec<Bytes>) -> Vec<Reply> {
        let n = keys.len();
        self.ask(ns, Op::Add(keys), n).await
    }

    async fn ask(&self, ns: &str, op: Op, n: usize) -> Vec<Reply> {
        let (answer, got) = oneshot::channel();
        let req = Request {
            ns: ns.to_string(),
            op,
            answer,
        };
        let gone = || vec![Reply::err("the server is shutting down"); n];
        if self.tx.send(req).is_err() {
            return gone();
        }
        got.await.unwrap_or_else(|_| gone())
    }
}

async fn run(client: Client, mut rx: mpsc::UnboundedReceiver<Request>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Everything that arrived while waiting for a permit leaves with `first`.
        let mut waiting = vec![first];
        while let Ok(r) = rx.try_recv() {
            waiting.push(r);
        }
        let client = client.clone();
        tokio::spawn(async move {
            send(&client, waiting).await;
            drop(permit);
        });
    }
}

/// Sends `reqs` as one batch per (namespace, kind), at most [`MAX_BATCH`] keys each.
async fn send(client: &Client, reqs: Vec<Request>) {
    let mut groups: HashMap<(String, u8), Vec<Request>> = HashMap::new();
    for r in reqs {
        groups
            .entry((r.ns.clone(), r.op.kind()))
            .or_default()
            .push(r);
    }
    let calls = groups
        .into_values()
        .flat_map(chunks)
        .map(|group| answer(client, group));
    futures_util::future::join_all(calls).await;
}

/// `group` cut into runs of at most [`MAX_BATCH`] keys.
fn chunks(group: Vec<Request>) -> Vec<Vec<Request>> {
    let mut out: Vec<Vec<Request>> = Vec::new();
    let mut keys = 0;
    for r in group {
        let n = r.op.len();
        if out.is_empty() || keys + n > MAX_BATCH {
            out.push(Vec::new());
            keys = 0;
        }
        keys += n;
        if let Some(last) = out.last_mut() {
            last.push(r);
        }
    }
    out
}

/// One call for `group` (one namespace, one kind), each request answered its share.
async fn answer(client: &Client, group: Vec<Request>) {
    let Some(ns) = group.first().map(|r| r.ns.clone()) else {
        return;
    };
    let sizes: Vec<usize> = group.iter().map(|r| r.op.len()).collect();
    let total: usize = sizes.iter().sum();
    let kind = group.first().map_or(0, |r| r.op.kind());
    let (mut keys, mut puts) = (Vec::new(), Vec::new());
    let mut answers = Vec::with_capacity(group.len());
    for r in group {
        match r.op {
            Op::Get(k) | Op::Add(k) => keys.extend(k),
            Op::Put(i) => puts.extend(i),
        }
        answers.push(r.answer);
    }
    let replies: Vec<Reply> = if kind == 2 {
        match client.add_many(&ns, &keys).await {
            Ok(counts) => counts
                .into_iter()
                .map(|c| match c {
                    Ok(n) => Reply::Int(n as i64),
                    Err(e) => failed(e),
                })
                .collect(),
            Err(e) => vec![failed(e); total],
        }
    } else if kind == 0 {
        match client.get_many(&ns, &keys).await {
            Ok(vs) => vs
                .into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
            Err(e) => vec![failed(e); total],
        }
    } else {
        match client.put_many(&ns, &puts).await {
            Ok(report) => {
                let mut r = vec![Reply::Status("OK"); total];
                for (at, e) in report.failed {
                    if let Some(slot) = r.get_mut(at) {
                        *slot = Reply::err(e.to_string());
                    }
                }
                r
            }
            Err(e) => vec![failed(e); total],
        }
    };
    let mut replies = replies.into_iter();
    for (answer, n) in answers.into_iter().zip(sizes) {
        let _ = answer.send(replies.by_ref().take(n).collect());
    }
}
