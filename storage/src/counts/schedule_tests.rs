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
            s.add(&mut cells, &mut last, now, n, &mut Vec::new());
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
    s.add(&mut cells, &mut last, t0, 3, &mut Vec::new());
    s.add(&mut cells, &mut last, t0 + 30, 4, &mut Vec::new());
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
    s.add(&mut cells, &mut last, t0 - 100, 2, &mut Vec::new());
    assert_eq!(s.count(&cells, last, t0 + 30, 3600), 9);
    assert_eq!(s.count(&cells, last, t0 + 30, 64), 7);
}

/// Replay's invariant: applying the images of writes j.. in order, onto the cells as
/// they stood after any write k >= j (a table ahead of the log's checkpoint), leaves
/// exactly the cells after the last write.
#[test]
fn replaying_images_onto_a_table_ahead_of_the_log_ends_where_the_writes_did() {
    for (seed, retention) in [(11, 60), (12, 3600), (13, 86_400)] {
        let mut rng = Rng(seed * 0x2545_f491);
        let s = Schedule::for_retention(retention);
        let (mut cells, mut last) = (vec![0u32; s.len()], 0u64);
        let mut now = 1_700_000_000u64;
        let mut states = vec![(cells.clone(), last)];
        let mut writes: Vec<(u64, Vec<CellImage>)> = Vec::new();
        for _ in 0..600 {
            now += rng.below(retention as u64 / 10 + 3);
            // Now and then an event a few seconds late, as callers stamp them.
            let t = now.saturating_sub(rng.below(3) * rng.below(10));
            let mut images = Vec::new();
            if rng.below(10) == 0 {
                let from = s.images(&cells, last);
                if let Some(&im) = from.get(rng.below(from.len() as u64 + 1) as usize) {
                    let bump = CellImage {
                        value: im.value + 2,
                        ..im
                    };
                    s.raise(&mut cells, &mut last, bump, &mut images);
                }
            } else {
                s.add(
                    &mut cells,
                    &mut last,
                    t,
                    1 + rng.below(4) as u32,
                    &mut images,
                );
            }
            writes.push((last, images));
            states.push((cells.clone(), last));
        }
        for _ in 0..60 {
            let j = rng.below(writes.len() as u64) as usize;
            let k = j + rng.below((writes.len() - j) as u64 + 1) as usize;
            let (mut c, mut l) = states[k].clone();
            for (new_last, images) in &writes[j..] {
                s.apply(&mut c, &mut l, *new_last, images);
            }
            assert_eq!(
                (c, l),
                (cells.clone(), last),
                "r {retention}: from {j}, table at {k}"
            );
        }
    }
}

/// Converting to another retention's schedule keeps every count the target schedule
/// can hold: a window the source held exactly reads the same from the target.
#[test]
fn converting_between_retentions_keeps_the_counts_both_hold() {
    let mut rng = Rng(77);
    let (a, b) = (
        Schedule::for_retention(86_400),
        Schedule::for_retention(3600),
    );
    let (mut cells, mut last) = (vec![0u32; a.len()], 0u64);
    let mut now = 1_700_000_000u64;
    for _ in 0..3000 {
        now += rng.below(5);
        a.add(&mut cells, &mut last, now, 1, &mut Vec::new());
    }
    let down = a.convert(&cells, last, &b);
    let up = b.convert(&down, last, &a);
    for w in [1, 10, 64, 600, 3600] {
        assert_eq!(
            b.count(&down, last, now, w),
            a.count(&cells, last, now, w),
            "w {w}"
        );
        assert_eq!(
            a.count(&up, last, now, w),
            a.count(&cells, last, now, w),
            "w {w} back"
        );
    }
    assert!(a.count(&up, last, now, 86_400) <= a.count(&cells, last, now, 86_400));
}
