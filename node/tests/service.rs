//! The service over real gRPC on a loopback port: every RPC, and the error paths.

mod common;

use common::*;
use dstash_node::{Node, NodeOptions, TokenAuth};
use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::Channel;
use tonic::Code;

struct Running {
    client: DstashClient<Channel>,
    _node: Node,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    start_with(TokenAuth::disabled()).await
}

async fn start_with(auth: TokenAuth) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions::insecure(dir.path(), "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = "node-a".into();
    opts.service.keys_chunk = 100;
    opts.auth = auth;
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let client = DstashClient::connect(format!("http://{}", node.local_addr()))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    Running {
        client,
        _node: node,
        _dir: dir,
    }
}

#[tokio::test]
async fn unary_put_lookup_delete() {
    let mut node = start().await;
    let c = &mut node.client;
    c.put(put("u", b"alice", b"1")).await.unwrap();
    let r = c.lookup(lookup("u", b"alice")).await.unwrap().into_inner();
    assert_eq!((r.found, &r.value[..]), (true, &b"1"[..]));
    assert_eq!(r.ttl_seconds, 0, "no TTL");
    let r = c.lookup(lookup("u", b"bob")).await.unwrap().into_inner();
    assert_eq!((r.found, r.value.len()), (false, 0));
    let mut expiring = put("u", b"carol", b"2");
    expiring.ttl_seconds = 300;
    c.put(expiring).await.unwrap();
    let r = c.lookup(lookup("u", b"carol")).await.unwrap().into_inner();
    assert!(
        (298..=300).contains(&r.ttl_seconds),
        "the time left to live: {}",
        r.ttl_seconds
    );
    let d = c
        .delete(DeleteRequest {
            namespace: "u".into(),
            key: Bytes::from_static(b"alice"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(d.into_inner().found);
    assert!(
        !c.lookup(lookup("u", b"alice"))
            .await
            .unwrap()
            .into_inner()
            .found
    );
}

#[tokio::test]
async fn batch_streams_answer_every_batch_in_order() {
    let mut node = start().await;
    let c = &mut node.client;
    let batches: Vec<PutBatch> = (0..20u64)
        .map(|b| PutBatch {
            namespace: "b".into(),
            entries: (0..50)
                .map(|i| Entry {
                    key: format!("k{b}-{i}").into_bytes().into(),
                    value: format!("v{b}-{i}").into_bytes().into(),
                    ttl_seconds: 0,
                    ..Default::default()
                })
                .collect(),
            batch_id: 100 + b,
        })
        .collect();
    let mut acks = c
        .batch_put(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        assert_eq!(ack.written, 50);
        ids.push(ack.batch_id);
    }
    assert_eq!(ids, (100..120).collect::<Vec<_>>());

    let lookups = vec![
        LookupBatch {
            namespace: "b".into(),
            keys: vec![
                Bytes::from_static(b"k3-7"),
                Bytes::from_static(b"missing"),
                Bytes::from_static(b"k19-49"),
            ],
            batch_id: 1,
            flat: false,
        },
        LookupBatch {
            namespace: "b".into(),
            keys: vec![Bytes::from_static(b"k0-0")],
            batch_id: 2,
            flat: false,
        },
    ];
    let mut results = c
        .batch_lookup(tokio_stream::iter(lookups))
        .await
        .unwrap()
        .into_inner();
    let first = results.message().await.unwrap().unwrap();
    assert_eq!(first.batch_id, 1);
    let got: Vec<(bool, Vec<u8>)> = first
        .results
        .into_iter()
        .map(|r| (r.found, r.value.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, b"v3-7".to_vec()),
            (false, vec![]),
            (true, b"v19-49".to_vec())
        ]
    );
    let second = results.message().await.unwrap().unwrap();
    assert_eq!(
        (second.batch_id, &second.results[0].value[..]),
        (2, &b"v0-0"[..])
    );
    assert!(results.message().await.unwrap().is_none());
}

#[tokio::test]
async fn flat_lookup_answers_agree_with_per_key_answers() {
    use dstash_proto::flat::FlatEntry;
    let mut node = start().await;
    let c = &mut node.client;
    let put = PutBatch {
        namespace: "f".into(),
        entries: vec![
            Entry {
                key: Bytes::from_static(b"a"),
                value: Bytes::from_static(b"alpha"),
                ttl_seconds: 600,
                ..Default::default()
            },
            Entry {
                key: Bytes::from_static(b"gone"),
                tombstone: true,
                ..Default::default()
            },
            Entry {
                key: Bytes::from_static(b"b"),
                value: Bytes::from_static(b"beta"),
                ..Default::default()
            },
        ],
        batch_id: 0,
    };
    let mut acks = c
        .batch_put(tokio_stream::iter([put]))
        .await
        .unwrap()
        .into_inner();
    assert!(acks.message().await.unwrap().is_some());
    let keys: Vec<Bytes> = ["a", "missing", "gone", "b"]
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let ask = |flat| LookupBatch {
        namespace: "f".into(),
        keys: keys.clone(),
        batch_id: 0,
        flat,
    };
    let mut r = c
        .batch_lookup(tokio_stream::iter([ask(false), ask(true)]))
        .await
        .unwrap()
        .into_inner();
    let per_key = r.message().await.unwrap().unwrap();
    let flat = r.message().await.unwrap().unwrap();
    assert!(flat.results.is_empty());
    let entries = flat.flat.unwrap().entries().unwrap();
    assert_eq!(entries.len(), 4);
    for (e, k) in entries.iter().zip(&per_key.results) {
        let v = k.version.unwrap_or_default();
        let want = match (k.found, k.tombstone) {
            (true, _) => FlatEntry::Value {
                value: k.value.clone(),
                ttl_seconds: k.ttl_seconds,
                ts: v.ts,
                writer: v.writer,
            },
            (false, true) => FlatEntry::Tombstone {
                ts: v.ts,
                writer: v.writer,
            },
            _ => FlatEntry::Nothing,
        };
        assert_eq!(*e, want);
    }
    assert!(
        matches!(&entries[0], FlatEntry::Value { value, ttl_seconds, .. } if value == "alpha" && *ttl_seconds > 590)
    );
    assert!(matches!(entries[2], FlatEntry::Tombstone { .. }));
}

#[tokio::test]
async fn counts_unary_and_batched() {
    let mut node = start().await;
    let c = &mut node.client;
    let add = |n| AddRequest {
        namespace: "rl".into(),
        key: Bytes::from_static(b"ip"),
        n,
        at_seconds: 0,
        request_id: String::new(),
    };
    assert_eq!(
        c.add(add(0)).await.unwrap().into_inner().count,
        1,
        "n 0 means 1"
    );
    assert_eq!(c.add(add(4)).await.unwrap().into_inner().count, 5);
    let count = CountRequest {
        namespace: "rl".into(),
        key: Bytes::from_static(b"ip"),
        window_seconds: 0,
    };
    assert_eq!(c.count(count).await.unwrap().into_inner().count, 5);

    let adds = vec![AddBatch {
        namespace: "rl".into(),
        keys: vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
            Bytes::from_static(b"a"),
        ],
        batch_id: 9,
        at_seconds: 0,
        request_id: String::new(),
    }];
    let mut out = c
        .batch_add(tokio_stream::iter(adds))
        .await
        .unwrap()
        .into_inner();
    let r = out.message().await.unwrap().unwrap();
    assert_eq!((r.batch_id, r.counts), (9, vec![2, 1, 2]));
    let counts = vec![CountBatch {
        namespace: "rl".into(),
        keys: vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"ip"),
            Bytes::from_static(b"z"),
        ],
        window_seconds: 60,
        batch_id: 3,
    }];
    let mut out = c
        .batch_count(tokio_stream::iter(counts))
        .await
        .unwrap()
        .into_inner();
    let r = out.message().await.unwrap().unwrap();
    assert_eq!((r.batch_id, r.counts), (3, vec![2, 5, 0]));
}

