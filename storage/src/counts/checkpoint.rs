//! Count checkpoints: the tables made durable, so that the log before can go.
//!
//! ```text
//! CHECKPOINT: header only (magic "DSTCCKP\0", version 1, fields [replay_from, seed]):
//! replay starts at log file `replay_from`; `seed` is the key hash seed of every table.
//! ```
//! A checkpoint starts a new log file (the old one synced first, so every earlier
//! ticket is durable) whose first records are the live request ids; then it syncs every
//! table, syncs the new log, and only then names it in CHECKPOINT and deletes the logs
//! before it. A crash at any step leaves a CHECKPOINT naming a log from which replay
//! rebuilds what the tables lack. The log between checkpoints is bounded by the
//! tables' size (see [`Counts::checkpoint_due`]), so disk use stays flat as events
//! accumulate.

use std::path::Path;
use std::time::Instant;

use super::log;
use super::Counts;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;
use crate::header;
use crate::io::Io;

pub const FILE: &str = "CHECKPOINT";
/// Checkpoint intervals between count checkpoints, at most.
const INTERVALS: u32 = 6;
/// The log may always grow this far between checkpoints (unless the store's checkpoint
/// size is smaller): a small namespace is not checkpointed many times a second.
const MIN_LOG_BOUND: u64 = 8 << 20;

pub struct CheckpointHeader {
    pub replay_from: u64,
    pub seed: u64,
}

impl header::FileHeader for CheckpointHeader {
    const MAGIC: &'static [u8; 8] = b"DSTCCKP\0";
    const VERSION: u32 = 1;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.replay_from, self.seed, 0, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 2)?;
        Ok(Self {
            replay_from: f[0],
            seed: f[1],
        })
    }
}

/// The checkpoint, if there is one.
pub fn read(dir: &Path) -> Result<Option<CheckpointHeader>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => header::decode(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(&path),
    }
}

fn write(io: &dyn Io, dir: &Path, h: &CheckpointHeader) -> Result<()> {
    write_atomic(io, &dir.join(FILE), &header::encode(h))
}

/// When the last checkpoint ended, and how long its log then was.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub at: Instant,
    pub log_len: u64,
}

impl Counts {
    /// Makes every table durable and starts a new log; deletes the logs before it.
    pub fn checkpoint(&self) -> Result<()> {
        let _one = self.checkpointing.lock();
        let io = self.opts.io.clone();
        let (seq, tables, new_log) = {
            let mut st = self.state.write();
            st.usable(&self.ns)?;
            st.log.flush()?;
            let (old, old_path) = st.log.handle();
            io.sync_data(&old).at(&old_path)?;
            let buffered = st.log.buffered();
            let mut w = log::Writer::create(&self.dir, st.log.seq + 1, buffered, io.clone())?;
            let mut buf = Vec::new();
            for (id, seen) in st.requests.iter() {
                log::put_request(&mut buf, id, seen.fingerprint, seen.at);
            }
            w.append(&buf)?;
            w.flush()?;
            st.log = w;
            let tables: Vec<_> = st
                .gens
                .values()
                .map(|t| (t.file(), t.path().to_path_buf()))
                .collect();
            (st.log.seq, tables, st.log.handle())
        };
        for (file, path) in tables {
            io.sync_data(&file).at(&path)?;
        }
        io.sync_data(&new_log.0).at(&new_log.1)?;
        let h = CheckpointHeader {
            replay_from: seq,
            seed: self.seed,
        };
        write(io.as_ref(), &self.dir, &h)?;
        self.remove_logs_before(seq)?;
        let log_len = self.state.read().log.written();
        *self.mark.lock() = Mark {
            at: Instant::now(),
            log_len,
        };
        Ok(())
    }

    /// True when the log has grown past its bound, or has any write and
    /// [`INTERVALS`] checkpoint intervals have passed. The bound is the tables' size,
    /// within [`MIN_LOG_BOUND`] and the store's checkpoint size: a checkpoint writes
    /// back at most the tables, so a longer log would only cost disk and replay time.
    /// Counts checkpoint less often than keys: each one writes back every table page
    /// touched since.
    pub fn checkpoint_due(&self) -> bool {
        let mark = *self.mark.lock();
        let (len, tables) = {
            let st = self.state.read();
            (
                st.log.written(),
                st.gens.values().map(|t| t.disk_bytes()).sum::<u64>(),
            )
        };
        let max = self.opts.checkpoint_bytes;
        let bound = tables.clamp(MIN_LOG_BOUND.min(max), max);
        let grown = len.saturating_sub(mark.log_len);
        grown >= bound
            || (grown > 0 && mark.at.elapsed() >= self.opts.checkpoint_interval * INTERVALS)
    }

    pub(super) fn remove_logs_before(&self, seq: u64) -> Result<()> {
        let mut removed = false;
        for e in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let path = e.at(&self.dir)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if log::parse_name(name).is_some_and(|s| s < seq) {
                crate::fsutil::remove_file(&path)?;
                removed = true;
            }
        }
        if removed {
            crate::fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ManualClock, Options};

    #[test]
    fn a_small_namespace_checkpoints_once_its_log_passes_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_700_000_000);
        let opts = Options {
            background: false,
            clock: Arc::new(clock),
            ..Options::default()
        };
        let c = Counts::open(dir.path(), "n", 60, Arc::new(opts)).unwrap();
        assert!(!c.checkpoint_due());
        let keys: Vec<Vec<u8>> = (0..200u32)
            .map(|i| format!("{i:0>1000}").into_bytes())
            .collect();
        let items: Vec<(&[u8], u32)> = keys.iter().map(|k| (k.as_slice(), 1)).collect();
        let log = |c: &Counts| c.stats().log_bytes;
        let mut batches = 0;
        // Two hundred keys' tables are far smaller than the bound: the log may reach it.
        while log(&c) < MIN_LOG_BOUND - (256 << 10) {
            c.add_many(&items, None, None).unwrap();
            batches += 1;
            assert!(!c.checkpoint_due(), "due at {} log bytes", log(&c));
        }
        while log(&c) < MIN_LOG_BOUND {
            c.add_many(&items, None, None).unwrap();
            batches += 1;
        }
        assert!(c.checkpoint_due());
        c.checkpoint().unwrap();
        assert!(!c.checkpoint_due());
        assert!(log(&c) < 64 << 10, "the new log holds only request ids");
        let logs = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".clg")
            })
            .count();
        assert_eq!(logs, 1, "older logs were deleted");
        // Every batch added one event to each key, all in the same second.
        assert_eq!(c.count(&keys[7], 0).unwrap(), batches);
    }
}
