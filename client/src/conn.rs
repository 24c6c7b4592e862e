//! One gRPC channel per node, reused by every call, with TLS and the bearer token.

use dstash_proto::DstashClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::{ClientConfig, TlsOptions};
use crate::error::{Error, Result};

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Rpc = DstashClient<InterceptedService<Channel, Bearer>>;

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
pub fn channel(cfg: &ClientConfig, addr: &str) -> Result<Rpc> {
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
    let ch = ep.connect_lazy();
    Ok(DstashClient::with_interceptor(ch, Bearer(token))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}
