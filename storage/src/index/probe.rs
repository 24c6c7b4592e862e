//! What the key index and the counter buckets share: linear probing from a home slot
//! taken from the top bits of the hash, and the hash-range walk listings use.

/// A slot as the walk sees it.
pub(crate) enum Slot {
    Empty,
    /// Used once, now a tombstone: probing goes on past it.
    Dead,
    Live(u64),
}

pub(crate) trait ProbeTable {
    fn bits(&self) -> u32;
    fn slot(&self, i: usize) -> Slot;

    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.bits())) as usize
    }

    /// Calls `f(slot, hash)` for every live slot whose hash is in `[lo, hi)`, each once.
    /// Every such entry sits at or after its home slot and before the next empty slot,
    /// so the walk starts at `home(lo)` and ends at the first empty slot past `home(hi - 1)`.
    fn scan_range(&self, lo: u64, hi: u128, mut f: impl FnMut(usize, u64)) {
        if (lo as u128) >= hi {
            return;
        }
        let mask = (1usize << self.bits()) - 1;
        let last_home = self.home((hi - 1) as u64);
        let mut i = self.home(lo);
        let mut reached = false;
        for _ in 0..=mask {
            reached |= i == last_home;
            match self.slot(i) {
                Slot::Empty if reached => return,
                Slot::Live(h) if h >= lo && (h as u128) < hi => f(i, h),
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// How much hash space holds about `slots` slots.
    fn hash_span(&self, slots: u64) -> u128 {
        (slots as u128) << (64 - self.bits())
    }
}
