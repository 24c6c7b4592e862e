//! The bad-input matrix: each input against a live node on loopback gets its documented
//! gRPC status, and the node keeps serving after every one. Prints the table that
//! docs/reliability.md shows:
//! `cargo test -p dstash-node --test bad_input_matrix -- --nocapture`.

mod common;

use std::net::SocketAddr;

use common::*;
use dstash_node::{Node, NodeOptions, TlsFiles, TokenAuth};
use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const TOKEN: &str = "m4trix";

/// What one row saw: a gRPC code, or a failure before any status (transport).
fn outcome<T>(r: Result<T, tonic::Status>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(s) => format!("{:?}", s.code()),
    }
}

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

async fn tls_client(
    addr: SocketAddr,
    ca: &Pki,
    identity: Option<(String, String)>,
) -> Result<DstashClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca_pem()))
        .domain_name("localhost");
    if let Some((c, k)) = identity {
        tls = tls.identity(Identity::from_pem(c, k));
    }
    let ch = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e}"))?;
    Ok(DstashClient::new(ch)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_documented_status_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Pki::new("server CA"), Pki::new("client CA"));
    let (cert, key) = server_ca.issue("localhost");
    std::fs::write(dir.path().join("node.pem"), cert).unwrap();
    std::fs::write(dir.path().join("node.key"), key).unwrap();
    std::fs::write(dir.path().join("clients.pem"), client_ca.ca_pem()).unwrap();
    let mut opts = NodeOptions::insecure(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    opts.tls = Some(TlsFiles {
        cert: dir.path().join("node.pem"),
        key: dir.path().join("node.key"),
        client_ca: Some(dir.path().join("clients.pem")),
    });
    opts.auth = TokenAuth::new(TOKEN).unwrap();
    opts.service.max_message_bytes = 16 << 20;
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    let addr = node.local_addr();
    let mut c = tls_client(addr, &server_ca, Some(client_ca.issue("client")))
        .await
        .unwrap();

    let put_req = |ns: &str, key: &[u8], value: &[u8]| authed(put(ns, key, value));
    let mut rows: Vec<(&str, String, &str)> = Vec::new();
    rows.push((
        "empty key",
        outcome(c.put(put_req("ok", b"", b"v")).await),
        "InvalidArgument",
    ));
    rows.push((
        "key of 65,536 bytes",
        outcome(c.put(put_req("ok", &vec![b'k'; 65_536], b"v")).await),
        "InvalidArgument",
    ));
    rows.push((
        "value of 8 MiB + 1 byte",
        outcome(c.put(put_req("ok", b"k", &vec![0; (8 << 20) + 1])).await),
        "InvalidArgument",
    ));
    rows.push((
        "namespace `../etc`",
        outcome(c.put(put_req("../etc", b"k", b"v")).await),
        "InvalidArgument",
    ));
    rows.push((
        "empty namespace",
        outcome(c.put(put_req("", b"k", b"v")).await),
        "InvalidArgument",
    ));
    rows.push((
        "namespace of 65 characters",
        outcome(c.put(put_req(&"n".repeat(65), b"k", b"v")).await),
        "InvalidArgument",
    ));
    rows.push((
        "non-ASCII namespace",
        outcome(c.put(put_req("naïve", b"k", b"v")).await),
        "InvalidArgument",
    ));
    let big = PutBatch {
        namespace: "ok".into(),
        entries: (0..3u8)
            .map(|i| Entry {
                key: Bytes::from(vec![i]),
                value: Bytes::from(vec![0; 6 << 20]),
                ttl_seconds: 0,
                ..Default::default()
            })
            .collect(),
        batch_id: 1,
    };
    let oversized = match c.batch_put(authed(tokio_stream::iter(vec![big]))).await {
        Err(e) => Err(e),
        Ok(acks) => acks.into_inner().message().await.map(drop),
    };
    rows.push((
        "message of 18 MiB (limit 16 MiB)",
        outcome(oversized),
        "InvalidArgument",
    ));
    let count = CountRequest {
        namespace: "ok".into(),
        key: Bytes::from_static(b"k"),
        window_seconds: 61,
    };
    rows.push((
        "window of 61 s (retention 60 s)",
        outcome(c.count(authed(count)).await),
        "InvalidArgument",
    ));
    let keys = KeysRequest {
        namespace: "ok".into(),
        pattern: "trailing\\".into(),
        limit: 0,
        counters: false,
    };
    rows.push((
        "malformed glob `trailing\\`",
        outcome(c.keys(authed(keys)).await),
        "InvalidArgument",
    ));
    let mut wrong = tonic::Request::new(put("ok", b"k", b"v"));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    rows.push((
        "wrong token",
        outcome(c.put(wrong).await),
        "Unauthenticated",
    ));
    rows.push((
        "no token",
        outcome(c.put(put("ok", b"k", b"v")).await),
        "Unauthenticated",
    ));
    let plaintext = match Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    {
        Err(_) => "connection refused by the TLS handshake".to_string(),
        Ok(ch) => outcome(DstashClient::new(ch).put(put_req("ok", b"k", b"v")).await),
    };
    rows.push((
        "plaintext client to a TLS node",
        plaintext,
        "no answer (transport error)",
    ));
    let stranger = Pki::new("unknown CA");
    let unknown_ca = match tls_client(addr, &server_ca, Some(stranger.issue("intruder"))).await {
        Err(_) => "refused in the handshake".to_string(),
        Ok(mut c) => outcome(c.put(put_req("ok", b"k", b"v")).await),
    };
    rows.push((
        "client certificate from an unknown CA",
        unknown_ca,
        "no answer (transport error)",
    ));

    println!("| input | status | expected |\n|---|---|---|");
    for (input, got, want) in &rows {
        println!("| {input} | {got} | {want} |");
    }
    for (input, got, want) in &rows {
        if want.starts_with("no answer") {
            // The handshake fails: the client reports its own transport error, never a
            // status from the node, and nothing is served.
            assert!(
                !["OK", "InvalidArgument", "Unauthenticated"].contains(&got.as_str()),
                "{input}: got {got}"
            );
        } else {
            assert_eq!(got, want, "{input}");
        }
        // The node keeps serving after every bad input.
        c.put(put_req("ok", b"still", b"serving")).await.unwrap();
    }
    let r = c
        .lookup(authed(lookup("ok", b"still")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.found);
    let s = c
        .status(authed(StatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.keys, 1, "no bad input wrote anything");
}
