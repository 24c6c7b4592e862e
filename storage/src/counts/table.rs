//! One generation's count table: a slot per key whose last touch fell in the
//! generation, holding that key's cells (see [`Schedule`]), in one mmap'd file that is
//! deleted whole once every last touch in it is older than the retention.
//!
//! ```text
//! 0      68   header: magic "DSTCGEN\0", version 1, fields [start, span, retention, bits, seed]
//! 128    8    heap end (u64 LE), outside the crc: it moves with every new key
//! 136    8    live slots (u64 LE), likewise
//! 4096        1 << bits hashes, u64 LE (0 = empty), apart from the slots so that a
//!             probe run reads eight to a cache line; a slot's hash is stored last
//!             when it is made
//! then        1 << bits slots of slot_len bytes:
//!               0  key ref u64: heap offset << 16 | key length
//!               8  last touch u64 (Unix second)
//!               16 crc32 of the hash, key length, last touch, cells and key bytes
//!               20 reserved u32, 0
//!               24 cells: u32 LE x schedule length
//! heap        the keys' bytes, appended
//! ```
//! Writes change cells before the last touch and the crc last, so a write cut short
//! leaves a slot whose crc fails; the count log holds the write that was cut (see
//! `log.rs`), and replay repairs such a slot. A slot whose crc fails otherwise is
//! quarantined: its cells are zeroed.

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
/// Address space reserved for a table's keys; the file grows into it as keys arrive.
const HEAP_MAX: u64 = 4 << 30;
const HEAP_GROW: u64 = 1 << 20;
pub const MIN_BITS: u32 = 8;
const MAX_BITS: u32 = 32;

const KEY_REF_AT: usize = 0;
const LAST_AT: usize = 8;
const CRC_AT: usize = 16;
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
    const VERSION: u32 = 1;
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

/// One key's cells as read from or written to a slot.
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
    slot_len: usize,
    slots_at: usize,
    heap_at: u64,
    path: PathBuf,
    file: Arc<File>,
    map: MmapMut,
    /// Bytes of the file with disk blocks reserved.
    allocated: u64,
    io: Arc<dyn Io>,
}

