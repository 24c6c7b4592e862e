//! What the client believes of each node: a latency estimate from its read answers, and
//! whether it is suspect or down. A node whose call fails at the transport (refused,
//! reset, a dropped keep-alive, no answer within the call's deadline) is skipped for a
//! backed-off while, so a dead node costs one failed call, not one connect timeout per
//! call; the first call after the while probes it again, and an answer clears it. A read
//! that runs past the node's attempt deadline makes it suspect: asked last by reads for
//! a while, but not refused, since it may only be slow.
//!
//! The estimate is TCP's retransmit-timer rule (RFC 6298): a smoothed latency and its
//! mean deviation; `srtt + 4 * rttvar`, with a floor, is how long an attempt on the node
//! may take before the next replica is asked.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Code;

/// The default first down-while, doubled at each failure in a row up to [`MAX_DOWN`]
/// (or the first while, if that is longer).
pub const FIRST_DOWN: Duration = Duration::from_millis(500);
pub const MAX_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct NodeHealth {
    first: Duration,
    state: Mutex<State>,
}

impl Default for NodeHealth {
    fn default() -> Self {
        Self::new(FIRST_DOWN)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Transport failures in a row.
    failures: u32,
    down_until: Option<Instant>,
    /// A read attempt ran past its deadline: reads ask the node last until then, but
    /// calls are not refused (it may only be slow).
    suspect_until: Option<Instant>,
    /// Smoothed read latency and its mean deviation, once a read answered.
    srtt: Option<(Duration, Duration)>,
}

/// How the client sees a node, for ordering replicas and for `dstash status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeState {
    Up,
    /// Missed its last call (a broken connection, the call's deadline) or a read's
    /// attempt deadline: asked last by reads until the while passes.
    Suspect,
    /// Missed three or more calls in a row.
    Down,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Suspect => "suspect",
            NodeState::Down => "down",
        }
    }
}

/// True for errors that say the node, not the request, is at fault. `Cancelled` is
/// what a call gets when the node's connection drops under it (a node killed
/// mid-call): the client itself never cancels a call it still waits for.
pub fn is_transport(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}

