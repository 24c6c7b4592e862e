//! How to reach the cluster: node addresses, replication, TLS, token, timeouts.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// A node given on the command line: `ID=HOST:PORT`, or `HOST:PORT` (the id is then
/// asked from the node's Status at connect time).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub id: Option<String>,
    pub addr: String,
}

impl std::str::FromStr for NodeSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (id, addr) = match s.split_once('=') {
            Some((id, addr)) => (Some(id.trim().to_string()), addr.trim()),
            None => (None, s),
        };
        if id.as_deref() == Some("") {
            return Err(Error::Config(format!("node {s:?}: empty id before '='")));
        }
        let host_port = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(addr);
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(Error::Config(format!(
                    "node {s:?}: expected HOST:PORT or ID=HOST:PORT"
                )))
            }
        }
        Ok(NodeSpec {
            id,
            addr: host_port.to_string(),
        })
    }
}

/// PEM files for talking to TLS nodes.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA that signed the nodes' certificates.
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for nodes that require mTLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to check in the nodes' certificates, when it is not the address's host.
    pub domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub nodes: Vec<NodeSpec>,
    /// Replication factor R; capped at the number of nodes.
    pub replicas: usize,
    /// Write quorum W; default ⌊R/2⌋+1.
    pub write_quorum: Option<usize>,
    /// Replicas whose answers (a value or a tombstone) a read compares before it answers,
    /// capped at R; default 1. With read quorum + W > R, every read sees the newest
    /// acknowledged write, whichever replicas fail.
    pub read_quorum: usize,
    pub tls: Option<TlsOptions>,
    pub token: Option<String>,
    pub connect_timeout: Duration,
    /// Per-call deadline for unary calls and for each batch of a stream.
    pub timeout: Duration,
    /// Retries of a call that failed with UNAVAILABLE on the same node, with backoff.
    pub retries: u32,
    /// Keys per message on batch streams.
    pub batch_keys: usize,
    /// Unacknowledged batches per node stream.
    pub in_flight: usize,
    /// How long a node whose call failed at the transport is skipped before it is
    /// tried again (doubling while it keeps failing, to 30 s); also the first wait
    /// before asking again the id of a node that did not answer at connect.
    pub node_down: Duration,
    /// The least a single read waits on a replica before it also asks the next one
    /// (the wait follows the node's latency above this floor).
    pub hedge_after: Duration,
    /// The least a batch read waits for a node's next answer before its unanswered keys
    /// go to their next replicas; also how long a write that needs a suspect replica
    /// to reach W waits on it before it fails, naming it.
    pub batch_attempt: Duration,
    /// How often nodes held suspect or down are probed in the background (and how long
    /// a probe may take); zero turns probing off.
    pub probe_every: Duration,
    /// Sloppy quorum: a write whose replica is suspect or down goes to the next node in
    /// placement order instead, which keeps it as a durable hint and hands it to the
    /// replica when that answers again. Off by default.
    pub sloppy_quorum: bool,
    /// HTTP/2 keep-alive: a ping this often, and the connection is dropped when a ping
    /// goes unanswered this long, so a frozen node is noticed even between calls.
    pub keepalive: Duration,
    /// A node in this process: its batch messages are applied by a call, not sent over
    /// the network (see [`crate::local`]).
    pub local: Option<crate::local::LocalHook>,
}

impl ClientConfig {
    pub fn new(nodes: Vec<NodeSpec>) -> Self {
        Self {
            nodes,
            replicas: 2,
            write_quorum: None,
            read_quorum: 1,
            tls: None,
            token: None,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            retries: 2,
            batch_keys: 1000,
            in_flight: 8,
            node_down: crate::health::FIRST_DOWN,
            hedge_after: Duration::from_millis(20),
            batch_attempt: Duration::from_millis(100),
            probe_every: Duration::from_millis(250),
            sloppy_quorum: false,
            keepalive: Duration::from_secs(1),
            local: None,
        }
    }

    /// (R, W) for `live` nodes: R capped at `live`, W defaulting to a majority of R.
    pub fn replication(&self, live: usize) -> Result<(usize, usize)> {
        if self.replicas == 0 {
            return Err(Error::Config("replicas must be at least 1".into()));
        }
        let r = self.replicas.min(live);
        if r == 0 {
            return Err(Error::Config("no nodes to write to".into()));
        }
        let w = self.write_quorum.unwrap_or(r / 2 + 1);
        if w == 0 || w > self.replicas {
            return Err(Error::Config(format!(
                "write quorum {w} must be between 1 and the replica count {}",
                self.replicas
            )));
        }
        Ok((r, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs_parse_and_bad_ones_say_why() {
        let n: NodeSpec = "n1=127.0.0.1:5000".parse().unwrap();
        assert_eq!(n.id.as_deref(), Some("n1"));
        assert_eq!(n.addr, "127.0.0.1:5000");
        let n: NodeSpec = "http://db-0.dstash:5000".parse().unwrap();
        assert_eq!((n.id, n.addr.as_str()), (None, "db-0.dstash:5000"));
        for bad in ["", "=a:1", "host", "host:port", ":5000"] {
            let e = bad.parse::<NodeSpec>().unwrap_err();
            assert!(
                e.to_string().contains("HOST:PORT") || e.to_string().contains("empty id"),
                "{e}"
            );
        }
    }

    #[test]
    fn replication_defaults_to_a_majority_and_caps_r() {
        let mut c = ClientConfig::new(vec![]);
        assert_eq!(c.replication(3).unwrap(), (2, 2));
        c.replicas = 3;
        assert_eq!(c.replication(3).unwrap(), (3, 2));
        assert_eq!(c.replication(1).unwrap(), (1, 1));
        c.write_quorum = Some(2);
        assert_eq!(
            c.replication(1).unwrap(),
            (1, 2),
            "an explicit W is kept: writes then fail naming the nodes"
        );
        c.write_quorum = Some(4);
        assert!(c.replication(3).is_err());
        c.write_quorum = Some(0);
        assert!(c.replication(3).is_err());
    }
}
