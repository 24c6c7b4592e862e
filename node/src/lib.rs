//! dstash's node: the `dstash.v1.Dstash` gRPC service over the storage engine.
//!
//! - [`service`]: thin handlers that convert proto messages and delegate to the store on
//!   blocking threads (the engine is synchronous and may fsync).
//! - [`batch`]: one message of a batch stream, converted, run and answered.
//! - [`ctx`]: what every handler needs, and how it runs a store call.
//! - [`settings`]: namespace settings (the counts' retention), set by `SetNamespace`.
//! - [`status`]: the one place storage errors become gRPC statuses.
//! - [`auth`]: the bearer-token check in front of the service.
//! - [`oversize`]: oversized request messages answered as `INVALID_ARGUMENT`.
//! - [`slot`]: the store while recovering, serving and shutting down.
//! - [`local`]: reads of the store for a front end in the same process.
//! - [`metrics`]: Prometheus metrics and their `/metrics` listener.
//! - [`hints`]: hinted handoff: writes held for a replica that was down, handed over
//!   when it answers.
//! - [`layout`]: the member set an operator applied, the fence of its epoch, and the
//!   staged transitions with their handoff.
//! - [`sync`]: anti-entropy with co-replicas, in the background and on demand.
//! - [`tls`]: TLS and mTLS settings from PEM files.
//! - [`server`]: a running node: listeners, health, recovery and draining shutdown.

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod batch;
pub mod ctx;
pub mod error;
pub mod hints;
pub mod layout;
mod listing;
pub mod local;
pub mod metrics;
pub mod oversize;
pub mod server;
pub mod service;
pub mod settings;
pub mod slot;
pub mod status;
pub mod sync;
pub mod tls;

pub use auth::TokenAuth;
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use server::{Node, NodeOptions, Termination};
pub use service::{NodeConfig, NodeService};
pub use slot::StoreSlot;
pub use sync::{Peer, SyncOptions};
pub use tls::TlsFiles;