impl NodeHealth {
    pub fn new(first: Duration) -> Self {
        Self {
            first,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How much longer the node is skipped at `now`; None when it may be called.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        let until = self.state().down_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// The node's state at `now`.
    pub fn state_at(&self, now: Instant) -> NodeState {
        let s = self.state();
        let after = |t: Option<Instant>| t.is_some_and(|t| t > now);
        match (after(s.down_until), after(s.suspect_until)) {
            (true, _) if s.failures >= 3 => NodeState::Down,
            (true, _) | (_, true) => NodeState::Suspect,
            _ => NodeState::Up,
        }
    }

    /// A read attempt on the node ran past its deadline at `now`: it is suspect (asked
    /// last by reads) for the first while, but not refused.
    pub fn suspect(&self, now: Instant) {
        self.suspect_for(now, self.first);
    }

    /// Suspect until `now + d` at least (a later mark is kept).
    pub fn suspect_for(&self, now: Instant, d: Duration) {
        let mut s = self.state();
        let until = now + d;
        s.suspect_until = Some(s.suspect_until.map_or(until, |u| u.max(until)));
    }

    /// A read answered after `took`: the estimate moves toward it.
    pub fn sample(&self, took: Duration) {
        let mut s = self.state();
        s.srtt = Some(match s.srtt {
            None => (took, took / 2),
            Some((srtt, var)) => {
                let err = srtt.abs_diff(took);
                (srtt * 7 / 8 + took / 8, var * 3 / 4 + err / 4)
            }
        });
    }

    /// The smoothed read latency, once a read answered.
    pub fn latency(&self) -> Option<Duration> {
        self.state().srtt.map(|(srtt, _)| srtt)
    }

    /// How long a read attempt on the node may take before the next replica is asked:
    /// `srtt + 4 * rttvar`, at least `floor`, at most `cap`.
    pub fn attempt_deadline(&self, floor: Duration, cap: Duration) -> Duration {
        let est = self
            .state()
            .srtt
            .map_or(Duration::ZERO, |(srtt, var)| srtt + var * 4);
        est.max(floor).min(cap.max(floor))
    }

    /// A transport failure at `now`: down for the next while, twice the last one.
    pub fn failed(&self, now: Instant) {
        let mut s = self.state();
        let shift = s.failures.min(16);
        s.failures = s.failures.saturating_add(1);
        let d = self
            .first
            .saturating_mul(1 << shift)
            .min(MAX_DOWN.max(self.first));
        s.down_until = Some(now + d);
    }

    /// The node answered: it may be called again at once.
    pub fn answered(&self) {
        let mut s = self.state();
        s.failures = 0;
        s.down_until = None;
        s.suspect_until = None;
    }

    /// Records the outcome of one call at `now`.
    pub fn record(&self, code: Option<Code>, now: Instant) {
        match code {
            Some(c) if is_transport(c) => self.failed(now),
            _ => self.answered(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_time_doubles_to_a_cap_and_an_answer_clears_it() {
        let h = NodeHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.down_for(t0), None);
        h.failed(t0);
        assert_eq!(h.down_for(t0), Some(FIRST_DOWN));
        assert_eq!(
            h.down_for(t0 + FIRST_DOWN),
            None,
            "probed again after the while"
        );
        h.failed(t0);
        assert_eq!(h.down_for(t0), Some(FIRST_DOWN * 2));
        for _ in 0..40 {
            h.failed(t0);
        }
        assert_eq!(h.down_for(t0), Some(MAX_DOWN));
        h.answered();
        assert_eq!(h.down_for(t0), None);
        h.failed(t0);
        assert_eq!(h.down_for(t0), Some(FIRST_DOWN), "the backoff starts over");
    }

    #[test]
    fn a_missed_call_makes_a_node_suspect_and_three_make_it_down() {
        let h = NodeHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.state_at(t0), NodeState::Up);
        h.failed(t0);
        assert_eq!(h.state_at(t0), NodeState::Suspect);
        assert_eq!(h.state_at(t0 + FIRST_DOWN), NodeState::Up, "probed again");
        h.failed(t0);
        h.failed(t0);
        assert_eq!(h.state_at(t0), NodeState::Down);
        h.answered();
        assert_eq!(h.state_at(t0), NodeState::Up);
        h.suspect(t0);
        assert_eq!(h.state_at(t0), NodeState::Suspect);
        assert_eq!(h.down_for(t0), None, "a slow node is not refused");
        assert_eq!(h.state_at(t0 + FIRST_DOWN), NodeState::Up);
    }

    #[test]
    fn a_longer_suspicion_is_not_cut_short_by_a_later_shorter_one() {
        let h = NodeHealth::default();
        let t0 = Instant::now();
        h.suspect_for(t0, FIRST_DOWN * 4);
        h.suspect(t0 + FIRST_DOWN);
        assert_eq!(h.state_at(t0 + FIRST_DOWN * 3), NodeState::Suspect);
        assert_eq!(h.state_at(t0 + FIRST_DOWN * 4), NodeState::Up);
        h.suspect_for(t0, FIRST_DOWN);
        h.answered();
        assert_eq!(h.state_at(t0), NodeState::Up, "an answer clears it");
    }

    #[test]
    fn the_attempt_deadline_follows_the_latency_above_a_floor() {
        let (floor, cap) = (Duration::from_millis(20), Duration::from_secs(1));
        let h = NodeHealth::default();
        assert_eq!(h.attempt_deadline(floor, cap), floor, "no answer yet");
        for _ in 0..50 {
            h.sample(Duration::from_millis(1));
        }
        assert_eq!(h.attempt_deadline(floor, cap), floor, "fast: the floor");
        for _ in 0..50 {
            h.sample(Duration::from_millis(100));
        }
        let d = h.attempt_deadline(floor, cap);
        assert!(
            d >= Duration::from_millis(100) && d < Duration::from_millis(200),
            "{d:?}"
        );
        let l = h.latency().unwrap().as_millis();
        assert!((99..=100).contains(&l), "{l}");
        for _ in 0..50 {
            h.sample(Duration::from_secs(5));
        }
        assert_eq!(h.attempt_deadline(floor, cap), cap);
    }

    #[test]
    fn only_transport_failures_mark_a_node_down() {
        let h = NodeHealth::default();
        let t0 = Instant::now();
        h.record(Some(Code::InvalidArgument), t0);
        h.record(Some(Code::NotFound), t0);
        assert_eq!(h.down_for(t0), None);
        h.record(Some(Code::DeadlineExceeded), t0);
        assert!(h.down_for(t0).is_some());
        h.record(None, t0);
        assert_eq!(h.down_for(t0), None);
        // A connection dropped under a call (the node was killed mid-call).
        h.record(Some(Code::Cancelled), t0);
        assert!(h.down_for(t0).is_some());
    }
}
