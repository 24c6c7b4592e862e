//! A node's life over real gRPC on loopback: health through recovery and shutdown,
//! draining, metrics, message limits, and TLS/mTLS with certificates made here.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use dstash_node::{Node, NodeOptions, TlsFiles};
use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use dstash_storage::{Options, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn health(ch: Channel) -> ServingStatus {
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    r.into_inner().status()
}

#[tokio::test]
async fn health_is_not_serving_until_recovery_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let path = dir.path().to_path_buf();
    let mut node = Node::start_opening(NodeOptions::insecure(dir.path(), loopback()), move || {
        gate.recv().unwrap();
        Store::open(path, Options::default())
    })
    .await
    .unwrap();
    let ch = channel(node.local_addr()).await;
    assert_eq!(health(ch.clone()).await, ServingStatus::NotServing);
    let e = DstashClient::new(ch.clone())
        .put(put("a", b"k", b"v"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("recovering"), "{}", e.message());

    release.send(()).unwrap();
    node.ready().await.unwrap();
    assert_eq!(health(ch.clone()).await, ServingStatus::Serving);
    DstashClient::new(ch)
        .put(put("a", b"k", b"v"))
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_finishes_open_batches_then_closes_the_store_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(NodeOptions::insecure(dir.path(), loopback()))
        .await
        .unwrap();
    node.ready().await.unwrap();
    let ch = channel(node.local_addr()).await;
    let mut watch = HealthClient::new(ch.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    // A stream that is open when the shutdown starts.
    let (tx, rx) = tokio::sync::mpsc::channel::<PutBatch>(4);
    let mut acks = DstashClient::new(ch.clone())
        .batch_put(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let batch = |id: u64| PutBatch {
        namespace: "d".into(),
        entries: (0..100)
            .map(|i| Entry {
                key: format!("{id}-{i}").into_bytes().into(),
                value: vec![id as u8; 10].into(),
                ttl_seconds: 0,
                ..Default::default()
            })
            .collect(),
        batch_id: id,
    };
    tx.send(batch(1)).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_id, 1);

    let stopping = tokio::spawn(node.shutdown());
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing,
        "draining is reported"
    );
    // The open stream still gets its batches answered.
    tx.send(batch(2)).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_id, 2);
    drop(tx);
    assert!(acks.message().await.unwrap().is_none());
    drop((acks, watch, ch));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown finishes once the streams end")
        .unwrap()
        .unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    let stats = &store.stats()[0];
    assert_eq!(stats.kv.keys, 200);
    assert_eq!(
        stats.kv.replayed_records, 0,
        "a clean close leaves nothing to replay"
    );
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

#[tokio::test]
async fn metrics_count_requests_keys_errors_and_store_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions::insecure(dir.path(), loopback());
    opts.metrics_listen = Some(loopback());
    let mut node = Node::start(opts).await.unwrap();
    let recovered = node.ready().await.unwrap();
    assert!(recovered < Duration::from_secs(10));
    let mut c = DstashClient::new(channel(node.local_addr()).await);
    for k in [b"a", b"b", b"c"] {
        c.put(put("m", k, b"v")).await.unwrap();
    }
    c.put(put("m", b"", b"v")).await.unwrap_err();
    let batches = vec![LookupBatch {
        namespace: "m".into(),
        keys: vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
            Bytes::from_static(b"zz"),
        ],
        batch_id: 7,
        flat: false,
    }];
    let mut results = c
        .batch_lookup(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    while results.message().await.unwrap().is_some() {}

    let text = scrape(node.metrics_addr().unwrap()).await;
    for line in [
        "dstash_requests_total{rpc=\"Put\"} 4",
        "dstash_keys_handled_total{rpc=\"BatchLookup\"} 3",
        "dstash_errors_total{rpc=\"Put\",code=\"InvalidArgument\"} 1",
        "dstash_request_duration_seconds_count{rpc=\"Put\"} 4",
        "dstash_store_keys{namespace=\"m\"} 3",
        "dstash_store_segments{namespace=\"m\"} 1",
        "dstash_store_replayed_records_total{namespace=\"m\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("dstash_recovery_seconds "), "{text}");
}

#[tokio::test]
async fn oversized_messages_are_invalid_argument_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions::insecure(dir.path(), loopback());
    opts.service.max_message_bytes = 1 << 20;
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let mut c = DstashClient::new(channel(node.local_addr()).await)
        .max_encoding_message_size(16 << 20)
        .max_decoding_message_size(16 << 20);

    let e = c
        .put(put("big", b"k", &vec![1; 2 << 20]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("1048576"), "{}", e.message());

    let big = PutBatch {
        namespace: "big".into(),
        entries: (0..4)
            .map(|i| Entry {
                key: vec![i].into(),
                value: vec![0; 512 << 10].into(),
                ttl_seconds: 0,
                ..Default::default()
            })
            .collect(),
        batch_id: 1,
    };
    let e = match c.batch_put(tokio_stream::iter(vec![big])).await {
        Err(e) => e,
        Ok(acks) => acks.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("1048576"), "{}", e.message());

    // Nothing of it was written, and the node serves on.
    c.put(put("big", b"small", b"v")).await.unwrap();
    let s = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(s.keys, 1);
}

async fn tls_node(dir: &std::path::Path, pki: &Pki, client_ca: Option<&Pki>) -> Node {
    let (cert, key) = pki.issue("localhost");
    std::fs::write(dir.join("node.crt"), cert).unwrap();
    std::fs::write(dir.join("node.key"), key).unwrap();
    let client_ca = client_ca.map(|ca| {
        std::fs::write(dir.join("clients.crt"), ca.ca_pem()).unwrap();
        dir.join("clients.crt")
    });
    let mut opts = NodeOptions::insecure(dir.join("data"), loopback());
    opts.tls = Some(TlsFiles {
        cert: dir.join("node.crt"),
        key: dir.join("node.key"),
        client_ca,
    });
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    node
}

async fn tls_put(
    addr: SocketAddr,
    ca: &Pki,
    identity: Option<(String, String)>,
) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca_pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let ch = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    DstashClient::new(ch)
        .put(put("t", b"k", b"v"))
        .await
        .map(drop)
        .map_err(|e| format!("put: {e:?}"))
}

