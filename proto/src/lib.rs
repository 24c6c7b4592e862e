//! dstash's gRPC contract, `package dstash.v1` (`proto/dstash/v1/dstash.proto`), and the
//! code tonic and prost generate from it. `node` and `client` both depend on this crate,
//! so the two sides can never disagree about the wire format.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("dstash.v1");
}

/// The type of every `bytes` field (keys, values): cheap to clone and to slice.
pub use bytes::Bytes;
pub use v1::dstash_client::DstashClient;
pub use v1::dstash_server::{Dstash, DstashServer};
