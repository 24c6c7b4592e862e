use super::*;

fn words(v: &[&str]) -> Vec<Bytes> {
    v.iter().map(|s| Bytes::from(s.to_string())).collect()
}

#[test]
fn arrays_and_inline_commands_parse_and_pipeline() {
    let mut b =
        BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a \"b c\\x41\"\r\n"[..]);
    assert_eq!(command(&mut b, 100).unwrap(), Some(words(&["GET", "k"])));
    assert_eq!(command(&mut b, 100).unwrap(), Some(words(&["PING"])));
    assert_eq!(
        command(&mut b, 100).unwrap(),
        Some(words(&["set", "a", "b cA"]))
    );
    assert_eq!(command(&mut b, 100).unwrap(), None);
    assert!(b.is_empty());
}

#[test]
fn half_a_frame_waits_and_takes_nothing() {
    let whole = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
    for cut in 0..whole.len() {
        let mut b = BytesMut::from(&whole[..cut]);
        assert_eq!(command(&mut b, 100).unwrap(), None, "cut at {cut}");
        assert_eq!(b.len(), cut, "nothing taken at {cut}");
        b.extend_from_slice(&whole[cut..]);
        assert_eq!(
            command(&mut b, 100).unwrap(),
            Some(words(&["SET", "hello"]))
        );
    }
}

#[test]
fn broken_frames_get_redis_protocol_errors() {
    let err = |s: &[u8], max| command(&mut BytesMut::from(s), max).unwrap_err();
    assert_eq!(err(b"*x\r\n", 10), ProtocolError::BadArrayLen);
    assert_eq!(err(b"*99999999\r\n", 10), ProtocolError::BadArrayLen);
    assert_eq!(err(b"*1\r\n+OK\r\n", 10), ProtocolError::ExpectedBulk('+'));
    assert_eq!(err(b"*1\r\n$-2\r\n", 10), ProtocolError::BadBulkLen);
    assert_eq!(
        err(b"*1\r\n$11\r\n", 10),
        ProtocolError::BadBulkLen,
        "past the limit"
    );
    assert_eq!(err(b"*1\r\n$2\r\nabcd\r\n", 10), ProtocolError::MissingCrlf);
    assert_eq!(err(b"set a \"b\r\n", 10), ProtocolError::UnbalancedQuotes);
    let long = vec![b'a'; MAX_INLINE + 1];
    assert_eq!(err(&long, 10), ProtocolError::InlineTooBig);
    assert!(ProtocolError::BadBulkLen
        .to_string()
        .starts_with("Protocol error"));
}

#[test]
fn empty_arrays_and_blank_lines_are_skipped_as_nothing() {
    let mut b = BytesMut::from(&b"*0\r\n"[..]);
    assert_eq!(command(&mut b, 10).unwrap(), Some(vec![]));
    let mut b = BytesMut::from(&b"\r\n\r\n   \r\n"[..]);
    assert_eq!(command(&mut b, 10).unwrap(), None);
    assert!(b.is_empty());
}
