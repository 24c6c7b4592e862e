//! Data records: what a segment is a sequence of.
//!
//! ```text
//! 0   4  crc32 of bytes 4..end
//! 4   1  kind: 1 put, 2 delete
//! 5   1  reserved, 0
//! 6   2  key length (u16 LE, >= 1)
//! 8   4  value length (u32 LE; 0 for a delete)
//! 12  8  version timestamp (u64 LE; see `dstash_cluster::version`)
//! 20  8  version writer id (u64 LE)
//! 28  8  expires at, Unix seconds (u64 LE; 0 = never)
//! 36     key, then value
//! ```
//!
//! A delete record is a tombstone: it carries the delete's version, so an older put
//! that arrives later is refused. Its `expires at` is 0, or for a tombstone compaction
//! made from an expired put, that put's expiry (the tombstone's grace runs from it).

use dstash_cluster::Version;

use crate::le::{u16_at, u32_at, u64_at};
use crate::options::MAX_KEY_LEN;

const CRC_AT: usize = 0;
const KIND_AT: usize = CRC_AT + 4;
const RESERVED_AT: usize = KIND_AT + 1;
const KEY_LEN_AT: usize = RESERVED_AT + 1;
const VALUE_LEN_AT: usize = KEY_LEN_AT + 2;
const VERSION_TS_AT: usize = VALUE_LEN_AT + 4;
const WRITER_AT: usize = VERSION_TS_AT + 8;
const EXPIRES_AT: usize = WRITER_AT + 8;
pub const RECORD_HEADER_LEN: usize = EXPIRES_AT + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Put = 1,
    Delete = 2,
}

/// A record's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub key_len: usize,
    pub value_len: usize,
    pub version: Version,
    pub expires_at: u64,
}

impl Header {
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.key_len + self.value_len
    }

    /// True when the record has a TTL that has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }

    /// True when the record reads as deleted at `now`: a tombstone, or an expired put
    /// (TTL expiry is an implicit tombstone with the put's version).
    pub fn deleted_at(&self, now: u64) -> bool {
        self.kind == Kind::Delete || self.expired(now)
    }

    /// The Unix second from which a tombstone's grace period runs: the later of its
    /// version's time and its expiry.
    pub fn tombstone_since(&self) -> u64 {
        self.version.secs().max(self.expires_at)
    }
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the lengths it claims: a torn tail.
    Truncated,
    /// Lengths or kind make no sense.
    Malformed,
    /// The checksum does not match.
    Checksum,
}

impl DecodeError {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Truncated => "record truncated",
            Self::Malformed => "malformed record header",
            Self::Checksum => "record checksum mismatch",
        }
    }
}

/// Appends the encoded record to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    kind: Kind,
    version: Version,
    expires_at: u64,
    key: &[u8],
    value: &[u8],
) {
    debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(&version.ts.to_le_bytes());
    out.extend_from_slice(&version.writer.to_le_bytes());
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + KIND_AT..]);
    out[start + CRC_AT..start + KIND_AT].copy_from_slice(&crc.to_le_bytes());
}

/// The key of a record whose header was already checked (see [`peek_header`]); None
/// when `rec` is shorter than the key it claims.
#[inline]
pub fn key_of(rec: &[u8]) -> Option<&[u8]> {
    let klen = u16_at(rec, KEY_LEN_AT)? as usize;
    rec.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + klen)
}

pub fn encoded_len(key: &[u8], value: &[u8]) -> usize {
    RECORD_HEADER_LEN + key.len() + value.len()
}

/// Decodes the header at the start of `buf` without checking the crc.
pub fn peek_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let kind = match buf[KIND_AT] {
        1 => Kind::Put,
        2 => Kind::Delete,
        _ => return Err(DecodeError::Malformed),
    };
    let (Some(key_len), Some(value_len), Some(ts), Some(writer), Some(expires_at)) = (
        u16_at(buf, KEY_LEN_AT),
        u32_at(buf, VALUE_LEN_AT),
        u64_at(buf, VERSION_TS_AT),
        u64_at(buf, WRITER_AT),
        u64_at(buf, EXPIRES_AT),
    ) else {
        return Err(DecodeError::Truncated);
    };
    let h = Header {
        kind,
        key_len: key_len as usize,
        value_len: value_len as usize,
        version: Version::new(ts, writer),
        expires_at,
    };
    if h.key_len == 0 || buf[RESERVED_AT] != 0 || (kind == Kind::Delete && h.value_len != 0) {
        return Err(DecodeError::Malformed);
    }
    Ok(h)
}

/// Decodes and verifies the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Result<(Header, &[u8], &[u8]), DecodeError> {
    let h = peek_header(buf)?;
    let total = h.total_len();
    if buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    if u32_at(buf, CRC_AT) != Some(crc32fast::hash(&buf[KIND_AT..total])) {
        return Err(DecodeError::Checksum);
    }
    let key = &buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.key_len];
    let value = &buf[RECORD_HEADER_LEN + h.key_len..total];
    Ok((h, key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        encode(&mut b, kind, Version::new(42, 9), 7, key, value);
        b
    }

    #[test]
    fn round_trip() {
        let b = one(Kind::Put, b"key", b"value");
        assert_eq!(b.len(), encoded_len(b"key", b"value"));
        let (h, k, v) = decode(&b).unwrap();
        assert_eq!(
            (h.kind, h.version, h.expires_at),
            (Kind::Put, Version::new(42, 9), 7)
        );
        assert_eq!((k, v), (&b"key"[..], &b"value"[..]));
        let del = one(Kind::Delete, b"k", b"");
        let (h, _, v) = decode(&del).unwrap();
        assert_eq!((h.kind, v.len()), (Kind::Delete, 0));
    }

    #[test]
    fn every_truncation_is_truncated() {
        let b = one(Kind::Put, b"key", b"value");
        for cut in 0..b.len() {
            assert_eq!(
                decode(&b[..cut]).unwrap_err(),
                DecodeError::Truncated,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let b = one(Kind::Put, b"key", b"value");
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&c).is_err(), "bit {bit} not caught");
        }
    }

    #[test]
    fn zeroes_are_not_a_record() {
        assert!(decode(&[0u8; 64]).is_err());
    }
}
