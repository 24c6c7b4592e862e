//! One gRPC channel per node, reused by every call, with TLS, the bearer token and the
//! layout epoch the call was routed by.

use dstash_proto::DstashClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::{ClientConfig, TlsOptions};
use crate::error::{Error, Result};

type Ascii = MetadataValue<tonic::metadata::Ascii>;

/// The metadata a call names its layout epoch in (the node's `EPOCH_HEADER`).
pub const EPOCH_HEADER: &str = "dstash-epoch";

/// Adds `authorization: Bearer <token>` to every call when a token is set, and
/// `dstash-epoch` when the call is routed by a layout.
#[derive(Clone)]
pub struct Bearer {
    token: Option<Ascii>,
    epoch: Option<Ascii>,
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.token {
            req.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.epoch {
            req.metadata_mut().insert(EPOCH_HEADER, v.clone());
        }
        Ok(req)
    }
}

pub type Rpc = DstashClient<InterceptedService<Channel, Bearer>>;

/// A node's channel and token, from which calls at any epoch are made.
#[derive(Clone)]
pub struct Conn {
    channel: Channel,
    token: Option<Ascii>,
}

impl Conn {
    /// Calls carrying `epoch` (0: none).
    pub fn rpc(&self, epoch: u64) -> Rpc {
        let bearer = Bearer {
            token: self.token.clone(),
            epoch: (epoch != 0)
                .then(|| epoch.to_string().parse().ok())
                .flatten(),
        };
        DstashClient::with_interceptor(self.channel.clone(), bearer)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))
}

fn tls_config(t: &TlsOptions, host: &str) -> Result<ClientTlsConfig> {
    let mut c =
        ClientTlsConfig::new().domain_name(t.domain.clone().unwrap_or_else(|| host.to_string()));
    if let Some(ca) = &t.ca {
        c = c.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => c = c.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => {
            return Err(Error::Config(
                "a client certificate needs both --tls-cert and --tls-key".into(),
            ))
        }
    }
    Ok(c)
}

/// A lazily connecting channel to `addr`: the first call connects, and a broken
/// connection is re-established on the next call.
pub fn channel(cfg: &ClientConfig, addr: &str) -> Result<Conn> {
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let bad = |e: tonic::transport::Error| Error::Connect {
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(bad)?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(cfg.keepalive)
        .keep_alive_timeout(cfg.keepalive)
        .keep_alive_while_idle(true);
    if let Some(t) = &cfg.tls {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        ep = ep.tls_config(tls_config(t, host)?).map_err(bad)?;
    }
    let token = match &cfg.token {
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse()
                .map_err(|_| Error::Config("the token must be printable ASCII".into()))?,
        ),
        None => None,
    };
    Ok(Conn {
        channel: ep.connect_lazy(),
        token,
    })
}
