//! dstash's node: the `dstash.v1.Dstash` gRPC service over the storage engine.
//!
//! - [`service`]: thin handlers that convert proto messages and delegate to the store on
//!   blocking threads (the engine is synchronous and may fsync).
//! - [`status`]: the one place storage errors become gRPC statuses.
//!
//! - [`auth`]: the bearer-token check in front of the service.
//!
//! Still to come (issue #3): health, metrics, TLS/mTLS, the `dstash node` launcher and
//! graceful shutdown.

pub mod auth;
pub mod service;
pub mod status;

pub use auth::TokenAuth;
pub use service::{NodeConfig, NodeService};
