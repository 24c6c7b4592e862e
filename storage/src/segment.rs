//! A data segment: one append-only file of records.
//!
//! The file is mapped once at its full capacity, so the mapping never moves. Appends copy
//! into the mapping (no syscall per write) after the file has been extended with zeros
//! through the [`Io`] seam in steps, so a full disk is an error and never a SIGBUS. The file may therefore
//! end in zeros past the last record; sealing and recovery cut it back to `len`.
//! Invariant: bytes below `len` are written and never change until the file is removed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw};

use crate::error::{Error, IoContext, Result};
use crate::header::{self, HEADER_LEN};
use crate::io::{write_all_at, Io};

/// A segment's header fields.
struct SegmentHeader {
    id: u32,
}

impl header::FileHeader for SegmentHeader {
    const MAGIC: &'static [u8; 8] = b"DSTSEG\0\0";
    const VERSION: u32 = 2;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.id as u64, 0, 0, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 1)?;
        let id = u32::try_from(f[0]).map_err(|_| format!("segment id {} out of range", f[0]))?;
        Ok(Self { id })
    }
}
/// Records start right after the header.
pub const DATA_START: u64 = HEADER_LEN as u64;
/// The file grows by this much at a time.
const GROW: u64 = 8 << 20;

pub fn file_name(id: u32) -> String {
    format!("seg-{id:010}.dat")
}

/// Parses a segment id out of a file name made by [`file_name`].
pub fn parse_name(name: &str) -> Option<u32> {
    name.strip_prefix("seg-")?
        .strip_suffix(".dat")?
        .parse()
        .ok()
}

/// A failed append. With `tail_clean` the partial bytes were cut off and appends may go on.
/// How appends reach the file.
///
/// - `Pwrite` (under `SyncMode::Always`): one pwrite per batch. Pages this process never
///   maps writable need no write-protect and TLB shootdown when fdatasync cleans them,
///   which made per-batch fsyncs under copy-in appends several times slower.
/// - `Map` (otherwise, when no fsync is on the ack path): a copy into the mapping over
///   space zero-filled ahead and pre-faulted, with no syscall per write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    Pwrite,
    Map,
}

impl WritePath {
    pub fn for_sync(sync: crate::SyncMode) -> Self {
        match sync {
            crate::SyncMode::Always => WritePath::Pwrite,
            _ => WritePath::Map,
        }
    }
}

#[derive(Debug)]
pub struct AppendError {
    pub error: Error,
    pub tail_clean: bool,
}

#[derive(Debug)]
pub struct Segment {
    pub id: u32,
    path: PathBuf,
    file: File,
    map: MmapRaw,
    capacity: u64,
    len: AtomicU64,
    /// File length: disk blocks reserved for appends.
    allocated: AtomicU64,
    io: Arc<dyn Io>,
    write: WritePath,
}

