//! The streaming stage, as an old owner sees it: every partition this node owned whose
//! new owners include nodes that did not is compared with each of them, namespace by
//! namespace, by anti-entropy's digests, and what they lack is pushed (what they hold
//! newer, from the double writes, is pulled). Every old owner does this, so a write
//! any W of them acknowledged reaches the new owners.
//!
//! The same task does the cleanup stage's part ([`cleanup`]).
//!
//! Partitions go in groups of [`GROUP`]; after each group the cursor is stored, so a
//! restart resumes at the next group. A group that fails is tried again after a pause,
//! for as long as the stage lasts. Records move at most `rate` per second.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstash_cluster::layout::Move;
use dstash_cluster::{Layout, Stage};
use dstash_proto::v1::RepairProgress;
use tonic::Status;

use super::cursor::Cursor;
use super::metrics::LayoutMetrics;
use super::LayoutCell;
use super::{cleanup, counters};
use crate::sync::Syncer;

/// Partitions sent between two stores of the cursor.
pub const GROUP: usize = 16;
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Handoff {
    pub me: String,
    pub cell: Arc<LayoutCell>,
    pub syncer: Arc<Syncer>,
    /// Records pushed or pulled per second, at most; 0: no limit.
    pub rate: u64,
    /// Where the cursor is kept; None: not kept.
    pub cursor: Option<PathBuf>,
    pub metrics: Arc<LayoutMetrics>,
}

