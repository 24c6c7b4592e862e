//! The count log. Every write to the count tables is appended here first, as the
//! values of the cells it leaves ([`CellImage`]), and made durable once per group
//! commit; the tables themselves are written back only at checkpoints. Replay applies
//! every record after the checkpoint again: images, unlike increments, leave what the
//! writes left whatever the tables already hold, so nothing is counted twice.
//!
//! ```text
//! log-<seq>.clg: header (magic "DSTCLOG\0", version 1, fields [seq]), then records:
//! 0   4  body length (u32 LE)
//! 4   4  crc32 of the body
//! 8      body, one of:
//!          1 (cells)   key length u16, key, last touch u64, image count u8,
//!                      images x (resolution u32, period u64, value u32)
//!          2 (request) id length u8, id, fingerprint u64, Unix second u64
//! ```
//! A record cut short, or failing its crc, ends the log: the torn tail of a crash.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::schedule::CellImage;
use crate::error::{IoContext, Result};
use crate::header::{self, HEADER_LEN};
use crate::io::{write_all_at, Io};
use crate::le::{u16_at, u32_at, u64_at};

const CELLS: u8 = 1;
const REQUEST: u8 = 2;
const FRAME: usize = 8;
const IMAGE_LEN: usize = 16;
/// Longest request id a record holds.
pub const MAX_REQUEST_ID: usize = 255;

struct LogHeader {
    seq: u64,
}

impl header::FileHeader for LogHeader {
    const MAGIC: &'static [u8; 8] = b"DSTCLOG\0";
    const VERSION: u32 = 1;
    fn to_fields(&self) -> [u64; header::FIELDS] {
        [self.seq, 0, 0, 0, 0, 0]
    }
    fn from_fields(f: [u64; header::FIELDS]) -> std::result::Result<Self, String> {
        header::check_unused(&f, 1)?;
        Ok(Self { seq: f[0] })
    }
}

pub fn file_name(seq: u64) -> String {
    format!("log-{seq:012}.clg")
}

pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?
        .strip_suffix(".clg")?
        .parse()
        .ok()
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Cells {
        key: Vec<u8>,
        last: u64,
        images: Vec<CellImage>,
    },
    Request {
        id: String,
        fingerprint: u64,
        at: u64,
    },
}

/// Appends a cells record to `buf`.
pub fn put_cells(buf: &mut Vec<u8>, key: &[u8], last: u64, images: &[CellImage]) {
    frame(buf, |b| {
        b.push(CELLS);
        b.extend_from_slice(&(key.len() as u16).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&last.to_le_bytes());
        b.push(images.len() as u8);
        for im in images {
            b.extend_from_slice(&im.res.to_le_bytes());
            b.extend_from_slice(&im.period.to_le_bytes());
            b.extend_from_slice(&im.value.to_le_bytes());
        }
    });
}

/// Appends a request record to `buf`; the caller has checked the id's length.
pub fn put_request(buf: &mut Vec<u8>, id: &str, fingerprint: u64, at: u64) {
    frame(buf, |b| {
        b.push(REQUEST);
        b.push(id.len().min(MAX_REQUEST_ID) as u8);
        b.extend_from_slice(&id.as_bytes()[..id.len().min(MAX_REQUEST_ID)]);
        b.extend_from_slice(&fingerprint.to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
    });
}

fn frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; FRAME]);
    body(buf);
    let len = (buf.len() - at - FRAME) as u32;
    let crc = crc32fast::hash(&buf[at + FRAME..]);
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    buf[at + 4..at + FRAME].copy_from_slice(&crc.to_le_bytes());
}

