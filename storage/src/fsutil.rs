//! Small filesystem helpers shared by every file kind.

use std::fs::File;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::io::{write_all_at, Io};

/// Makes a directory's entries (creates, renames, removes) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces `path` with `bytes` atomically: write a temporary, sync it, rename, sync the directory.
pub fn write_atomic(io: &dyn Io, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).at(&tmp)?;
    write_all_at(io, &file, bytes, 0).at(&tmp)?;
    io.sync_data(&file).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a file, treating "already gone" as done.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.at(path),
    }
}

/// Maps `[ptr, ptr + len)` of a shared file mapping writable in one call (Linux 5.14+'s
/// MADV_POPULATE_WRITE) instead of two page faults per page on first write. Best effort:
/// on older kernels the pages just fault in as they are touched.
pub fn populate_write(ptr: *mut u8, len: usize) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let page = 4096;
    let start = (ptr as usize) & !(page - 1);
    let end = ptr as usize + len;
    // SAFETY: advisory call on a range inside a live mapping owned by the caller; it
    // changes no contents (the file's blocks are already allocated).
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, MADV_POPULATE_WRITE);
    }
}

/// Extends `file` from `from` to `to` with zeros written through the seam. Writing whole
/// pages creates them in the page cache far more cheaply than faulting in fallocated
/// (unwritten) extents, and a full disk shows up here as ENOSPC, never later as SIGBUS.
pub fn zero_fill(io: &dyn Io, file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(ZEROS.len());
        write_all_at(io, file, &ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