impl Handoff {
    /// Does this node's part of each streaming and cleanup stage it installs, and
    /// forgets everything once it holds a stable layout that leaves it out after one
    /// that named it, until the task is dropped.
    pub async fn run(self) {
        let mut rx = self.cell.subscribe();
        // Whether a layout this process held named this node: only a node that was a
        // member forgets everything when a stable layout leaves it out, not one started
        // under an id the cluster never had (a typo must not wipe a data directory).
        let mut was_named = false;
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(l) = current {
                let named = l.member(&self.me).is_some();
                let left = left_it(was_named, named);
                was_named |= named;
                let work = async {
                    match l.stage {
                        Stage::Streaming => self.send(&l).await,
                        Stage::Cleanup => self.clean(&l).await,
                        Stage::Stable if left => self.clean(&l).await,
                        _ => {}
                    }
                };
                tokio::select! {
                    _ = work => {}
                    _ = rx.changed() => continue,
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Forgets what this node does not own in `l`, trying again until it succeeds.
    async fn clean(&self, l: &Layout) {
        loop {
            let done = match self.syncer.slot().get() {
                Ok(store) => cleanup::forget_unowned(store, l, &self.me).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(n) => {
                    self.metrics.forgot(n);
                    self.cell.mark_done(l.epoch);
                    if n > 0 {
                        tracing::info!(
                            epoch = l.epoch,
                            records = n,
                            "cleanup: forgot what this node no longer owns"
                        );
                    }
                    return;
                }
                Err(e) => {
                    self.metrics.failed();
                    tracing::warn!(epoch = l.epoch, "cleanup: {}; retrying", e.message());
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn send(&self, l: &Layout) {
        let moves = l.moves_from(&self.me);
        let mut cursor = Cursor::load(self.cursor.clone(), l.epoch);
        let sent_before = moves.iter().filter(|m| cursor.is_sent(m.partition)).count();
        let mut progress = RepairProgress {
            partitions_total: moves.len() as u64,
            partitions_done: sent_before as u64,
            ..RepairProgress::default()
        };
        let started = Instant::now();
        let report = |p: &RepairProgress| {
            self.metrics.progress(p);
            self.cell
                .set_handoff(l.epoch, p.clone(), started.elapsed().as_secs_f64())
        };
        report(&progress);
        for group in moves.chunks(GROUP) {
            // Groups are sent and recorded whole, so a group is sent or it is not.
            if group.iter().all(|m| cursor.is_sent(m.partition)) {
                continue;
            }
            while let Err(e) = self.send_group(l, group, &mut progress, started).await {
                progress.failed += 1;
                self.metrics.failed();
                progress.error = e.message().to_string();
                report(&progress);
                tracing::warn!(epoch = l.epoch, "handoff: {}; retrying", e.message());
                tokio::time::sleep(RETRY_AFTER).await;
            }
            let parts: Vec<u32> = group.iter().map(|m| m.partition).collect();
            cursor = store(cursor, parts).await;
            progress.partitions_done += group.len() as u64;
            report(&progress);
        }
        while let Err(e) = self.send_counters(l, &moves).await {
            progress.failed += 1;
            self.metrics.failed();
            progress.error = e.message().to_string();
            report(&progress);
            tracing::warn!(
                epoch = l.epoch,
                "handoff of counts: {}; retrying",
                e.message()
            );
            tokio::time::sleep(RETRY_AFTER).await;
        }
        progress.done = true;
        self.cell
            .set_handoff(l.epoch, progress, started.elapsed().as_secs_f64());
        self.cell.mark_done(l.epoch);
        tracing::info!(epoch = l.epoch, partitions = moves.len(), took = ?started.elapsed(), "handoff sent");
    }

    /// Every namespace of `group`'s partitions to each node that gains some of them.
    async fn send_group(
        &self,
        l: &Layout,
        group: &[Move],
        progress: &mut RepairProgress,
        started: Instant,
    ) -> Result<(), Status> {
        let store = self.syncer.slot().get()?;
        let mut to: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for m in group {
            for id in m.to.iter().filter(|id| !l.is_gone(id)) {
                to.entry(id.as_str()).or_default().push(m.partition);
            }
        }
        for (id, parts) in to {
            let addr = l
                .member(id)
                .map(|m| m.addr.clone())
                .ok_or_else(|| Status::internal(format!("node {id} is not in the layout")))?;
            for ns in store.namespaces() {
                let mut s = self.syncer.session(&store, &addr, &ns)?;
                let ran = s.run(&parts).await;
                s.tally.partitions_done = 0;
                progress.add(&s.tally);
                self.metrics.moved(&s.tally);
                ran.map_err(|e| {
                    Status::new(e.code(), format!("{id} ({addr}), {ns}: {}", e.message()))
                })?;
                pace(started, progress.pushed + progress.pulled, self.rate).await;
            }
        }
        Ok(())
    }
}

impl Handoff {
    /// Every namespace's live counts of the partitions each gaining node gains.
    async fn send_counters(&self, l: &Layout, moves: &[Move]) -> Result<(), Status> {
        let store = self.syncer.slot().get()?;
        for (id, gained) in counters::gains(moves) {
            let Some(m) = l.member(&id).filter(|_| !l.is_gone(&id)) else {
                continue;
            };
            let mut remote = self.syncer.dialer().remote(&m.addr)?;
            let gained = Arc::new(gained);
            for ns in store.namespaces() {
                let sent = counters::send(&store, &mut remote, &ns, &gained)
                    .await
                    .map_err(|e| {
                        Status::new(
                            e.code(),
                            format!("{id} ({}), {ns}: {}", m.addr, e.message()),
                        )
                    })?;
                self.metrics.counters_sent(sent);
            }
        }
        Ok(())
    }
}

/// Whether a layout that does or does not name this node (`named`) means the node left:
/// only after one that named it.
fn left_it(was_named: bool, named: bool) -> bool {
    was_named && !named
}

/// Marks `parts` sent and stores the cursor, off the async threads.
async fn store(mut cursor: Cursor, parts: Vec<u32>) -> Cursor {
    let stored = tokio::task::spawn_blocking(move || {
        let r = cursor.mark(&parts);
        (cursor, r)
    })
    .await;
    match stored {
        Ok((cursor, r)) => {
            if let Err(e) = r {
                tracing::warn!("handoff: cannot store the cursor ({e}); a restart compares again");
            }
            cursor
        }
        // The task panicked: the cursor is gone with it; a restart compares again.
        Err(e) => {
            tracing::warn!("handoff: the cursor task failed ({e})");
            Cursor::load(None, 0)
        }
    }
}

/// Sleeps as long as needed to keep `moved` records at no more than `per_sec`.
pub async fn pace(started: Instant, moved: u64, per_sec: u64) {
    if per_sec == 0 {
        return;
    }
    let due = Duration::from_secs_f64(moved as f64 / per_sec as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::left_it;

    #[test]
    fn only_a_node_a_layout_named_leaves() {
        assert!(left_it(true, false), "named, then left out: it left");
        assert!(
            !left_it(false, false),
            "never named (a mistyped id): keeps its data"
        );
        assert!(!left_it(true, true) && !left_it(false, true));
    }
}
