//! Reading commands off a connection's buffer: RESP arrays of bulk strings, as every
//! client library sends, and inline commands (a line of words), as `redis-cli` in a
//! terminal and `telnet` send. Pipelining falls out: the connection parses every
//! complete command the buffer holds before it answers.
//!
//! A frame that breaks the protocol, or a length past the limits, is an error the
//! connection answers and then closes on, as Redis does; half a frame waits for more.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command, and longest header line of a frame.
pub const MAX_INLINE: usize = 64 * 1024;
/// Most arguments one command may carry.
pub const MAX_ARGS: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: invalid multibulk length")]
    BadArrayLen,
    #[error("Protocol error: invalid bulk length")]
    BadBulkLen,
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: expected CRLF after a bulk string")]
    MissingCrlf,
}

/// Parses one command from the front of `buf`, taking its bytes: Ok(None) when the
/// buffer holds no complete command yet. `max_bulk` bounds each argument's length.
pub fn command(buf: &mut BytesMut, max_bulk: usize) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        match buf.first() {
            None => return Ok(None),
            Some(b'*') => return array(buf, max_bulk),
            // Empty lines between inline commands are skipped, as Redis does.
            Some(b'\r' | b'\n') => buf.advance(1),
            Some(_) => {
                let Some(args) = inline(buf)? else {
                    return Ok(None);
                };
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }
}

/// The line at the front of `b` (without its CRLF) and the bytes it takes, if complete.
fn line(b: &[u8]) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    match b.iter().position(|&c| c == b'\n') {
        Some(i) => {
            let end = if i > 0 && b[i - 1] == b'\r' { i - 1 } else { i };
            Ok(Some((&b[..end], i + 1)))
        }
        None if b.len() > MAX_INLINE => Err(ProtocolError::InlineTooBig),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn array(buf: &mut BytesMut, max_bulk: usize) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((head, mut at)) = line(buf)? else {
        return Ok(None);
    };
    let n = number(&head[1..]).ok_or(ProtocolError::BadArrayLen)?;
    if n > MAX_ARGS as i64 {
        return Err(ProtocolError::BadArrayLen);
    }
    if n <= 0 {
        buf.advance(at);
        return Ok(Some(Vec::new()));
    }
    // First find where every argument lies; take nothing until the command is whole.
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let rest = &buf[at..];
        let Some(&first) = rest.first() else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedBulk(first as char));
        }
        let Some((h, used)) = line(rest)? else {
            return Ok(None);
        };
        let len = number(&h[1..]).ok_or(ProtocolError::BadBulkLen)?;
        if len < 0 || len as u64 > max_bulk as u64 {
            return Err(ProtocolError::BadBulkLen);
        }
        let (start, len) = (at + used, len as usize);
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        spans.push((start, len));
        at = start + len + 2;
    }
    let frame = buf.split_to(at).freeze();
    Ok(Some(
        spans
            .into_iter()
            .map(|(s, l)| frame.slice(s..s + l))
            .collect(),
    ))
}

fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((text, used)) = line(buf)? else {
        return Ok(None);
    };
    let args = split_words(text)?;
    buf.advance(used);
    Ok(Some(args))
}

/// Splits an inline command into words: blanks separate them; "double" quotes allow
/// blanks and `\n`, `\t`, `\\`, `\"` and `\xHH` escapes; 'single' quotes are literal.
fn split_words(text: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < text.len() {
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == text.len() {
            break;
        }
        let mut w = Vec::new();
        match text[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let Some(&c) = text.get(i) else {
                        return Err(ProtocolError::UnbalancedQuotes);
                    };
                    i += 1;
                    match c {
                        c if c == q => break,
                        b'\\' if q == b'"' => i = escape(text, i, &mut w),
                        c => w.push(c),
                    }
                }
                if text.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            _ => {
                while i < text.len() && !text[i].is_ascii_whitespace() {
                    w.push(text[i]);
                    i += 1;
                }
            }
        }
        words.push(Bytes::from(w));
    }
    Ok(words)
}

/// Decodes the escape after a backslash at `text[i]`; returns where the word goes on.
fn escape(text: &[u8], i: usize, w: &mut Vec<u8>) -> usize {
    let hex = |b: u8| (b as char).to_digit(16);
    match text.get(i) {
        Some(b'n') => w.push(b'\n'),
        Some(b'r') => w.push(b'\r'),
        Some(b't') => w.push(b'\t'),
        Some(b'x') => {
            if let (Some(h), Some(l)) = (
                text.get(i + 1).and_then(|&b| hex(b)),
                text.get(i + 2).and_then(|&b| hex(b)),
            ) {
                w.push((h * 16 + l) as u8);
                return i + 3;
            }
            w.push(b'x');
        }
        Some(&c) => w.push(c),
        None => return i,
    }
    i + 1
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
