//! The client's side: watch the passing instances of the service with blocking queries
//! and publish the set, sorted, whenever it changes.
//!
//! - Each query passes the last `X-Consul-Index` and a `wait`; an index that went
//!   backwards (an agent restart, a snapshot restore) starts over from 0.
//! - Queries are at least `min_interval` apart, so a flapping service cannot make the
//!   loop spin.
//! - Damping: an instance must stay passing for `stable_for` before it enters the set
//!   (or enters it again after dropping out), so keys do not move on every flap.
//!   Instances already in the set leave it as soon as they stop passing.
//! - When Consul cannot be reached or answers an error, the last set stays.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::consul::{Consul, Instance};

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub service: String,
    pub wait: Duration,
    pub min_interval: Duration,
    pub stable_for: Duration,
}

impl WatchOptions {
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_string(),
            wait: Duration::from_secs(30),
            min_interval: Duration::from_millis(200),
            stable_for: Duration::from_secs(10),
        }
    }
}

/// Pure damping state, separate from the I/O so that it can be tested on its own.
#[derive(Debug, Default)]
pub struct Damper {
    /// The published set, by id.
    current: BTreeMap<String, Instance>,
    /// Passing but not yet in the set: since when.
    waiting: BTreeMap<String, Instant>,
}

impl Damper {
    /// Feeds the latest passing list at `now`; returns the set to publish, sorted, and
    /// when to look again if someone is still waiting to enter.
    pub fn update(
        &mut self,
        passing: Vec<Instance>,
        now: Instant,
        stable_for: Duration,
    ) -> (Vec<Instance>, Option<Instant>) {
        let passing: BTreeMap<String, Instance> =
            passing.into_iter().map(|i| (i.id.clone(), i)).collect();
        self.current.retain(|id, _| passing.contains_key(id));
        self.waiting.retain(|id, _| passing.contains_key(id));
        for (id, inst) in &passing {
            if let Some(cur) = self.current.get_mut(id) {
                *cur = inst.clone(); // address or meta may change in place
                continue;
            }
            let since = *self.waiting.entry(id.clone()).or_insert(now);
            if now >= since + stable_for {
                self.waiting.remove(id);
                self.current.insert(id.clone(), inst.clone());
            }
        }
        let next = self.waiting.values().map(|s| *s + stable_for).min();
        (self.current.values().cloned().collect(), next)
    }
}

/// Starts the watch loop; the receiver holds the current set (empty until Consul first
/// answers).
pub fn spawn(consul: Consul, opts: WatchOptions) -> watch::Receiver<Vec<Instance>> {
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        let mut index = 0u64;
        let mut damper = Damper::default();
        let mut seeded = false;
        let mut next_look: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let wait = match next_look {
                Some(t) => t
                    .saturating_duration_since(started)
                    .max(Duration::from_millis(10))
                    .min(opts.wait),
                None => opts.wait,
            };
            match consul.healthy(&opts.service, index, wait).await {
                Ok((list, new_index)) => {
                    // Consul's rule: reset when the index goes backwards; never 0.
                    index = if new_index < index {
                        0
                    } else {
                        new_index.max(1)
                    };
                    // The first answer is taken as it is: there is nothing to protect yet.
                    let stable_for = if seeded {
                        opts.stable_for
                    } else {
                        Duration::ZERO
                    };
                    let (set, next) = damper.update(list, Instant::now(), stable_for);
                    seeded = true;
                    next_look = next;
                    tx.send_if_modified(|cur| {
                        let changed = *cur != set;
                        if changed {
                            *cur = set;
                        }
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!("watching consul: {e}; keeping the last set");
                    index = 0;
                    tokio::time::sleep(opts.min_interval.max(Duration::from_millis(500))).await;
                }
            }
            if tx.is_closed() {
                return;
            }
            let elapsed = started.elapsed();
            if elapsed < opts.min_interval {
                tokio::time::sleep(opts.min_interval - elapsed).await;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str) -> Instance {
        Instance {
            id: id.into(),
            address: "127.0.0.1".into(),
            port: 1,
            meta: Default::default(),
        }
    }

    #[test]
    fn a_flapping_instance_waits_out_the_stable_time_and_leavers_go_at_once() {
        let stable = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut d = Damper::default();
        let (set, _) = d.update(vec![inst("a"), inst("b")], t0, Duration::ZERO);
        assert_eq!(set.len(), 2);
        // b drops out: gone at once.
        let (set, _) = d.update(vec![inst("a")], t0 + Duration::from_secs(1), stable);
        assert_eq!(set, vec![inst("a")]);
        // b comes back: not before it has been passing for `stable`.
        let (set, next) = d.update(
            vec![inst("b"), inst("a")],
            t0 + Duration::from_secs(2),
            stable,
        );
        assert_eq!(set, vec![inst("a")]);
        assert_eq!(next, Some(t0 + Duration::from_secs(12)));
        // It flaps: the clock starts over.
        d.update(vec![inst("a")], t0 + Duration::from_secs(5), stable);
        let (set, _) = d.update(
            vec![inst("a"), inst("b")],
            t0 + Duration::from_secs(6),
            stable,
        );
        assert_eq!(set, vec![inst("a")]);
        let (set, _) = d.update(
            vec![inst("a"), inst("b")],
            t0 + Duration::from_secs(15),
            stable,
        );
        assert_eq!(set, vec![inst("a")], "only 9 s since it came back");
        let (set, next) = d.update(
            vec![inst("b"), inst("a")],
            t0 + Duration::from_secs(16),
            stable,
        );
        assert_eq!(set, vec![inst("a"), inst("b")], "sorted, and b is back");
        assert_eq!(next, None);
    }
}
