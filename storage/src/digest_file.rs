//! `DIGEST`: the anti-entropy leaf digests as a clean close left them, so that a clean
//! restart needs no rebuild scan. Trusted only when it names the same log position and
//! index generation as a clean checkpoint; after a crash the scan rebuilds them.
//!
//! ```text
//! 0    68        header: magic "DSTDGST\0", fields [position, index generation, leaves]
//! 68   8·leaves  leaf digests, u64 little-endian
//! ..   4         crc32 of the leaf digests
//! ```

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::header::{self, FileHeader, HEADER_LEN};
use crate::io::Io;

pub const FILE: &str = "DIGEST";

struct DigestHeader {
    position: u64,
    index_gen: u64,
    leaves: u64,
}

impl FileHeader for DigestHeader {
    const MAGIC: &'static [u8; 8] = b"DSTDGST\0";
    const VERSION: u32 = 1;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.position, self.index_gen, self.leaves, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 3)?;
        Ok(Self {
            position: f[0],
            index_gen: f[1],
            leaves: f[2],
        })
    }
}

pub fn write(io: &dyn Io, dir: &Path, position: u64, index_gen: u64, leaves: &[u64]) -> Result<()> {
    let hdr = header::encode(&DigestHeader {
        position,
        index_gen,
        leaves: leaves.len() as u64,
    });
    let mut b = Vec::with_capacity(HEADER_LEN + leaves.len() * 8 + 4);
    b.extend_from_slice(&hdr);
    for l in leaves {
        b.extend_from_slice(&l.to_le_bytes());
    }
    let crc = crc32fast::hash(&b[HEADER_LEN..]);
    b.extend_from_slice(&crc.to_le_bytes());
    write_atomic(io, &dir.join(FILE), &b)
}

/// The saved leaves if the file matches `position` and `index_gen` and holds `count`
/// intact leaves; None otherwise (the caller rebuilds).
pub fn read(dir: &Path, position: u64, index_gen: u64, count: usize) -> Result<Option<Vec<u64>>> {
    let path = dir.join(FILE);
    let b = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    let h: DigestHeader = match header::decode(&path, &b) {
        Ok(h) => h,
        Err(Error::BadFile { reason, .. }) => {
            tracing::warn!(path = %path.display(), "ignoring the saved digest: {reason}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let body = &b[HEADER_LEN..];
    if h.position != position
        || h.index_gen != index_gen
        || h.leaves != count as u64
        || body.len() != count * 8 + 4
    {
        return Ok(None);
    }
    let (leaves, crc) = body.split_at(count * 8);
    if crc != crc32fast::hash(leaves).to_le_bytes() {
        tracing::warn!(path = %path.display(), "ignoring the saved digest: checksum mismatch");
        return Ok(None);
    }
    Ok(Some(
        leaves
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    ))
}
