//! Pins the wire contract: field numbers and types as bytes on the wire, and the
//! service's method paths. Renumbering or renaming anything fails here.

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use prost::Message;

/// Protobuf key byte for a field: number << 3 | wire type (0 varint, 2 length-delimited).
fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

#[test]
fn put_request_fields() {
    let m = PutRequest {
        namespace: "ns".into(),
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        ttl_seconds: 5,
        version: None,
        hint_for: String::new(),
    };
    let want = [
        tag(1, 2),
        2,
        b'n',
        b's',
        tag(2, 2),
        1,
        b'k',
        tag(3, 2),
        1,
        b'v',
        tag(4, 0),
        5,
    ];
    assert_eq!(m.encode_to_vec(), want);
    assert_eq!(PutRequest::decode(&want[..]).unwrap(), m);
}

#[test]
fn lookup_and_delete_fields() {
    let r = LookupResponse {
        found: true,
        value: Bytes::from_static(b"x"),
        ttl_seconds: 0,
        ..Default::default()
    };
    assert_eq!(r.encode_to_vec(), [tag(1, 0), 1, tag(2, 2), 1, b'x']);
    // Added field: the remaining TTL, field 3.
    let r = LookupResponse {
        ttl_seconds: 7,
        ..r
    };
    assert_eq!(
        r.encode_to_vec(),
        [tag(1, 0), 1, tag(2, 2), 1, b'x', tag(3, 0), 7]
    );
    // Added field: a damaged record on this replica, field 4.
    let damaged = LookupResponse {
        damaged: true,
        ..LookupResponse::default()
    };
    assert_eq!(damaged.encode_to_vec(), [tag(4, 0), 1]);
    let d = DeleteRequest {
        namespace: "a".into(),
        key: Bytes::from_static(b"k"),
        version: None,
        hint_for: String::new(),
    };
    assert_eq!(d.encode_to_vec(), [tag(1, 2), 1, b'a', tag(2, 2), 1, b'k']);
    // Added field: the node a stand-in holds the write for, field 4 (field 6 of a put).
    let hinted = DeleteRequest {
        hint_for: "n2".into(),
        ..DeleteRequest::default()
    };
    assert_eq!(hinted.encode_to_vec(), [tag(4, 2), 2, b'n', b'2']);
    let hinted = PutRequest {
        hint_for: "n2".into(),
        ..PutRequest::default()
    };
    assert_eq!(hinted.encode_to_vec(), [tag(6, 2), 2, b'n', b'2']);
    assert_eq!(
        DeleteResponse {
            found: true,
            stale: false
        }
        .encode_to_vec(),
        [tag(1, 0), 1]
    );
}

#[test]
fn batch_messages_fields() {
    let b = PutBatch {
        namespace: "a".into(),
        entries: vec![Entry {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            ttl_seconds: 2,
            ..Default::default()
        }],
        batch_id: 7,
    };
    let entry = [tag(1, 2), 1, b'k', tag(2, 2), 1, b'v', tag(3, 0), 2];
    let mut want = vec![tag(1, 2), 1, b'a', tag(2, 2), entry.len() as u8];
    want.extend_from_slice(&entry);
    want.extend_from_slice(&[tag(3, 0), 7]);
    assert_eq!(b.encode_to_vec(), want);
    assert_eq!(
        PutBatchAck {
            batch_id: 7,
            written: 3,
            stale: 0
        }
        .encode_to_vec(),
        [tag(1, 0), 7, tag(2, 0), 3]
    );
    let c = CountBatch {
        namespace: "a".into(),
        keys: vec![Bytes::from_static(b"k")],
        window_seconds: 9,
        batch_id: 4,
    };
    assert_eq!(
        c.encode_to_vec(),
        [
            tag(1, 2),
            1,
            b'a',
            tag(2, 2),
            1,
            b'k',
            tag(3, 0),
            9,
            tag(4, 0),
            4
        ]
    );
    let r = CountBatchResult {
        batch_id: 1,
        counts: vec![3, 4],
    };
    // proto3 packs repeated scalars.
    assert_eq!(r.encode_to_vec(), [tag(1, 0), 1, tag(2, 2), 2, 3, 4]);
    let l = LookupBatchResult {
        batch_id: 2,
        results: vec![LookupResponse::default()],
        flat: None,
    };
    assert_eq!(l.encode_to_vec(), [tag(1, 0), 2, tag(2, 2), 0]);
}

