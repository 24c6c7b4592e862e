//! One connection: read what the client sent, run every complete command in it, answer
//! them all in one write. Consecutive single-key GETs, and consecutive plain SETs, of a
//! pipeline go to the shared batcher as one run (with other connections' runs, one
//! `get_many` or `put_many`, so one group commit per node), answered in order.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dstash_client::PutItem;
use dstash_storage::MAX_KEY_LEN;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::command::{self, Outcome};
use crate::parse;
use crate::reply::Reply;
use crate::session::{Session, Shared};

/// Bytes of an unfinished command a connection may hold beyond eight arguments' worth.
const MAX_PENDING: usize = 1 << 20;

/// Serves one connection until the client closes it, sends QUIT, breaks the protocol,
/// or the server stops (once what it sent is answered).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, mut io: S) {
    shared.connected(1);
    let mut stopping = shared.stopping();
    let mut s = Session::new(&shared);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        let mut cmds = Vec::new();
        let mut broken = None;
        loop {
            match parse::command(&mut buf, shared.max_bulk) {
                Ok(Some(args)) => cmds.push(args),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        let closing = run_all(&shared, &mut s, cmds, &mut out).await;
        // Half a command may not grow past the bound: many arguments each within the
        // limit would otherwise hold any amount of memory.
        let too_big = broken.is_none() && buf.len() > shared.max_bulk * 8 + MAX_PENDING;
        if let Some(e) = &broken {
            Reply::err(e.to_string()).write(&mut out, s.proto);
        } else if too_big {
            Reply::err("Protocol error: request too large").write(&mut out, s.proto);
        }
        if !out.is_empty() && io.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if closing || broken.is_some() || too_big {
            break;
        }
        if *stopping.borrow() {
            break;
        }
        tokio::select! {
            read = io.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = stopping.changed() => break,
        }
    }
    shared.connected(-1);
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

/// Runs `cmds` in order, writing their replies; true when the connection must close.
async fn run_all(
    shared: &Shared,
    s: &mut Session,
    cmds: Vec<Vec<Bytes>>,
    out: &mut Vec<u8>,
) -> bool {
    let mut i = 0;
    while i < cmds.len() {
        let max = shared.max_value;
        let kind = batch_of(&cmds[i], max).filter(|_| s.authed);
        // A run of adds stops before a key it already holds: each add answers the
        // count with the ones before it, as one at a time would.
        let mut seen = std::collections::HashSet::new();
        let run = match kind {
            Some(k) => cmds[i..]
                .iter()
                .take_while(|c| {
                    batch_of(c, max) == Some(k) && (k != Batch::Add || seen.insert(&c[1]))
                })
                .count(),
            None => 1,
        };
        if let Some(k) = kind {
            for r in batch(shared, s, k, &cmds[i..i + run]).await {
                r.write(out, s.proto);
            }
            i += run;
            continue;
        }
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

/// One batch for a run of GETs or SETs: a reply per command, in order. The run joins
/// other connections' in the shared batcher.
async fn batch(shared: &Shared, s: &Session, kind: Batch, cmds: &[Vec<Bytes>]) -> Vec<Reply> {
    match kind {
        Batch::Get => {
            let keys = cmds.iter().map(|a| a[1].clone()).collect();
            shared.batcher.get(&s.ns, keys).await
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
            shared.batcher.put(&s.ns, items).await
        }
        Batch::Add => {
            let keys = cmds.iter().map(|a| a[1].clone()).collect();
            shared.batcher.add(&s.ns, keys).await
        }
    }
}