impl Segment {
    /// Creates an empty segment and makes its header durable.
    pub fn create(
        dir: &Path,
        id: u32,
        capacity: u64,
        io: Arc<dyn Io>,
        write: WritePath,
    ) -> Result<Self> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let hdr = header::encode(&SegmentHeader { id });
        write_all_at(io.as_ref(), &file, &hdr, 0).at(&path)?;
        io.sync_data(&file).at(&path)?;
        crate::fsutil::sync_dir(dir)?;
        Self::map(path, file, id, capacity, DATA_START, io, write)
    }

    /// Opens an existing segment; `len` is its file length until recovery says otherwise.
    pub fn open(path: &Path, capacity: u64, io: Arc<dyn Io>, write: WritePath) -> Result<Self> {
        let (file, SegmentHeader { id }) = header::open_checked(path)?;
        let file_len = file.metadata().at(path)?.len();
        if file_len > capacity {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "segment is {file_len} bytes, larger than the segment size {capacity}"
                ),
            });
        }
        Self::map(path.to_path_buf(), file, id, capacity, file_len, io, write)
    }

    fn map(
        path: PathBuf,
        file: File,
        id: u32,
        capacity: u64,
        len: u64,
        io: Arc<dyn Io>,
        write: WritePath,
    ) -> Result<Self> {
        let map_len = usize::try_from(capacity).map_err(|_| Error::BadFile {
            path: path.clone(),
            reason: "segment size does not fit in memory addresses".into(),
        })?;
        let allocated = file.metadata().at(&path)?.len();
        // The mapping may extend past EOF; only bytes below `allocated` are ever touched.
        let map = MmapOptions::new().len(map_len).map_raw(&file).at(&path)?;
        let _ = map.advise(Advice::Random);
        Ok(Self {
            id,
            path,
            file,
            map,
            capacity,
            len: AtomicU64::new(len),
            allocated: AtomicU64::new(allocated),
            io,
            write,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= DATA_START
    }

    /// Room left for appends.
    pub fn remaining(&self) -> u64 {
        self.capacity - self.len()
    }

    /// The bytes `[offset, offset + len)`, or None when any of them lies beyond the written end.
    #[inline]
    pub fn read(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        if offset < DATA_START || end > self.len() {
            return None;
        }
        // SAFETY: the range is inside the mapping (len <= capacity) and below the published
        // length, so it is backed by the file and no writer touches it again.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset as usize), len) })
    }

    /// Everything written from `offset` to the end.
    pub fn tail(&self, offset: u64) -> &[u8] {
        let end = self.len();
        self.read(offset, end.saturating_sub(offset) as usize)
            .unwrap_or(&[])
    }

    /// Appends `buf` and returns the offset it starts at. Only the namespace's writer calls this.
    pub fn append(&self, buf: &[u8]) -> std::result::Result<u64, AppendError> {
        let at = self.len();
        let end = at + buf.len() as u64;
        if end > self.capacity {
            // The writer rolls before this can happen; never copy past the mapping.
            return Err(AppendError {
                error: Error::BadFile {
                    path: self.path.clone(),
                    reason: format!(
                        "append of {} bytes at {at} exceeds the segment size {}",
                        buf.len(),
                        self.capacity
                    ),
                },
                tail_clean: true,
            });
        }
        if end > self.allocated.load(Ordering::Relaxed) {
            self.grow(end)?;
        }
        match self.write {
            WritePath::Pwrite => self.pwrite(buf, at)?,
            // SAFETY: [at, end) is inside the mapping and below the allocated file length
            // (zero-filled and pre-faulted by `grow`), and no reader looks past `len`,
            // which moves only after the copy.
            WritePath::Map => unsafe {
                std::ptr::copy_nonoverlapping(
                    buf.as_ptr(),
                    self.map.as_mut_ptr().add(at as usize),
                    buf.len(),
                );
            },
        }
        self.len.store(end, Ordering::Release);
        Ok(at)
    }

    /// Reserves disk blocks ahead in 8 MiB steps, so that a full disk shows up here,
    /// before any byte of the batch is written, and never as a SIGBUS; the file's size
    /// then does not change at each fdatasync.
    fn grow(&self, end: u64) -> std::result::Result<(), AppendError> {
        let want = end.div_ceil(GROW).saturating_mul(GROW).min(self.capacity);
        let had = self.allocated.load(Ordering::Relaxed);
        let reserved = match self.write {
            WritePath::Pwrite => self.io.allocate(&self.file, want),
            // Zeros written whole create page-cache pages far more cheaply than faulting
            // in fallocated (unwritten) extents through the mapping.
            WritePath::Map => crate::fsutil::zero_fill(self.io.as_ref(), &self.file, had, want),
        };
        if let Err(e) = reserved {
            return Err(AppendError {
                error: Error::Io {
                    path: self.path.clone(),
                    source: e,
                },
                tail_clean: true,
            });
        }
        self.allocated.store(want, Ordering::Relaxed);
        if self.write == WritePath::Map {
            // SAFETY: [had, want) lies inside the mapping.
            crate::fsutil::populate_write(
                unsafe { self.map.as_mut_ptr().add(had as usize) },
                (want - had) as usize,
            );
        }
        Ok(())
    }

    fn pwrite(&self, buf: &[u8], at: u64) -> std::result::Result<(), AppendError> {
        let Err(e) = write_all_at(self.io.as_ref(), &self.file, buf, at) else {
            return Ok(());
        };
        // Part of the batch may be on disk past `len`. Zero it, so that a later shorter
        // append cannot leave failed records behind it; if even that fails, the tail is
        // suspect and the namespace stops writing until restart.
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let tail_clean = buf.chunks(ZEROS.len()).enumerate().all(|(i, c)| {
            let off = at + (i * ZEROS.len()) as u64;
            write_all_at(self.io.as_ref(), &self.file, &ZEROS[..c.len()], off).is_ok()
        });
        Err(AppendError {
            error: Error::Io {
                path: self.path.clone(),
                source: e,
            },
            tail_clean,
        })
    }

    /// Cuts the file back to the data it holds (dropping preallocated zeros) and syncs it:
    /// done when a segment is sealed or closed.
    pub fn seal(&self) -> Result<()> {
        let len = self.len();
        if self.allocated.load(Ordering::Relaxed) != len {
            self.io.set_len(&self.file, len).at(&self.path)?;
            self.allocated.store(len, Ordering::Relaxed);
        }
        self.sync()
    }

    pub fn sync(&self) -> Result<()> {
        self.io.sync_data(&self.file).at(&self.path)
    }

    /// Drops everything from `len` on: recovery's cut of a torn tail.
    pub fn truncate(&self, len: u64) -> Result<()> {
        self.len.store(len, Ordering::Release);
        self.seal()
    }
}
