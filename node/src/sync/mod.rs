//! Anti-entropy: a node compares the digests of the partitions it shares with each
//! co-replica and exchanges only what differs, newest version winning.
//!
//! - [`dial`]: connections to peers (TLS and the cluster token as configured).
//! - [`session`]: one namespace against one peer: partition digests, then leaf digests
//!   of the differing partitions, then the (key, version) lists of the differing
//!   leaves; the newer side's records are pushed or pulled.
//! - [`pass`]: every namespace against every co-replica, on demand (the `Repair` RPC)
//!   or in the background at a bounded rate.
//! - [`serve`]: the `Digest`, `LeafEntries` and `Repair` handlers.
//! - [`metrics`]: counters for all of it.

pub mod dial;
pub mod metrics;
pub mod pass;
pub mod serve;
pub mod session;
mod settings;

use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::ClientTlsConfig;

pub use pass::Syncer;

/// A cluster member as anti-entropy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    /// HOST:PORT.
    pub addr: String,
}

/// How this node finds and talks to its co-replicas.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Copies of each key in the cluster.
    pub replicas: usize,
    /// The member set (this node may be in it or not), from `--peers` or Consul.
    pub peers: watch::Receiver<Vec<Peer>>,
    /// Time between background passes; zero turns them off.
    pub interval: Duration,
    /// Records a background pass pushes or pulls per second, at most.
    pub keys_per_sec: u64,
    /// TLS for calls to peers; None: plaintext.
    pub tls: Option<ClientTlsConfig>,
    /// The bearer token presented to peers.
    pub token: Option<String>,
    /// Time between rounds of handing hints over to their owners; zero turns it off.
    pub hint_interval: Duration,
    /// Records a layout transition's handoff sends per second, at most; 0: no limit.
    pub handoff_rate: u64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            replicas: 2,
            peers: watch::channel(Vec::new()).1,
            interval: Duration::from_secs(60),
            keys_per_sec: 20_000,
            tls: None,
            token: None,
            hint_interval: Duration::from_secs(1),
            handoff_rate: 50_000,
        }
    }
}

/// What a pass, or one session of it, did: the counts `Repair` streams.
pub type Tally = dstash_proto::v1::RepairProgress;

/// Parses `ID=HOST:PORT,ID=HOST:PORT,...`.
pub fn parse_peers(s: &str) -> Result<Vec<Peer>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((id, addr)) if !id.is_empty() && addr.contains(':') => Ok(Peer {
                id: id.to_string(),
                addr: addr.to_string(),
            }),
            _ => Err(format!("peer {p:?} is not ID=HOST:PORT")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let p = parse_peers("n1=10.0.0.1:7000, n2=h:1").unwrap();
        assert_eq!(p[1].id, "n2");
        assert_eq!(p[1].addr, "h:1");
        let e = parse_peers("n1=10.0.0.1:7000,bad").unwrap_err();
        assert!(e.contains("\"bad\""), "{e}");
    }
}
