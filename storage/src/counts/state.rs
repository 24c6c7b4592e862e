//! What the count engine keeps under its lock: the generation tables, the log being
//! appended, the request ids. And the two moves every write makes: load a key's
//! newest copy, and store it back into the generation of its last touch.
//!
//! Invariant: a key's newest copy lives in the generation holding its last touch, or
//! a later one (an event stamped a little late changes the copy where it is). A copy
//! in an older generation is stale and never read; it goes with its generation.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use std::path::PathBuf;
use std::sync::Arc;

use super::log;
use super::requests::Requests;
use super::schedule::{CellImage, Schedule};
use super::table::{self, Table};
use crate::error::Result;
use crate::io::Io;

/// A generation spans the retention, and at least a minute: a key busy all along moves
/// forward once per generation.
pub fn gen_span(retention: u32) -> u64 {
    (retention as u64).max(60)
}

pub(super) struct State {
    pub dir: PathBuf,
    pub seed: u64,
    pub io: Arc<dyn Io>,
    pub retention: u32,
    pub schedule: Schedule,
    /// By first second.
    pub gens: BTreeMap<u64, Table>,
    pub log: log::Writer,
    pub requests: Requests,
    pub next_ticket: u64,
    /// Slots found damaged and zeroed since open.
    pub quarantined: u64,
    /// A write that reached the log but not the tables: the tables no longer follow
    /// the log until a restart replays it.
    pub poisoned: Option<String>,
}

/// One key's cells as a write sees them.
#[derive(Debug, Clone)]
pub(super) struct KeyState {
    pub cells: Vec<u32>,
    pub last: u64,
    /// Its newest copy: generation, slot, and the table's layout the slot is valid
    /// under (a table may grow, moving slots, before the batch stores the key).
    at: Option<(u64, usize, u32)>,
}

impl State {
    /// `key`'s newest copy. A copy whose crc fails is zeroed, unless `repair` (replay:
    /// a write cut short by a crash fails the crc, and its record makes it whole).
    pub fn load(&mut self, hash: u64, key: &[u8], repair: bool) -> KeyState {
        let found = self
            .gens
            .iter()
            .rev()
            .find_map(|(&g, t)| t.find(hash, key).map(|slot| (g, slot)));
        let Some((g, slot)) = found else {
            return KeyState {
                cells: vec![0; self.schedule.len()],
                last: 0,
                at: None,
            };
        };
        let Some(t) = self.gens.get_mut(&g) else {
            return KeyState {
                cells: vec![0; self.schedule.len()],
                last: 0,
                at: None,
            };
        };
        let layout = t.layout();
        let (c, ok) = t.read(slot);
        let cells = if ok || repair {
            c.cells
        } else {
            t.zero(slot);
            self.quarantined += 1;
            tracing::warn!(path = %t.path().display(), slot, "count cells failed their checksum: zeroed");
            vec![0; self.schedule.len()]
        };
        KeyState {
            cells,
            last: c.last,
            at: Some((g, slot, layout)),
        }
    }

    /// `key`'s cells and last touch from its newest copy (zeros when absent); None
    /// when its crc fails, for [`load`](Self::load) to deal with under the write lock.
    pub fn peek(&self, hash: u64, key: &[u8]) -> Option<(Vec<u32>, u64)> {
        let found = self
            .gens
            .values()
            .rev()
            .find_map(|t| t.find(hash, key).map(|s| (t, s)));
        match found {
            None => Some((vec![0; self.schedule.len()], 0)),
            Some((t, slot)) => match t.read(slot) {
                (c, true) => Some((c.cells, c.last)),
                (_, false) => None,
            },
        }
    }

    /// Writes `ks` back: in place when its copy is in the generation of its last touch
    /// or later, else into that generation (made if needed).
    pub fn store(&mut self, hash: u64, key: &[u8], ks: &KeyState) -> Result<()> {
        let target = self.gen_for(ks.last)?;
        if let Some((g, slot, layout)) = ks.at.filter(|&(g, _, _)| g >= target) {
            if let Some(t) = self.gens.get_mut(&g) {
                let slot = match t.layout() == layout && t.holds(slot, hash, key) {
                    true => Some(slot),
                    false => t.find(hash, key),
                };
                if let Some(slot) = slot {
                    t.write(slot, ks.last, &ks.cells);
                    return Ok(());
                }
            }
        }
        self.make_room(target, 1, key.len() as u64)?;
        if let Some(t) = self.gens.get_mut(&target) {
            t.insert(hash, key, ks.last, &ks.cells)?;
        }
        Ok(())
    }

