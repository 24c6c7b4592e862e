//! dstash's client: what bulk-load jobs and services embed, and what the `dstash` client
//! commands are built on.
//!
//! - placement and versions come from `dstash-cluster`, shared with the node.
//! - [`config`]: nodes, R and W, TLS, token, timeouts.
//! - [`conn`]: one reused channel per node, with TLS and the bearer token.
//! - [`health`]: each node's latency estimate, and whether it is suspect or down;
//!   `probe.rs` asks the doubted ones again in the background.
//! - [`quorum`]: the write-quorum rule.
//! - [`view`]: the cluster as one snapshot: nodes, placement, R and W.
//! - [`layout`]: the layout routed by, fetched from the nodes and refreshed when a
//!   node refuses a request routed by an older one.
//! - [`client`]: the call every request goes through, listing, status; single-key
//!   writes (`write.rs`, quorum) and reads (`read.rs`, failover and read repair).
//! - [`batch`]: batches split by node and streamed to every node at once.
//! - [`load`]: bulk loads of TSV or JSON lines, streamed with batches in flight.
//! - [`membership`]: the node set from Consul, followed as it changes.

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backup;
pub mod batch;
pub mod client;
pub mod config;
pub mod conn;
mod connect;
mod dump;
pub mod error;
pub mod health;
pub mod layout;
pub mod load;
pub mod local;
pub mod membership;
pub mod namespace;
mod probe;
pub mod quorum;
mod read;
pub mod repair;
mod request_id;
mod resolve;
pub mod scan;
pub mod view;
mod write;

pub use batch::{LoadReport, PutItem};
pub use client::{Client, NodeStatus};
pub use config::{ClientConfig, NodeSpec, TlsOptions};
pub use dstash_cluster::{placement, Hlc, Layout, LayoutMember, Member, Placement, Stage, Version};
pub use dstash_membership::WatchOptions;
/// The wire messages a [`LocalNode`] takes and answers.
pub use dstash_proto::v1 as proto;
/// Keys and values: cheap to clone and slice.
pub use dstash_proto::Bytes;
pub use dump::{DumpSummary, Dumped};
pub use error::{Error, NodeFailure, Result};
pub use load::{LineFormat, LoadOptions, LoadProgress, LoadSummary, OnError};
pub use local::{LocalCall, LocalHook, LocalNode};
pub use repair::{RepairProgress, RepairReport};
pub use resolve::Found;
pub use scan::ScanAt;
pub use view::{NodeHandle, View};
