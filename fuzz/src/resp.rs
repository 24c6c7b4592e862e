//! The `resp` target: any bytes as what a Redis client sent.

use bytes::BytesMut;
use dstash_resp::parse;

const MAX_BULK: usize = 1 << 16;

/// Parses commands until the input runs out or breaks the protocol. Never panics; a
/// command takes bytes; each command written back as a RESP array parses to itself.
pub fn resp(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match parse::command(&mut buf, MAX_BULK) {
            Ok(Some(args)) => {
                assert!(buf.len() < before, "a command took no bytes");
                let mut again = BytesMut::from(&array(&args)[..]);
                let back = parse::command(&mut again, MAX_BULK);
                assert_eq!(back, Ok(Some(args)), "no round trip");
                assert!(again.is_empty(), "a round trip left bytes");
            }
            Ok(None) => {
                assert!(buf.len() <= before);
                return;
            }
            Err(_) => return,
        }
    }
}

fn array(args: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec(),
        b"PING\r\nset a \"b c\\x41\\n\" 'd e'\r\n\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n$10\r\nabc".to_vec(),
        b"*0\r\n*1\r\n$-1\r\n".to_vec(),
    ]
}
