//! What can stop a node from starting or shutting down cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("auth: {0}")]
    Auth(String),
    #[error("opening the store: {0}")]
    Storage(#[from] dstash_storage::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("serving metrics: {0}")]
    Metrics(std::io::Error),
    #[error("layout: {0}")]
    Layout(#[from] crate::layout::cell::LayoutFileError),
    #[error("a node task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
