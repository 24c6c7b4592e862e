//! `dstash node`'s cluster flags: who the co-replicas are and how anti-entropy runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dstash_membership::{Consul, WatchOptions};
use dstash_node::{Peer, SyncOptions, TlsFiles};
use tokio::sync::watch;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The cluster's members, this node included or not: ID=HOST:PORT,... (with
    /// --consul, the healthy instances of the service are used instead).
    #[arg(long, env = "DSTASH_PEERS", value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// Copies of each key in the cluster: the co-replicas anti-entropy compares.
    #[arg(long, env = "DSTASH_REPLICAS", default_value_t = 2)]
    replicas: usize,
    /// Seconds between background anti-entropy passes; 0 turns them off.
    #[arg(
        long,
        env = "DSTASH_ANTI_ENTROPY_INTERVAL",
        value_name = "SECS",
        default_value_t = 60
    )]
    anti_entropy_interval: u64,
    /// Records a background pass pushes or pulls per second, at most.
    #[arg(
        long,
        env = "DSTASH_ANTI_ENTROPY_RATE",
        value_name = "KEYS",
        default_value_t = 20_000
    )]
    anti_entropy_rate: u64,
    /// Milliseconds between rounds of handing hints (writes held for a replica that
    /// was down, under sloppy quorum) to their replicas; 0 turns delivery off.
    #[arg(
        long,
        env = "DSTASH_HINT_INTERVAL_MS",
        value_name = "MS",
        default_value_t = 1000
    )]
    hint_interval_ms: u64,
    /// Records per second, at most, this node sends to new owners while a layout
    /// transition streams; 0: no limit.
    #[arg(
        long,
        env = "DSTASH_HANDOFF_RATE",
        value_name = "KEYS",
        default_value_t = 50_000
    )]
    handoff_rate: u64,
    /// CA that signs the peers' certificates [default: --tls-client-ca].
    #[arg(long, env = "DSTASH_PEER_CA", value_name = "FILE")]
    peer_ca: Option<PathBuf>,
}

impl ClusterArgs {
    /// The CA that signs peers' certificates (`--peer-ca`), if given.
    pub fn peer_ca(&self) -> Option<&std::path::Path> {
        self.peer_ca.as_deref()
    }

    /// The node's sync options: this node's own address is added to the member set.
    pub fn sync_options(
        &self,
        id: &str,
        advertised: String,
        tls: Option<&TlsFiles>,
        token_file: Option<&std::path::Path>,
    ) -> Result<SyncOptions> {
        let token = token_file
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())))
            .transpose()?;
        let tls = tls
            .map(|t| t.peer_config(self.peer_ca.as_deref()))
            .transpose()?;
        let mut members = match &self.peers {
            Some(p) => {
                dstash_node::sync::parse_peers(p).map_err(|e| anyhow::anyhow!("--peers: {e}"))?
            }
            None => Vec::new(),
        };
        if !members.is_empty() && !members.iter().any(|p| p.id == id) {
            members.push(Peer {
                id: id.to_string(),
                addr: advertised,
            });
        }
        Ok(SyncOptions {
            replicas: self.replicas.max(1),
            peers: watch::channel(members).1,
            interval: Duration::from_secs(self.anti_entropy_interval),
            keys_per_sec: self.anti_entropy_rate,
            tls,
            token,
            hint_interval: Duration::from_millis(self.hint_interval_ms),
            handoff_rate: self.handoff_rate,
        })
    }
}

/// Members from Consul's healthy instances of `service`, kept current.
pub fn consul_peers(consul: Consul, service: &str) -> watch::Receiver<Vec<Peer>> {
    let mut instances = dstash_membership::watch::spawn(consul, WatchOptions::new(service));
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        loop {
            let peers = instances
                .borrow_and_update()
                .iter()
                .map(|i| Peer {
                    id: i.id.clone(),
                    addr: i.addr(),
                })
                .collect();
            tx.send_replace(peers);
            if instances.changed().await.is_err() {
                return;
            }
        }
    });
    rx
}