async fn all_keys(c: &mut DstashClient<Channel>, req: KeysRequest) -> (Vec<Vec<u8>>, usize) {
    let mut stream = c.keys(req).await.unwrap().into_inner();
    let (mut keys, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = stream.message().await.unwrap() {
        assert!(
            !chunk.keys.is_empty() && chunk.keys.len() <= 100,
            "chunk of {}",
            chunk.keys.len()
        );
        keys.extend(chunk.keys.into_iter().map(|k| k.to_vec()));
        chunks += 1;
    }
    keys.sort();
    (keys, chunks)
}

#[tokio::test]
async fn keys_streams_glob_limit_and_counters() {
    let mut node = start().await;
    let c = &mut node.client;
    let batch = PutBatch {
        namespace: "k".into(),
        entries: (0..1000)
            .map(|i| Entry {
                key: format!("user:{i}").into_bytes().into(),
                value: Bytes::from_static(b"v"),
                ttl_seconds: 0,
                ..Default::default()
            })
            .collect(),
        batch_id: 1,
    };
    let mut acks = c
        .batch_put(tokio_stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    acks.message().await.unwrap().unwrap();
    c.put(put("k", b"item:1", b"v")).await.unwrap();
    c.add(AddRequest {
        namespace: "k".into(),
        key: Bytes::from_static(b"hits:1"),
        n: 1,
        at_seconds: 0,
        request_id: String::new(),
    })
    .await
    .unwrap();

    let req = |pattern: &str, limit, counters| KeysRequest {
        namespace: "k".into(),
        pattern: pattern.into(),
        limit,
        counters,
    };
    let (keys, chunks) = all_keys(c, req("user:*", 0, false)).await;
    assert_eq!((keys.len(), chunks), (1000, 10));
    let (keys, _) = all_keys(c, req("", 250, false)).await;
    assert_eq!(keys.len(), 250, "limit");
    let (keys, _) = all_keys(c, req("item:?", 0, false)).await;
    assert_eq!(keys, vec![b"item:1".to_vec()]);
    let (keys, _) = all_keys(c, req("", 0, true)).await;
    assert_eq!(keys, vec![b"hits:1".to_vec()]);
    let (keys, _) = all_keys(
        c,
        KeysRequest {
            namespace: "absent".into(),
            ..req("", 0, false)
        },
    )
    .await;
    assert!(keys.is_empty());
}

#[tokio::test]
async fn status_reports_the_node_and_its_namespaces() {
    let mut node = start().await;
    let c = &mut node.client;
    c.put(put("s1", b"a", b"1")).await.unwrap();
    c.put(put("s2", b"b", b"2")).await.unwrap();
    c.put(put("s2", b"c", b"3")).await.unwrap();
    let s = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (s.node_id.as_str(), s.keys, s.sync_mode.as_str()),
        ("node-a", 3, "always")
    );
    assert!(s.disk_bytes > 0);
    let names: Vec<&str> = s.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["s1", "s2"]);
    assert_eq!(s.namespaces[1].retention_seconds, 60);
}

