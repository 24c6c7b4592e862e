//! One generation's count table: a record per key whose last touch fell in the
//! generation, holding that key's cells (see [`Schedule`]), in one mmap'd file that is
//! deleted whole once every last touch in it is older than the retention.
//!
//! ```text
//! 0      68   header: magic "DSTCGEN\0", version 2, fields [start, span, retention, bits, seed]
//! 128    8    heap end (u64 LE), outside the crc: it moves with every new key
//! 136    8    live entries (u64 LE), likewise
//! 4096        1 << bits entries, u64 LE (0 = empty): the hash's top 32 bits << 32 |
//!             the record's place in the heap (in 8-byte units, from 1); eight to a
//!             cache line, so a probe run is one read. An entry is stored last.
//! heap        records, appended, each 8-byte aligned:
//!               0  hash u64
//!               8  last touch u64 (Unix second)
//!               16 crc32 of the hash, key length, last touch, cells and key bytes
//!               20 key length u16, reserved u16
//!               24 cells: u32 LE x schedule length
//!               .. key bytes
//! ```
//! Records are dense: an empty entry costs 8 bytes, not a record, and growing the
//! table copies the heap as it is and rebuilds the entries from their hash bits.
//!
//! Writes change cells before the last touch and the crc last, so a write cut short
//! leaves a record whose crc fails; the count log holds the write that was cut (see
//! `log.rs`), and replay repairs it. A record whose crc fails otherwise is
//! quarantined: its cells are zeroed. An entry whose record lies past the heap end (a
//! crash wrote back the entry's page and not the header's) is dead: probes pass it
//! and an insert takes its place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use super::schedule::Schedule;
use crate::error::{Error, IoContext, Result};
use crate::header;
use crate::index::probe::{ProbeTable, Slot};
use crate::io::Io;
use crate::le::{u32_at, u64_at};

const PAGE: u64 = 4096;
const HEAP_END_AT: usize = 128;
const LIVE_AT: usize = 136;
/// Address space reserved for a table's records (an entry addresses 32 GiB in 8-byte
/// units); the file grows into it as keys arrive.
const HEAP_MAX: u64 = (u32::MAX as u64) * 8;
const HEAP_GROW: u64 = 1 << 20;
pub const MIN_BITS: u32 = 8;
const MAX_BITS: u32 = 32;

const HASH_AT: usize = 0;
const LAST_AT: usize = 8;
const CRC_AT: usize = 16;
const KEY_LEN_AT: usize = 20;
const CELLS_AT: usize = 24;

struct TableHeader {
    start: u64,
    span: u64,
    retention: u32,
    bits: u32,
    seed: u64,
}

impl header::FileHeader for TableHeader {
    const MAGIC: &'static [u8; 8] = b"DSTCGEN\0";
    const VERSION: u32 = 2;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        let (r, b) = (self.retention as u64, self.bits as u64);
        [self.start, self.span, r, b, self.seed, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 5)?;
        let retention = u32::try_from(f[2])
            .ok()
            .filter(|&r| r > 0)
            .ok_or(format!("retention {} out of range", f[2]))?;
        let bits = u32::try_from(f[3])
            .ok()
            .filter(|b| (MIN_BITS..=MAX_BITS).contains(b))
            .ok_or(format!("slot bits {} out of range", f[3]))?;
        if f[1] == 0 {
            return Err("generation span 0".into());
        }
        Ok(Self {
            start: f[0],
            span: f[1],
            retention,
            bits,
            seed: f[4],
        })
    }
}

pub fn file_name(start: u64) -> String {
    format!("g-{start:012}.cgt")
}

pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("g-")?.strip_suffix(".cgt")?.parse().ok()
}

/// One key's cells as read from or written to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cells {
    pub last: u64,
    pub cells: Vec<u32>,
}

pub struct Table {
    pub start: u64,
    pub span: u64,
    pub schedule: Schedule,
    retention: u32,
    bits: u32,
    seed: u64,
    heap_at: u64,
    path: PathBuf,
    file: Arc<File>,
    map: MmapMut,
    /// Bytes of the file with disk blocks reserved.
    allocated: u64,
    io: Arc<dyn Io>,
}

