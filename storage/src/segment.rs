//! A data segment: one append-only file of records.
//!
//! Appends go through the [`Io`] seam with `pwrite`; reads go through a read-only
//! mapping sized to the segment's capacity, so the mapping never moves as the file grows.
//! Invariant: bytes below `len` are written and never change until the file is removed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw};

use crate::error::{Error, IoContext, Result};
use crate::header::{self, HEADER_LEN};
use crate::io::{write_all_at, Io};

const MAGIC: &[u8; 8] = b"DSTSEG\0\0";
const VERSION: u32 = 1;
/// Records start right after the header.
pub const DATA_START: u64 = HEADER_LEN as u64;

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
    io: Arc<dyn Io>,
}

impl Segment {
    /// Creates an empty segment and makes its header durable.
    pub fn create(dir: &Path, id: u32, capacity: u64, io: Arc<dyn Io>) -> Result<Self> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let hdr = header::encode(MAGIC, VERSION, [id as u64, 0, 0, 0, 0, 0]);
        write_all_at(io.as_ref(), &file, &hdr, 0).at(&path)?;
        io.sync_data(&file).at(&path)?;
        crate::fsutil::sync_dir(dir)?;
        Self::map(path, file, id, capacity, DATA_START, io)
    }

    /// Opens an existing segment; `len` is its file length until recovery says otherwise.
    pub fn open(path: &Path, capacity: u64, io: Arc<dyn Io>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .at(path)?;
        let file_len = file.metadata().at(path)?.len();
        let mut hdr = [0u8; HEADER_LEN];
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut hdr, 0).at(path)?;
        let fields = header::decode(path, &hdr[..n], MAGIC, VERSION)?;
        let id = u32::try_from(fields[0]).map_err(|_| Error::BadFile {
            path: path.to_path_buf(),
            reason: "segment id out of range".into(),
        })?;
        if file_len > capacity {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "segment is {file_len} bytes, larger than the segment size {capacity}"
                ),
            });
        }
        Self::map(path.to_path_buf(), file, id, capacity, file_len, io)
    }

    fn map(
        path: PathBuf,
        file: File,
        id: u32,
        capacity: u64,
        len: u64,
        io: Arc<dyn Io>,
    ) -> Result<Self> {
        let map_len = usize::try_from(capacity).map_err(|_| Error::BadFile {
            path: path.clone(),
            reason: "segment size does not fit in memory addresses".into(),
        })?;
        // The mapping may extend past EOF; only bytes below `len` are ever touched.
        let map = MmapOptions::new()
            .len(map_len)
            .map_raw_read_only(&file)
            .at(&path)?;
        let _ = map.advise(Advice::Random);
        Ok(Self {
            id,
            path,
            file,
            map,
            capacity,
            len: AtomicU64::new(len),
            io,
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
    /// A failed write is cut back off the file; the error says whether that worked.
    pub fn append(&self, buf: &[u8]) -> std::result::Result<u64, AppendError> {
        let at = self.len();
        debug_assert!(at + buf.len() as u64 <= self.capacity);
        if let Err(e) = write_all_at(self.io.as_ref(), &self.file, buf, at) {
            let clean = self.io.set_len(&self.file, at).is_ok();
            return Err(AppendError {
                error: Error::Io {
                    path: self.path.clone(),
                    source: e,
                },
                tail_clean: clean,
            });
        }
        self.len.store(at + buf.len() as u64, Ordering::Release);
        Ok(at)
    }

    pub fn sync(&self) -> Result<()> {
        self.io.sync_data(&self.file).at(&self.path)
    }

    /// Drops everything from `len` on: recovery's cut of a torn tail.
    pub fn truncate(&self, len: u64) -> Result<()> {
        self.io.set_len(&self.file, len).at(&self.path)?;
        self.io.sync_data(&self.file).at(&self.path)?;
        self.len.store(len, Ordering::Release);
        Ok(())
    }
}
