//! The fixed header every store file starts with: magic, version, file-specific
//! little-endian fields, and a crc32 of everything before it.
//!
//! ```text
//! 0   8  magic
//! 8   4  version (u32 LE)
//! 12  4  reserved, 0
//! 16  8  field 0 (u64 LE)  ... field 5 at 56; a file kind's unused fields are 0
//! 64  4  crc32 of bytes 0..64
//! 68     end (HEADER_LEN)
//! ```
//!
//! Each file kind names its fields in a struct that implements [`FileHeader`].

use std::fs::File;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::le::{u32_at, u64_at};

pub const FIELDS: usize = 6;
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const RESERVED_AT: usize = VERSION_AT + 4;
const FIELDS_AT: usize = RESERVED_AT + 4;
const CRC_AT: usize = FIELDS_AT + FIELDS * 8;
pub const HEADER_LEN: usize = CRC_AT + 4;

/// One file kind's header: its magic, its version, and its named fields.
pub trait FileHeader: Sized {
    const MAGIC: &'static [u8; 8];
    const VERSION: u32;
    /// The fields in their stored order; unused ones are 0.
    fn to_fields(&self) -> [u64; FIELDS];
    /// The header from stored fields, or which field is out of range and why.
    fn from_fields(f: [u64; FIELDS]) -> std::result::Result<Self, String>;
}

/// Fails, naming the field, unless every field from `first` on is 0.
pub fn check_unused(f: &[u64; FIELDS], first: usize) -> std::result::Result<(), String> {
    match (first..FIELDS).find(|&i| f[i] != 0) {
        Some(i) => Err(format!(
            "header field {i} is unused and must be 0, found {}",
            f[i]
        )),
        None => Ok(()),
    }
}

pub fn encode<H: FileHeader>(h: &H) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[MAGIC_AT..VERSION_AT].copy_from_slice(H::MAGIC);
    b[VERSION_AT..RESERVED_AT].copy_from_slice(&H::VERSION.to_le_bytes());
    for (i, f) in h.to_fields().iter().enumerate() {
        let at = FIELDS_AT + i * 8;
        b[at..at + 8].copy_from_slice(&f.to_le_bytes());
    }
    let crc = crc32fast::hash(&b[..CRC_AT]);
    b[CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks length, magic, crc, version and reserved bytes, naming the first mismatch,
/// and returns the raw fields.
pub fn sanity_check(
    bytes: &[u8],
    magic: &[u8; 8],
    version: u32,
) -> std::result::Result<[u64; FIELDS], String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "header is {} bytes, expected {HEADER_LEN}",
            bytes.len()
        ));
    }
    if &bytes[MAGIC_AT..VERSION_AT] != magic {
        return Err(format!(
            "bad magic {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[MAGIC_AT..VERSION_AT]),
            String::from_utf8_lossy(magic)
        ));
    }
    let read32 = |at| u32_at(bytes, at).ok_or_else(|| "header truncated".to_string());
    if read32(CRC_AT)? != crc32fast::hash(&bytes[..CRC_AT]) {
        return Err("header checksum mismatch".into());
    }
    let v = read32(VERSION_AT)?;
    if v != version {
        return Err(format!(
            "format version {v}, this build reads version {version}"
        ));
    }
    let reserved = read32(RESERVED_AT)?;
    if reserved != 0 {
        return Err(format!("reserved header bytes hold {reserved}, expected 0"));
    }
    let mut fields = [0u64; FIELDS];
    for (i, f) in fields.iter_mut().enumerate() {
        *f = u64_at(bytes, FIELDS_AT + i * 8).ok_or("header truncated")?;
    }
    Ok(fields)
}

/// Decodes and checks a header, naming the file and the mismatch.
pub fn decode<H: FileHeader>(path: &Path, bytes: &[u8]) -> Result<H> {
    sanity_check(bytes, H::MAGIC, H::VERSION)
        .and_then(H::from_fields)
        .map_err(|reason| Error::BadFile {
            path: path.to_path_buf(),
            reason,
        })
}

/// Opens an existing store file read-write and checks its header.
pub fn open_checked<H: FileHeader>(path: &Path) -> Result<(File, H)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    let mut hdr = [0u8; HEADER_LEN];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut hdr, 0).at(path)?;
    let h = decode(path, &hdr[..n])?;
    Ok((file, h))
}

/// Creates (or truncates) a store file and writes its header through the seam.
pub fn create<H: FileHeader>(io: &dyn crate::io::Io, path: &Path, h: &H) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at(path)?;
    crate::io::write_all_at(io, &file, &encode(h), 0).at(path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Test {
        a: u64,
        b: u64,
    }

    impl FileHeader for Test {
        const MAGIC: &'static [u8; 8] = b"DSTTEST\0";
        const VERSION: u32 = 3;
        fn to_fields(&self) -> [u64; FIELDS] {
            [self.a, self.b, 0, 0, 0, 0]
        }
        fn from_fields(f: [u64; FIELDS]) -> std::result::Result<Self, String> {
            check_unused(&f, 2)?;
            Ok(Test { a: f[0], b: f[1] })
        }
    }

    #[test]
    fn round_trips_and_detects_every_flipped_bit() {
        let p = Path::new("f");
        let t = Test { a: 1, b: u64::MAX };
        let b = encode(&t);
        assert_eq!(decode::<Test>(p, &b).unwrap(), t);
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode::<Test>(p, &c).is_err(), "bit {bit}");
        }
        assert!(decode::<Test>(p, &b[..10]).is_err());
    }

    #[test]
    fn names_each_mismatch() {
        let b = encode(&Test { a: 1, b: 2 });
        let reason = |bytes: &[u8]| {
            sanity_check(bytes, Test::MAGIC, 3)
                .and_then(Test::from_fields)
                .unwrap_err()
        };
        assert!(reason(&b[..10]).contains("10 bytes"));
        assert!(sanity_check(&b, Test::MAGIC, 4)
            .unwrap_err()
            .contains("version 3"));
        assert!(sanity_check(&b, b"DSTOTHER", 3)
            .unwrap_err()
            .contains("bad magic"));
        let mut c = b;
        c[0] ^= 1;
        assert!(reason(&c).contains("magic"));
        let mut d = b;
        d[FIELDS_AT] ^= 1;
        assert!(reason(&d).contains("checksum"));
        let mut f = [1, 2, 0, 0, 7, 0];
        assert!(Test::from_fields(f).unwrap_err().contains("field 4"));
        f[4] = 0;
        assert_eq!(Test::from_fields(f).unwrap(), Test { a: 1, b: 2 });
    }
}