fn tag(hash: u64) -> u64 {
    hash >> 32
}

impl Table {
    pub fn create(
        path: &Path,
        start: u64,
        span: u64,
        retention: u32,
        bits: u32,
        seed: u64,
        io: Arc<dyn Io>,
    ) -> Result<Self> {
        let bits = bits.clamp(MIN_BITS, MAX_BITS);
        let hdr = TableHeader {
            start,
            span,
            retention,
            bits,
            seed,
        };
        let file = header::create(io.as_ref(), path, &hdr)?;
        let mut t = Self::map(path, file, hdr, io)?;
        if let Err(e) = t.reserve(t.heap_at + HEAP_GROW) {
            drop(crate::fsutil::remove_file(path));
            return Err(e);
        }
        t.set_u64(HEAP_END_AT, t.heap_at);
        t.set_u64(LIVE_AT, 0);
        Ok(t)
    }

    pub fn open(path: &Path, io: Arc<dyn Io>) -> Result<Self> {
        let (file, h): (File, TableHeader) = header::open_checked(path)?;
        let mut t = Self::map(path, file, h, io)?;
        if t.allocated < t.heap_at {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "{} bytes, shorter than its entries ({})",
                    t.allocated, t.heap_at
                ),
            });
        }
        let (heap_end, len) = (t.heap_end(), t.allocated);
        if heap_end < t.heap_at || heap_end > len {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("record heap end {heap_end} outside [{}, {len}]", t.heap_at),
            });
        }
        // The live count is outside the header's crc: one past the entries is recounted.
        if t.live() > t.mask() as u64 {
            let live = (0..=t.mask()).filter(|&i| t.record(i).is_some()).count();
            t.set_u64(LIVE_AT, live as u64);
        }
        Ok(t)
    }

    fn map(path: &Path, file: File, h: TableHeader, io: Arc<dyn Io>) -> Result<Self> {
        let schedule = Schedule::for_retention(h.retention);
        let heap_at = PAGE + (8u64 << h.bits);
        let allocated = file.metadata().at(path)?.len();
        // SAFETY: the file is this store's own, locked against other processes; only
        // the part below `allocated` is touched.
        let map = unsafe {
            MmapOptions::new()
                .len((heap_at + HEAP_MAX) as usize)
                .map_mut(&file)
        }
        .at(path)?;
        Ok(Self {
            start: h.start,
            span: h.span,
            schedule,
            retention: h.retention,
            bits: h.bits,
            seed: h.seed,
            heap_at,
            path: path.to_path_buf(),
            file: Arc::new(file),
            map,
            allocated,
            io,
        })
    }

    pub fn end(&self) -> u64 {
        self.start + self.span
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }
    pub fn disk_bytes(&self) -> u64 {
        self.allocated
    }
    /// Changes whenever entries move (the table grew): a slot number is valid only
    /// under the layout it was found in.
    pub fn layout(&self) -> u32 {
        self.bits
    }
    pub fn live(&self) -> u64 {
        self.u64(LIVE_AT)
    }
    pub fn is_full(&self) -> bool {
        !self.has_room(1)
    }

    /// True when `n` more keys keep the table at most three-quarters full.
    pub fn has_room(&self, n: u64) -> bool {
        self.live().saturating_add(n).saturating_mul(4) <= (1u64 << self.bits) * 3
    }

    /// True when the table may grow once more.
    pub fn can_grow(&self) -> bool {
        self.bits < MAX_BITS
    }

    /// Heap bytes for one record of a key of `key_len` bytes.
    fn record_len(&self, key_len: usize) -> u64 {
        ((CELLS_AT + 4 * self.schedule.len() + key_len).div_ceil(8) * 8) as u64
    }

    /// Reserves disk blocks for the records of `keys` more keys of `key_bytes` bytes in
    /// all, so inserting them cannot fail.
    pub fn reserve_keys(&mut self, keys: u64, key_bytes: u64) -> Result<()> {
        let need = keys * (self.record_len(0) + 8) + key_bytes;
        self.reserve_heap(self.heap_end() + need)
    }

    fn reserve_heap(&mut self, end: u64) -> Result<()> {
        if end > self.heap_at + HEAP_MAX {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: "count table record space is full".into(),
            });
        }
        match end > self.allocated {
            true => self.reserve((end + HEAP_GROW).min(self.heap_at + HEAP_MAX)),
            false => Ok(()),
        }
    }

    fn u64(&self, at: usize) -> u64 {
        u64_at(&self.map, at).unwrap_or(0)
    }
    fn set_u64(&mut self, at: usize, v: u64) {
        self.map[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn heap_end(&self) -> u64 {
        self.u64(HEAP_END_AT)
    }
    fn entry_at(slot: usize) -> usize {
        PAGE as usize + slot * 8
    }
    fn entry(&self, slot: usize) -> u64 {
        self.u64(Self::entry_at(slot))
    }
    fn mask(&self) -> usize {
        (1usize << self.bits) - 1
    }

    /// Where `slot`'s record starts, when the entry is live and its record lies whole
    /// inside the heap.
    fn record(&self, slot: usize) -> Option<usize> {
        let units = self.entry(slot) & u32::MAX as u64;
        let at = self.heap_at + (units.checked_sub(1)?) * 8;
        let fixed = self.record_len(0);
        if at + fixed > self.heap_end() {
            return None;
        }
        let key_len = self.key_len(at as usize);
        (at + self.record_len(key_len) <= self.heap_end()).then_some(at as usize)
    }

    fn key_len(&self, at: usize) -> usize {
        u16::from_le_bytes([self.map[at + KEY_LEN_AT], self.map[at + KEY_LEN_AT + 1]]) as usize
    }

    fn key_at(&self, at: usize) -> &[u8] {
        let from = at + CELLS_AT + 4 * self.schedule.len();
        &self.map[from..from + self.key_len(at)]
    }

    /// True when `slot` holds `key` (hash `hash`).
    pub fn holds(&self, slot: usize, hash: u64, key: &[u8]) -> bool {
        slot <= self.mask()
            && self.entry(slot) >> 32 == tag(hash)
            && self
                .record(slot)
                .is_some_and(|at| self.u64(at + HASH_AT) == hash && self.key_at(at) == key)
    }

    /// `slot`'s key; empty when its record is out of bounds.
    pub fn key(&self, slot: usize) -> &[u8] {
        self.record(slot).map_or(&[], |at| self.key_at(at))
    }

    /// The slot holding `key`.
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let mut i = self.home(hash);
        for _ in 0..=self.mask() {
            match self.entry(i) {
                0 => return None,
                e if e >> 32 == tag(hash) && self.holds(i, hash, key) => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
        None
    }

    /// `slot`'s cells, and whether its crc holds (false, with zeros, when the slot has
    /// no record).
    pub fn read(&self, slot: usize) -> (Cells, bool) {
        let n = self.schedule.len();
        let Some(at) = self.record(slot) else {
            let cells = vec![0; n];
            return (Cells { last: 0, cells }, false);
        };
        let bytes = &self.map[at + CELLS_AT..at + CELLS_AT + 4 * n];
        let cells = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let stored = u32_at(&self.map, at + CRC_AT).unwrap_or(0);
        let c = Cells {
            last: self.u64(at + LAST_AT),
            cells,
        };
        (c, stored == self.crc(at))
    }

    fn crc(&self, at: usize) -> u32 {
        let key = self.key_at(at);
        let cells_end = at + CELLS_AT + 4 * self.schedule.len();
        let mut h = crc32fast::Hasher::new();
        h.update(&self.map[at + HASH_AT..at + LAST_AT]);
        h.update(&(key.len() as u16).to_le_bytes());
        h.update(&self.map[at + LAST_AT..at + CRC_AT]);
        h.update(&self.map[at + CELLS_AT..cells_end]);
        h.update(key);
        h.finalize()
    }

    /// Writes `cells` and `last` into `slot`'s record: cells, then the last touch, then
    /// the crc. A slot without a record is left alone.
    pub fn write(&mut self, slot: usize, last: u64, cells: &[u32]) {
        if let Some(at) = self.record(slot) {
            self.write_at(at, last, cells);
        }
    }

    fn write_at(&mut self, at: usize, last: u64, cells: &[u32]) {
        let n = cells.len().min(self.schedule.len());
        let out = &mut self.map[at + CELLS_AT..at + CELLS_AT + 4 * n];
        for (b, v) in out.chunks_exact_mut(4).zip(cells) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        self.set_u64(at + LAST_AT, last);
        let crc = self.crc(at);
        self.map[at + CRC_AT..at + CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Zeroes a slot's cells, keeping the key: it counts from nothing.
    pub fn zero(&mut self, slot: usize) {
        let (mut c, _) = self.read(slot);
        c.cells.fill(0);
        self.write(slot, c.last, &c.cells);
    }

    /// Makes a record for `key` (not present) holding `cells`, and its entry in the
    /// first slot that is empty or dead. The caller grows a full table first.
    pub fn insert(&mut self, hash: u64, key: &[u8], last: u64, cells: &[u32]) -> Result<usize> {
        let mut i = self.home(hash);
        while self.entry(i) != 0 && self.record(i).is_some() {
            i = (i + 1) & self.mask();
        }
        let was_empty = self.entry(i) == 0;
        let at = self.heap_end();
        let end = at + self.record_len(key.len());
        self.reserve_heap(end)?;
        let at = at as usize;
        self.map[at..end as usize].fill(0);
        self.set_u64(at + HASH_AT, hash);
        self.map[at + KEY_LEN_AT..at + KEY_LEN_AT + 2]
            .copy_from_slice(&(key.len() as u16).to_le_bytes());
        let key_at = at + CELLS_AT + 4 * self.schedule.len();
        self.map[key_at..key_at + key.len()].copy_from_slice(key);
        self.write_at(at, last, cells);
        self.set_u64(HEAP_END_AT, end);
        let units = (at as u64 - self.heap_at) / 8 + 1;
        self.set_u64(Self::entry_at(i), tag(hash) << 32 | units);
        if was_empty {
            let live = self.live() + 1;
            self.set_u64(LIVE_AT, live);
        }
        Ok(i)
    }

    /// Extends the file to `len`: blocks reserved (a full disk shows here, never as
    /// SIGBUS through the mapping), then zeros written, so that a page written through
    /// the mapping costs a minor fault rather than the filesystem's zeroing of an
    /// unwritten extent (see `fsutil::zero_fill`).
    fn reserve(&mut self, len: u64) -> Result<()> {
        if len <= self.allocated {
            return Ok(());
        }
        let from = self.allocated;
        self.io.allocate(&self.file, len).at(&self.path)?;
        crate::fsutil::zero_fill(self.io.as_ref(), &self.file, from, len).at(&self.path)?;
        self.allocated = len;
        let fresh = &mut self.map[from as usize..len as usize];
        crate::fsutil::populate_write(fresh.as_mut_ptr(), fresh.len());
        Ok(())
    }

    /// Calls `f(slot, hash, key)` for every key whose hash is in `[lo, hi)`.
    pub fn scan_range(&self, lo: u64, hi: u128, mut f: impl FnMut(usize, u64, &[u8])) {
        ProbeTable::scan_range(self, lo, hi, |i, h| f(i, h, self.key(i)));
    }

    pub fn hash_span(&self, slots: u64) -> u128 {
        ProbeTable::hash_span(self, slots)
    }

    pub fn retention(&self) -> u32 {
        self.retention
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn sync(&self) -> Result<()> {
        self.io.sync_data(&self.file).at(&self.path)
    }
}

impl ProbeTable for Table {
    fn bits(&self) -> u32 {
        self.bits
    }

    fn slot(&self, i: usize) -> Slot {
        match (self.entry(i), self.record(i)) {
            (0, _) => Slot::Empty,
            (_, None) => Slot::Dead,
            (_, Some(at)) => Slot::Live(self.u64(at + HASH_AT)),
        }
    }
}

/// The entry bits for a table expected to hold `keys`.
pub fn bits_for(keys: u64) -> u32 {
    let mut bits = MIN_BITS;
    while (1u64 << bits) < keys.saturating_mul(2) && bits < MAX_BITS {
        bits += 1;
    }
    bits
}

#[path = "table_copy.rs"]
mod copy;

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