fn decode(b: &[u8]) -> Option<Record> {
    match *b.first()? {
        CELLS => {
            let klen = u16_at(b, 1)? as usize;
            let key = b.get(3..3 + klen)?.to_vec();
            let last = u64_at(b, 3 + klen)?;
            let n = *b.get(11 + klen)? as usize;
            let images = (0..n)
                .map(|i| {
                    let at = 12 + klen + i * IMAGE_LEN;
                    Some(CellImage {
                        res: u32_at(b, at)?,
                        period: u64_at(b, at + 4)?,
                        value: u32_at(b, at + 12)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Record::Cells { key, last, images })
        }
        REQUEST => {
            let n = *b.get(1)? as usize;
            let id = String::from_utf8(b.get(2..2 + n)?.to_vec()).ok()?;
            Some(Record::Request {
                id,
                fingerprint: u64_at(b, 2 + n)?,
                at: u64_at(b, 10 + n)?,
            })
        }
        _ => None,
    }
}

/// Every record of the log at `path` up to its torn tail, if any, and the file's seq.
pub fn read(path: &Path) -> Result<(u64, Vec<Record>)> {
    let bytes = std::fs::read(path).at(path)?;
    let h: LogHeader = header::decode(path, &bytes)?;
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while let (Some(len), Some(crc)) = (u32_at(&bytes, at), u32_at(&bytes, at + 4)) {
        let Some(body) = bytes.get(at + FRAME..at + FRAME + len as usize) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Some(r) = decode(body) else { break };
        out.push(r);
        at += FRAME + len as usize;
    }
    Ok((h.seq, out))
}

/// A buffered log writes once this much is held.
const FLUSH_AT: usize = 1 << 20;

/// The log file being appended to. A buffered writer (sync modes other than `Always`)
/// holds records in memory until [`FLUSH_AT`] bytes, or a [`flush`](Self::flush): the
/// background thread's every tick, a sync, a checkpoint.
pub struct Writer {
    pub seq: u64,
    path: PathBuf,
    file: Arc<File>,
    pos: u64,
    buf: Vec<u8>,
    buffered: bool,
    io: Arc<dyn Io>,
}

impl Writer {
    pub fn create(dir: &Path, seq: u64, buffered: bool, io: Arc<dyn Io>) -> Result<Self> {
        let path = dir.join(file_name(seq));
        let file = header::create(io.as_ref(), &path, &LogHeader { seq })?;
        crate::fsutil::sync_dir(dir)?;
        Ok(Self {
            seq,
            path,
            file: Arc::new(file),
            pos: HEADER_LEN as u64,
            buf: Vec::new(),
            buffered,
            io,
        })
    }

    /// Appends records; an unbuffered writer has them in the file when this returns.
    /// On failure none of `records` is taken (the buffer's earlier records stay).
    pub fn append(&mut self, records: &[u8]) -> Result<()> {
        if !self.buffered || self.buf.len() + records.len() >= FLUSH_AT {
            self.flush()?;
        }
        if self.buffered {
            self.buf.extend_from_slice(records);
            return Ok(());
        }
        write_all_at(self.io.as_ref(), &self.file, records, self.pos).at(&self.path)?;
        self.pos += records.len() as u64;
        Ok(())
    }

    /// Writes what the buffer holds. On failure the records stay buffered.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write_all_at(self.io.as_ref(), &self.file, &self.buf, self.pos).at(&self.path)?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Bytes appended, header and buffer included.
    pub fn written(&self) -> u64 {
        self.pos + self.buf.len() as u64
    }

    pub fn buffered(&self) -> bool {
        self.buffered
    }

    /// What a sync needs, to run without the writer's lock (after a flush).
    pub fn handle(&self) -> (Arc<File>, PathBuf) {
        (self.file.clone(), self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealIo;

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(dir.path(), 3, false, Arc::new(RealIo)).unwrap();
        let images = vec![
            CellImage {
                res: 1,
                period: 100,
                value: 4,
            },
            CellImage {
                res: 60,
                period: 1,
                value: 9,
            },
        ];
        let mut buf = Vec::new();
        put_cells(&mut buf, b"k1", 100, &images);
        put_request(&mut buf, "req-1", 42, 100);
        put_cells(&mut buf, b"k2", 101, &[]);
        w.append(&buf).unwrap();
        let path = dir.path().join(file_name(3));
        let (seq, got) = read(&path).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Record::Cells {
                key: b"k1".to_vec(),
                last: 100,
                images
            }
        );
        assert_eq!(
            got[1],
            Record::Request {
                id: "req-1".into(),
                fingerprint: 42,
                at: 100
            }
        );
        // Every cut of the last record, and a flipped byte in it, leaves the first two.
        let full = std::fs::read(&path).unwrap();
        let mut tail = Vec::new();
        put_cells(&mut tail, b"k2", 101, &[]);
        let last_len = tail.len();
        for cut in 1..last_len {
            std::fs::write(&path, &full[..full.len() - cut]).unwrap();
            assert_eq!(read(&path).unwrap().1.len(), 2, "cut {cut}");
        }
        let mut flipped = full.clone();
        let n = flipped.len();
        flipped[n - 2] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(read(&path).unwrap().1.len(), 2);
    }
}