#[tokio::test]
async fn bad_input_gets_invalid_argument_naming_the_rule_and_the_node_keeps_serving() {
    let mut node = start().await;
    let c = &mut node.client;
    let cases: Vec<(PutRequest, &str)> = vec![
        (put("../etc", b"k", b"v"), "namespace"),
        (put("", b"k", b"v"), "namespace"),
        (put(&"n".repeat(65), b"k", b"v"), "64"),
        (put("naïve", b"k", b"v"), "namespace"),
        (put("ok", b"", b"v"), "empty"),
        (put("ok", &vec![b'k'; 65536], b"v"), "65535"),
        (put("ok", b"k", &vec![0; (8 << 20) + 1]), "8388608"),
    ];
    for (req, needle) in cases {
        let e = c.put(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(
            e.message().contains(needle),
            "{:?} lacks {needle}",
            e.message()
        );
    }
    let e = c
        .count(CountRequest {
            namespace: "ok".into(),
            key: Bytes::from_static(b"k"),
            window_seconds: 61,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("retention"), "{}", e.message());
    let e = c
        .keys(KeysRequest {
            namespace: "ok".into(),
            pattern: "bad\\".into(),
            limit: 0,
            counters: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A bad batch ends its stream with the error after the good batches before it.
    let batches = vec![
        PutBatch {
            namespace: "ok".into(),
            entries: vec![Entry {
                key: Bytes::from_static(b"good"),
                value: Bytes::from_static(b"1"),
                ttl_seconds: 0,
                ..Default::default()
            }],
            batch_id: 1,
        },
        PutBatch {
            namespace: "ok".into(),
            entries: vec![Entry {
                key: Default::default(),
                value: Bytes::from_static(b"1"),
                ttl_seconds: 0,
                ..Default::default()
            }],
            batch_id: 2,
        },
    ];
    let mut acks = c
        .batch_put(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_id, 1);
    assert_eq!(
        acks.message().await.unwrap_err().code(),
        Code::InvalidArgument
    );

    c.put(put("ok", b"still", b"serving")).await.unwrap();
    assert!(
        c.lookup(lookup("ok", b"good"))
            .await
            .unwrap()
            .into_inner()
            .found
    );
}

#[tokio::test]
async fn a_token_guards_every_rpc() {
    let mut node = start_with(TokenAuth::new("s3cret").unwrap()).await;
    let c = &mut node.client;
    let e = c.put(put("a", b"k", b"v")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {}", e.message());
    let with = |token: &str, req| {
        let mut r = tonic::Request::new(req);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    let e = c
        .put(with("wrong", put("a", b"k", b"v")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    c.put(with("s3cret", put("a", b"k", b"v"))).await.unwrap();
    let mut r = tonic::Request::new(StatusRequest {});
    r.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(c.status(r).await.unwrap().into_inner().keys, 1);
    let e = c.status(StatusRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "status is guarded too");
    let e = c
        .batch_put(tokio_stream::iter(Vec::<PutBatch>::new()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "streams are guarded too");
}
