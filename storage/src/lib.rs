//! dstash's storage engine: what every node runs.
//!
//! A [`Store`] is a data directory of namespaces. Each namespace holds a key/value
//! keyspace and a counter keyspace:
//!
//! - **Key/value** ([`keyspace`]): records are appended to segments ([`segment`], format
//!   in [`record`]); an mmap'd open-addressing hash index ([`index`]) maps each key's
//!   64-bit hash to its newest record. A [`checkpoint`] records how far the index is
//!   known to reflect the log, so recovery replays only the tail. Writers share fsyncs
//!   ([`commit`]); compaction moves live records off mostly-dead segments.
//! - **Counts** ([`counts`]): one record per key of 1 s, minute and hour cells, in
//!   tables by generation of last touch, dropped whole when they expire; every add is
//!   logged first and synced by group commit, tables written back at checkpoints.
//!
//! The engine is synchronous and knows nothing of the network. Every TTL decision
//! reads an injectable [`Clock`]; every write and sync goes through the [`io::Io`] seam.
//! `docs/design.md` draws every file's bytes and states the fsync and recovery rules.

// Library code returns errors; it does not panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod checkpoint;
pub mod clock;
pub mod commit;
pub mod counts;
mod digest_file;
pub mod error;
mod fsutil;
pub mod glob;
mod hash;
mod header;
pub mod index;
pub mod io;
pub mod keyspace;
mod le;
pub mod name;
mod namespace;
pub mod ns_settings;
pub mod options;
pub mod record;
pub mod segment;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use counts::schedule::CellImage;
pub use counts::CounterCells;
pub use dstash_cluster::Version;
pub use error::{Error, Result};
pub use keyspace::{Applied, KeyspaceStats, LeafEntry};
pub use name::validate_namespace;
pub use options::{Options, SyncMode, MAX_KEY_LEN};
/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never
/// a mix: a temporary file, fsynced, renamed over `path`, and the directory fsynced.
pub fn write_file_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    fsutil::write_atomic(&io::RealIo, path, bytes)
}

pub use ns_settings::{Settings, SettingsChange};
pub use store::{
    Change, DeleteEntry, Found, KeyStream, Lookup, NamespaceStats, PutEntry, Seen, Store,
    MIN_MAX_BYTES,
};
