//! Checkpoints: flush the index up to the applied position and record it, so recovery
//! replays only what follows.

use std::sync::atomic::Ordering;

use super::Keyspace;
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::index::Loc;

impl Keyspace {
    /// Makes the index durable up to the applied position and records it, so recovery
    /// replays only what comes after.
    pub fn checkpoint(&self, clean: bool) -> Result<()> {
        let mut ck = self.ckpt.lock();
        let (snap, index) = {
            let t = self.tables.read();
            let snap = Checkpoint {
                position: t.applied_end,
                deleted: t.index.deleted(),
                live: t.index.live(),
                tombstones: t.index.tombstones(),
                index_gen: t.index.gen,
                max_ts: self.max_ts.load(Ordering::Relaxed),
                clean,
                segments: t.stats.iter().map(|(id, s)| (*id, *s)).collect(),
            };
            (snap, t.index.clone())
        };
        let active = self.writer.lock().active.clone();
        // Sealed segments were synced when sealed; the active one holds the rest.
        if let Err(e) = active.sync() {
            self.writer
                .lock()
                .poisoned
                .get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        index.flush()?;
        snap.write(self.opts.io.as_ref(), &self.dir)?;
        self.remove_index_files_before(snap.index_gen);
        ck.segment = Loc(snap.position).segment();
        ck.at_secs = self.now();
        self.metrics
            .bytes_since_checkpoint
            .store(0, Ordering::Relaxed);
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.replay_unsaved.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn remove_index_files_before(&self, gen: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if let Some(g) = name.to_str().and_then(crate::index::parse_name_pub) {
                if g < gen {
                    let _ = crate::fsutil::remove_file(&e.path());
                }
            }
        }
    }

    /// True when enough was written, or enough time passed with writes, to checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        if self.replay_unsaved.load(Ordering::Relaxed) {
            return true;
        }
        let bytes = self.metrics.bytes_since_checkpoint.load(Ordering::Relaxed);
        if bytes == 0 {
            return false;
        }
        bytes >= self.opts.checkpoint_bytes
            || self.now().saturating_sub(self.ckpt.lock().at_secs)
                >= self.opts.checkpoint_interval.as_secs()
    }
}