    /// Makes every table the keys of `states` will be stored in ready for them: made,
    /// grown, with their key bytes reserved. After this, storing them writes only to
    /// mapped memory and cannot fail.
    pub fn prepare<'a>(
        &mut self,
        states: impl Iterator<Item = (&'a [u8], &'a KeyState)>,
    ) -> Result<()> {
        let mut need: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (key, ks) in states {
            let target = self.gen_for(ks.last)?;
            if ks.at.is_none_or(|(g, _, _)| g < target) {
                let n = need.entry(target).or_default();
                *n = (n.0 + 1, n.1 + key.len() as u64);
            }
        }
        need.into_iter()
            .try_for_each(|(g, (keys, bytes))| self.make_room(g, keys, bytes))
    }

    fn make_room(&mut self, g: u64, keys: u64, bytes: u64) -> Result<()> {
        while self.gens.get(&g).is_some_and(|t| !t.has_room(keys)) {
            if let Some(t) = self.gens.get(&g) {
                if !t.can_grow() {
                    return Err(crate::error::Error::BadFile {
                        path: t.path().to_path_buf(),
                        reason: "count table is at its largest size".into(),
                    });
                }
                let grown = t.grown()?;
                self.gens.insert(g, grown);
            }
        }
        match self.gens.get_mut(&g) {
            Some(t) => t.reserve_keys(keys, bytes),
            None => Ok(()),
        }
    }

    /// The generation holding second `t`, made if none does. Generations never
    /// overlap: a new one starts at its span's boundary or where the one before ends.
    fn gen_for(&mut self, t: u64) -> Result<u64> {
        let before = self.gens.range(..=t).next_back();
        if let Some((&g, tb)) = before {
            if t < tb.end() {
                return Ok(g);
            }
        }
        let span = gen_span(self.retention);
        let prev_end = before.map_or(0, |(_, tb)| tb.end());
        let next = self.gens.range(t + 1..).next().map(|(&g, _)| g);
        let start = (t - t % span).max(prev_end);
        let end = (start + span).min(next.unwrap_or(u64::MAX));
        // Sized for the newest generation's keys: most of them move forward.
        let keys = self.gens.values().next_back().map_or(0, |t| t.live());
        let keys = keys.min(1 << 24);
        let path = self.dir.join(table::file_name(start));
        let t = Table::create(
            &path,
            start,
            end - start,
            self.retention,
            table::bits_for(keys),
            self.seed,
            self.io.clone(),
        )?;
        crate::fsutil::sync_dir(&self.dir)?;
        self.gens.insert(start, t);
        Ok(start)
    }

    /// Takes a ticket for what was just appended to the log.
    pub fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Checks that the tables still follow the log.
    pub fn usable(&self, ns: &str) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(crate::error::Error::Poisoned {
                ns: ns.to_string(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A batch of writes under the lock: each key is loaded once, changed by the caller,
/// its images logged; [`commit`](Self::commit) appends the log, then stores every key.
pub(super) struct Batch<'k> {
    /// By key hash and key; hashed by the key hash alone, already computed.
    keys: HashMap<(u64, &'k [u8]), KeyState, BuildHasherDefault<KeyHashed>>,
    buf: Vec<u8>,
    images: Vec<CellImage>,
}

impl<'k> Batch<'k> {
    pub fn new() -> Self {
        Self {
            keys: HashMap::default(),
            buf: Vec::new(),
            images: Vec::new(),
        }
    }

    /// Runs `f` on `key`'s cells as this batch left them, and logs what it wrote.
    pub fn update<T>(
        &mut self,
        st: &mut State,
        hash: u64,
        key: &'k [u8],
        f: impl FnOnce(&Schedule, &mut KeyState, &mut Vec<CellImage>) -> T,
    ) -> T {
        let ks = self
            .keys
            .entry((hash, key))
            .or_insert_with(|| st.load(hash, key, false));
        let out = f(&st.schedule, ks, &mut self.images);
        if !self.images.is_empty() {
            log::put_cells(&mut self.buf, key, ks.last, &self.images);
            self.images.clear();
        }
        out
    }

    /// `key`'s cells as this batch has left them so far.
    pub fn state(&self, hash: u64, key: &'k [u8]) -> Option<&KeyState> {
        self.keys.get(&(hash, key))
    }

    /// Adds a record of this batch's request id.
    pub fn request(&mut self, id: &str, fingerprint: u64, at: u64) {
        log::put_request(&mut self.buf, id, fingerprint, at);
    }

    /// Readies the tables, appends the batch's records to the log, then writes every
    /// key to its table; returns the ticket that makes them durable. A failure before
    /// the append changes nothing; one after it poisons the state: only replay can
    /// bring log and tables together again.
    pub fn commit(self, st: &mut State) -> Result<u64> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        st.prepare(self.keys.iter().map(|(&(_, k), ks)| (k, ks)))?;
        st.log.append(&self.buf)?;
        for (&(hash, key), ks) in &self.keys {
            if let Err(e) = st.store(hash, key, ks) {
                st.poisoned = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(st.ticket())
    }
}

/// Hashes a `(key hash, key)` by the key hash alone: it is already a good hash.
#[derive(Default)]
pub(super) struct KeyHashed(u64);

impl Hasher for KeyHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {}
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }
}
