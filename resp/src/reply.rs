//! What a command answers, and its bytes in RESP2 or RESP3 (the connection's `HELLO`).

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`: a status such as OK or PONG.
    Status(&'static str),
    /// `-text`: the text starts with the error code, as `ERR ...` or `NOAUTH ...`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// The absent value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    Array(Vec<Reply>),
    /// Key-value pairs: `%` in RESP3, a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(format!("ERR {}", text.into()))
    }

    pub fn bulk(s: impl Into<Bytes>) -> Reply {
        Reply::Bulk(s.into())
    }

    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Appends the reply's bytes in protocol version `proto` (2 or 3).
    pub fn write(&self, out: &mut Vec<u8>, proto: u8) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            // An error's text is one line: a stray CR or LF would end the reply early.
            Reply::Error(e) => {
                let clean: String = e
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                line(out, b'-', clean.as_bytes())
            }
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for i in items {
                    i.write(out, proto);
                }
            }
            Reply::Map(pairs) => {
                let (mark, n) = match proto >= 3 {
                    true => (b'%', pairs.len()),
                    false => (b'*', pairs.len() * 2),
                };
                line(out, mark, n.to_string().as_bytes());
                for (k, v) in pairs {
                    k.write(out, proto);
                    v.write(out, proto);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, mark: u8, body: &[u8]) {
    out.push(mark);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &Reply, proto: u8) -> Vec<u8> {
        let mut out = Vec::new();
        r.write(&mut out, proto);
        out
    }

    #[test]
    fn replies_in_both_protocols() {
        assert_eq!(bytes(&Reply::Status("OK"), 2), b"+OK\r\n");
        assert_eq!(bytes(&Reply::err("no\r\nway"), 2), b"-ERR no  way\r\n");
        assert_eq!(bytes(&Reply::Int(-3), 2), b":-3\r\n");
        assert_eq!(bytes(&Reply::text("hi"), 3), b"$2\r\nhi\r\n");
        assert_eq!(bytes(&Reply::Nil, 2), b"$-1\r\n");
        assert_eq!(bytes(&Reply::Nil, 3), b"_\r\n");
        let a = Reply::Array(vec![Reply::Int(1), Reply::Nil]);
        assert_eq!(bytes(&a, 2), b"*2\r\n:1\r\n$-1\r\n");
        let m = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(bytes(&m, 2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(bytes(&m, 3), b"%1\r\n$1\r\na\r\n:1\r\n");
    }
}
