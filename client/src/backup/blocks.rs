//! Reading a backup block by block from any reader, checking each frame; errors
//! name the byte offset of the block that failed.

use std::io::Read;

use super::format::{self, MAX_BLOCK};
use crate::error::{Error, Result};

pub struct Blocks<R> {
    src: R,
    /// Offset of the next block.
    pub offset: u64,
    /// The backup's start, from its header.
    pub started_ms: u64,
}

fn bad(offset: u64, reason: impl Into<String>) -> Error {
    Error::BadBackup {
        offset,
        reason: reason.into(),
    }
}

/// Reads exactly `buf.len()` bytes; how many came before the end when fewer did.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Blocks<R> {
    /// Checks the header.
    pub fn open(mut src: R) -> Result<Self> {
        let mut h = [0u8; format::HEADER_LEN];
        let n = fill(&mut src, &mut h).map_err(|e| bad(0, e.to_string()))?;
        let started_ms = format::parse_header(&h[..n]).map_err(|why| bad(0, why))?;
        Ok(Blocks {
            src,
            offset: format::HEADER_LEN as u64,
            started_ms,
        })
    }

    /// The next block's offset, kind and payload, checked; None at the end of input.
    pub fn next_block(&mut self) -> Result<Option<(u64, u8, Vec<u8>)>> {
        let at = self.offset;
        let io = |e: std::io::Error| bad(at, e.to_string());
        let mut head = [0u8; 5];
        match fill(&mut self.src, &mut head).map_err(io)? {
            0 => return Ok(None),
            5 => {}
            n => return Err(bad(at, format!("cut short: {n} bytes of a block's frame"))),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let kind = head[4];
        if len == 0 || len > MAX_BLOCK {
            return Err(bad(at, format!("a block length of {len} bytes")));
        }
        let payload_len = len as usize - 1;
        let mut body = vec![0u8; payload_len + 4];
        let n = fill(&mut self.src, &mut body).map_err(io)?;
        if n < body.len() {
            return Err(bad(
                at,
                format!("cut short: {n} of {} bytes of a block", body.len()),
            ));
        }
        let crc = &body[payload_len..];
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(&body[..payload_len]);
        if crc != h.finalize() {
            return Err(bad(at, "a block's checksum does not match"));
        }
        self.offset += 5 + body.len() as u64;
        body.truncate(payload_len);
        Ok(Some((at, kind, body)))
    }
}