fn slot_len(cells: usize) -> usize {
    (CELLS_AT + 4 * cells).div_ceil(8) * 8
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
                    "{} bytes, shorter than its slots ({})",
                    t.allocated, t.heap_at
                ),
            });
        }
        let (heap_end, len) = (t.heap_end(), t.allocated);
        if heap_end < t.heap_at || heap_end > len {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("key heap end {heap_end} outside [{}, {len}]", t.heap_at),
            });
        }
        // The live count is outside the header's crc: one past the slots is recounted.
        if t.live() > t.mask() as u64 {
            let live = (0..=t.mask())
                .filter(|&i| matches!(t.slot(i), Slot::Live(_)))
                .count();
            t.set_u64(LIVE_AT, live as u64);
        }
        Ok(t)
    }

    fn map(path: &Path, file: File, h: TableHeader, io: Arc<dyn Io>) -> Result<Self> {
        let schedule = Schedule::for_retention(h.retention);
        let slot_len = slot_len(schedule.len());
        let slots_at = PAGE as usize + (8usize << h.bits);
        let heap_at = slots_at as u64 + (slot_len as u64) * (1u64 << h.bits);
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
            slot_len,
            slots_at,
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
    /// Changes whenever slots move (the table grew): a slot number is valid only
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

    /// Reserves disk blocks for `bytes` more key bytes, so inserting them cannot fail.
    pub fn reserve_keys(&mut self, bytes: u64) -> Result<()> {
        let end = self.heap_end() + bytes;
        if end > self.heap_at + HEAP_MAX {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: "count table key space is full".into(),
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
    fn slot_at(&self, slot: usize) -> usize {
        self.slots_at + slot * self.slot_len
    }
    fn hash_at(slot: usize) -> usize {
        PAGE as usize + slot * 8
    }
    fn mask(&self) -> usize {
        (1usize << self.bits) - 1
    }

    /// True when `slot` holds `key` (hash `hash`).
    pub fn holds(&self, slot: usize, hash: u64, key: &[u8]) -> bool {
        slot <= self.mask()
            && matches!(self.slot(slot), Slot::Live(h) if h == hash)
            && self.key(slot) == key
    }

    /// `slot`'s key; empty when its reference is damaged.
    pub fn key(&self, slot: usize) -> &[u8] {
        let r = self.u64(self.slot_at(slot) + KEY_REF_AT);
        let (off, len) = (r >> 16, r & 0xffff);
        if off < self.heap_at || off + len > self.heap_end() {
            return &[];
        }
        &self.map[off as usize..(off + len) as usize]
    }

    /// The slot holding `key`.
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let mut i = self.home(hash);
        for _ in 0..=self.mask() {
            match self.slot(i) {
                Slot::Empty => return None,
                Slot::Live(h) if h == hash && self.key(i) == key => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
        None
    }

    /// `slot`'s cells, and whether its crc holds.
    pub fn read(&self, slot: usize) -> (Cells, bool) {
        let at = self.slot_at(slot);
        let bytes = &self.map[at + CELLS_AT..at + CELLS_AT + 4 * self.schedule.len()];
        let cells = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let stored = u32_at(&self.map, at + CRC_AT).unwrap_or(0);
        let c = Cells {
            last: self.u64(at + LAST_AT),
            cells,
        };
        (c, stored == self.crc(slot, self.u64(Self::hash_at(slot))))
    }

    fn crc(&self, slot: usize, hash: u64) -> u32 {
        let at = self.slot_at(slot);
        let mut h = crc32fast::Hasher::new();
        h.update(&hash.to_le_bytes());
        h.update(&(self.key(slot).len() as u16).to_le_bytes());
        h.update(&self.map[at + LAST_AT..at + CRC_AT]);
        h.update(&self.map[at + CELLS_AT..at + self.slot_len]);
        h.update(self.key(slot));
        h.finalize()
    }

    /// Writes `cells` and `last` into `slot`: cells, then the last touch, then the crc.
    pub fn write(&mut self, slot: usize, last: u64, cells: &[u32]) {
        let hash = self.u64(Self::hash_at(slot));
        self.write_with(slot, hash, last, cells);
    }

    fn write_with(&mut self, slot: usize, hash: u64, last: u64, cells: &[u32]) {
        let at = self.slot_at(slot);
        let n = cells.len().min(self.schedule.len());
        let out = &mut self.map[at + CELLS_AT..at + CELLS_AT + 4 * n];
        for (b, v) in out.chunks_exact_mut(4).zip(cells) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        self.set_u64(at + LAST_AT, last);
        let crc = self.crc(slot, hash);
        self.map[at + CRC_AT..at + CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Zeroes a slot's cells, keeping the key: it counts from nothing.
    pub fn zero(&mut self, slot: usize) {
        let (mut c, _) = self.read(slot);
        c.cells.fill(0);
        self.write(slot, c.last, &c.cells);
    }

    /// Makes a slot for `key` (not present) holding `c`. The caller grows a full table
    /// first.
    pub fn insert(&mut self, hash: u64, key: &[u8], last: u64, cells: &[u32]) -> Result<usize> {
        let mut i = self.home(hash);
        while !matches!(self.slot(i), Slot::Empty) {
            i = (i + 1) & self.mask();
        }
        let off = self.append_key(key)?;
        let at = self.slot_at(i);
        self.set_u64(at + KEY_REF_AT, (off << 16) | key.len() as u64);
        self.write_with(i, hash, last, cells);
        self.set_u64(Self::hash_at(i), hash);
        let live = self.live() + 1;
        self.set_u64(LIVE_AT, live);
        Ok(i)
    }

    fn append_key(&mut self, key: &[u8]) -> Result<u64> {
        let off = self.heap_end();
        let end = off + key.len() as u64;
        if end > self.heap_at + HEAP_MAX {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: "count table key space is full".into(),
            });
        }
        if end > self.allocated {
            self.reserve((end + HEAP_GROW).min(self.heap_at + HEAP_MAX))?;
        }
        self.map[off as usize..end as usize].copy_from_slice(key);
        self.set_u64(HEAP_END_AT, end);
        Ok(off)
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

    /// A copy with twice the slots, written beside this file, synced and renamed over
    /// it. Slots are copied as they are, crc included, so damage stays visible.
    pub fn grown(&self) -> Result<Table> {
        let tmp = self.path.with_extension("grow");
        let mut next = Table::create(
            &tmp,
            self.start,
            self.span,
            self.retention,
            self.bits + 1,
            self.seed,
            self.io.clone(),
        )?;
        for i in 0..=self.mask() {
            if let Slot::Live(h) = self.slot(i) {
                let key = self.key(i);
                let j = next.insert(h, key, 0, &[])?;
                let (src, dst) = (self.slot_at(i), next.slot_at(j));
                let len = self.slot_len;
                next.map[dst + LAST_AT..dst + len]
                    .copy_from_slice(&self.map[src + LAST_AT..src + len]);
            }
        }
        next.sync()?;
        std::fs::rename(&tmp, &self.path).at(&self.path)?;
        crate::fsutil::sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        next.path = self.path.clone();
        Ok(next)
    }

    /// A copy kept by `retention`'s schedule (see [`Schedule::convert`]), written beside
    /// this file, synced and renamed over it. A slot whose crc fails goes over zeroed.
    pub fn converted(&self, retention: u32) -> Result<Table> {
        let tmp = self.path.with_extension("grow");
        let mut next = Table::create(
            &tmp,
            self.start,
            self.span,
            retention,
            self.bits,
            self.seed,
            self.io.clone(),
        )?;
        for i in 0..=self.mask() {
            if let Slot::Live(h) = self.slot(i) {
                let (c, ok) = self.read(i);
                let cells = match ok {
                    true => self.schedule.convert(&c.cells, c.last, &next.schedule),
                    false => vec![0; next.schedule.len()],
                };
                next.insert(h, self.key(i), c.last, &cells)?;
            }
        }
        next.sync()?;
        std::fs::rename(&tmp, &self.path).at(&self.path)?;
        crate::fsutil::sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        next.path = self.path.clone();
        Ok(next)
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
        match self.u64(Self::hash_at(i)) {
            0 => Slot::Empty,
            h => Slot::Live(h),
        }
    }
}

/// The slot bits for a table expected to hold `keys`.
pub fn bits_for(keys: u64) -> u32 {
    let mut bits = MIN_BITS;
    while (1u64 << bits) < keys.saturating_mul(2) && bits < MAX_BITS {
        bits += 1;
    }
    bits
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
