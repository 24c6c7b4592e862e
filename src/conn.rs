//! The flags every client command shares, each with a `DSTASH_*` variable: where the
//! nodes are, R and W, TLS, the token and the deadline. They are accepted before the
//! subcommand (`dstash --nodes ... put ...`) or after it; after wins.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::{Client, ClientConfig, NodeSpec, TlsOptions};

/// Where `dstash node` listens by default: what a client talks to when told nothing.
pub const DEFAULT_NODE: &str = "127.0.0.1:5000";
const DEFAULT_REPLICAS: usize = 2;
const DEFAULT_TIMEOUT_SECS: u64 = 10;
const DEFAULT_CONSUL_SERVICE: &str = "dstash";

#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// The nodes: ID=HOST:PORT (or HOST:PORT; the id is then asked of the node),
    /// comma-separated [default: 127.0.0.1:5000].
    #[arg(long, env = "DSTASH_NODES", value_delimiter = ',')]
    pub nodes: Option<Vec<String>>,
    /// Take the nodes from Consul's passing `dstash` instances, at this agent (http://HOST:PORT).
    #[arg(long, env = "DSTASH_CONSUL", value_name = "URL")]
    pub consul: Option<String>,
    /// The service name in Consul [default: dstash].
    #[arg(long, env = "DSTASH_CONSUL_SERVICE")]
    pub consul_service: Option<String>,
    /// Replication factor R, capped at the number of nodes [default: 2].
    #[arg(long, env = "DSTASH_REPLICAS")]
    pub replicas: Option<usize>,
    /// Write quorum W [default: a majority of R].
    #[arg(long, env = "DSTASH_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// Read quorum: replicas whose answers (a value or a tombstone) a read compares,
    /// newest version winning; read quorum + W > R reads every acknowledged write
    /// [default: 1].
    #[arg(long, env = "DSTASH_READ_QUORUM")]
    pub read_quorum: Option<usize>,
    /// PEM CA that signed the nodes' certificates: talk TLS.
    #[arg(long, env = "DSTASH_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for nodes that require mTLS (needs --tls-key).
    #[arg(long, env = "DSTASH_CLIENT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM key for --tls-cert.
    #[arg(long, env = "DSTASH_CLIENT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Name to check in the nodes' certificates [default: each node's host].
    #[arg(long, env = "DSTASH_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// File holding the nodes' token.
    #[arg(long, env = "DSTASH_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Deadline of each call, in seconds [default: 10].
    #[arg(long, env = "DSTASH_TIMEOUT")]
    pub timeout: Option<u64>,
    /// The least a read waits on a replica before it also asks the next one, in
    /// milliseconds; the wait follows the node's latency above this floor [default: 20].
    #[arg(long, env = "DSTASH_HEDGE_AFTER_MS", value_name = "MS")]
    pub hedge_after_ms: Option<u64>,
    /// Sloppy quorum: a write whose replica is suspect or down goes to the next node in
    /// placement order, which keeps a durable hint and hands the write over when the
    /// replica answers again [default: off].
    #[arg(long, env = "DSTASH_SLOPPY_QUORUM")]
    pub sloppy_quorum: bool,
}

impl ConnArgs {
    /// These flags, with those given before the subcommand filling the gaps.
    pub fn or(self, before: &ConnArgs) -> ConnArgs {
        let b = before.clone();
        ConnArgs {
            nodes: self.nodes.or(b.nodes),
            consul: self.consul.or(b.consul),
            consul_service: self.consul_service.or(b.consul_service),
            replicas: self.replicas.or(b.replicas),
            write_quorum: self.write_quorum.or(b.write_quorum),
            read_quorum: self.read_quorum.or(b.read_quorum),
            tls_ca: self.tls_ca.or(b.tls_ca),
            tls_cert: self.tls_cert.or(b.tls_cert),
            tls_key: self.tls_key.or(b.tls_key),
            tls_domain: self.tls_domain.or(b.tls_domain),
            auth_token_file: self.auth_token_file.or(b.auth_token_file),
            timeout: self.timeout.or(b.timeout),
            hedge_after_ms: self.hedge_after_ms.or(b.hedge_after_ms),
            sloppy_quorum: self.sloppy_quorum || b.sloppy_quorum,
        }
    }

    fn node_specs(&self) -> Result<Vec<NodeSpec>> {
        if self.consul.is_some() {
            if self.nodes.is_some() {
                bail!("give the nodes with --nodes or --consul, not both");
            }
            return Ok(Vec::new());
        }
        let given: Vec<&str> = match &self.nodes {
            Some(n) => n
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![DEFAULT_NODE],
        };
        if given.is_empty() {
            bail!("--nodes lists no node");
        }
        Ok(given
            .into_iter()
            .map(str::parse::<NodeSpec>)
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub fn config(&self) -> Result<ClientConfig> {
        let mut cfg = ClientConfig::new(self.node_specs()?);
        cfg.replicas = self.replicas.unwrap_or(DEFAULT_REPLICAS);
        cfg.write_quorum = self.write_quorum;
        cfg.read_quorum = match self.read_quorum {
            Some(0) => bail!("--read-quorum must be at least 1"),
            q => q.unwrap_or(1),
        };
        cfg.timeout = Duration::from_secs(self.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
        if let Some(ms) = self.hedge_after_ms {
            cfg.hedge_after = Duration::from_millis(ms.max(1));
        }
        cfg.sloppy_quorum = self.sloppy_quorum;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
            _ => {}
        }
        if self.tls_ca.is_some() || self.tls_cert.is_some() {
            cfg.tls = Some(TlsOptions {
                ca: self.tls_ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                domain: self.tls_domain.clone(),
            });
        }
        if let Some(f) = &self.auth_token_file {
            let token = std::fs::read_to_string(f)
                .with_context(|| format!("reading the token from {}", f.display()))?;
            cfg.token = Some(token.trim().to_string());
        }
        if self.consul.is_none() {
            cfg.replication(cfg.nodes.len())?;
        }
        Ok(cfg)
    }

    pub async fn connect(&self) -> Result<Client> {
        let cfg = self.config()?;
        Ok(match &self.consul {
            Some(url) => {
                let service = self
                    .consul_service
                    .as_deref()
                    .unwrap_or(DEFAULT_CONSUL_SERVICE);
                let watch = dstash_client::WatchOptions::new(service);
                Client::connect_consul(cfg, url, watch, Duration::from_secs(5)).await?
            }
            None => Client::connect(cfg).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_nodes_means_the_default_node() {
        let cfg = ConnArgs::default().config().unwrap();
        assert_eq!(cfg.nodes.len(), 1);
        assert_eq!(cfg.nodes[0].addr, DEFAULT_NODE);
    }

    #[test]
    fn flags_after_the_subcommand_win_and_fill_from_before() {
        let before = ConnArgs {
            nodes: Some(vec!["a=127.0.0.1:1".into()]),
            timeout: Some(3),
            ..Default::default()
        };
        let after = ConnArgs {
            nodes: Some(vec!["b=127.0.0.1:2".into()]),
            ..Default::default()
        };
        let merged = after.or(&before);
        assert_eq!(merged.nodes, Some(vec!["b=127.0.0.1:2".to_string()]));
        assert_eq!(merged.timeout, Some(3));
    }

    #[test]
    fn nodes_and_consul_together_are_refused() {
        let both = ConnArgs {
            nodes: Some(vec!["127.0.0.1:1".into()]),
            consul: Some("http://127.0.0.1:8500".into()),
            ..Default::default()
        };
        assert!(both.config().unwrap_err().to_string().contains("not both"));
    }
}
