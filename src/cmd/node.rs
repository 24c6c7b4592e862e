//! `dstash node`: flags (each with a `DSTASH_*` variable) to `NodeOptions`, then serve
//! until SIGTERM or SIGINT.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_membership::{Consul, Registration};
use dstash_node::{Node, NodeOptions, TlsFiles, TokenAuth};
use dstash_storage::SyncMode;

#[derive(Debug, Args)]
#[command(after_help = "Also accepted, as dstash had it: dstash node [DATA_DIR] [BIND] [PORT]")]
pub struct NodeArgs {
    /// Where the store keeps its files.
    #[arg(long, env = "DSTASH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to serve gRPC on.
    #[arg(long, env = "DSTASH_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// This node's identity for placement and membership [default: the data directory's name].
    #[arg(long, env = "DSTASH_NODE_ID")]
    node_id: Option<String>,
    /// host:port clients should dial, when it differs from --listen.
    #[arg(long, env = "DSTASH_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// When writes are acknowledged: `always` (after fsync), `interval:MS` or `never`.
    #[arg(long, env = "DSTASH_SYNC", default_value = "always", value_parser = parse_sync)]
    sync: SyncMode,
    /// How long expiring counts are kept, for new namespaces.
    #[arg(
        long,
        env = "DSTASH_COUNT_RETENTION",
        value_name = "SECS",
        default_value_t = 60
    )]
    count_retention: u32,
    /// How long a delete's tombstone is kept, in seconds, so that every replica learns
    /// of the delete before any forgets it. A node down longer than this must be wiped
    /// and repaired before it rejoins.
    #[arg(
        long,
        env = "DSTASH_TOMBSTONE_GRACE",
        value_name = "SECS",
        default_value_t = dstash_storage::options::DEFAULT_TOMBSTONE_GRACE_SECS
    )]
    tombstone_grace: u64,
    /// Refuse writes whose version is more than this many milliseconds ahead of this
    /// node's clock (a writer with a clock far ahead would win every later write).
    #[arg(
        long,
        env = "DSTASH_MAX_CLOCK_SKEW",
        value_name = "MS",
        default_value_t = dstash_storage::options::DEFAULT_MAX_CLOCK_SKEW_MS
    )]
    max_clock_skew: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "DSTASH_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// PEM certificate: serve TLS (needs --tls-key).
    #[arg(
        long,
        env = "DSTASH_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "DSTASH_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// PEM CA: require client certificates it signed (mTLS).
    #[arg(
        long,
        env = "DSTASH_TLS_CLIENT_CA",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_client_ca: Option<PathBuf>,
    /// File holding the token every RPC but health must present as `Bearer <token>`.
    #[arg(long, env = "DSTASH_AUTH_TOKEN_FILE", value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Serve without TLS or without a token on an address other than loopback.
    #[arg(long, env = "DSTASH_INSECURE")]
    insecure: bool,
    /// Largest gRPC message accepted or sent.
    #[arg(long, env = "DSTASH_MAX_MESSAGE_BYTES", default_value_t = 64 << 20)]
    max_message_bytes: usize,
    /// Largest value accepted.
    #[arg(long, env = "DSTASH_MAX_VALUE_BYTES", default_value_t = 8 << 20)]
    max_value_bytes: usize,
    /// Register in Consul at this agent address (http://HOST:PORT) [env: DSTASH_CONSUL, or CONSUL_HTTP_ADDR].
    #[arg(long, env = "DSTASH_CONSUL", value_name = "URL")]
    consul: Option<String>,
    /// The service name to register under.
    #[arg(long, env = "DSTASH_CONSUL_SERVICE", default_value = "dstash")]
    consul_service: String,
    /// The node's zone, in its Consul metadata.
    #[arg(long, env = "DSTASH_ZONE", default_value = "")]
    zone: String,
    /// The TTL of the node's Consul check, in seconds; the node passes it a third as often.
    #[arg(long, env = "DSTASH_CONSUL_TTL", default_value_t = 10)]
    consul_ttl: u64,
    /// Consul removes the node after its check has been critical this long, in seconds.
    #[arg(long, env = "DSTASH_CONSUL_DEREGISTER_AFTER", default_value_t = 600)]
    consul_deregister_after: u64,
    /// How long calls in flight may run after SIGTERM before they are cut off.
    #[arg(
        long,
        env = "DSTASH_DRAIN_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    drain_timeout: u64,
    #[command(flatten)]
    cluster: super::cluster_args::ClusterArgs,
    #[command(flatten)]
    resp: super::resp::RespArgs,
    /// Classic form: the data directory.
    #[arg(value_name = "DATA_DIR", conflicts_with = "data_dir")]
    classic_dir: Option<PathBuf>,
    /// Classic form: the address to bind.
    #[arg(value_name = "BIND", conflicts_with = "listen")]
    classic_bind: Option<IpAddr>,
    /// Classic form: the port [default: 5000].
    #[arg(value_name = "PORT", requires = "classic_bind")]
    classic_port: Option<u16>,
}

