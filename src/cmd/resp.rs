//! `dstash node --resp-listen`: the Redis-protocol front end beside the node (issue
//! #18). Its commands go through a client of the node's own cluster (this node and its
//! `--peers`), so any node answers for any key; the client's batches for this node are
//! applied to its store by a call, not sent to itself over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::{Client, ClientConfig, NodeSpec, TlsOptions};
use dstash_node::local::LocalBatches;
use dstash_node::TlsFiles;
use dstash_resp::batcher::Local;
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
    /// The node's certificate files: the Redis port serves TLS with them, and the
    /// front end's client presents them to the nodes.
    pub tls: Option<TlsFiles>,
    /// The CA the nodes' certificates are signed by (`--peer-ca`, else the client CA).
    pub peer_ca: Option<PathBuf>,
    pub insecure: bool,
    pub max_value: usize,
    /// Reads of the node's own store, once it is started.
    pub local: Option<dstash_node::local::LocalReads>,
    /// Batch messages applied to the node's own store, once it is started.
    pub batches: Option<LocalBatches>,
}

/// Starts the listener when `--resp-listen` is given.
pub async fn start(a: &RespArgs, b: Beside) -> Result<Option<RespServer>> {
    let Some(listen) = a.resp_listen else {
        return Ok(None);
    };
    dstash_storage::validate_namespace(&a.resp_namespace).context("--resp-namespace")?;
    if !listen.ip().is_loopback() && !b.insecure && (b.tls.is_none() || b.token.is_none()) {
        bail!(
            "refusing to serve the Redis protocol on {listen} without TLS (--tls-cert/--tls-key) \
             and a token (--auth-token-file); pass --insecure to do it anyway"
        );
    }
    let acceptor = match &b.tls {
        Some(t) => Some(
            dstash_resp::tls::acceptor(&t.cert, &t.key, t.client_ca.as_deref())
                .map_err(anyhow::Error::msg)
                .context("TLS for the Redis port")?,
        ),
        None => None,
    };
    let client_tls = match &b.tls {
        Some(t) => Some(TlsOptions {
            ca: Some(b.peer_ca.clone().or(t.client_ca.clone()).context(
                "--resp-listen on a TLS node needs the CA of the nodes' certificates: \
                 pass --peer-ca or --tls-client-ca",
            )?),
            cert: Some(t.cert.clone()),
            key: Some(t.key.clone()),
            domain: None,
        }),
        None => None,
    };
    // This node as its peers know it (its advertised address, which its certificate
    // names), else where it listens, on loopback if it listens on every address.
    let mut own = b.grpc;
    if own.ip().is_unspecified() {
        own.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let me = b.peers.iter().find(|(id, _)| *id == b.node_id);
    let mut nodes = vec![NodeSpec {
        id: Some(b.node_id.clone()),
        addr: me.map_or_else(|| own.to_string(), |(_, addr)| addr.clone()),
    }];
    nodes.extend(
        b.peers
            .iter()
            .filter(|(id, _)| *id != b.node_id)
            .map(|(id, addr)| NodeSpec {
                id: Some(id.clone()),
                addr: addr.clone(),
            }),
    );
    let mut cfg = ClientConfig::new(nodes);
    cfg.replicas = b.replicas;
    cfg.token = b.token.clone();
    cfg.tls = client_tls;
    cfg.local = b
        .batches
        .map(|batches| dstash_resp::in_process::hook(&b.node_id, batches));
    let client = Client::connect(cfg)
        .await
        .context("the Redis front end connecting to the cluster")?;
    let local = b.local.map(|reads| Local {
        reads,
        me: b.node_id.clone(),
    });
    let shared = Shared::new(
        client,
        b.token,
        a.resp_namespace.clone(),
        b.max_value,
        local,
    );
    let server = RespServer::start(listen, shared, acceptor)
        .await
        .with_context(|| format!("cannot listen on {listen} for the Redis protocol"))?;
    Ok(Some(server))
}
