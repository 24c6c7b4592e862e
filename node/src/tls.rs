//! TLS for the gRPC listener, from PEM files: server certificate and key, and
//! optionally a CA whose certificates clients must present (mTLS).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA, clients without a certificate it signed are refused.
    pub client_ca: Option<PathBuf>,
}

/// Reads a PEM file, refusing one that holds no PEM block so that a wrong path is
/// reported at start and not at the first handshake.
fn pem(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(Error::Tls(format!(
            "{} holds no PEM block (expected \"-----BEGIN ...\")",
            path.display()
        )));
    }
    Ok(bytes)
}

impl TlsFiles {
    pub fn server_config(&self) -> Result<ServerTlsConfig> {
        let identity = Identity::from_pem(pem(&self.cert)?, pem(&self.key)?);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(pem(ca)?));
        }
        Ok(config)
    }
}

impl TlsFiles {
    /// TLS for calls to peers: trust `ca` (or the client CA), and present this node's
    /// own certificate, so that peers requiring mTLS accept it.
    pub fn peer_config(&self, ca: Option<&Path>) -> Result<ClientTlsConfig> {
        let mut config =
            ClientTlsConfig::new().identity(Identity::from_pem(pem(&self.cert)?, pem(&self.key)?));
        let ca = ca.or(self.client_ca.as_deref()).ok_or_else(|| {
            Error::Tls(
                "calls to peers need a CA to trust: pass --peer-ca or --tls-client-ca".into(),
            )
        })?;
        config = config.ca_certificate(Certificate::from_pem(pem(ca)?));
        Ok(config)
    }
}