#[tokio::test]
async fn tls_serves_only_tls_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("dstash test CA");
    let node = tls_node(dir.path(), &pki, None).await;
    let addr = node.local_addr();
    tls_put(addr, &pki, None).await.unwrap();

    let other = Pki::new("some other CA");
    assert!(
        tls_put(addr, &other, None).await.is_err(),
        "an unknown server CA is refused"
    );

    let plain = match Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    {
        Err(_) => true,
        Ok(ch) => DstashClient::new(ch)
            .put(put("t", b"k", b"v"))
            .await
            .is_err(),
    };
    assert!(plain, "a plaintext client gets no answer from a TLS node");
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let node = tls_node(dir.path(), &servers, Some(&clients)).await;
    let addr = node.local_addr();

    tls_put(addr, &servers, Some(clients.issue("client-1")))
        .await
        .unwrap();
    assert!(
        tls_put(addr, &servers, None).await.is_err(),
        "no client certificate"
    );
    let stranger = Pki::new("unknown CA");
    assert!(
        tls_put(addr, &servers, Some(stranger.issue("client-2")))
            .await
            .is_err(),
        "a client certificate from an unknown CA"
    );
}

#[tokio::test]
async fn a_tls_file_without_pem_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("node.key"), "not a key").unwrap();
    let mut opts = NodeOptions::insecure(dir.path().join("data"), loopback());
    opts.tls = Some(TlsFiles {
        cert: dir.path().join("node.crt"),
        key: dir.path().join("node.key"),
        client_ca: None,
    });
    let e = Node::start(opts).await.err().expect("refused");
    assert!(e.to_string().contains("node.crt"), "{e}");
}
