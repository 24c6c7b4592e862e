//! Index file: header, slot access and the probe operations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::probe::{ProbeTable, Slot};
use super::seal::{self, SLOTS_PER_PAGE};
use crate::error::{Error, IoContext, Result};
use crate::header;
use crate::io::Io;

pub const PAGE: u64 = 4096;
const SLOT: u64 = 16;
const EMPTY: u64 = 0;
/// A freed slot: probing goes on past it.
const TOMB: u64 = u64::MAX;
/// Set in a slot's loc word when the record it points at is a delete (a versioned
/// tombstone, kept so that older writes are refused): counted apart from live keys,
/// and skipped by listings without reading the record.
const DELETED: u64 = 1 << 63;
pub const MIN_BITS: u32 = 10;
const MAX_BITS: u32 = 40;

/// Where a record lives: segment id in the high 32 bits, byte offset in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc(pub u64);

impl Loc {
    pub fn new(segment: u32, offset: u64) -> Self {
        debug_assert!(segment != 0 && segment < 1 << 31 && offset <= u32::MAX as u64);
        Loc(((segment as u64) << 32) | offset)
    }
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub fn offset(self) -> u64 {
        self.0 & 0xffff_ffff
    }
}

/// An index file's header fields.
struct IndexHeader {
    bits: u32,
    seed: u64,
    gen: u64,
}

impl header::FileHeader for IndexHeader {
    const MAGIC: &'static [u8; 8] = b"DSTIDX\0\0";
    const VERSION: u32 = 3;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.bits as u64, self.seed, self.gen, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 3)?;
        match u32::try_from(f[0]) {
            Ok(bits) if (MIN_BITS..=MAX_BITS).contains(&bits) => Ok(Self {
                bits,
                seed: f[1],
                gen: f[2],
            }),
            _ => Err(format!("slot bits {} out of range", f[0])),
        }
    }
}

/// Header page, slots, then one checksum word per page of slots.
fn file_len(bits: u32) -> u64 {
    PAGE + (SLOT << bits) + 8 * ((1u64 << bits) / SLOTS_PER_PAGE as u64)
}

pub fn file_name(gen: u64) -> String {
    format!("index-{gen:010}.idx")
}

pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("index-")?
        .strip_suffix(".idx")?
        .parse()
        .ok()
}

#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    bits: u32,
    mask: usize,
    pub seed: u64,
    pub gen: u64,
    /// Used slots, deletes included.
    live: AtomicU64,
    /// Freed slots.
    tombstones: AtomicU64,
    /// Used slots that point at a delete record.
    deleted: AtomicU64,
    io: Arc<dyn Io>,
}

/// What [`Index::verify`] found: the pages whose checksum fails, and the slot counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageCheck {
    pub failed: Vec<usize>,
    pub live: u64,
    pub tombstones: u64,
    pub deleted: u64,
}

/// A used slot's value: where the key's newest record is, and whether it is a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub loc: Loc,
    pub deleted: bool,
}

impl Entry {
    fn word(self) -> u64 {
        self.loc.0 | if self.deleted { DELETED } else { 0 }
    }
    fn of_word(w: u64) -> Self {
        Entry {
            loc: Loc(w & !DELETED),
            deleted: w & DELETED != 0,
        }
    }
}

impl Index {
    /// Creates an empty index file of `1 << bits` slots with its disk blocks reserved.
    pub fn create(dir: &Path, gen: u64, bits: u32, seed: u64, io: Arc<dyn Io>) -> Result<Self> {
        let bits = bits.clamp(MIN_BITS, MAX_BITS);
        let path = dir.join(file_name(gen));
        let file = header::create(io.as_ref(), &path, &IndexHeader { bits, seed, gen })?;
        let len = file_len(bits);
        crate::fsutil::zero_fill(io.as_ref(), &file, header::HEADER_LEN as u64, len).at(&path)?;
        let ix = Self::map(path, file, bits, seed, gen, io)?;
        // A new table is written all over soon: map it in one go rather than page by page.
        crate::fsutil::populate_write(ix.map.as_mut_ptr(), ix.map.len());
        Ok(ix)
    }

