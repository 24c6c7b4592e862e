//! Expiring counts: `add` counts events for a key, `count` reads how many fell in a
//! window ending now.
//!
//! - [`schedule`]: the tiers of cells one key keeps (1 s, minutes, hours), and exactly
//!   what a count over a window returns.
//! - [`table`]: one generation's keys, a slot each, in one mmap'd file; a key moves
//!   forward when touched in a later generation, and a generation whose every last
//!   touch is older than the retention is deleted whole.
//! - [`log`]: every write is logged first as the cells it leaves, synced once per group
//!   commit; tables are written back at [`checkpoint`]s, and [`recovery`] replays the
//!   log since, which counts nothing twice.
//! - [`requests`]: request ids already applied, so a resent batch counts once.
//! - [`lister`] and [`transfer`]: keys with a live count; cells moving between replicas.

mod checkpoint;
mod lister;
pub mod log;
mod recovery;
mod requests;
pub mod schedule;
mod state;
pub mod table;
mod transfer;

pub use lister::CounterLister;
pub use requests::MAX_HORIZON;
pub use transfer::CounterCells;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::commit::GroupCommit;
use crate::error::{Error, IoContext, Result};
use crate::hash::key_hash;
use crate::options::{Options, SyncMode};
use requests::{fingerprint, horizon, Seen};
use state::{Batch, State};

/// How far an add's own second may be from the node's clock.
pub const MAX_EVENT_SKEW: u64 = 10;

pub struct Counts {
    ns: String,
    dir: PathBuf,
    opts: Arc<Options>,
    seed: u64,
    state: RwLock<State>,
    group: GroupCommit,
    checkpointing: Mutex<()>,
    mark: Mutex<checkpoint::Mark>,
}

/// Count figures for metrics.
#[derive(Debug, Clone, Default)]
pub struct CounterStats {
    pub generations: u64,
    /// Slots in every generation (a key moved forward holds one in each until its old
    /// generation goes).
    pub slots: u64,
    pub disk_bytes: u64,
    pub log_bytes: u64,
    /// Slots found damaged (and zeroed), and tables set aside, since open.
    pub quarantined: u64,
    pub requests: u64,
}

impl Counts {
    pub fn retention(&self) -> u32 {
        self.state.read().retention
    }

    fn now(&self) -> u64 {
        self.opts.clock.now_secs()
    }

    /// Adds `n` events (0 counts as 1) for each key at second `at` (None: now), which
    /// must be within [`MAX_EVENT_SKEW`] of the clock; returns each key's count over the
    /// whole retention afterwards. With a `request` id the namespace has applied within
    /// the dedup horizon, counts nothing and answers the counts now. Under `Always` the
    /// adds are durable first.
    pub fn add_many(
        &self,
        items: &[(&[u8], u32)],
        at: Option<u64>,
        request: Option<&str>,
    ) -> Result<Vec<u64>> {
        let now = self.now();
        let t = at.unwrap_or(now);
        let off = t.abs_diff(now);
        if off > MAX_EVENT_SKEW {
            let max = MAX_EVENT_SKEW;
            return Err(Error::EventTime { at: t, off, max });
        }
        if let Some(id) = request {
            check_request_id(id)?;
        }
        let fp = request.map(|_| fingerprint(items, t));
        let (counts, ticket) = {
            let mut st = self.state.write();
            st.usable(&self.ns)?;
            let retention = st.retention;
            match request.and_then(|id| st.requests.get(id).map(|s| (id, s))) {
                Some((id, seen)) if Some(seen.fingerprint) != fp => {
                    return Err(Error::RequestReused { id: id.to_string() })
                }
                Some((_, seen)) => {
                    let counts = items
                        .iter()
                        .map(|(k, _)| count_in(&mut st, self.seed, k, retention, now.max(t)))
                        .collect();
                    (counts, seen.ticket)
                }
                None => self.add_new(&mut st, items, t, now.max(t), request.zip(fp))?,
            }
        };
        self.durable(ticket)?;
        Ok(counts)
    }

    /// Counts a batch not seen before, at second `t`, under `request` (its id and
    /// fingerprint); returns each key's count at `now` after the whole batch, and the
    /// ticket that makes it durable.
    fn add_new(
        &self,
        st: &mut State,
        items: &[(&[u8], u32)],
        t: u64,
        now: u64,
        request: Option<(&str, u64)>,
    ) -> Result<(Vec<u64>, u64)> {
        let mut batch = Batch::new();
        let hashes: Vec<u64> = items.iter().map(|(k, _)| key_hash(self.seed, k)).collect();
        for (&(key, n), &hash) in items.iter().zip(&hashes) {
            batch.update(st, hash, key, |s, ks, images| {
                s.add(&mut ks.cells, &mut ks.last, t, n.max(1), images)
            });
        }
        // Counts are read after the whole batch, as a resent batch reads them.
        let counts = items
            .iter()
            .zip(&hashes)
            .map(|(&(key, _), &hash)| match batch.state(hash, key) {
                Some(ks) => st.schedule.count(&ks.cells, ks.last, now, st.retention),
                None => 0,
            })
            .collect();
        if let Some((id, fingerprint)) = request {
            batch.request(id, fingerprint, t);
        }
        let ticket = batch.commit(st)?;
        if let Some((id, fingerprint)) = request {
            let at = t;
            st.requests.insert(
                id,
                Seen {
                    fingerprint,
                    at,
                    ticket,
                },
            );
        }
        Ok((counts, ticket))
    }

