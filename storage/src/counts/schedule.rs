//! The cells that keep one key's expiring count: a few tiers of ring buffers, finest
//! first, each recording every event at its own resolution. The fine tier holds the
//! last 64 seconds, a minute tier about the last hour, an hour tier the rest of the
//! retention; a namespace gets only the tiers its retention needs.
//!
//! A count over a window is read from the finest tier that still holds the window's
//! first second, and sums that tier's cells from the one holding it to now. So it
//! counts exactly the events from [`Schedule::window_start`] to now: the window's
//! first second rounded down to that tier's resolution. Windows up to 64 s are exact;
//! up to an hour, the start may move back by at most 59 s; longer, by at most 59 min
//! 59 s. The count never misses an event of the window.
//!
//! All tiers share the key's last-touch second: a ring's cell for period `p` is slot
//! `p % cells`, valid while `p` is within `cells` periods of the last touch.

/// One cell's value after a write, named by its tier's resolution and its period
/// (Unix second / resolution): what the count log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellImage {
    pub res: u32,
    pub period: u64,
    pub value: u32,
}

/// One ring: `cells` cells of `res` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub res: u32,
    pub cells: u32,
}

/// The tiers for one retention, finest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    tiers: Vec<Tier>,
}

const FINE: Tier = Tier { res: 1, cells: 64 };
const MINUTE: u32 = 60;
/// Minute cells when an hour tier follows: enough to hold 61 whole minutes.
const MINUTE_CELLS: u32 = 62;
const HOUR: u32 = 3600;

/// Cells that hold `secs` seconds whatever the alignment: the oldest period a window
/// of `secs` touches is at most `ceil(secs / res)` periods back.
fn cells_for(secs: u32, res: u32) -> u32 {
    secs.div_ceil(res) + 1
}

