//! A counter bucket: the per-second counts of every key seen during `span` seconds
//! from `t0`, in one mmap'd file that is deleted whole once all of it has expired.
//!
//! ```text
//! 0      68   header: magic "DSTCNT\0\0", version, fields [t0, span, bits, seed]
//! 128    8    heap end (u64 LE), outside the crc: it moves with every new key
//! 4096        1 << bits slots of SLOT bytes:
//!               hash u64 (0 = empty) | key ref u64 (heap offset << 16 | key len)
//!               | span x u32 per-second counts, padded to 8 bytes
//! heap        the keys' bytes, appended
//! ```
//! Invariant: a slot is published by storing its hash last, after its key and counts, so
//! a reader or a crash never sees a slot half made. Slots are never reused.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, IoContext, Result};
use crate::header;
use crate::index::probe::{ProbeTable, Slot};
use crate::io::{write_all_at, Io};

const PAGE: u64 = 4096;
const HEAP_END_AT: usize = 128;
/// Address space reserved for a bucket's keys; the file grows into it as keys arrive.
const HEAP_MAX: u64 = 4 << 30;
const HEAP_GROW: u64 = 1 << 20;
pub const MIN_BITS: u32 = 8;
const MAX_BITS: u32 = 32;

/// A bucket's header fields.
struct BucketHeader {
    t0: u64,
    span: u32,
    bits: u32,
    seed: u64,
}

impl header::FileHeader for BucketHeader {
    const MAGIC: &'static [u8; 8] = b"DSTCNT\0\0";
    const VERSION: u32 = 1;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.t0, self.span as u64, self.bits as u64, self.seed, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 4)?;
        let span = u32::try_from(f[1]).ok().filter(|s| (1..=3600).contains(s));
        let bits = u32::try_from(f[2])
            .ok()
            .filter(|b| (MIN_BITS..=MAX_BITS).contains(b));
        match (span, bits) {
            (Some(span), Some(bits)) => Ok(Self {
                t0: f[0],
                span,
                bits,
                seed: f[3],
            }),
            (None, _) => Err(format!("span {} out of range 1..=3600", f[1])),
            (_, None) => Err(format!("slot bits {} out of range", f[2])),
        }
    }
}

pub fn file_name(t0: u64) -> String {
    format!("b-{t0:012}.cnt")
}

pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("b-")?.strip_suffix(".cnt")?.parse().ok()
}

#[derive(Debug)]
pub struct Bucket {
    pub t0: u64,
    pub span: u32,
    bits: u32,
    seed: u64,
    slot_len: usize,
    heap_at: u64,
    path: PathBuf,
    file: File,
    map: MmapRaw,
    /// Bytes of the file with disk blocks reserved.
    allocated: AtomicU64,
    live: AtomicU64,
    io: Arc<dyn Io>,
}

fn slot_len(span: u32) -> usize {
    (16 + 4 * span as usize).div_ceil(8) * 8
}

impl Bucket {
    pub fn create(
        path: &Path,
        t0: u64,
        span: u32,
        bits: u32,
        seed: u64,
        io: Arc<dyn Io>,
    ) -> Result<Self> {
        let bits = bits.clamp(MIN_BITS, MAX_BITS);
        let hdr = BucketHeader {
            t0,
            span,
            bits,
            seed,
        };
        let file = header::create(io.as_ref(), path, &hdr)?;
        let heap_at = PAGE + (slot_len(span) as u64) * (1u64 << bits);
        io.allocate(&file, heap_at + HEAP_GROW).at(path)?;
        write_all_at(
            io.as_ref(),
            &file,
            &heap_at.to_le_bytes(),
            HEAP_END_AT as u64,
        )
        .at(path)?;
        Self::map(path, file, t0, span, bits, seed, io)
    }

