//! Versions: a total order over every write to a key, from any writer.
//!
//! A version is a hybrid logical clock timestamp (`ts`) with the writer's id as the
//! tiebreak. `ts` is milliseconds since the Unix epoch shifted left 16 bits, plus a
//! 16-bit logical counter: it follows wall time when clocks agree, never goes back,
//! and stays above every version the clock has seen ([`Hlc::observe`]), so a write
//! made after reading a version always sorts after it. Two writers never produce the
//! same version as long as their ids differ.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of `ts` below the milliseconds.
const LOGICAL_BITS: u32 = 16;

/// The order of writes to a key: later `ts` wins, then the larger writer id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub ts: u64,
    pub writer: u64,
}

impl Version {
    pub const fn new(ts: u64, writer: u64) -> Self {
        Self { ts, writer }
    }

    /// Wall-clock milliseconds the timestamp carries.
    pub const fn millis(&self) -> u64 {
        self.ts >> LOGICAL_BITS
    }

    /// Wall-clock seconds the timestamp carries.
    pub const fn secs(&self) -> u64 {
        self.millis() / 1000
    }

    /// The smallest timestamp at wall-clock time `millis`.
    pub const fn ts_at_millis(millis: u64) -> u64 {
        millis << LOGICAL_BITS
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}@{:016x}",
            self.millis(),
            self.ts & ((1 << LOGICAL_BITS) - 1),
            self.writer
        )
    }
}

/// Milliseconds since the Unix epoch, from the wall clock or a test's clock.
pub type MillisSource = Box<dyn Fn() -> u64 + Send + Sync>;

/// A hybrid logical clock for one writer.
pub struct Hlc {
    writer: u64,
    last: AtomicU64,
    now_ms: MillisSource,
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("writer", &self.writer)
            .field("last", &self.last.load(Ordering::Relaxed))
            .finish()
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hlc {
    /// A clock on the wall clock.
    pub fn new(writer: u64) -> Self {
        Self::with_source(writer, Box::new(wall_millis))
    }

    /// A clock reading `now_ms` (tests inject one).
    pub fn with_source(writer: u64, now_ms: MillisSource) -> Self {
        Self {
            writer,
            last: AtomicU64::new(0),
            now_ms,
        }
    }

    pub fn writer(&self) -> u64 {
        self.writer
    }

    /// The wall clock this HLC reads, in milliseconds.
    pub fn wall_millis(&self) -> u64 {
        (self.now_ms)()
    }

    /// A new version, above every one this clock made or observed.
    pub fn now(&self) -> Version {
        self.now_at((self.now_ms)())
    }

    /// This clock's wall time in milliseconds: read once for a batch of writes, then
    /// passed to [`Hlc::now_at`] and [`Hlc::ahead_ms_at`].
    pub fn wall_ms(&self) -> u64 {
        (self.now_ms)()
    }

    /// [`Hlc::now`] with the wall time already read.
    pub fn now_at(&self, wall_ms: u64) -> Version {
        let wall = Version::ts_at_millis(wall_ms);
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(wall.max(last + 1))
            })
            .unwrap_or_else(|v| v);
        Version::new(wall.max(prev + 1), self.writer)
    }

    /// Moves the clock past a version seen from another writer, so that what this
    /// writer does next sorts after it.
    pub fn observe(&self, v: Version) {
        self.last.fetch_max(v.ts, Ordering::AcqRel);
    }

    /// How many milliseconds `v` is ahead of this clock's wall time (0 if not ahead).
    pub fn ahead_ms(&self, v: Version) -> u64 {
        self.ahead_ms_at(v, (self.now_ms)())
    }

    /// [`Hlc::ahead_ms`] with the wall time already read.
    pub fn ahead_ms_at(&self, v: Version, wall_ms: u64) -> u64 {
        v.millis().saturating_sub(wall_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn manual(ms: Arc<AtomicU64>, writer: u64) -> Hlc {
        Hlc::with_source(writer, Box::new(move || ms.load(Ordering::SeqCst)))
    }

    #[test]
    fn versions_rise_even_when_the_wall_clock_stalls_or_steps_back() {
        let ms = Arc::new(AtomicU64::new(1_000));
        let c = manual(ms.clone(), 1);
        let a = c.now();
        let b = c.now();
        assert!(b > a, "same millisecond: the logical counter moves");
        assert_eq!((a.millis(), b.millis()), (1_000, 1_000));
        ms.store(500, Ordering::SeqCst);
        assert!(c.now() > b, "a clock stepped back never goes back");
        ms.store(2_000, Ordering::SeqCst);
        let d = c.now();
        assert_eq!(d.millis(), 2_000, "follows the wall clock again");
    }

    #[test]
    fn observing_a_later_version_moves_past_it() {
        let ms = Arc::new(AtomicU64::new(1_000));
        let c = manual(ms, 1);
        let far = Version::new(Version::ts_at_millis(9_000), 2);
        c.observe(far);
        let next = c.now();
        assert!(next > far && next.writer == 1);
        assert_eq!(c.ahead_ms(far), 8_000);
        assert_eq!(c.ahead_ms(Version::new(0, 0)), 0);
    }

    #[test]
    fn writer_id_breaks_ties() {
        let a = Version::new(5, 1);
        let b = Version::new(5, 2);
        assert!(b > a && Version::new(6, 0) > b);
        assert_eq!(Version::default(), Version::new(0, 0));
    }
}
