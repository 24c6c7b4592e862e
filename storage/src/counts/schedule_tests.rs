use super::*;

#[test]
fn a_retention_gets_the_tiers_it_needs_and_a_day_fits_in_a_kilobyte() {
    let cells = |r| Schedule::for_retention(r).len();
    assert_eq!(Schedule::for_retention(60).tiers(), [FINE]);
    assert_eq!(cells(64), 64);
    assert_eq!(cells(3600), 64 + 61);
    assert_eq!(cells(86_400), 64 + 62 + 25);
    assert!(
        cells(86_400) * 4 <= 1024 - 64,
        "a day of cells and a slot header"
    );
    assert_eq!(cells(7 * 86_400), 64 + 62 + 169);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Against every event kept: each count is the events from `window_start` to now,
/// `window_start` lies at most one resolution before the window, and windows of up
/// to 64 s are exact.
#[test]
fn counts_match_a_model_that_keeps_every_event() {
    for (seed, retention) in [(1, 60), (2, 300), (3, 3600), (4, 4000), (5, 86_400)] {
        let mut rng = Rng(seed * 0x9e37_79b9);
        let s = Schedule::for_retention(retention);
        let mut cells = vec![0u32; s.len()];
        let (mut last, mut now) = (0u64, 1_700_000_000u64);
        let mut events: Vec<(u64, u32)> = Vec::new();
        for step in 0..4000 {
            // Mostly small steps, now and then a gap longer than a ring.
            now += match rng.below(50) {
                0 => rng.below(retention as u64 * 2),
                1..=20 => 0,
                _ => rng.below(retention as u64 / 20 + 2),
            };
            let n = 1 + rng.below(5) as u32;
            s.add(&mut cells, &mut last, now, n);
            events.push((now, n));
            if step % 7 == 0 {
                let w = 1 + rng.below(retention as u64) as u32;
                let first = (now + 1).saturating_sub(w as u64);
                let start = s.window_start(now, w);
                let res = s.tier_for(now, w).1.res as u64;
                assert!(start <= first && first - start < res, "r {retention} w {w}");
                if w <= 64 {
                    assert_eq!(start, first, "a window of {w} s is exact");
                }
                let want: u64 = events
                    .iter()
                    .filter(|(t, _)| (start..=now).contains(t))
                    .map(|(_, n)| *n as u64)
                    .sum();
                assert_eq!(
                    s.count(&cells, last, now, w),
                    want,
                    "r {retention} w {w} at {now}"
                );
            }
        }
    }
}

#[test]
fn a_count_read_later_sees_only_what_is_still_in_the_window() {
    let s = Schedule::for_retention(3600);
    let mut cells = vec![0; s.len()];
    let mut last = 0;
    let t0 = 1_000_000;
    s.add(&mut cells, &mut last, t0, 3);
    s.add(&mut cells, &mut last, t0 + 30, 4);
    assert_eq!(s.count(&cells, last, t0 + 30, 31), 7);
    assert_eq!(
        s.count(&cells, last, t0 + 60, 31),
        4,
        "read later, no add since"
    );
    assert_eq!(s.count(&cells, last, t0 + 100, 10), 0);
    assert_eq!(
        s.count(&cells, last, t0 + 3000, 3600),
        7,
        "from the minute tier"
    );
    assert_eq!(
        s.count(&cells, last, t0 + 9000, 3600),
        0,
        "out of every ring"
    );
    // An event older than the fine ring still reaches the minute tier.
    s.add(&mut cells, &mut last, t0 - 100, 2);
    assert_eq!(s.count(&cells, last, t0 + 30, 3600), 9);
    assert_eq!(s.count(&cells, last, t0 + 30, 64), 7);
}
