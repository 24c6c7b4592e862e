//! Pins the wire contract of the messages added for operations and flat answers:
//! namespace settings' optional fields, BatchDelete, and flat BatchLookup answers.
//! Renumbering or renaming anything fails here.

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use prost::Message;

/// Protobuf key byte for a field: number << 3 | wire type (0 varint, 2 length-delimited).
fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

#[test]
fn settings_and_batch_delete_fields() {
    // Optional fields go on the wire when set, even to 0 (which lifts a bound).
    let n = NamespaceSettings {
        namespace: "a".into(),
        max_bytes: Some(0),
        default_ttl_seconds: Some(5),
        ..Default::default()
    };
    assert_eq!(
        n.encode_to_vec(),
        [tag(1, 2), 1, b'a', tag(3, 0), 0, tag(4, 0), 5]
    );
    let d = DeleteBatch {
        namespace: "a".into(),
        keys: vec![Bytes::from_static(b"k")],
        versions: vec![],
        batch_id: 3,
    };
    assert_eq!(
        d.encode_to_vec(),
        [tag(1, 2), 1, b'a', tag(2, 2), 1, b'k', tag(4, 0), 3]
    );
    let a = DeleteBatchAck {
        batch_id: 3,
        found: vec![true, false],
        stale: 1,
    };
    assert_eq!(
        a.encode_to_vec(),
        [tag(1, 0), 3, tag(2, 2), 2, 1, 0, tag(3, 0), 1]
    );
}

/// Flat batch answers: asked by field 4 of LookupBatch, answered in field 3 of
/// LookupBatchResult as columns (states bytes, packed lengths and TTLs, the values in
/// one bytes field, packed fixed64 versions).
#[test]
fn flat_lookup_fields() {
    let b = LookupBatch {
        namespace: "a".into(),
        keys: vec![],
        batch_id: 0,
        flat: true,
    };
    assert_eq!(b.encode_to_vec(), [tag(1, 2), 1, b'a', tag(4, 0), 1]);
    let f = FlatLookups {
        states: Bytes::from_static(&[1]),
        value_lens: vec![2],
        values: Bytes::from_static(b"vv"),
        ttl_seconds: vec![3],
        version_ts: vec![5],
        version_writer: vec![6],
    };
    let mut want = vec![tag(1, 2), 1, 1, tag(2, 2), 1, 2, tag(3, 2), 2, b'v', b'v'];
    want.extend([tag(4, 2), 1, 3, tag(5, 2), 8, 5, 0, 0, 0, 0, 0, 0, 0]);
    want.extend([tag(6, 2), 8, 6, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(f.encode_to_vec(), want);
    let r = LookupBatchResult {
        batch_id: 0,
        results: vec![],
        flat: Some(FlatLookups::default()),
    };
    assert_eq!(r.encode_to_vec(), [tag(3, 2), 0]);
}
