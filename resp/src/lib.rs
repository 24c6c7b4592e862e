//! dstash's Redis-protocol front end (issue #18): RESP2 and RESP3 (`HELLO`), inline
//! commands and pipelines, served beside a node's gRPC port.
//!
//! Every command's keys go to their owners through the dstash client (placement, R and
//! W, failover, layouts), so any node answers for any key. This crate sits above both
//! the node and the client: the node library never imports the client; the `dstash`
//! binary starts this listener next to the node it runs.
//!
//! - [`parse`]: commands off the wire.
//! - [`reply`]: answers onto it.
//! - [`command`]: the commands.
//! - [`conn`]: one connection, its pipeline batched.
//! - [`batcher`]: every connection's GETs and SETs gathered into shared batches.
//! - [`in_process`]: the node beside it, called in process by its client.
//! - [`server`]: the listener.
//! - [`tls`]: TLS for it, from the node's certificate files.

pub mod batcher;
pub mod command;
pub mod conn;
pub mod in_process;
pub mod parse;
pub mod reply;
pub mod server;
pub mod session;
pub mod tls;

pub use server::RespServer;
pub use session::Shared;