    /// Under `Always`, waits until the log holds `ticket` durably (one fdatasync shared
    /// by the batches waiting at once).
    fn durable(&self, ticket: u64) -> Result<()> {
        if self.opts.sync != SyncMode::Always || ticket == 0 {
            return Ok(());
        }
        self.group
            .wait_durable(ticket, || self.sync_log())
            .map_err(|e| match e {
                Error::Poisoned { cause, .. } => Error::Poisoned {
                    ns: self.ns.clone(),
                    cause,
                },
                e => e,
            })
    }

    /// fdatasync of the log; returns the last ticket that covers.
    fn sync_log(&self) -> Result<u64> {
        let ((file, path), covered) = {
            let mut st = self.state.write();
            self.flush_locked(&mut st)?;
            (st.log.handle(), st.next_ticket - 1)
        };
        self.opts.io.sync_data(&file).at(&path)?;
        Ok(covered)
    }

    /// Makes every logged write durable.
    pub fn sync(&self) -> Result<()> {
        self.sync_log().map(drop)
    }

    /// Writes a buffered log's records to the file (the background thread's every
    /// tick), so a killed process loses at most a tick of them. Nothing to do once
    /// writes have stopped: that failure was reported when it happened.
    pub fn flush(&self) -> Result<()> {
        let mut st = self.state.write();
        match st.poisoned {
            Some(_) => Ok(()),
            None => self.flush_locked(&mut st),
        }
    }

    /// A buffered record that cannot be written leaves the tables ahead of the log:
    /// writes stop until a restart.
    fn flush_locked(&self, st: &mut State) -> Result<()> {
        st.usable(&self.ns)?;
        st.log
            .flush()
            .inspect_err(|e| st.poisoned = Some(e.to_string()))
    }

    /// Events counted for `key` over the last `window` seconds (0: the retention),
    /// the current second included; see [`schedule`] for how long windows round.
    pub fn count(&self, key: &[u8], window: u32) -> Result<u64> {
        let (now, hash) = (self.now(), key_hash(self.seed, key));
        let st = self.state.read();
        let retention = st.retention;
        if window > retention {
            return Err(Error::WindowTooLarge { window, retention });
        }
        let window = if window == 0 { retention } else { window };
        if let Some((cells, last)) = st.peek(hash, key) {
            return Ok(st.schedule.count(&cells, last, now, window));
        }
        drop(st);
        Ok(count_in(
            &mut self.state.write(),
            self.seed,
            key,
            window,
            now,
        ))
    }

    /// Deletes the generations whose every last touch is older than the retention,
    /// and forgets request ids past the dedup horizon.
    pub fn expire(&self) -> Result<usize> {
        let now = self.now();
        let mut st = self.state.write();
        let oldest = (now + 1).saturating_sub(st.retention as u64);
        let oldest_request = now.saturating_sub(horizon(st.retention));
        st.requests.expire(oldest_request);
        let dead: Vec<u64> = st
            .gens
            .iter()
            .filter(|(_, t)| t.end() <= oldest)
            .map(|(&g, _)| g)
            .collect();
        for g in &dead {
            if let Some(t) = st.gens.remove(g) {
                crate::fsutil::remove_file(t.path())?;
            }
        }
        if !dead.is_empty() {
            crate::fsutil::sync_dir(&self.dir)?;
        }
        Ok(dead.len())
    }

    /// Changes the retention: the log is checkpointed, `persist` records the new
    /// retention, every table is rewritten in its schedule, and a checkpoint follows,
    /// so no log record of the old schedule is ever replayed onto the new.
    pub fn set_retention(&self, secs: u32, persist: impl FnOnce() -> Result<()>) -> Result<()> {
        self.checkpoint()?;
        {
            let mut st = self.state.write();
            persist()?;
            let gens = std::mem::take(&mut st.gens);
            let mut converted = std::collections::BTreeMap::new();
            for (g, t) in gens {
                match t.converted(secs) {
                    Ok(t) => {
                        converted.insert(g, t);
                    }
                    Err(e) => {
                        st.poisoned = Some(e.to_string());
                        return Err(e);
                    }
                }
            }
            st.gens = converted;
            st.retention = secs;
            st.schedule = schedule::Schedule::for_retention(secs);
        }
        self.checkpoint()
    }

    pub fn stats(&self) -> CounterStats {
        let st = self.state.read();
        CounterStats {
            generations: st.gens.len() as u64,
            slots: st.gens.values().map(|t| t.live()).sum(),
            disk_bytes: st.gens.values().map(|t| t.disk_bytes()).sum::<u64>() + st.log.written(),
            log_bytes: st.log.written(),
            quarantined: st.quarantined,
            requests: st.requests.len() as u64,
        }
    }

    /// Syncs the log and checkpoints, so the next open replays nothing.
    pub fn close(&self) -> Result<()> {
        self.checkpoint()
    }
}

/// `key`'s count over `window` seconds ending at `now`.
fn count_in(st: &mut State, seed: u64, key: &[u8], window: u32, now: u64) -> u64 {
    let ks = st.load(key_hash(seed, key), key, false);
    st.schedule.count(&ks.cells, ks.last, now, window)
}

fn check_request_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > log::MAX_REQUEST_ID {
        return Err(Error::InvalidRequestId {
            len: id.len(),
            max: log::MAX_REQUEST_ID,
        });
    }
    Ok(())
}
