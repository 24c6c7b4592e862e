//! The background thread: checkpoints, interval syncs, counter expiry and paced
//! compaction, until the store stops it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{IoContext, Result};
use crate::namespace::Namespace;
use crate::options::SyncMode;

use super::registry::Registry;

/// The stop flag and the condvar that wakes the thread early.
#[derive(Default)]
pub(super) struct Stop {
    stop: Mutex<bool>,
    wake: Condvar,
}

pub(super) struct Background {
    stop: Arc<Stop>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    pub(super) fn start(registry: Arc<Registry>) -> Result<Self> {
        let stop = Arc::new(Stop::default());
        let (s, r) = (stop.clone(), registry.clone());
        let handle = std::thread::Builder::new()
            .name("dstash-storage".into())
            .spawn(move || run(&r, &s))
            .at(registry.dir())?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it; a pass in progress finishes its step first.
    pub(super) fn stop(&mut self) {
        *self.stop.stop.lock() = true;
        self.stop.wake.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Stop {
    fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Waits up to `d`; true when stopped.
    fn wait(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, d);
        }
        *stop
    }
}

fn run(registry: &Registry, stop: &Stop) {
    let tick = Duration::from_millis(100);
    let mut last_sync = Instant::now();
    while !stop.wait(tick) {
        let sync_due = match registry.opts.sync {
            SyncMode::Interval(d) => last_sync.elapsed() >= d,
            _ => false,
        };
        if sync_due {
            last_sync = Instant::now();
        }
        for n in registry.all() {
            tick_namespace(registry, stop, &n, sync_due);
        }
    }
}

fn tick_namespace(registry: &Registry, stop: &Stop, n: &Namespace, sync_due: bool) {
    let name = &n.name;
    if sync_due {
        if let Err(e) = n.kv.sync().and_then(|()| n.counters.sync()) {
            tracing::error!(ns = %name, "interval sync failed: {e}");
        }
    }
    if n.kv.checkpoint_due() {
        if let Err(e) = n.kv.checkpoint(false) {
            tracing::error!(ns = %name, "checkpoint failed: {e}");
        }
    }
    if let Err(e) = n.counters.flush() {
        tracing::error!(ns = %name, "count log write failed: {e}");
    }
    if n.counters.checkpoint_due() {
        if let Err(e) = n.counters.checkpoint() {
            tracing::error!(ns = %name, "count checkpoint failed: {e}");
        }
    }
    rebuild_digest(registry, stop, n);
    if let Err(e) = n.counters.expire() {
        tracing::error!(ns = %name, "counter expiry failed: {e}");
    }
    evict(stop, n);
    if let Err(e) = n.kv.roll_if_wasteful() {
        tracing::error!(ns = %name, "early seal failed: {e}");
    }
    if let Some(id) = n.kv.compaction_candidate() {
        let started = Instant::now();
        let rate = registry.opts.compaction_bytes_per_sec.max(1) as f64;
        let mut pace = |done: u64| {
            let due = Duration::from_secs_f64(done as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                stop.wait(wait);
            }
            !stop.stopping()
        };
        if let Err(e) = n.kv.compact(id, &mut pace) {
            tracing::error!(ns = %name, segment = id, "compaction failed: {e}");
        }
    }
}

/// A bounded namespace past its bound drops its oldest segments, unpaced (nothing is
/// copied), until it is within the bound or none is left to drop. A segment with
/// damage part way is kept (logged by the scan): the bound then waits for an operator.
fn evict(stop: &Stop, n: &Namespace) {
    let max = n.settings().max_bytes;
    while !stop.stopping() {
        match n.kv.eviction_candidate(max) {
            Ok(Some(id)) => match n.kv.evict(id, &mut |_| !stop.stopping()) {
                Ok(r) if r.finished => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(ns = %n.name, segment = id, "eviction failed: {e}");
                    return;
                }
            },
            Ok(None) => return,
            Err(e) => {
                tracing::error!(ns = %n.name, "eviction failed: {e}");
                return;
            }
        }
    }
}

/// One tick's share of the paced digest rebuild after open.
fn rebuild_digest(registry: &Registry, stop: &Stop, n: &Namespace) {
    let per_tick = (registry.opts.digest_scan_slots_per_sec / 10).max(1);
    let mut done = 0;
    while done < per_tick && !stop.stopping() {
        if n.kv.rebuild_digest_step(super::digests::REBUILD_STEP_SLOTS) {
            return;
        }
        done += super::digests::REBUILD_STEP_SLOTS;
    }
}