/// Version fields added for replicas that agree: fixed64 (wire type 1) ts and writer.
#[test]
fn version_fields() {
    let v = Version {
        ts: 0x0102_0304_0506_0708,
        writer: 9,
    };
    let mut vb = vec![tag(1, 1)];
    vb.extend_from_slice(&v.ts.to_le_bytes());
    vb.push(tag(2, 1));
    vb.extend_from_slice(&9u64.to_le_bytes());
    assert_eq!(v.encode_to_vec(), vb);
    let nested = |field: u8| {
        let mut b = vec![tag(field, 2), vb.len() as u8];
        b.extend_from_slice(&vb);
        b
    };
    let put = PutRequest {
        version: Some(v),
        ..Default::default()
    };
    assert_eq!(put.encode_to_vec(), nested(5));
    assert_eq!(PutResponse { stale: true }.encode_to_vec(), [tag(1, 0), 1]);
    let del = DeleteRequest {
        version: Some(v),
        ..Default::default()
    };
    assert_eq!(del.encode_to_vec(), nested(3));
    let del = DeleteResponse {
        found: false,
        stale: true,
    };
    assert_eq!(del.encode_to_vec(), [tag(2, 0), 1]);
    let entry = Entry {
        version: Some(v),
        tombstone: true,
        ..Default::default()
    };
    let mut want = nested(4);
    want.extend_from_slice(&[tag(5, 0), 1]);
    assert_eq!(entry.encode_to_vec(), want);
    let ack = PutBatchAck {
        stale: 2,
        ..Default::default()
    };
    assert_eq!(ack.encode_to_vec(), [tag(3, 0), 2]);
    let found = LookupResponse {
        version: Some(v),
        tombstone: true,
        ..Default::default()
    };
    let mut want = nested(5);
    want.extend_from_slice(&[tag(6, 0), 1]);
    assert_eq!(found.encode_to_vec(), want);
}

#[test]
fn counter_and_listing_fields() {
    let a = AddRequest {
        namespace: "a".into(),
        key: Bytes::from_static(b"k"),
        n: 3,
        at_seconds: 7,
        request_id: "r".into(),
    };
    assert_eq!(
        a.encode_to_vec(),
        [
            tag(1, 2),
            1,
            b'a',
            tag(2, 2),
            1,
            b'k',
            tag(3, 0),
            3,
            tag(4, 0),
            7,
            tag(5, 2),
            1,
            b'r'
        ]
    );
    let b = AddBatch {
        namespace: "a".into(),
        keys: vec![],
        batch_id: 1,
        at_seconds: 2,
        request_id: "r".into(),
    };
    assert_eq!(
        b.encode_to_vec(),
        [
            tag(1, 2),
            1,
            b'a',
            tag(3, 0),
            1,
            tag(4, 0),
            2,
            tag(5, 2),
            1,
            b'r'
        ]
    );
    let n = NamespaceSettings {
        namespace: "a".into(),
        count_retention_seconds: 90,
        ..Default::default()
    };
    assert_eq!(n.encode_to_vec(), [tag(1, 2), 1, b'a', tag(2, 0), 90]);
    let c = CountRequest {
        namespace: "a".into(),
        key: Bytes::from_static(b"k"),
        window_seconds: 60,
    };
    assert_eq!(
        c.encode_to_vec(),
        [tag(1, 2), 1, b'a', tag(2, 2), 1, b'k', tag(3, 0), 60]
    );
    assert_eq!(CountResponse { count: 1 }.encode_to_vec(), [tag(1, 0), 1]);
    let k = KeysRequest {
        namespace: "a".into(),
        pattern: "*".into(),
        limit: 2,
        counters: true,
    };
    assert_eq!(
        k.encode_to_vec(),
        [
            tag(1, 2),
            1,
            b'a',
            tag(2, 2),
            1,
            b'*',
            tag(3, 0),
            2,
            tag(4, 0),
            1
        ]
    );
    assert_eq!(
        KeysChunk {
            keys: vec![Bytes::from_static(b"k")]
        }
        .encode_to_vec(),
        [tag(1, 2), 1, b'k']
    );
    let s = StatusResponse {
        node_id: "n".into(),
        keys: 1,
        disk_bytes: 2,
        ..Default::default()
    };
    assert_eq!(
        s.encode_to_vec(),
        [tag(1, 2), 1, b'n', tag(2, 0), 1, tag(3, 0), 2]
    );
}