fn parse_sync(s: &str) -> Result<SyncMode, String> {
    match s {
        "always" => Ok(SyncMode::Always),
        "never" => Ok(SyncMode::Never),
        _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms > 0 => Ok(SyncMode::Interval(Duration::from_millis(ms))),
            _ => Err(format!(
                "{s:?} is not a sync mode: use always, never or interval:MS with MS > 0"
            )),
        },
    }
}

/// Node ids name the node in placement and in Consul: keep them to a safe alphabet.
fn check_node_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        bail!("node id {id:?} must be 1-128 characters of A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

impl NodeArgs {
    /// `--consul`, or `CONSUL_HTTP_ADDR`.
    fn consul_url(&self) -> Option<String> {
        self.consul
            .clone()
            .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok())
            .filter(|u| !u.trim().is_empty())
    }

    fn options(&self) -> Result<NodeOptions> {
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| self.classic_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"));
        let listen = match (self.listen, self.classic_bind) {
            (Some(addr), _) => addr,
            (None, Some(ip)) => SocketAddr::new(ip, self.classic_port.unwrap_or(5000)),
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 5000)),
        };
        let node_id = match &self.node_id {
            Some(id) => id.clone(),
            None => std::path::absolute(&data_dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .with_context(|| {
                    format!(
                        "cannot name the node after {}: pass --node-id",
                        data_dir.display()
                    )
                })?,
        };
        check_node_id(&node_id)?;
        let auth = match &self.auth_token_file {
            Some(f) => TokenAuth::from_file(f).map_err(anyhow::Error::msg)?,
            None => TokenAuth::disabled(),
        };
        let exposed = !listen.ip().is_loopback();
        if exposed && !self.insecure && (self.tls_cert.is_none() || self.auth_token_file.is_none())
        {
            bail!(
                "refusing to serve on {listen} without TLS (--tls-cert/--tls-key) and a token \
                 (--auth-token-file); pass --insecure to do it anyway"
            );
        }
        let tls = self.tls_cert.clone().map(|cert| TlsFiles {
            cert,
            key: self.tls_key.clone().expect("clap requires --tls-key"),
            client_ca: self.tls_client_ca.clone(),
        });
        let mut opts = NodeOptions::insecure(data_dir, listen);
        opts.store.sync = self.sync;
        opts.store.retention_secs = self.count_retention;
        opts.store.tombstone_grace_secs = self.tombstone_grace;
        opts.store.max_clock_skew_ms = self.max_clock_skew;
        opts.store.max_value_len = self.max_value_bytes;
        opts.service.node_id = node_id;
        opts.service.max_message_bytes = self.max_message_bytes;
        opts.tls = tls;
        opts.auth = auth;
        opts.metrics_listen = self.metrics_listen;
        opts.drain_timeout = Duration::from_secs(self.drain_timeout);
        let advertised = self.advertise.clone().unwrap_or_else(|| listen.to_string());
        opts.sync = self.cluster.sync_options(
            &opts.service.node_id,
            advertised,
            opts.tls.as_ref(),
            self.auth_token_file.as_deref(),
        )?;
        if let Some(url) = self.consul_url() {
            opts.sync.peers =
                super::cluster_args::consul_peers(Consul::new(&url)?, &self.consul_service);
        }
        Ok(opts)
    }
}

