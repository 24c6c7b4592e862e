//! Reads and writes from every connection, gathered into batches: GETs of keys this
//! node answers first are read from its store at once, the other GETs become one
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
use dstash_client::Stage;
use dstash_node::local::LocalReads;
use dstash_storage::Lookup;

/// Batches out at once; more requests wait and leave together.
const IN_FLIGHT: usize = 4;
/// Keys read from this node's store on the calling task, at most; more go to a
/// blocking thread.
const INLINE_READS: usize = 32;
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

    /// Which call the op joins.
    fn kind(&self) -> Kind {
        match self {
            Op::Get(_) => Kind::Get,
            Op::Put(_) => Kind::Put,
            Op::Add(_) => Kind::Add,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Get,
    Put,
    Add,
}

struct Request {
    ns: String,
    op: Op,
    answer: oneshot::Sender<Vec<Reply>>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Request>,
    client: Client,
    local: Option<Local>,
}

/// This node's own store, for the keys it is the first replica of.
#[derive(Clone)]
pub struct Local {
    pub reads: LocalReads,
    /// This node's id among the client's nodes.
    pub me: String,
}

impl Batcher {
    /// Starts the task that sends the batches through `client`, reading the keys this
    /// node answers first from `local` when given.
    pub fn start(client: Client, local: Option<Local>) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client.clone(), rx));
        Batcher { tx, client, local }
    }

    /// One reply per key: its value or nil. Keys this node answers first are read from
    /// its store at once; the rest join a shared batch.
    pub async fn get(&self, ns: &str, keys: Vec<Bytes>) -> Vec<Reply> {
        let (client, local) = (&self.client, self.local.as_ref());
        read(client, local, ns, keys, |rest| {
            let n = rest.len();
            self.ask(ns, Op::Get(rest), n)
        })
        .await
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
    let mut groups: HashMap<(String, Kind), Vec<Request>> = HashMap::new();
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
    let kind = group.first().map_or(Kind::Get, |r| r.op.kind());
    let (mut keys, mut puts) = (Vec::new(), Vec::new());
    let mut answers = Vec::with_capacity(group.len());
    for r in group {
        match r.op {
            Op::Get(k) | Op::Add(k) => keys.extend(k),
            Op::Put(i) => puts.extend(i),
        }
        answers.push(r.answer);
    }
    let replies: Vec<Reply> = match kind {
        Kind::Add => match client.add_many(&ns, &keys).await {
            Ok(counts) => counts
                .into_iter()
                .map(|c| match c {
                    Ok(n) => Reply::Int(n as i64),
                    Err(e) => failed(e),
                })
                .collect(),
            Err(e) => vec![failed(e); total],
        },
        Kind::Get => fetch(client, &ns, &keys).await,
        Kind::Put => match client.put_many(&ns, &puts).await {
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
        },
    };
    let mut replies = replies.into_iter();
    for (answer, n) in answers.into_iter().zip(sizes) {
        let _ = answer.send(replies.by_ref().take(n).collect());
    }
}

/// Values of `keys`: those this node is the first replica of from its own store (what
/// the client, reading one replica, would get from it), the rest and any it lacks by
/// `rest_of`. Only with a read quorum of 1 and no transition running.
async fn read<F, Fut>(
    client: &Client,
    local: Option<&Local>,
    ns: &str,
    keys: Vec<Bytes>,
    rest_of: F,
) -> Vec<Reply>
where
    F: FnOnce(Vec<Bytes>) -> Fut,
    Fut: std::future::Future<Output = Vec<Reply>>,
{
    let mut replies: Vec<Option<Reply>> = vec![None; keys.len()];
    if let Some(l) = local {
        for (i, r) in local_reads(client, l, ns, &keys).await {
            replies[i] = Some(r);
        }
    }
    let rest: Vec<usize> = (0..keys.len()).filter(|&i| replies[i].is_none()).collect();
    if !rest.is_empty() {
        let asked: Vec<Bytes> = rest.iter().map(|&i| keys[i].clone()).collect();
        for (i, r) in rest.into_iter().zip(rest_of(asked).await) {
            replies[i] = Some(r);
        }
    }
    replies
        .into_iter()
        .map(|r| r.unwrap_or(Reply::Nil))
        .collect()
}

/// Values of `keys` through the client.
async fn fetch(client: &Client, ns: &str, keys: &[Bytes]) -> Vec<Reply> {
    match client.get_many(ns, keys).await {
        Ok(vs) => vs
            .into_iter()
            .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
            .collect(),
        Err(e) => vec![failed(e); keys.len()],
    }
}

/// (position, reply) for the keys this node answers from its store.
async fn local_reads(client: &Client, l: &Local, ns: &str, keys: &[Bytes]) -> Vec<(usize, Reply)> {
    let view = client.view();
    let stable = view
        .layout
        .as_ref()
        .is_none_or(|l| l.stage == Stage::Stable);
    let Some(me) = view.nodes.iter().position(|n| n.id == l.me) else {
        return Vec::new();
    };
    if view.q != 1 || !stable {
        return Vec::new();
    }
    // Per key this node answers first: whether it is the key's only replica (then a
    // key it lacks is absent; else the client asks the others).
    let (mine, only): (Vec<usize>, Vec<bool>) = (0..keys.len())
        .filter_map(|i| {
            let r = view.replicas(&keys[i]);
            (r.first() == Some(&me)).then_some((i, r.len() == 1))
        })
        .unzip();
    if mine.is_empty() {
        return Vec::new();
    }
    let asked: Vec<Bytes> = mine.iter().map(|&i| keys[i].clone()).collect();
    let (reads, epoch, ns) = (l.reads.clone(), view.epoch(), ns.to_string());
    let lookup = move || {
        let refs: Vec<&[u8]> = asked.iter().map(|k| k.as_ref()).collect();
        reads.lookup(epoch, &ns, &refs)
    };
    // A few keys are read here: a hand-off to a blocking thread would cost more than
    // the reads (a probe and a record each, from mapped memory).
    let got = match mine.len() <= INLINE_READS {
        true => lookup(),
        false => tokio::task::spawn_blocking(lookup).await.ok().flatten(),
    }
    .unwrap_or_default();
    mine.into_iter()
        .zip(only)
        .zip(got)
        .filter_map(|((i, only), g)| match g {
            Lookup::Found(f) => Some((i, Reply::Bulk(Bytes::from(f.value)))),
            Lookup::Deleted(_) => Some((i, Reply::Nil)),
            Lookup::Missing if only => Some((i, Reply::Nil)),
            Lookup::Missing | Lookup::Damaged(_) => None,
        })
        .collect()
}
