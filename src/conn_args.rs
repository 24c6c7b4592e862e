//! The flags every client command shares (each with a `DSTASH_*` variable): where the
//! nodes are, R and W, TLS and the token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::{Client, ClientConfig, NodeSpec, TlsOptions};

#[derive(Debug, Args)]
pub struct ConnArgs {
    /// The nodes: ID=HOST:PORT (or HOST:PORT; the id is then asked of the node), comma-separated.
    #[arg(
        long,
        env = "DSTASH_NODES",
        value_delimiter = ',',
        required_unless_present = "consul"
    )]
    pub nodes: Vec<String>,
    /// Take the nodes from Consul's passing `dstash` instances, at this agent (http://HOST:PORT).
    #[arg(
        long,
        env = "DSTASH_CONSUL",
        value_name = "URL",
        conflicts_with = "nodes"
    )]
    pub consul: Option<String>,
    /// The service name in Consul.
    #[arg(long, env = "DSTASH_CONSUL_SERVICE", default_value = "dstash")]
    pub consul_service: String,
    /// Replication factor R, capped at the number of nodes.
    #[arg(long, env = "DSTASH_REPLICAS", default_value_t = 2)]
    pub replicas: usize,
    /// Write quorum W [default: a majority of R].
    #[arg(long, env = "DSTASH_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// PEM CA that signed the nodes' certificates: talk TLS.
    #[arg(long, env = "DSTASH_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for nodes that require mTLS (needs --tls-key).
    #[arg(
        long,
        env = "DSTASH_CLIENT_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM key for --tls-cert.
    #[arg(
        long,
        env = "DSTASH_CLIENT_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// Name to check in the nodes' certificates [default: each node's host].
    #[arg(long, env = "DSTASH_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// File holding the nodes' token.
    #[arg(long, env = "DSTASH_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Deadline of each call, in seconds.
    #[arg(long, env = "DSTASH_TIMEOUT", default_value_t = 10)]
    pub timeout: u64,
}

impl ConnArgs {
    pub fn config(&self) -> Result<ClientConfig> {
        let nodes = self
            .nodes
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.parse::<NodeSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() && self.consul.is_none() {
            bail!("--nodes lists no node");
        }
        let mut cfg = ClientConfig::new(nodes);
        cfg.replicas = self.replicas;
        cfg.write_quorum = self.write_quorum;
        cfg.timeout = Duration::from_secs(self.timeout.max(1));
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
                let watch = dstash_client::WatchOptions::new(&self.consul_service);
                Client::connect_consul(cfg, url, watch, Duration::from_secs(5)).await?
            }
            None => Client::connect(cfg).await?,
        })
    }
}
