//! Opening the counts: the tables as they are, then the log since the checkpoint
//! replayed onto them (see `log.rs` for why that counts nothing twice), then a
//! checkpoint, so the next open replays nothing of this one. Nothing here reads every
//! slot: recovery costs the log's length, not the tables' size.
//!
//! Damage never keeps the namespace from opening: a table whose header fails is set
//! aside (renamed `.damaged`), its keys counting from nothing; a damaged CHECKPOINT
//! replays every log there is, which is safe, only slower.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::checkpoint::{self, Mark};
use super::log::{self, Record};
use super::requests::{horizon, Requests, Seen};
use super::schedule::Schedule;
use super::state::State;
use super::table::{self, Table};
use super::Counts;
use crate::commit::GroupCommit;
use crate::error::{IoContext, Result};
use crate::hash::{key_hash, random_seed};
use crate::options::{Options, SyncMode};

/// What the directory holds.
#[derive(Default)]
struct Found {
    gens: BTreeMap<u64, Table>,
    logs: Vec<(u64, PathBuf)>,
    set_aside: u64,
}

impl Counts {
    pub fn open(dir: &Path, ns: &str, retention: u32, opts: Arc<Options>) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let ckp = checkpoint::read(dir).unwrap_or_else(|e| {
            tracing::warn!(ns, "count checkpoint unreadable, replaying every log: {e}");
            None
        });
        let mut found = scan(dir, &opts)?;
        let seed = ckp
            .as_ref()
            .map(|c| c.seed)
            .or_else(|| found.gens.values().next().map(|t| t.seed()))
            .unwrap_or_else(random_seed);
        set_aside_foreign(&mut found, seed)?;
        let replay_from = ckp.map_or(0, |c| c.replay_from);
        let last_seq = found.logs.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let buffered = opts.sync != SyncMode::Always;
        let seq = last_seq.max(replay_from) + 1;
        let new_log = log::Writer::create(dir, seq, buffered, opts.io.clone())?;
        let gens = convert_all(std::mem::take(&mut found.gens), retention)?;
        let c = Self {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            seed,
            state: RwLock::new(State {
                dir: dir.to_path_buf(),
                seed,
                io: opts.io.clone(),
                retention,
                schedule: Schedule::for_retention(retention),
                gens,
                log: new_log,
                requests: Requests::default(),
                next_ticket: 1,
                quarantined: found.set_aside,
                poisoned: None,
            }),
            group: GroupCommit::default(),
            checkpointing: Mutex::new(()),
            mark: Mutex::new(Mark {
                at: Instant::now(),
                log_len: 0,
            }),
            opts,
        };
        for (seq, path) in found.logs.iter().filter(|(s, _)| *s >= replay_from) {
            c.replay(*seq, path)?;
        }
        c.checkpoint()?;
        c.expire()?;
        Ok(c)
    }

    fn replay(&self, seq: u64, path: &Path) -> Result<()> {
        let records = match log::read(path) {
            Ok((_, r)) => r,
            Err(e) => {
                tracing::warn!(ns = %self.ns, seq, "count log unreadable, skipped: {e}");
                return Ok(());
            }
        };
        let now = self.now();
        let mut st = self.state.write();
        let oldest = (now + 1).saturating_sub(st.retention as u64);
        let oldest_request = now.saturating_sub(horizon(st.retention));
        for r in records {
            match r {
                Record::Cells { key, last, images } if last >= oldest => {
                    let hash = key_hash(self.seed, &key);
                    let mut ks = st.load(hash, &key, true);
                    let (mut cells, mut l) = (std::mem::take(&mut ks.cells), ks.last);
                    st.schedule.apply(&mut cells, &mut l, last, &images);
                    (ks.cells, ks.last) = (cells, l);
                    st.store(hash, &key, &ks)?;
                }
                Record::Request {
                    id,
                    fingerprint,
                    at,
                } if at >= oldest_request => {
                    let seen = Seen {
                        fingerprint,
                        at,
                        ticket: 0,
                    };
                    st.requests.insert(&id, seen);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn scan(dir: &Path, opts: &Options) -> Result<Found> {
    let mut found = Found::default();
    for e in std::fs::read_dir(dir).at(dir)? {
        let path = e.at(dir)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(start) = table::parse_name(name) {
            match Table::open(&path, opts.io.clone()) {
                Ok(t) if t.start == start => {
                    found.gens.insert(start, t);
                }
                Ok(_) => set_aside(&path, "its header names another generation", &mut found)?,
                Err(e) => set_aside(&path, &e.to_string(), &mut found)?,
            }
        } else if let Some(seq) = log::parse_name(name) {
            found.logs.push((seq, path));
        } else if name.ends_with(".grow") {
            // A grow or conversion a crash cut short; the original is whole.
            crate::fsutil::remove_file(&path)?;
        }
    }
    found.logs.sort();
    Ok(found)
}

/// Tables hashed with another seed cannot be probed: set aside.
fn set_aside_foreign(found: &mut Found, seed: u64) -> Result<()> {
    let foreign: Vec<u64> = found
        .gens
        .iter()
        .filter(|(_, t)| t.seed() != seed)
        .map(|(&g, _)| g)
        .collect();
    for g in foreign {
        if let Some(t) = found.gens.remove(&g) {
            let path = t.path().to_path_buf();
            drop(t);
            set_aside(&path, "its hash seed differs from the checkpoint's", found)?;
        }
    }
    Ok(())
}

fn set_aside(path: &Path, why: &str, found: &mut Found) -> Result<()> {
    tracing::error!(path = %path.display(), "count table set aside, its keys count from nothing: {why}");
    let to = path.with_extension("damaged");
    std::fs::rename(path, &to).at(path)?;
    found.set_aside += 1;
    Ok(())
}

/// Every table kept by `retention`'s schedule (a retention change a crash cut short).
fn convert_all(gens: BTreeMap<u64, Table>, retention: u32) -> Result<BTreeMap<u64, Table>> {
    gens.into_iter()
        .map(|(g, t)| match t.retention() == retention {
            true => Ok((g, t)),
            false => t.converted(retention).map(|t| (g, t)),
        })
        .collect()
}