impl Schedule {
    pub fn for_retention(retention: u32) -> Schedule {
        let mut tiers = vec![FINE];
        let minute_reach = (MINUTE_CELLS - 1) * MINUTE;
        if retention > FINE.cells {
            let cells = match retention > minute_reach {
                true => MINUTE_CELLS,
                false => cells_for(retention, MINUTE),
            };
            tiers.push(Tier { res: MINUTE, cells });
        }
        if retention > minute_reach {
            tiers.push(Tier {
                res: HOUR,
                cells: cells_for(retention, HOUR),
            });
        }
        Schedule { tiers }
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// Cells per key, over every tier.
    pub fn len(&self) -> usize {
        self.tiers.iter().map(|t| t.cells as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Each tier with the offset of its first cell.
    fn rings(&self) -> impl Iterator<Item = (usize, Tier)> + '_ {
        self.tiers.iter().scan(0usize, |at, t| {
            let here = *at;
            *at += t.cells as usize;
            Some((here, *t))
        })
    }

    /// Moves every ring forward to second `t` if it is later than `*last`, clearing
    /// the periods in between, and makes it the last touch.
    fn advance(&self, cells: &mut [u32], last: &mut u64, t: u64) {
        if t <= *last {
            return;
        }
        for (at, tier) in self.rings() {
            let ring = &mut cells[at..at + tier.cells as usize];
            let (res, len) = (tier.res as u64, tier.cells as u64);
            let (p, lp) = (t / res, *last / res);
            if p - lp >= len {
                ring.fill(0);
            } else {
                for q in lp + 1..=p {
                    ring[(q % len) as usize] = 0;
                }
            }
        }
        *last = t;
    }

    /// The cell of period `p` of the tier at `at`, while the ring holds it.
    fn cell(cells: &mut [u32], last: u64, at: usize, tier: Tier, p: u64) -> Option<&mut u32> {
        let (res, len) = (tier.res as u64, tier.cells as u64);
        if p > last / res || p + len <= last / res {
            return None;
        }
        cells.get_mut(at + (p % len) as usize)
    }

    /// Counts `n` events at second `t` into `cells` (of [`len`](Self::len)), whose
    /// last touch is `*last`, moving it to `t` if later, and pushes onto `images` the
    /// value of every cell written. A tier that no longer holds `t` (an event older
    /// than its reach) skips it.
    pub fn add(
        &self,
        cells: &mut [u32],
        last: &mut u64,
        t: u64,
        n: u32,
        images: &mut Vec<CellImage>,
    ) {
        self.advance(cells, last, t);
        for (at, tier) in self.rings() {
            let p = t / tier.res as u64;
            if let Some(c) = Self::cell(cells, *last, at, tier, p) {
                *c = c.saturating_add(n);
                images.push(CellImage {
                    res: tier.res,
                    period: p,
                    value: *c,
                });
            }
        }
    }

    /// Raises the cell `image` names to at least its value, moving the last touch to
    /// the start of its period if later; false when no tier of this resolution holds
    /// it. A raised cell's new value is pushed onto `images`.
    pub fn raise(
        &self,
        cells: &mut [u32],
        last: &mut u64,
        image: CellImage,
        images: &mut Vec<CellImage>,
    ) -> bool {
        let Some((at, tier)) = self.rings().find(|(_, t)| t.res == image.res) else {
            return false;
        };
        self.advance(cells, last, image.period.saturating_mul(tier.res as u64));
        let Some(c) = Self::cell(cells, *last, at, tier, image.period) else {
            return false;
        };
        if *c < image.value {
            *c = image.value;
            images.push(CellImage { value: *c, ..image });
        }
        true
    }

    /// Replays a write: the last touch moves to `new_last` if later, then each image's
    /// cell takes its value. Applying the images of a write again, or onto cells that
    /// already hold later writes, leaves what the writes in order left.
    pub fn apply(&self, cells: &mut [u32], last: &mut u64, new_last: u64, images: &[CellImage]) {
        self.advance(cells, last, new_last);
        for image in images {
            if let Some((at, tier)) = self.rings().find(|(_, t)| t.res == image.res) {
                if let Some(c) = Self::cell(cells, *last, at, tier, image.period) {
                    *c = image.value;
                }
            }
        }
    }

    /// Every nonzero cell the rings hold, finest tier first, oldest period first.
    pub fn images(&self, cells: &[u32], last: u64) -> Vec<CellImage> {
        let mut out = Vec::new();
        for (at, tier) in self.rings() {
            let (res, len) = (tier.res as u64, tier.cells as u64);
            let lp = last / res;
            for p in (lp + 1).saturating_sub(len)..=lp {
                let value = cells[at + (p % len) as usize];
                if value > 0 {
                    out.push(CellImage {
                        res: tier.res,
                        period: p,
                        value,
                    });
                }
            }
        }
        out
    }

    /// `cells` (last touch `last`) as schedule `to` keeps them: each tier of `to` is
    /// filled from the coarsest tier here whose resolution divides its own, summing
    /// finer periods; what no tier here holds stays 0.
    pub fn convert(&self, cells: &[u32], last: u64, to: &Schedule) -> Vec<u32> {
        let mut out = vec![0; to.len()];
        for (at, tier) in to.rings() {
            let src = self
                .rings()
                .filter(|(_, s)| s.res <= tier.res && tier.res % s.res == 0)
                .last();
            let Some((sat, src)) = src else { continue };
            let (sres, slen) = (src.res as u64, src.cells as u64);
            let lp = last / sres;
            for q in (lp + 1).saturating_sub(slen)..=lp {
                let v = cells[sat + (q % slen) as usize];
                let p = q * sres / tier.res as u64;
                if let Some(c) = Self::cell(&mut out, last, at, tier, p) {
                    *c = c.saturating_add(v);
                }
            }
        }
        out
    }

    /// The tier a window of `window` seconds ending at `now` is read from, with its
    /// offset: the finest that still holds its first second.
    fn tier_for(&self, now: u64, window: u32) -> (usize, Tier) {
        let first = (now + 1).saturating_sub(window.max(1) as u64);
        let mut chosen = None;
        for (at, tier) in self.rings() {
            chosen = Some((at, tier));
            let (res, len) = (tier.res as u64, tier.cells as u64);
            if first / res + len > now / res {
                break;
            }
        }
        chosen.unwrap_or((0, FINE))
    }

    /// The first second a count over `window` seconds ending at `now` includes: the
    /// window's first second, rounded down to the resolution of the tier read.
    pub fn window_start(&self, now: u64, window: u32) -> u64 {
        let first = (now + 1).saturating_sub(window.max(1) as u64);
        let (_, tier) = self.tier_for(now, window);
        first - first % tier.res as u64
    }

    /// Events counted from [`window_start`](Self::window_start) to `now`.
    pub fn count(&self, cells: &[u32], last: u64, now: u64, window: u32) -> u64 {
        let (at, tier) = self.tier_for(now, window);
        let ring = &cells[at..at + tier.cells as usize];
        let (res, len) = (tier.res as u64, tier.cells as u64);
        let from = self.window_start(now, window) / res;
        let to = (now / res).min(last / res);
        // A period is held while it is within `len` periods of the last touch.
        let from = from.max((last / res + 1).saturating_sub(len));
        if from > to {
            return 0;
        }
        // Periods from..=to are at most `len` ring cells, from `from % len` on, wrapping
        // once: two runs, with no division per cell.
        let (start, n) = ((from % len) as usize, (to - from + 1) as usize);
        let first = (ring.len() - start).min(n);
        let sum = |run: &[u32]| run.iter().map(|&v| v as u64).sum::<u64>();
        sum(&ring[start..start + first]) + sum(&ring[..n - first])
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
