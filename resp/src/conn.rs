//! One connection: read what the client sent, run every complete command in it, answer
//! in order. Consecutive single-key GETs, plain SETs or single-event CNT.ADDs of a
//! pipeline go to the shared batcher as one run (with other connections' runs, one
//! `get_many`, `put_many` or `add_many`, so one group commit per node).
//!
//! Runs overlap: while one is out, the connection reads on and sends the next, up to
//! [`RUNS_OUT`], so a long pipeline (`redis-cli --pipe`) is not one fsync per read. A
//! run waits for those before it when it names a key one of them names, and any other
//! command waits for all of them: each command still sees every command sent before it.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dstash_client::PutItem;
use dstash_storage::MAX_KEY_LEN;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::command::{self, Outcome};
use crate::parse;
use crate::reply::Reply;
use crate::session::{Session, Shared};

/// Bytes of an unfinished command a connection may hold beyond eight arguments' worth.
const MAX_PENDING: usize = 1 << 20;
/// Room made in the read buffer before each read: a long pipeline arrives in runs of
/// hundreds of commands.
const READ_AT_LEAST: usize = 64 * 1024;
/// Runs one connection may have out at once.
const RUNS_OUT: usize = 8;

/// A run sent to the batcher: its replies, and the keys it names.
type Out = BoxFuture<'static, (Vec<Reply>, Vec<Bytes>)>;

/// The runs a connection has out, answered in the order they were sent.
#[derive(Default)]
struct Window {
    runs: FuturesOrdered<Out>,
    keys: HashSet<Bytes>,
}

impl Window {
    fn is_full(&self) -> bool {
        self.runs.len() >= RUNS_OUT
    }

    fn names_any(&self, cmds: &[Vec<Bytes>]) -> bool {
        cmds.iter().any(|c| self.keys.contains(&c[1]))
    }

    fn send(&mut self, keys: Vec<Bytes>, replies: BoxFuture<'static, Vec<Reply>>) {
        self.keys.extend(keys.iter().cloned());
        self.runs
            .push_back(Box::pin(async move { (replies.await, keys) }));
    }

    /// The next run's replies, once it is answered; None when none is out.
    async fn next(&mut self) -> Option<Vec<Reply>> {
        let (replies, keys) = self.runs.next().await?;
        for k in &keys {
            self.keys.remove(k);
        }
        Some(replies)
    }

    /// Waits for every run out, writing their replies to `out`.
    async fn drain(&mut self, out: &mut Vec<u8>, proto: u8) {
        while let Some(replies) = self.next().await {
            replies.iter().for_each(|r| r.write(out, proto));
        }
    }
}

/// Serves one connection until the client closes it, sends QUIT, breaks the protocol,
/// or the server stops (once what it sent is answered).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, mut io: S) {
    shared.connected(1);
    let mut stopping = shared.stopping();
    let mut s = Session::new(&shared);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(16 * 1024);
    let mut window = Window::default();
    loop {
        let (cmds, broken) = parse_all(&mut buf, shared.max_bulk);
        let closing = run_all(&shared, &mut s, cmds, &mut window, &mut out).await;
        // Half a command may not grow past the bound: many arguments each within the
        // limit would otherwise hold any amount of memory.
        let too_big = broken.is_none() && buf.len() > shared.max_bulk * 8 + MAX_PENDING;
        let ending = closing || broken.is_some() || too_big || *stopping.borrow();
        if ending {
            window.drain(&mut out, s.proto).await;
        }
        if let Some(e) = &broken {
            Reply::err(e.to_string()).write(&mut out, s.proto);
        } else if too_big {
            Reply::err("Protocol error: request too large").write(&mut out, s.proto);
        }
        if !out.is_empty() && io.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if ending {
            break;
        }
        // Read on while runs are out, answering each as it comes back.
        let full = window.is_full();
        buf.reserve(READ_AT_LEAST);
        tokio::select! {
            read = io.read_buf(&mut buf), if !full => match read {
                Ok(0) | Err(_) => {
                    window.drain(&mut out, s.proto).await;
                    let _ = io.write_all(&out).await;
                    break;
                }
                Ok(_) => {}
            },
            Some(replies) = window.next(), if !window.runs.is_empty() => {
                replies.iter().for_each(|r| r.write(&mut out, s.proto));
            }
            _ = stopping.changed() => {}
        }
    }
    shared.connected(-1);
}

