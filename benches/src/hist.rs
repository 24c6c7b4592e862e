//! A latency histogram of fixed size: exact below 64 µs, then 32 buckets per power of
//! two (about 3 % wide), so a soak of any length records every call in O(1) memory.

use std::time::Duration;

const SUB: u32 = 32;
const BUCKETS: usize = 64 + (64 - 6) * SUB as usize;

#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    if us < 64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // ≥ 6
    let m = (us >> (e - 5)) as u32 & (SUB - 1);
    64 + ((e - 6) * SUB + m) as usize
}

/// The largest value that falls in bucket `b`.
fn upper(b: usize) -> u64 {
    if b < 64 {
        return b as u64;
    }
    let e = (b - 64) as u32 / SUB + 6;
    let m = (b - 64) as u64 % SUB as u64;
    ((SUB as u64 + m + 1) << (e - 5)) - 1
}

impl Hist {
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The value at quantile `q` (0–1), as its bucket's upper bound.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(upper(b).min(self.max_us));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_hold_their_values() {
        let mut last = 0;
        for us in (0..100_000u64).chain([1 << 20, 1 << 40, u64::MAX >> 1]) {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(upper(b) >= us, "{us} above its bucket's bound {}", upper(b));
            assert!(upper(b) - us <= us / 16, "{us}: bucket too wide");
            last = b;
        }
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Hist::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as u64;
        let p99 = h.quantile(0.99).as_micros() as u64;
        assert!((500..=516).contains(&p50), "{p50}");
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_micros(1000));
        let mut other = Hist::default();
        other.record(Duration::from_millis(5));
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (1001, Duration::from_millis(5)));
    }
}
