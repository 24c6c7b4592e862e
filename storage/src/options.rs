//! Store settings and their defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::io::{Io, RealIo};

/// When a write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge only after fdatasync; concurrent writers share one sync (group commit).
    Always,
    /// fdatasync in the background every interval; a crash of the machine may lose that much.
    Interval(Duration),
    /// Never fdatasync except at checkpoints and close; the OS decides.
    Never,
}

pub const MAX_KEY_LEN: usize = u16::MAX as usize;
pub const DEFAULT_MAX_VALUE_LEN: usize = 8 << 20;
pub const DEFAULT_RETENTION_SECS: u32 = 60;
pub const MIN_RETENTION_SECS: u32 = 1;
pub const MAX_RETENTION_SECS: u32 = 7 * 24 * 3600;
/// How long a tombstone is kept (see [`Options::tombstone_grace_secs`]).
pub const DEFAULT_TOMBSTONE_GRACE_SECS: u64 = 24 * 3600;
/// How far ahead of this store's clock a write's version may be.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub sync: SyncMode,
    /// Largest value accepted, in bytes.
    pub max_value_len: usize,
    /// Largest number of entries in one batch call.
    pub max_batch_len: usize,
    /// A data segment is sealed once it reaches this size (at most 4 GiB, offsets are u32).
    pub segment_size: u64,
    /// Checkpoint once this many bytes were appended since the last one...
    pub checkpoint_bytes: u64,
    /// ...or this much time passed with any write.
    pub checkpoint_interval: Duration,
    /// A sealed segment is compacted once this fraction of it is dead; the active one
    /// is sealed early at this fraction once it holds `reclaim_min_bytes`.
    pub compaction_min_dead_ratio: f64,
    /// The least an active segment holds before it is sealed early to reclaim space.
    pub reclaim_min_bytes: u64,
    /// Compaction copies at most this many bytes per second, to bound its foreground cost.
    pub compaction_bytes_per_sec: u64,
    /// Default counter retention for new namespaces, in seconds.
    pub retention_secs: u32,
    /// Run checkpoints, interval syncs, compaction and counter expiry on a background thread.
    pub background: bool,
    /// A tombstone (or an expired put) is kept at least this long after its version's
    /// time (or expiry), so that every replica learns of the delete before any forgets it.
    pub tombstone_grace_secs: u64,
    /// A write whose version is further ahead of the clock than this is refused.
    pub max_clock_skew_ms: u64,
    /// How fast the digest rebuild after open scans the index, in slots per second.
    pub digest_scan_slots_per_sec: u64,
    /// The writer id of the versions the store stamps itself (writes that carry none).
    pub writer_id: u64,
    pub clock: Arc<dyn Clock>,
    pub io: Arc<dyn Io>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sync: SyncMode::Always,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_batch_len: 100_000,
            segment_size: 1 << 30,
            checkpoint_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(5),
            compaction_min_dead_ratio: 0.5,
            reclaim_min_bytes: 8 << 20,
            compaction_bytes_per_sec: 64 << 20,
            retention_secs: DEFAULT_RETENTION_SECS,
            background: true,
            tombstone_grace_secs: DEFAULT_TOMBSTONE_GRACE_SECS,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            digest_scan_slots_per_sec: 8 << 20,
            writer_id: crate::hash::random_seed(),
            clock: Arc::new(SystemClock),
            io: Arc::new(RealIo),
        }
    }
}