/// Every complete command in `buf`, and the protocol error that ended the parse, if any.
fn parse_all(
    buf: &mut BytesMut,
    max_bulk: usize,
) -> (Vec<Vec<Bytes>>, Option<parse::ProtocolError>) {
    let mut cmds = Vec::new();
    loop {
        match parse::command(buf, max_bulk) {
            Ok(Some(args)) => cmds.push(args),
            Ok(None) => return (cmds, None),
            Err(e) => return (cmds, Some(e)),
        }
    }
}

/// What a pipelined command can be batched as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    Get,
    Set,
    /// `CNT.ADD key` (or `CNT.ADD key 1`): one event.
    Add,
}

/// A command that may share a batch: one whose key and value are within the limits,
/// so that it cannot fail the batch it joins. Others run on their own and get their
/// own error.
fn batch_of(args: &[Bytes], max_value: usize) -> Option<Batch> {
    let is = |name: &str| args[0].eq_ignore_ascii_case(name.as_bytes());
    let key_ok = || {
        args.get(1)
            .is_some_and(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
    };
    match args.len() {
        2 if is("GET") && key_ok() => Some(Batch::Get),
        3 if is("SET") && key_ok() && args[2].len() <= max_value => Some(Batch::Set),
        2 if is("CNT.ADD") && key_ok() => Some(Batch::Add),
        3 if is("CNT.ADD") && key_ok() && &args[2][..] == b"1" => Some(Batch::Add),
        _ => None,
    }
}

/// How many commands from the first of `cmds` form one run of `kind`. A run of adds
/// names each key once: each add answers the count with the ones before it, as one at
/// a time would. (A key set twice in one run gets two versions in order.)
fn run_len(cmds: &[Vec<Bytes>], kind: Batch, max_value: usize) -> usize {
    let mut seen = HashSet::new();
    cmds.iter()
        .take_while(|c| {
            batch_of(c, max_value) == Some(kind) && (kind != Batch::Add || seen.insert(&c[1]))
        })
        .count()
}

/// Runs `cmds` in order: runs go out through `window`, other commands wait for it and
/// write their replies to `out`. True when the connection must close.
async fn run_all(
    shared: &Arc<Shared>,
    s: &mut Session,
    cmds: Vec<Vec<Bytes>>,
    window: &mut Window,
    out: &mut Vec<u8>,
) -> bool {
    let mut i = 0;
    while i < cmds.len() {
        let max = shared.max_value;
        if let Some(kind) = batch_of(&cmds[i], max).filter(|_| s.authed) {
            let run = &cmds[i..i + run_len(&cmds[i..], kind, max)];
            while window.is_full() || window.names_any(run) {
                if let Some(replies) = window.next().await {
                    replies.iter().for_each(|r| r.write(out, s.proto));
                }
            }
            let keys = run.iter().map(|a| a[1].clone()).collect();
            window.send(keys, batch(shared, &s.ns, kind, run));
            i += run.len();
            continue;
        }
        window.drain(out, s.proto).await;
        match command::run(shared, s, cmds[i].clone()).await {
            Outcome::Reply(r) => r.write(out, s.proto),
            Outcome::Close(r) => {
                r.write(out, s.proto);
                return true;
            }
        }
        i += 1;
    }
    false
}

/// One batch for a run of GETs, SETs or adds: a reply per command, in order. The run
/// joins other connections' in the shared batcher.
fn batch(
    shared: &Shared,
    ns: &str,
    kind: Batch,
    cmds: &[Vec<Bytes>],
) -> BoxFuture<'static, Vec<Reply>> {
    let (batcher, ns) = (shared.batcher.clone(), ns.to_string());
    let keys = || cmds.iter().map(|a| a[1].clone()).collect();
    match kind {
        Batch::Get => {
            let keys = keys();
            Box::pin(async move { batcher.get(&ns, keys).await })
        }
        Batch::Set => {
            let items = cmds
                .iter()
                .map(|a| PutItem {
                    key: a[1].clone(),
                    value: a[2].clone(),
                    ttl_seconds: 0,
                })
                .collect();
            Box::pin(async move { batcher.put(&ns, items).await })
        }
        Batch::Add => {
            let keys = keys();
            Box::pin(async move { batcher.add(&ns, keys).await })
        }
    }
}