    /// Opens an index file, checking its header and size.
    pub fn open(path: &Path, io: Arc<dyn Io>) -> Result<Self> {
        let (file, IndexHeader { bits, seed, gen }) = header::open_checked(path)?;
        let bad = |reason: String| Error::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let want = file_len(bits);
        let len = file.metadata().at(path)?.len();
        if len != want {
            return Err(bad(format!(
                "file is {len} bytes, its header implies {want}"
            )));
        }
        Self::map(path.to_path_buf(), file, bits, seed, gen, io)
    }

    fn map(
        path: PathBuf,
        file: File,
        bits: u32,
        seed: u64,
        gen: u64,
        io: Arc<dyn Io>,
    ) -> Result<Self> {
        let map = MmapOptions::new()
            .len(file_len(bits) as usize)
            .map_raw(&file)
            .at(&path)?;
        Ok(Self {
            path,
            file,
            map,
            bits,
            mask: (1usize << bits) - 1,
            seed,
            gen,
            live: AtomicU64::new(0),
            tombstones: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            io,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
    pub fn tombstones(&self) -> u64 {
        self.tombstones.load(Ordering::Relaxed)
    }
    /// Used slots pointing at delete records (part of [`live`](Self::live)).
    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }
    pub fn set_counts(&self, live: u64, tombstones: u64, deleted: u64) {
        self.live.store(live, Ordering::Relaxed);
        self.tombstones.store(tombstones, Ordering::Relaxed);
        self.deleted.store(deleted, Ordering::Relaxed);
    }
    fn bump(&self, live: i64, tombstones: i64) {
        self.live.fetch_add(live as u64, Ordering::Relaxed);
        self.tombstones
            .fetch_add(tombstones as u64, Ordering::Relaxed);
    }
    /// Accounts for a used slot's deleted flag going from `before` to `after`.
    fn bump_deleted(&self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => self.deleted.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.deleted.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
    }
    pub fn disk_bytes(&self) -> u64 {
        file_len(self.bits)
    }

    #[inline]
    fn word(&self, slot: usize, half: usize) -> &AtomicU64 {
        debug_assert!(slot <= self.mask);
        // SAFETY: the slot lies inside the mapping, which is 8-aligned (page-aligned base,
        // page header, 16-byte slots) and lives as long as `self`.
        unsafe {
            &*(self
                .map
                .as_mut_ptr()
                .add(PAGE as usize + slot * SLOT as usize + half * 8)
                as *const AtomicU64)
        }
    }
    #[inline]
    fn hash_at(&self, slot: usize) -> u64 {
        u64::from_le(self.word(slot, 0).load(Ordering::Relaxed))
    }
    #[inline]
    fn loc_at(&self, slot: usize) -> u64 {
        u64::from_le(self.word(slot, 1).load(Ordering::Acquire))
    }
    #[inline]
    fn set_hash(&self, slot: usize, h: u64) {
        let old = self.hash_at(slot);
        self.word(slot, 0).store(h.to_le(), Ordering::Relaxed);
        self.toggle_sum(slot * 2, old, h);
    }
    #[inline]
    fn set_loc(&self, slot: usize, loc: u64) {
        let old = self.loc_at(slot);
        self.word(slot, 1).store(loc.to_le(), Ordering::Release);
        self.toggle_sum(slot * 2 + 1, old, loc);
    }

    /// The checksum word of a page of slots.
    #[inline]
    fn sum(&self, page: usize) -> &AtomicU64 {
        debug_assert!(page < self.pages());
        let at = PAGE as usize + (SLOT as usize) * (self.mask + 1) + page * 8;
        // SAFETY: as in `word`: the checksums lie inside the mapping after the slots,
        // 8-aligned.
        unsafe { &*(self.map.as_mut_ptr().add(at) as *const AtomicU64) }
    }
    #[inline]
    fn toggle_sum(&self, pos: usize, old: u64, new: u64) {
        let d = seal::delta(pos, old, new);
        self.sum(pos / (2 * SLOTS_PER_PAGE))
            .fetch_xor(d.to_le(), Ordering::Relaxed);
    }
    fn pages(&self) -> usize {
        (self.mask + 1) / SLOTS_PER_PAGE
    }
    fn page_sum(&self, page: usize) -> u64 {
        let first = page * SLOTS_PER_PAGE;
        (first..first + SLOTS_PER_PAGE).fold(0, |acc, slot| {
            acc ^ seal::item(slot * 2, self.hash_at(slot))
                ^ seal::item(slot * 2 + 1, self.loc_at(slot))
        })
    }

    /// The location of the key with this hash for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, is_key: impl FnMut(Loc) -> bool) -> Option<Loc> {
        self.find_entry(hash, is_key).map(|e| e.loc)
    }

    /// The entry of the key with this hash for which `is_key` holds.
    #[inline]
    pub fn find_entry(&self, hash: u64, mut is_key: impl FnMut(Loc) -> bool) -> Option<Entry> {
        let mut i = self.home(hash);
        loop {
            let w = self.loc_at(i);
            if w == EMPTY {
                return None;
            }
            if w != TOMB && self.hash_at(i) == hash {
                let e = Entry::of_word(w);
                if is_key(e.loc) {
                    return Some(e);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Points the key at `to`, returning its entry before. With `dedup` (replay), also
    /// clears any later copy of the key a crash may have left in its probe run.
    /// The caller keeps the table below three-quarters full, so a probe run always ends.
    pub fn upsert(
        &self,
        hash: u64,
        to: Entry,
        is_key: impl FnMut(Loc) -> bool,
        dedup: bool,
    ) -> Option<Entry> {
        match self.upsert_unless(hash, to, is_key, dedup, |_| false) {
            Ok(old) => old,
            Err(kept) => Some(kept),
        }
    }

    /// [`Index::upsert`] in one probe run, unless `keep` says the key's current entry
    /// (other than `to` itself) stays: then nothing is written and it is returned as
    /// `Err`.
    pub fn upsert_unless(
        &self,
        hash: u64,
        to: Entry,
        mut is_key: impl FnMut(Loc) -> bool,
        dedup: bool,
        mut keep: impl FnMut(Entry) -> bool,
    ) -> Result<Option<Entry>, Entry> {
        let mut i = self.home(hash);
        let mut free = None;
        let mut old: Option<Entry> = None;
        loop {
            let w = self.loc_at(i);
            if w == EMPTY {
                break;
            }
            let cur = Entry::of_word(w);
            if w == TOMB {
                free.get_or_insert(i);
            } else if self.hash_at(i) == hash && is_key(cur.loc) {
                if old.is_none() {
                    if cur.loc != to.loc && keep(cur) {
                        return Err(cur);
                    }
                    // Replay after a kill mostly finds the slot already right: leaving it
                    // untouched spares a write fault on a clean page.
                    if w != to.word() {
                        self.set_loc(i, to.word());
                    }
                    self.bump_deleted(cur.deleted, to.deleted);
                    old = Some(cur);
                    if !dedup {
                        return Ok(old);
                    }
                } else {
                    self.set_loc(i, TOMB);
                    self.bump(-1, 1);
                    self.bump_deleted(cur.deleted, false);
                }
            }
            i = (i + 1) & self.mask;
        }
        if old.is_some() {
            return Ok(old);
        }
        let slot = match free {
            Some(s) => {
                self.bump(0, -1);
                s
            }
            None => i,
        };
        // Hash first, loc last: a slot is in use only once its loc is set.
        self.set_hash(slot, hash);
        self.set_loc(slot, to.word());
        self.bump(1, 0);
        self.bump_deleted(false, to.deleted);
        Ok(None)
    }

    /// Moves the entry pointing at `from` to `to`; false when the key moved on meanwhile.
    pub fn relocate(&self, hash: u64, from: Loc, to: Entry) -> bool {
        self.swap_loc(hash, from, Some(to))
    }

    /// Removes the entry pointing at `loc`, if it still does.
    pub fn remove_loc(&self, hash: u64, loc: Loc) -> bool {
        let done = self.swap_loc(hash, loc, None);
        if done {
            self.bump(-1, 1);
        }
        done
    }

    /// Replaces the entry pointing at `from` with `to` (None frees the slot).
    fn swap_loc(&self, hash: u64, from: Loc, to: Option<Entry>) -> bool {
        let mut i = self.home(hash);
        loop {
            let w = self.loc_at(i);
            if w == EMPTY {
                return false;
            }
            let cur = Entry::of_word(w);
            if w != TOMB && cur.loc == from && self.hash_at(i) == hash {
                self.set_loc(i, to.map_or(TOMB, Entry::word));
                self.bump_deleted(cur.deleted, to.is_some_and(|e| e.deleted));
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Walks every page: checks its checksum and counts used, freed and deleted slots.
    pub fn verify(&self) -> PageCheck {
        let mut check = PageCheck::default();
        for page in 0..self.pages() {
            if self.page_sum(page) != u64::from_le(self.sum(page).load(Ordering::Relaxed)) {
                check.failed.push(page);
            }
            let first = page * SLOTS_PER_PAGE;
            for slot in first..first + SLOTS_PER_PAGE {
                match self.loc_at(slot) {
                    EMPTY => {}
                    TOMB => check.tombstones += 1,
                    w => {
                        check.live += 1;
                        check.deleted += (w & DELETED != 0) as u64;
                    }
                }
            }
        }
        check
    }

    /// The used slots of a page, as (hash, entry).
    pub fn page_entries(&self, page: usize) -> impl Iterator<Item = (u64, Entry)> + '_ {
        let first = page * SLOTS_PER_PAGE;
        (first..first + SLOTS_PER_PAGE).filter_map(|slot| match self.loc_at(slot) {
            EMPTY | TOMB => None,
            w => Some((self.hash_at(slot), Entry::of_word(w))),
        })
    }

    /// Sets a page's checksum to what its slots hold now.
    pub fn reseal(&self, page: usize) {
        self.sum(page)
            .store(self.page_sum(page).to_le(), Ordering::Relaxed);
    }

    /// Copies every live entry into a new generation sized for them plus `extra` more
    /// at half load.
    pub fn rebuilt(&self, dir: &Path, gen: u64, extra: u64) -> Result<Index> {
        let mut bits = MIN_BITS;
        while (1u64 << bits) < (self.live() + extra + 1) * 2 {
            bits += 1;
        }
        let next = Index::create(dir, gen, bits, self.seed, self.io.clone())?;
        for i in 0..=self.mask {
            let loc = self.loc_at(i);
            if loc != EMPTY && loc != TOMB {
                let h = self.hash_at(i);
                let mut j = next.home(h);
                while next.loc_at(j) != EMPTY {
                    j = (j + 1) & next.mask;
                }
                next.set_hash(j, h);
                next.set_loc(j, loc);
                next.bump(1, 0);
                next.bump_deleted(false, loc & DELETED != 0);
            }
        }
        Ok(next)
    }

    /// Makes every slot written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.map.flush().at(&self.path)?;
        self.io.sync_data(&self.file).at(&self.path)
    }
}

impl ProbeTable for Index {
    fn bits(&self) -> u32 {
        self.bits
    }

    fn slot(&self, i: usize) -> Slot {
        match self.loc_at(i) {
            EMPTY => Slot::Empty,
            TOMB => Slot::Dead,
            _ => Slot::Live(self.hash_at(i)),
        }
    }
}

impl Index {
    /// Calls `f(hash, entry)` for every entry whose hash is in `[lo, hi)`, each exactly once.
    pub fn scan_range(&self, lo: u64, hi: u128, mut f: impl FnMut(u64, Entry)) {
        ProbeTable::scan_range(self, lo, hi, |i, h| f(h, Entry::of_word(self.loc_at(i))));
    }

    pub fn hash_span(&self, slots: u64) -> u128 {
        ProbeTable::hash_span(self, slots)
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
