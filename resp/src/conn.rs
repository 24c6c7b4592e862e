//! One connection: read what the client sent, run every complete command in it, answer
//! them all in one write. Consecutive single-key GETs, and consecutive plain SETs, of a
//! pipeline go to the cluster as one batch (one `get_many` or `put_many`, so one group
//! commit per node), answered in order.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dstash_client::PutItem;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::command::{self, failed, Outcome};
use crate::parse;
use crate::reply::Reply;
use crate::session::{Session, Shared};

/// Serves one connection until the client closes it, sends QUIT, or breaks the protocol.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, mut io: S) {
    shared.connected(1);
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
        if let Some(e) = &broken {
            Reply::err(e.to_string()).write(&mut out, s.proto);
        }
        if !out.is_empty() && io.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if closing || broken.is_some() {
            break;
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.connected(-1);
}

/// What a pipelined command can be batched as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    Get,
    Set,
}

fn batch_of(args: &[Bytes]) -> Option<Batch> {
    let is = |name: &str| args[0].eq_ignore_ascii_case(name.as_bytes());
    match args.len() {
        2 if is("GET") => Some(Batch::Get),
        3 if is("SET") => Some(Batch::Set),
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
        let kind = batch_of(&cmds[i]).filter(|_| s.authed);
        let run = match kind {
            Some(k) => cmds[i..]
                .iter()
                .take_while(|c| batch_of(c) == Some(k))
                .count(),
            None => 1,
        };
        if let (Some(k), true) = (kind, run > 1) {
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

/// One batch for a run of GETs or SETs: a reply per command, in order.
async fn batch(shared: &Shared, s: &Session, kind: Batch, cmds: &[Vec<Bytes>]) -> Vec<Reply> {
    let c = &shared.client;
    match kind {
        Batch::Get => {
            let keys: Vec<Bytes> = cmds.iter().map(|a| a[1].clone()).collect();
            match c.get_many(&s.ns, &keys).await {
                Ok(vs) => vs
                    .into_iter()
                    .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                    .collect(),
                Err(e) => vec![failed(e); cmds.len()],
            }
        }
        Batch::Set => {
            let items: Vec<PutItem> = cmds
                .iter()
                .map(|a| PutItem {
                    key: a[1].clone(),
                    value: a[2].clone(),
                    ttl_seconds: 0,
                })
                .collect();
            match c.put_many(&s.ns, &items).await {
                Ok(report) => {
                    let mut replies = vec![Reply::Status("OK"); cmds.len()];
                    for (at, e) in report.failed {
                        if let Some(r) = replies.get_mut(at) {
                            *r = Reply::err(e.to_string());
                        }
                    }
                    replies
                }
                Err(e) => vec![failed(e); cmds.len()],
            }
        }
    }
}
