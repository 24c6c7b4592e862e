//! Which nodes the client believes down. A node whose call fails at the transport
//! (refused, reset, no answer in time) is skipped for a backed-off while, so a dead
//! node costs one failed call, not one connect timeout per call. The first call after
//! the while probes it again; an answer clears it.

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
}

/// True for errors that say the node, not the request, is at fault.
pub fn is_transport(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
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
    }
}
