//! Channels to peers, one per address, with the cluster token on every call.

use std::collections::HashMap;
use std::time::Duration;

use dstash_proto::DstashClient;
use parking_lot::Mutex;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::layout::{EPOCH_HEADER, PEER_EPOCH};

/// Adds `authorization: Bearer <token>` when a token is set, and marks the call as a
/// node's own (no layout epoch refuses it).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        req.metadata_mut()
            .insert(EPOCH_HEADER, MetadataValue::from_static(PEER_EPOCH));
        Ok(req)
    }
}

pub type Remote = DstashClient<InterceptedService<Channel, Bearer>>;

pub struct Dialer {
    tls: Option<ClientTlsConfig>,
    bearer: Bearer,
    max_message_bytes: usize,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Dialer {
    pub fn new(
        tls: Option<ClientTlsConfig>,
        token: Option<&str>,
        max_message_bytes: usize,
    ) -> Result<Self, String> {
        let bearer = match token {
            Some(t) => Some(
                format!("Bearer {}", t.trim())
                    .parse()
                    .map_err(|_| "the peer token is not valid header text".to_string())?,
            ),
            None => None,
        };
        Ok(Self {
            tls,
            bearer: Bearer(bearer),
            max_message_bytes,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// A client for the peer at `addr` (HOST:PORT); the connection is made on first use.
    pub fn remote(&self, addr: &str) -> Result<Remote, Status> {
        let channel = {
            let mut channels = self.channels.lock();
            match channels.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let c = self.channel(addr)?;
                    channels.insert(addr.to_string(), c.clone());
                    c
                }
            }
        };
        Ok(DstashClient::with_interceptor(channel, self.bearer.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let bad = |e: tonic::transport::Error| {
            Status::invalid_argument(format!("peer address {addr:?}: {e}"))
        };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(bad)?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            ep = ep.tls_config(tls.clone()).map_err(bad)?;
        }
        Ok(ep.connect_lazy())
    }
}
