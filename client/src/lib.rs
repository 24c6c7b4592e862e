//! dstash's client: what bulk-load jobs and services embed, and what the `dstash` client
//! commands are built on.
//!
//! - [`placement`]: weighted rendezvous hashing over node ids.
//! - [`config`]: nodes, R and W, TLS, token, timeouts.
//! - [`conn`]: one reused channel per node, with TLS and the bearer token.
//! - [`quorum`]: the write-quorum rule.
//! - [`client`]: quorum writes and failover reads of single keys, listing, status.
//! - [`batch`]: batches split by node and streamed to every node at once.
//! - [`membership`]: the node set from Consul, followed as it changes.

pub mod batch;
pub mod client;
pub mod config;
pub mod conn;
pub mod error;
pub mod membership;
pub mod placement;
pub mod quorum;

pub use batch::{LoadReport, PutItem};
pub use client::{Client, NodeStatus};
pub use config::{ClientConfig, NodeSpec, TlsOptions};
pub use dstash_membership::WatchOptions;
/// Keys and values: cheap to clone and slice.
pub use dstash_proto::Bytes;
pub use error::{Error, NodeFailure, Result};
pub use placement::{Member, Placement};
