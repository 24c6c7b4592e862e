//! Hinted writes over real gRPC: a write sent with `hint_for` another node is held,
//! not served; one naming this node is an ordinary write; bad hints are refused; a
//! held hint is handed to its owner, versions kept, once the owner is a known peer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dstash_node::{Node, NodeOptions, Peer};
use dstash_proto::v1::*;
use dstash_proto::DstashClient;
use tonic::transport::Channel;
use tonic::Code;

async fn start(dir: &std::path::Path, id: &str, peers: Vec<Peer>) -> (Node, DstashClient<Channel>) {
    let mut opts = NodeOptions::insecure(dir, "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = id.into();
    opts.sync.peers = tokio::sync::watch::channel(peers).1;
    opts.sync.hint_interval = Duration::from_millis(50);
    opts.sync.interval = Duration::ZERO;
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let client = DstashClient::connect(format!("http://{}", node.local_addr()))
        .await
        .unwrap();
    (node, client)
}

fn hinted(owner: &str, key: &[u8], value: &[u8], ts: u64) -> PutRequest {
    PutRequest {
        hint_for: owner.into(),
        version: Some(Version { ts, writer: 7 }),
        ..put("kv", key, value)
    }
}

#[tokio::test]
async fn hints_are_held_apart_refused_when_bad_and_handed_to_their_owner() {
    let dirs = tempfile::tempdir().unwrap();
    let (owner, mut to_owner) = start(&dirs.path().join("owner"), "owner", vec![]).await;
    let peers = vec![Peer {
        id: "owner".into(),
        addr: owner.local_addr().to_string(),
    }];
    let (stand_in, mut to_stand_in) = start(&dirs.path().join("s"), "s", peers).await;
    let ts = dstash_cluster::version::wall_millis() << 16;

    // Held, not served: the stand-in does not answer for it as a value.
    to_stand_in
        .put(hinted("owner", b"k1", b"v1", ts))
        .await
        .unwrap();
    let got = to_stand_in
        .lookup(lookup("kv", b"k1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!got.found);
    // Naming the node itself: an ordinary write.
    to_stand_in
        .put(hinted("s", b"own", b"v", ts))
        .await
        .unwrap();
    let got = to_stand_in
        .lookup(lookup("kv", b"own"))
        .await
        .unwrap()
        .into_inner();
    assert!(got.found);
    // Refused with a reason: no version, an owner id too long.
    let e = to_stand_in
        .put(PutRequest {
            version: None,
            ..hinted("owner", b"k", b"v", ts)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("version"), "{}", e.message());
    let e = to_stand_in
        .put(hinted(&"x".repeat(300), b"k", b"v", ts))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A hinted delete, newer than the owner's copy of k2.
    to_owner.put(hinted("", b"k2", b"old", ts)).await.unwrap();
    to_stand_in
        .delete(DeleteRequest {
            namespace: "kv".into(),
            key: "k2".into(),
            version: Some(Version {
                ts: ts + 1,
                writer: 7,
            }),
            hint_for: "owner".into(),
        })
        .await
        .unwrap();

    let t = Instant::now();
    loop {
        let k1 = to_owner
            .lookup(lookup("kv", b"k1"))
            .await
            .unwrap()
            .into_inner();
        let k2 = to_owner
            .lookup(lookup("kv", b"k2"))
            .await
            .unwrap()
            .into_inner();
        if k1.found && k2.tombstone {
            assert_eq!(&k1.value[..], b"v1");
            assert_eq!(
                k1.version,
                Some(Version { ts, writer: 7 }),
                "the version is kept"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "hints not handed over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stand_in.shutdown().await.unwrap();
    owner.shutdown().await.unwrap();
}