#[test]
fn service_name_and_method_paths() {
    assert_eq!(
        dstash_proto::v1::dstash_server::SERVICE_NAME,
        "dstash.v1.Dstash"
    );
    let generated = include_str!(concat!(env!("OUT_DIR"), "/dstash.v1.rs"));
    for method in [
        "Put",
        "Lookup",
        "Delete",
        "BatchPut",
        "BatchLookup",
        "BatchDelete",
        "Add",
        "Count",
        "BatchAdd",
        "BatchCount",
        "Keys",
        "KeysPage",
        "Status",
        "Digest",
        "LeafEntries",
        "Repair",
        "MergeCounters",
        "SetNamespace",
        "GetLayout",
        "SetLayout",
        "ChangeLayout",
    ] {
        let path = format!("\"/dstash.v1.Dstash/{method}\"");
        assert!(generated.contains(&path), "missing {path}");
    }
}

#[test]
fn anti_entropy_fields() {
    let d = DigestRequest {
        namespace: "n".into(),
        partitions: vec![3],
        leaves: true,
    };
    assert_eq!(
        d.encode_to_vec(),
        [tag(1, 2), 1, b'n', tag(2, 2), 1, 3, tag(3, 0), 1]
    );
    let r = DigestResponse {
        digests: vec![7],
        ready: true,
    };
    let mut want = vec![tag(1, 2), 8];
    want.extend_from_slice(&7u64.to_le_bytes());
    want.extend_from_slice(&[tag(2, 0), 1]);
    assert_eq!(r.encode_to_vec(), want);
    let l = LeafEntriesRequest {
        namespace: "n".into(),
        leaves: vec![5],
    };
    assert_eq!(l.encode_to_vec(), [tag(1, 2), 1, b'n', tag(2, 2), 1, 5]);
    let m = MergeCountersRequest {
        namespace: "n".into(),
        keys: vec![CounterCells {
            key: Bytes::from_static(b"k"),
            seconds: vec![9],
            counts: vec![3],
            resolutions: vec![60],
        }],
        count_retention_seconds: 5,
    };
    assert_eq!(
        m.encode_to_vec(),
        [
            tag(1, 2),
            1,
            b'n',
            tag(2, 2),
            12,
            tag(1, 2),
            1,
            b'k',
            tag(2, 2),
            1,
            9,
            tag(3, 2),
            1,
            3,
            tag(4, 2),
            1,
            60,
            tag(3, 0),
            5
        ]
    );
    let e = LeafEntry {
        key: Bytes::from_static(b"k"),
        version: None,
        tombstone: true,
        value_len: 4,
    };
    assert_eq!(
        e.encode_to_vec(),
        [tag(1, 2), 1, b'k', tag(3, 0), 1, tag(4, 0), 4]
    );
    let m = Member {
        id: "a".into(),
        address: "b".into(),
    };
    assert_eq!(m.encode_to_vec(), [tag(1, 2), 1, b'a', tag(2, 2), 1, b'b']);
    let q = RepairRequest {
        members: vec![],
        replicas: 3,
        higher_peers_only: true,
    };
    assert_eq!(q.encode_to_vec(), [tag(2, 0), 3, tag(3, 0), 1]);
    let p = RepairProgress {
        pushed: 1,
        pulled: 2,
        failed: 3,
        done: true,
        ..Default::default()
    };
    assert_eq!(
        p.encode_to_vec(),
        [tag(5, 0), 1, tag(6, 0), 2, tag(9, 0), 3, tag(10, 0), 1]
    );
}

#[test]
fn layout_fields() {
    let c = ChangeLayoutRequest {
        expect_epoch: 7,
        members: vec![LayoutNode {
            id: "n".into(),
            address: "h:1".into(),
            weight: 2.0,
            zone: "z".into(),
        }],
        abort: true,
        initial: vec![],
        replicas: 3,
        gone: vec!["g".into()],
    };
    let b = c.encode_to_vec();
    assert_eq!(b[0], tag(1, 0));
    assert_eq!(b[1], 7);
    assert_eq!(b[2], tag(2, 2));
    assert_eq!(&b[b.len() - 3..], [tag(6, 2), 1, b'g']);
    let s = LayoutState {
        node_id: "n".into(),
        layout: vec![1].into(),
        epoch: 9,
        stage_done: true,
        handoff: None,
        handoff_epoch: 4,
        handoff_seconds: 0.0,
    };
    let b = s.encode_to_vec();
    assert_eq!(
        b,
        [
            tag(1, 2),
            1,
            b'n',
            tag(2, 2),
            1,
            1,
            tag(3, 0),
            9,
            tag(4, 0),
            1,
            tag(6, 0),
            4
        ]
    );
}
