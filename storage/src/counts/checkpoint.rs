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
//! rebuilds what the tables lack.

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
            let (old, old_path) = st.log.handle();
            io.sync_data(&old).at(&old_path)?;
            let mut w = log::Writer::create(&self.dir, st.log.seq + 1, io.clone())?;
            let mut buf = Vec::new();
            for (id, seen) in st.requests.iter() {
                log::put_request(&mut buf, id, seen.fingerprint, seen.at);
            }
            w.append(&buf)?;
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

    /// True when the log has grown past the checkpoint size, or has any write and
    /// [`INTERVALS`] checkpoint intervals have passed. Counts checkpoint less often
    /// than keys: each one writes back every table page touched since, and their replay
    /// is bounded by the log's size anyway.
    pub fn checkpoint_due(&self) -> bool {
        let mark = *self.mark.lock();
        let len = self.state.read().log.written();
        let grown = len.saturating_sub(mark.log_len);
        grown >= self.opts.checkpoint_bytes
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
