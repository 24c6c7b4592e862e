//! The backup file: portable (little-endian, no pointers), checksummed block by block,
//! and complete only with its end block.
//!
//! ```text
//! header  "DSTBAK\0\0" | version u32 = 1 | reserved u32 = 0
//!         | started_ms u64 (the backup's start, Unix ms) | crc32 u32 of the 24 bytes before
//! block   len u32 (of kind and payload) | kind u8 | payload | crc32 u32 of kind and payload
//!   1 namespace  name_len u16 | name | count_retention u32 | max_bytes u64 | default_ttl u32
//!   2 records    count u32, then per record: key_len u32 | key | value_len u32 | value
//!                | expires_at u64 (Unix s, 0: never) | version ts u64 | version writer u64
//!                (of the last namespace block)
//!   3 end        namespaces u64 | records u64 | finished_ms u64
//! ```
//! Nothing follows the end block. A reader checks each block's length, checksum and
//! fields before using it, and names the offset of the first that fails.

use dstash_cluster::Version;
use dstash_proto::Bytes;

pub const MAGIC: &[u8; 8] = b"DSTBAK\0\0";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 4;
/// The largest block a reader accepts: a record block is cut well below it.
pub const MAX_BLOCK: u32 = 256 << 20;

pub const NAMESPACE: u8 = 1;
pub const RECORDS: u8 = 2;
pub const END: u8 = 3;

/// A namespace and the settings it is restored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceBlock {
    pub name: String,
    pub count_retention: u32,
    pub max_bytes: u64,
    pub default_ttl: u32,
}

/// One key as backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub value: Bytes,
    /// Unix seconds; 0: never expires.
    pub expires_at: u64,
    pub version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndBlock {
    pub namespaces: u64,
    pub records: u64,
    pub finished_ms: u64,
}

pub fn header(started_ms: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&started_ms.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// The header's start time, or what is wrong with it.
pub fn parse_header(b: &[u8]) -> Result<u64, String> {
    if b.len() < HEADER_LEN {
        return Err(format!(
            "the header is {} bytes, expected {HEADER_LEN}",
            b.len()
        ));
    }
    if &b[..8] != MAGIC {
        return Err("not a dstash backup (bad magic)".into());
    }
    let mut r = Reader(&b[8..HEADER_LEN]);
    let (version, reserved, started) = (r.u32()?, r.u32()?, r.u64()?);
    if r.u32()? != crc32fast::hash(&b[..HEADER_LEN - 4]) {
        return Err("the header's checksum does not match".into());
    }
    if version != VERSION {
        return Err(format!(
            "format version {version}; this build reads {VERSION}"
        ));
    }
    if reserved != 0 {
        return Err("reserved header bytes are not 0".into());
    }
    Ok(started)
}

/// A block, framed: length, kind, payload, checksum.
pub fn block(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 9);
    b.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    b.push(kind);
    b.extend_from_slice(payload);
    let crc = crc32fast::hash(&b[4..]);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

pub fn namespace_payload(n: &NamespaceBlock) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(n.name.len() as u16).to_le_bytes());
    b.extend_from_slice(n.name.as_bytes());
    b.extend_from_slice(&n.count_retention.to_le_bytes());
    b.extend_from_slice(&n.max_bytes.to_le_bytes());
    b.extend_from_slice(&n.default_ttl.to_le_bytes());
    b
}

pub fn records_payload(records: &[Record]) -> Vec<u8> {
    let size: usize = records
        .iter()
        .map(|r| r.key.len() + r.value.len() + 32)
        .sum();
    let mut b = Vec::with_capacity(size + 4);
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        b.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        b.extend_from_slice(&r.key);
        b.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
        b.extend_from_slice(&r.value);
        b.extend_from_slice(&r.expires_at.to_le_bytes());
        b.extend_from_slice(&r.version.ts.to_le_bytes());
        b.extend_from_slice(&r.version.writer.to_le_bytes());
    }
    b
}

pub fn end_payload(e: &EndBlock) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&e.namespaces.to_le_bytes());
    b.extend_from_slice(&e.records.to_le_bytes());
    b.extend_from_slice(&e.finished_ms.to_le_bytes());
    b
}

/// A block's payload, read field by field; each read fails with what was short.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{n} bytes wanted, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        self.take(n)
    }
    pub fn done(&self) -> Result<(), String> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(format!("{} bytes past the block's fields", self.0.len())),
        }
    }
}

pub fn parse_namespace(p: &[u8]) -> Result<NamespaceBlock, String> {
    let mut r = Reader(p);
    let len = r.u16()? as usize;
    let name = std::str::from_utf8(r.bytes(len)?)
        .map_err(|_| "a namespace name that is not UTF-8".to_string())?
        .to_string();
    let n = NamespaceBlock {
        name,
        count_retention: r.u32()?,
        max_bytes: r.u64()?,
        default_ttl: r.u32()?,
    };
    r.done()?;
    Ok(n)
}

pub fn parse_records(p: &[u8]) -> Result<Vec<Record>, String> {
    let mut r = Reader(p);
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(p.len() / 32));
    for _ in 0..count {
        let klen = r.u32()? as usize;
        let key = Bytes::copy_from_slice(r.bytes(klen)?);
        let vlen = r.u32()? as usize;
        let value = Bytes::copy_from_slice(r.bytes(vlen)?);
        let expires_at = r.u64()?;
        let version = Version::new(r.u64()?, r.u64()?);
        out.push(Record {
            key,
            value,
            expires_at,
            version,
        });
    }
    r.done()?;
    Ok(out)
}

pub fn parse_end(p: &[u8]) -> Result<EndBlock, String> {
    let mut r = Reader(p);
    let e = EndBlock {
        namespaces: r.u64()?,
        records: r.u64()?,
        finished_ms: r.u64()?,
    };
    r.done()?;
    Ok(e)
}
