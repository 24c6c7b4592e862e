//! The fixed header every store file starts with: magic, version, file-specific
//! little-endian fields, and a crc32 of everything before it.
//!
//! ```text
//! 0   8  magic
//! 8   4  version (u32 LE)
//! 12  4  reserved, 0
//! 16  8  field 0 (u64 LE)  ... field 5 at 56
//! 64  4  crc32 of bytes 0..64
//! 68     end (HEADER_LEN)
//! ```

use std::path::Path;

use crate::error::{Error, Result};

pub const HEADER_LEN: usize = 68;
pub const FIELDS: usize = 6;
const FIELDS_AT: usize = 16;
const CRC_AT: usize = FIELDS_AT + FIELDS * 8;

pub fn encode(magic: &[u8; 8], version: u32, fields: [u64; FIELDS]) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(magic);
    b[8..12].copy_from_slice(&version.to_le_bytes());
    for (i, f) in fields.iter().enumerate() {
        let at = FIELDS_AT + i * 8;
        b[at..at + 8].copy_from_slice(&f.to_le_bytes());
    }
    let crc = crc32fast::hash(&b[..CRC_AT]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks magic, version and crc, naming the file and the mismatch.
pub fn decode(path: &Path, bytes: &[u8], magic: &[u8; 8], version: u32) -> Result<[u64; FIELDS]> {
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "header is {} bytes, expected {HEADER_LEN}",
            bytes.len()
        )));
    }
    if &bytes[..8] != magic {
        return Err(bad(format!(
            "bad magic {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[..8]),
            String::from_utf8_lossy(magic)
        )));
    }
    let crc = u32::from_le_bytes(bytes[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&bytes[..CRC_AT]) {
        return Err(bad("header checksum mismatch".into()));
    }
    let v = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if v != version {
        return Err(bad(format!(
            "format version {v}, this build reads version {version}"
        )));
    }
    let mut fields = [0u64; FIELDS];
    for (i, f) in fields.iter_mut().enumerate() {
        let at = FIELDS_AT + i * 8;
        *f = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    }
    Ok(fields)
}

/// Opens an existing store file read-write and checks its header; returns the file and
/// the header's fields.
pub fn open_checked(
    path: &Path,
    magic: &[u8; 8],
    version: u32,
) -> Result<(std::fs::File, [u64; FIELDS])> {
    use crate::error::IoContext;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    let mut hdr = [0u8; HEADER_LEN];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut hdr, 0).at(path)?;
    let fields = decode(path, &hdr[..n], magic, version)?;
    Ok((file, fields))
}

/// Creates (or truncates) a store file and writes its header through the seam.
pub fn create(
    io: &dyn crate::io::Io,
    path: &Path,
    magic: &[u8; 8],
    version: u32,
    fields: [u64; FIELDS],
) -> Result<std::fs::File> {
    use crate::error::IoContext;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at(path)?;
    crate::io::write_all_at(io, &file, &encode(magic, version, fields), 0).at(path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_flipped_bit() {
        let p = Path::new("f");
        let b = encode(b"DSTTEST\0", 3, [1, 2, 3, 4, 5, u64::MAX]);
        assert_eq!(
            decode(p, &b, b"DSTTEST\0", 3).unwrap(),
            [1, 2, 3, 4, 5, u64::MAX]
        );
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(p, &c, b"DSTTEST\0", 3).is_err(), "bit {bit}");
        }
        assert!(decode(p, &b, b"DSTTEST\0", 4).is_err());
        assert!(decode(p, &b[..10], b"DSTTEST\0", 3).is_err());
    }
}