/// The Consul registration, when `--consul` (or `CONSUL_HTTP_ADDR`) is set.
fn registration(
    args: &NodeArgs,
    id: &str,
    bound: SocketAddr,
) -> Result<Option<(Consul, Registration)>> {
    let Some(url) = args.consul_url() else {
        return Ok(None);
    };
    let consul = Consul::new(&url)?;
    let (address, port) = match &args.advertise {
        Some(a) => a
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("--advertise {a:?}: expected HOST:PORT"))?,
        None if bound.ip().is_unspecified() => {
            bail!("--listen {bound} is not an address clients can dial: pass --advertise HOST:PORT")
        }
        None => (bound.ip().to_string(), bound.port()),
    };
    let reg = Registration {
        id: id.to_string(),
        name: args.consul_service.clone(),
        address,
        port,
        meta: [
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("zone".to_string(), args.zone.clone()),
        ]
        .into(),
        ttl: Duration::from_secs(args.consul_ttl.max(1)),
        deregister_after: Duration::from_secs(args.consul_deregister_after.max(60)),
    };
    Ok(Some((consul, reg)))
}

pub async fn run(args: NodeArgs) -> Result<()> {
    let opts = args.options()?;
    let id = opts.service.node_id.clone();
    // The gRPC address is the node's once it is bound.
    let mut beside = super::resp::Beside {
        node_id: id.clone(),
        grpc: opts.listen,
        peers: opts
            .sync
            .peers
            .borrow()
            .iter()
            .map(|p| (p.id.clone(), p.addr.clone()))
            .collect(),
        replicas: opts.sync.replicas,
        token: opts.sync.token.as_deref().map(|t| t.trim().to_string()),
        tls: opts.tls.clone(),
        peer_ca: args.cluster.peer_ca().map(PathBuf::from),
        insecure: args.insecure,
        max_value: opts.store.max_value_len,
        local: None,
        batches: None,
    };
    let tls = if opts.tls.is_some() {
        "tls"
    } else {
        "plaintext"
    };
    let mut node = Node::start(opts).await?;
    beside.grpc = node.local_addr();
    beside.local = Some(node.local_reads());
    beside.batches = Some(node.local_batches());
    // Registered from the start: the check fails until the store is open.
    let (stop_registration, stopped) = tokio::sync::oneshot::channel::<()>();
    let registrar = registration(&args, &id, node.local_addr())?.map(|(consul, reg)| {
        tokio::spawn(dstash_membership::keep_registered(
            consul,
            reg,
            node.serving(),
            async {
                let _ = stopped.await;
            },
        ))
    });
    let mut signals = dstash_node::Termination::install()
        .context("installing the SIGTERM and SIGINT handlers")?;
    let took = tokio::select! {
        took = node.ready() => took?,
        _ = signals.wait() => {
            tracing::info!("signal during recovery: finishing it, then stopping");
            let stopped = node.shutdown().await;
            let _ = stop_registration.send(());
            if let Some(r) = registrar {
                let _ = r.await;
            }
            return Ok(stopped?);
        }
    };
    tracing::info!(recovery_ms = took.as_millis() as u64, "store open");
    let resp = super::resp::start(&args.resp, beside).await?;
    let mut line = format!("dstash node {id} serving on {} ({tls})", node.local_addr());
    if let Some(r) = &resp {
        line += &format!(", redis protocol on {}", r.local_addr());
    }
    if let Some(adv) = &args.advertise {
        line += &format!(", advertised as {adv}");
    }
    if let Some(m) = node.metrics_addr() {
        line += &format!(", metrics on http://{m}/metrics");
    }
    println!("{line}");
    signals.wait().await;
    tracing::info!("signal received: draining");
    if let Some(r) = resp {
        r.stop(Duration::from_secs(args.drain_timeout)).await;
    }
    let stopped = node.shutdown().await;
    // Deregister once drained: until then the failing check already steers clients away.
    let _ = stop_registration.send(());
    if let Some(r) = registrar {
        let _ = r.await;
    }
    stopped?;
    tracing::info!("stopped cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_modes_parse_and_bad_ones_name_the_choices() {
        assert!(matches!(parse_sync("always"), Ok(SyncMode::Always)));
        assert!(matches!(parse_sync("never"), Ok(SyncMode::Never)));
        assert!(
            matches!(parse_sync("interval:250"), Ok(SyncMode::Interval(d)) if d == Duration::from_millis(250))
        );
        for bad in ["sometimes", "interval:", "interval:0", "interval:x"] {
            let e = parse_sync(bad).unwrap_err();
            assert!(e.contains("interval:MS"), "{e}");
        }
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(check_node_id("dstash-0").is_ok());
        assert!(check_node_id("").is_err());
        assert!(check_node_id("a/b").is_err());
        assert!(check_node_id(&"x".repeat(129)).is_err());
    }
}
