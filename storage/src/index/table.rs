//! Index file: header, slot access and the probe operations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::probe::{ProbeTable, Slot};
use crate::error::{Error, IoContext, Result};
use crate::header;
use crate::io::Io;

pub const PAGE: u64 = 4096;
const SLOT: u64 = 16;
const EMPTY: u64 = 0;
const TOMB: u64 = u64::MAX;
pub const MIN_BITS: u32 = 10;
const MAX_BITS: u32 = 40;

/// Where a record lives: segment id in the high 32 bits, byte offset in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc(pub u64);

impl Loc {
    pub fn new(segment: u32, offset: u64) -> Self {
        debug_assert!(segment != 0 && offset <= u32::MAX as u64);
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
    const VERSION: u32 = 1;
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
    live: AtomicU64,
    tombstones: AtomicU64,
    io: Arc<dyn Io>,
}

impl Index {
    /// Creates an empty index file of `1 << bits` slots with its disk blocks reserved.
    pub fn create(dir: &Path, gen: u64, bits: u32, seed: u64, io: Arc<dyn Io>) -> Result<Self> {
        let bits = bits.clamp(MIN_BITS, MAX_BITS);
        let path = dir.join(file_name(gen));
        let file = header::create(io.as_ref(), &path, &IndexHeader { bits, seed, gen })?;
        let len = PAGE + (SLOT << bits);
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
        let want = PAGE + (SLOT << bits);
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
            .len((PAGE + (SLOT << bits)) as usize)
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
    pub fn set_counts(&self, live: u64, tombstones: u64) {
        self.live.store(live, Ordering::Relaxed);
        self.tombstones.store(tombstones, Ordering::Relaxed);
    }
    fn bump(&self, live: i64, tombstones: i64) {
        self.live.fetch_add(live as u64, Ordering::Relaxed);
        self.tombstones
            .fetch_add(tombstones as u64, Ordering::Relaxed);
    }
    pub fn disk_bytes(&self) -> u64 {
        PAGE + (SLOT << self.bits)
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
        self.word(slot, 0).store(h.to_le(), Ordering::Relaxed);
    }
    #[inline]
    fn set_loc(&self, slot: usize, loc: u64) {
        self.word(slot, 1).store(loc.to_le(), Ordering::Release);
    }

    /// The location of the key with this hash for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(Loc) -> bool) -> Option<Loc> {
        let mut i = self.home(hash);
        loop {
            let loc = self.loc_at(i);
            if loc == EMPTY {
                return None;
            }
            if loc != TOMB && self.hash_at(i) == hash && is_key(Loc(loc)) {
                return Some(Loc(loc));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Points the key at `loc`, returning where it pointed before. With `dedup` (replay),
    /// also clears any later copy of the key a crash may have left in its probe run.
    /// The caller keeps the table below three-quarters full, so a probe run always ends.
    pub fn upsert(
        &self,
        hash: u64,
        loc: Loc,
        mut is_key: impl FnMut(Loc) -> bool,
        dedup: bool,
    ) -> Option<Loc> {
        let mut i = self.home(hash);
        let mut free = None;
        let mut old = None;
        loop {
            let cur = self.loc_at(i);
            if cur == EMPTY {
                break;
            }
            if cur == TOMB {
                free.get_or_insert(i);
            } else if self.hash_at(i) == hash && is_key(Loc(cur)) {
                if old.is_none() {
                    // Replay after a kill mostly finds the slot already right: leaving it
                    // untouched spares a write fault on a clean page.
                    if cur != loc.0 {
                        self.set_loc(i, loc.0);
                    }
                    old = Some(Loc(cur));
                    if !dedup {
                        return old;
                    }
                } else {
                    self.set_loc(i, TOMB);
                    self.bump(-1, 1);
                }
            }
            i = (i + 1) & self.mask;
        }
        if old.is_some() {
            return old;
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
        self.set_loc(slot, loc.0);
        self.bump(1, 0);
        None
    }

    /// Removes the key (and any stray copy of it), returning where it pointed.
    pub fn remove(&self, hash: u64, mut is_key: impl FnMut(Loc) -> bool) -> Option<Loc> {
        let mut i = self.home(hash);
        let mut old = None;
        loop {
            let cur = self.loc_at(i);
            if cur == EMPTY {
                return old;
            }
            if cur != TOMB && self.hash_at(i) == hash && is_key(Loc(cur)) {
                self.set_loc(i, TOMB);
                self.bump(-1, 1);
                old.get_or_insert(Loc(cur));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Moves the entry pointing at `from` to `to`; false when the key moved on meanwhile.
    pub fn relocate(&self, hash: u64, from: Loc, to: Loc) -> bool {
        self.swap_loc(hash, from, to.0)
    }

    /// Removes the entry pointing at `loc`, if it still does.
    pub fn remove_loc(&self, hash: u64, loc: Loc) -> bool {
        let done = self.swap_loc(hash, loc, TOMB);
        if done {
            self.bump(-1, 1);
        }
        done
    }

    fn swap_loc(&self, hash: u64, from: Loc, to: u64) -> bool {
        let mut i = self.home(hash);
        loop {
            let cur = self.loc_at(i);
            if cur == EMPTY {
                return false;
            }
            if cur == from.0 && self.hash_at(i) == hash {
                self.set_loc(i, to);
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Counts live entries and tombstones by walking every slot.
    pub fn recount(&self) {
        let (mut live, mut tomb) = (0, 0);
        for i in 0..=self.mask {
            match self.loc_at(i) {
                EMPTY => {}
                TOMB => tomb += 1,
                _ => live += 1,
            }
        }
        self.set_counts(live, tomb);
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
    /// Calls `f(hash, loc)` for every entry whose hash is in `[lo, hi)`, each exactly once.
    pub fn scan_range(&self, lo: u64, hi: u128, mut f: impl FnMut(u64, Loc)) {
        ProbeTable::scan_range(self, lo, hi, |i, h| f(h, Loc(self.loc_at(i))));
    }

    pub fn hash_span(&self, slots: u64) -> u128 {
        ProbeTable::hash_span(self, slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealIo;
    use std::collections::HashMap;
    use std::fs::OpenOptions;

    fn idx(dir: &Path) -> Index {
        Index::create(dir, 1, MIN_BITS, 7, Arc::new(RealIo)).unwrap()
    }

    #[test]
    fn matches_a_hashmap_with_colliding_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let ix = idx(dir.path());
        let mut model: HashMap<u64, u64> = HashMap::new();
        // Keys are the low bits of loc; hashes collide in groups of 8 to force probing.
        let key_of = |l: Loc| l.offset() % 1000;
        for step in 0u64..700 {
            let key = (step * 7919) % 600;
            let hash = (key / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let loc = Loc::new(1, key + 1000 * (step % 3 + 1));
            if step % 5 == 4 {
                let got = ix.remove(hash, |l| key_of(l) == key);
                assert_eq!(got.map(|l| l.0), model.remove(&key));
            } else {
                let got = ix.upsert(hash, loc, |l| key_of(l) == key, false);
                assert_eq!(got.map(|l| l.0), model.insert(key, loc.0));
            }
        }
        assert_eq!(ix.live(), model.len() as u64);
        let mut seen = 0;
        ix.scan_range(0, 1u128 << 64, |_, l| {
            assert_eq!(model.get(&key_of(l)), Some(&l.0));
            seen += 1;
        });
        assert_eq!(seen, model.len());
        let next = ix.rebuilt(dir.path(), 2, 0).unwrap();
        assert_eq!(next.live(), ix.live());
    }

    #[test]
    fn range_scans_partition_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let ix = idx(dir.path());
        for k in 0u64..700 {
            let h = xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes());
            ix.upsert(h, Loc::new(1, k + 100), |_| false, false);
        }
        let mut total = 0;
        let step = ix.hash_span(37);
        let mut lo: u128 = 0;
        while lo < 1u128 << 64 {
            let hi = (lo + step).min(1u128 << 64);
            ix.scan_range(lo as u64, hi, |h, _| {
                assert!((h as u128) >= lo && (h as u128) < hi);
                total += 1;
            });
            lo = hi;
        }
        assert_eq!(total, 700);
    }

    #[test]
    fn open_rejects_bad_header_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let ix = idx(dir.path());
        let path = ix.path().to_path_buf();
        drop(ix);
        Index::open(&path, Arc::new(RealIo)).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, &[0xff], 20).unwrap();
        let err = Index::open(&path, Arc::new(RealIo))
            .unwrap_err()
            .to_string();
        assert!(err.contains("index-") && err.contains("checksum"), "{err}");
        f.set_len(100).unwrap();
        assert!(Index::open(&path, Arc::new(RealIo)).is_err());
    }
}
