//! The storage crate's typed errors.

use std::io;
use std::path::PathBuf;

/// Every failure the engine reports. Limits name the limit that was broken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid namespace {name:?}: {reason}")]
    InvalidNamespace { name: String, reason: &'static str },

    #[error("key is empty: keys must be 1 to {max} bytes")]
    EmptyKey { max: usize },

    #[error("key is {len} bytes: the limit is {max} bytes")]
    KeyTooLarge { len: usize, max: usize },

    #[error("value is {len} bytes: the limit is {max} bytes")]
    ValueTooLarge { len: usize, max: usize },

    #[error("batch has {len} entries: the limit is {max}")]
    BatchTooLarge { len: usize, max: usize },

    #[error("batch has {versions} versions for {keys} keys: give one per key or none")]
    VersionsMismatch { versions: usize, keys: usize },

    #[error("window of {window} s is longer than the namespace's retention of {retention} s")]
    WindowTooLarge { window: u32, retention: u32 },

    #[error("retention of {secs} s is outside the allowed range {min}..={max} s")]
    InvalidRetention { secs: u32, min: u32, max: u32 },

    #[error("max bytes of {bytes} is below the least bound of {min} bytes (0: no bound)")]
    InvalidMaxBytes { bytes: u64, min: u64 },

    #[error("invalid glob pattern {pattern:?}: {reason}")]
    InvalidPattern {
        pattern: String,
        reason: &'static str,
    },

    #[error("the write's version is {ahead_ms} ms ahead of this node's clock (the limit is {max_ms} ms): check the writer's clock")]
    VersionAhead { ahead_ms: u64, max_ms: u64 },

    #[error("the events' second {at} is {off} s from this node's clock (the limit is {max} s): check the caller's clock")]
    EventTime { at: u64, off: u64, max: u64 },

    #[error("request id {id:?} was used by another batch: a retry must resend the same events")]
    RequestReused { id: String },

    #[error("request id of {len} bytes: it must be 1 to {max} bytes")]
    InvalidRequestId { len: usize, max: usize },

    #[error("partition {partition} out of range: there are {partitions}")]
    PartitionOutOfRange { partition: u32, partitions: u32 },

    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error("invalid options: {0}")]
    InvalidOptions(String),

    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },

    #[error("the data directory {path} is locked by another process")]
    Locked { path: PathBuf },

    #[error("namespace {ns:?} is read-only after an earlier write failure ({cause}); restart the store to recover")]
    Poisoned { ns: String, cause: String },

    #[error("the store is closed")]
    Closed,

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