    pub fn open(path: &Path, io: Arc<dyn Io>) -> Result<Self> {
        let (file, h): (File, BucketHeader) = header::open_checked(path)?;
        let (t0, span, bits, seed) = (h.t0, h.span, h.bits, h.seed);
        let b = Self::map(path, file, t0, span, bits, seed, io)?;
        let (heap_end, len) = (b.heap_end(), b.file.metadata().at(path)?.len());
        if heap_end < b.heap_at || heap_end > len {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("key heap end {heap_end} outside [{}, {len}]", b.heap_at),
            });
        }
        let live = (0..1usize << bits)
            .filter(|&i| matches!(b.slot(i), Slot::Live(_)))
            .count();
        b.live.store(live as u64, Ordering::Relaxed);
        Ok(b)
    }

    fn map(
        path: &Path,
        file: File,
        t0: u64,
        span: u32,
        bits: u32,
        seed: u64,
        io: Arc<dyn Io>,
    ) -> Result<Self> {
        let slot_len = slot_len(span);
        let heap_at = PAGE + (slot_len as u64) * (1u64 << bits);
        let allocated = file.metadata().at(path)?.len();
        let map = MmapOptions::new()
            .len((heap_at + HEAP_MAX) as usize)
            .map_raw(&file)
            .at(path)?;
        Ok(Self {
            t0,
            span,
            bits,
            seed,
            slot_len,
            heap_at,
            path: path.to_path_buf(),
            file,
            map,
            allocated: AtomicU64::new(allocated),
            live: AtomicU64::new(0),
            io,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
    pub fn end(&self) -> u64 {
        self.t0 + self.span as u64
    }
    pub fn disk_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    fn mask(&self) -> usize {
        (1usize << self.bits) - 1
    }

    #[inline]
    fn u64_at(&self, at: u64) -> &AtomicU64 {
        // SAFETY: callers pass 8-aligned offsets inside the slots or header, which lie
        // inside the mapping and below the allocated length.
        unsafe { &*(self.map.as_mut_ptr().add(at as usize) as *const AtomicU64) }
    }
    #[inline]
    fn count_cell(&self, slot: usize, sec: usize) -> &AtomicU32 {
        let at = PAGE as usize + slot * self.slot_len + 16 + sec * 4;
        // SAFETY: as above; counts are 4-aligned.
        unsafe { &*(self.map.as_mut_ptr().add(at) as *const AtomicU32) }
    }
    fn slot_at(&self, slot: usize) -> u64 {
        PAGE + (slot * self.slot_len) as u64
    }
    fn heap_end(&self) -> u64 {
        u64::from_le(self.u64_at(HEAP_END_AT as u64).load(Ordering::Acquire))
    }

    fn key(&self, slot: usize) -> &[u8] {
        let r = u64::from_le(self.u64_at(self.slot_at(slot) + 8).load(Ordering::Relaxed));
        let (off, len) = (r >> 16, (r & 0xffff) as usize);
        if off < self.heap_at || off + len as u64 > self.heap_end() {
            return &[];
        }
        // SAFETY: the range is inside the written part of the heap.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off as usize), len) }
    }

    /// The slot holding `key`.
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let mut i = self.home(hash);
        loop {
            match self.slot(i) {
                Slot::Empty => return None,
                Slot::Live(h) if h == hash && self.key(i) == key => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    pub fn is_full(&self) -> bool {
        (self.live() + 1) * 4 > (1u64 << self.bits) * 3
    }

    /// Adds `n` to `key`'s count for second `t`. The caller holds the namespace's counter
    /// write lock and has grown the bucket if [`is_full`](Self::is_full).
    pub fn add(&self, hash: u64, key: &[u8], t: u64, n: u32) -> Result<()> {
        let sec = (t - self.t0) as usize;
        debug_assert!(sec < self.span as usize);
        if let Some(i) = self.find(hash, key) {
            let c = self.count_cell(i, sec);
            c.store(
                c.load(Ordering::Relaxed).saturating_add(n),
                Ordering::Relaxed,
            );
            return Ok(());
        }
        let mut i = self.home(hash);
        while !matches!(self.slot(i), Slot::Empty) {
            i = (i + 1) & self.mask();
        }
        let off = self.append_key(key)?;
        let at = self.slot_at(i);
        self.u64_at(at + 8)
            .store(((off << 16) | key.len() as u64).to_le(), Ordering::Relaxed);
        for s in 0..self.span as usize {
            self.count_cell(i, s)
                .store(if s == sec { n } else { 0 }, Ordering::Relaxed);
        }
        self.u64_at(at).store(hash.to_le(), Ordering::Release);
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Raises `key`'s count for second `t` to at least `n`; otherwise as [`add`](Self::add).
    pub fn raise(&self, hash: u64, key: &[u8], t: u64, n: u32) -> Result<()> {
        match self.find(hash, key) {
            Some(i) => {
                let sec = (t - self.t0) as usize;
                self.count_cell(i, sec).fetch_max(n, Ordering::Relaxed);
                Ok(())
            }
            None => self.add(hash, key, t, n),
        }
    }

    /// `slot`'s nonzero counts, as (second, count).
    pub fn cells(&self, slot: usize) -> impl Iterator<Item = (u64, u32)> + '_ {
        (0..self.span as usize).filter_map(move |s| {
            let n = self.count_cell(slot, s).load(Ordering::Relaxed);
            (n > 0).then_some((self.t0 + s as u64, n))
        })
    }

    /// Sets every count of `slot` to 0: the key stays, with nothing counted.
    pub fn clear(&self, slot: usize) {
        for s in 0..self.span as usize {
            self.count_cell(slot, s).store(0, Ordering::Relaxed);
        }
    }

    fn append_key(&self, key: &[u8]) -> Result<u64> {
        let off = self.heap_end();
        let end = off + key.len() as u64;
        if end > self.heap_at + HEAP_MAX {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: "counter bucket key space is full".into(),
            });
        }
        if end > self.allocated.load(Ordering::Relaxed) {
            let want = (end + HEAP_GROW).min(self.heap_at + HEAP_MAX);
            self.io.allocate(&self.file, want).at(&self.path)?;
            self.allocated.store(want, Ordering::Relaxed);
        }
        // SAFETY: [off, end) is allocated, inside the mapping, and past the heap end that
        // readers trust, so nobody reads it until the heap end moves.
        unsafe {
            std::ptr::copy_nonoverlapping(
                key.as_ptr(),
                self.map.as_mut_ptr().add(off as usize),
                key.len(),
            );
        }
        self.u64_at(HEAP_END_AT as u64)
            .store(end.to_le(), Ordering::Release);
        Ok(off)
    }

    /// Sum of `key`'s counts for seconds in `[lo, hi]`.
    pub fn sum(&self, hash: u64, key: &[u8], lo: u64, hi: u64) -> u64 {
        let Some(i) = self.find(hash, key) else {
            return 0;
        };
        self.sum_slot(i, lo, hi)
    }

    pub fn sum_slot(&self, slot: usize, lo: u64, hi: u64) -> u64 {
        let lo = lo.max(self.t0);
        let hi = hi.min(self.end() - 1);
        if lo > hi {
            return 0;
        }
        (lo..=hi)
            .map(|t| {
                self.count_cell(slot, (t - self.t0) as usize)
                    .load(Ordering::Relaxed) as u64
            })
            .sum()
    }

    /// Calls `f(slot, hash, key)` for every key whose hash is in `[lo, hi)`.
    pub fn scan_range(&self, lo: u64, hi: u128, mut f: impl FnMut(usize, u64, &[u8])) {
        ProbeTable::scan_range(self, lo, hi, |i, h| f(i, h, self.key(i)));
    }

    pub fn hash_span(&self, slots: u64) -> u128 {
        ProbeTable::hash_span(self, slots)
    }

    /// A copy with twice the slots, written beside this file and renamed over it.
    pub fn grown(&self) -> Result<Bucket> {
        let tmp = self.path.with_extension("grow");
        let next = Bucket::create(
            &tmp,
            self.t0,
            self.span,
            self.bits + 1,
            self.seed,
            self.io.clone(),
        )?;
        for i in 0..=self.mask() {
            if let Slot::Live(h) = self.slot(i) {
                let key = self.key(i);
                for s in 0..self.span as usize {
                    let n = self.count_cell(i, s).load(Ordering::Relaxed);
                    if n > 0 {
                        next.add(h, key, self.t0 + s as u64, n)?;
                    }
                }
            }
        }
        next.sync()?;
        std::fs::rename(&tmp, &self.path).at(&self.path)?;
        crate::fsutil::sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(Bucket {
            path: self.path.clone(),
            ..next
        })
    }

    pub fn sync(&self) -> Result<()> {
        self.io.sync_data(&self.file).at(&self.path)
    }
}

impl ProbeTable for Bucket {
    fn bits(&self) -> u32 {
        self.bits
    }

    fn slot(&self, i: usize) -> Slot {
        match u64::from_le(self.u64_at(self.slot_at(i)).load(Ordering::Acquire)) {
            0 => Slot::Empty,
            h => Slot::Live(h),
        }
    }
}
