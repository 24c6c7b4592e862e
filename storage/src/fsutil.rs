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
