//! `dstash node --resp-listen`: the Redis-protocol front end beside the node (issue
//! #18). Its commands go through a client of the node's own cluster (this node and its
//! `--peers`), so any node answers for any key.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::{Client, ClientConfig, NodeSpec};
use dstash_resp::{RespServer, Shared};

#[derive(Debug, Args)]
pub struct RespArgs {
    /// Also serve the Redis protocol (RESP2 and RESP3) on this address, e.g.
    /// 127.0.0.1:6379.
    #[arg(long, env = "DSTASH_RESP_LISTEN", value_name = "ADDR")]
    resp_listen: Option<SocketAddr>,
    /// The namespace a Redis connection starts in (`SELECT name` switches).
    #[arg(long, env = "DSTASH_RESP_NAMESPACE", default_value = "default")]
    resp_namespace: String,
}

/// What the front end takes from the node it runs beside.
pub struct Beside {
    pub node_id: String,
    pub grpc: SocketAddr,
    /// The cluster's members (`--peers`), this node among them; empty: this node alone.
    pub peers: Vec<(String, String)>,
    pub replicas: usize,
    pub token: Option<String>,
    pub tls: bool,
    pub insecure: bool,
    pub max_value: usize,
}

/// Starts the listener when `--resp-listen` is given.
pub async fn start(a: &RespArgs, b: Beside) -> Result<Option<RespServer>> {
    let Some(listen) = a.resp_listen else {
        return Ok(None);
    };
    dstash_storage::validate_namespace(&a.resp_namespace).context("--resp-namespace")?;
    if !listen.ip().is_loopback() && !b.insecure {
        bail!(
            "refusing to serve the Redis protocol on {listen}: it has no TLS yet; serve it on \
             loopback or pass --insecure"
        );
    }
    if b.tls {
        bail!(
            "--resp-listen needs the node's gRPC port without TLS for now: the front end's \
             client does not present the peers' CA yet"
        );
    }
    let mut nodes = vec![NodeSpec {
        id: Some(b.node_id.clone()),
        addr: b.grpc.to_string(),
    }];
    nodes.extend(
        b.peers
            .into_iter()
            .filter(|(id, _)| *id != b.node_id)
            .map(|(id, addr)| NodeSpec { id: Some(id), addr }),
    );
    let mut cfg = ClientConfig::new(nodes);
    cfg.replicas = b.replicas;
    cfg.token = b.token.clone();
    let client = Client::connect(cfg)
        .await
        .context("the Redis front end connecting to the cluster")?;
    let shared = Shared::new(client, b.token, a.resp_namespace.clone(), b.max_value);
    let server = RespServer::start(listen, shared)
        .await
        .with_context(|| format!("cannot listen on {listen} for the Redis protocol"))?;
    Ok(Some(server))
}
