//! `dstash node` as a real process on a free loopback port: flags, every RPC, auth,
//! signals, and `kill -9` in the middle of a BatchPut stream.

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::Bytes;
use dstash_storage::{Options, Store};
use support::{run, spawn_loopback, spawn_node};
use tonic::Code;

fn put(ns: &str, key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest {
        namespace: ns.into(),
        key: key.to_vec().into(),
        value: value.to_vec().into(),
        ttl_seconds: 0,
        ..Default::default()
    }
}

// Multi-threaded so that the client's connection task can see the server's GOAWAY
// while the test thread blocks waiting for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_through_the_binary_then_sigterm_closes_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node-7");
    let node = spawn_loopback(&data, &["--count-retention", "30"]);
    let mut c = node.client().await;

    c.put(put("ns", b"k1", b"v1")).await.unwrap();
    let l = c
        .lookup(LookupRequest {
            namespace: "ns".into(),
            key: Bytes::from_static(b"k1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(l.found);
    assert_eq!(&l.value[..], b"v1");
    let d = c
        .delete(DeleteRequest {
            namespace: "ns".into(),
            key: Bytes::from_static(b"k1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.found);

    let entries = (0..50u32)
        .map(|i| Entry {
            key: format!("key-{i:02}").into_bytes().into(),
            value: i.to_be_bytes().to_vec().into(),
            ttl_seconds: 0,
            ..Default::default()
        })
        .collect();
    let acks: Vec<PutBatchAck> = collect(
        c.batch_put(tokio_stream::iter(vec![PutBatch {
            namespace: "ns".into(),
            entries,
            batch_id: 9,
        }]))
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!((acks[0].batch_id, acks[0].written), (9, 50));
    let found: Vec<LookupBatchResult> = collect(
        c.batch_lookup(tokio_stream::iter(vec![LookupBatch {
            namespace: "ns".into(),
            keys: vec![Bytes::from_static(b"key-03"), Bytes::from_static(b"nope")],
            batch_id: 1,
            flat: false,
        }]))
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(found[0].results[0].value[..], 3u32.to_be_bytes());
    assert!(!found[0].results[1].found);

    let add = AddRequest {
        namespace: "rl".into(),
        key: Bytes::from_static(b"user"),
        n: 3,
        at_seconds: 0,
        request_id: "add-1".into(),
    };
    assert_eq!(c.add(add.clone()).await.unwrap().into_inner().count, 3);
    // Sent again under the same id, as a retry after a lost answer: counted once.
    assert_eq!(c.add(add.clone()).await.unwrap().into_inner().count, 3);
    let reused = AddRequest { n: 1, ..add };
    let e = c.add(reused).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("add-1"), "{}", e.message());
    let batch = AddBatch {
        namespace: "rl".into(),
        keys: vec![Bytes::from_static(b"user"), Bytes::from_static(b"other")],
        batch_id: 2,
        at_seconds: 0,
        request_id: "batch-2".into(),
    };
    let counts: Vec<CountBatchResult> = collect(
        c.batch_add(tokio_stream::iter(vec![batch.clone(), batch]))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(counts[0].counts, vec![4, 1]);
    assert_eq!(
        counts[1].counts,
        vec![4, 1],
        "the resent batch counts nothing"
    );
    let counts: Vec<CountBatchResult> = collect(
        c.batch_count(tokio_stream::iter(vec![CountBatch {
            namespace: "rl".into(),
            keys: vec![Bytes::from_static(b"user")],
            window_seconds: 30,
            batch_id: 3,
        }]))
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(counts[0].counts, vec![4]);
    let e = c
        .count(CountRequest {
            namespace: "rl".into(),
            key: Bytes::from_static(b"user"),
            window_seconds: 31,
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "--count-retention 30 holds"
    );

    let chunks: Vec<KeysChunk> = collect(
        c.keys(KeysRequest {
            namespace: "ns".into(),
            pattern: "key-1?".into(),
            limit: 0,
            counters: false,
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    let keys: BTreeSet<Bytes> = chunks.into_iter().flat_map(|c| c.keys).collect();
    assert_eq!(keys.len(), 10);

    let s = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        s.node_id, "node-7",
        "the node is named after its data directory"
    );
    assert_eq!(s.keys, 50);
    assert_eq!(s.sync_mode, "always");

    drop(c);
    let took = Instant::now();
    let status = node.terminate();
    assert!(
        took.elapsed() < std::time::Duration::from_secs(5),
        "an idle node stops without waiting out the drain timeout"
    );
    assert!(status.success(), "{status:?}");
    let store = Store::open(&data, Options::default()).unwrap();
    for ns in store.stats() {
        assert_eq!(
            ns.kv.replayed_records, 0,
            "{}: SIGTERM closes clean",
            ns.name
        );
    }
}

async fn collect<T>(mut s: tonic::Streaming<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        out.push(m);
    }
    out
}

#[tokio::test]
async fn the_classic_positional_form_and_env_vars_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("classic");
    let node = spawn_node(&[data.to_str().unwrap(), "127.0.0.1", "0"]);
    let s = node
        .client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.node_id, "classic");
    drop(node);

    let out = std::process::Command::new(support::DSTASH)
        .args(["node", "--listen", "127.0.0.1:0"])
        .env("DSTASH_DATA_DIR", dir.path().join("env"))
        .env("DSTASH_NODE_ID", "bad/id")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node id \"bad/id\""), "{err}");
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, _, err) = run(&["node", "--data-dir", d, "--sync", "sometimes"]);
    assert_eq!(code, 2);
    assert!(err.contains("interval:MS"), "{err}");

    let (code, _, err) = run(&["node", "--data-dir", d, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--insecure"), "{err}");

    let missing = dir.path().join("no-such-token");
    let (code, _, err) = run(&[
        "node",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--auth-token-file",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no-such-token"), "{err}");

    let (code, _, err) = run(&["node", "--data-dir", d, "--tls-cert", "x.pem"]);
    assert_eq!(code, 2, "a certificate needs its key");
    assert!(err.contains("--tls-key"), "{err}");
}

#[tokio::test]
async fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = spawn_loopback(dir.path(), &[]);
    let (code, _, err) = run(&[
        "node",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("lock") || err.contains("Lock"), "{err}");
}

#[tokio::test]
async fn a_token_file_guards_the_node_but_not_its_health() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let node = spawn_loopback(
        &dir.path().join("data"),
        &["--auth-token-file", token.to_str().unwrap()],
    );
    let mut c = node.client().await;
    let e = c.put(put("a", b"k", b"v")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(put("a", b"k", b"v"));
    req.metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    c.put(req).await.unwrap();

    let ch = tonic::transport::Channel::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health_check(ch).await;
    assert_eq!(health, 1, "SERVING, without a token");
    let addr = node.addr.to_string();
    let (code, out, _) = run(&["health", &addr]);
    assert_eq!(
        (code, out.as_str()),
        (0, "SERVING\n"),
        "`dstash health` for container checks"
    );
    drop(node);
    let (code, _, err) = run(&["health", &addr]);
    assert_eq!(code, 1, "a stopped node is not healthy");
    assert!(err.contains("connecting"), "{err}");
}

/// grpc.health.v1 Check for the whole server: the status number (1 is SERVING).
async fn tonic_health_check(ch: tonic::transport::Channel) -> i32 {
    let r = tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    r.into_inner().status
}

/// Batch `id` of the kill -9 test: 200 keys whose values name their batch.
fn crash_batch(round: u32, id: u64) -> PutBatch {
    PutBatch {
        namespace: "crash".into(),
        entries: (0..200)
            .map(|j| Entry {
                key: format!("r{round}-b{id}-k{j}").into_bytes().into(),
                value: format!("r{round}-b{id}-v{j}").into_bytes().into(),
                ttl_seconds: 0,
                ..Default::default()
            })
            .collect(),
        batch_id: id,
    }
}

#[tokio::test]
async fn kill_9_mid_batch_put_loses_no_acknowledged_batch() {
    let rounds: u32 = std::env::var("DSTASH_NODE_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_loopback(dir.path(), &[]);
    let mut acked_by_round = Vec::new();
    for round in 0..rounds {
        let mut c = node.client().await;
        let (tx, rx) = tokio::sync::mpsc::channel::<PutBatch>(16);
        let sender = tokio::spawn(async move {
            for id in 0.. {
                if tx.send(crash_batch(round, id)).await.is_err() {
                    break;
                }
            }
        });
        let mut acks = c
            .batch_put(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let kill_after = 5 + (round as usize * 7) % 20;
        let mut acked = Vec::new();
        let mut victim = Some(node);
        loop {
            match acks.message().await {
                Ok(Some(ack)) => {
                    assert_eq!(ack.written, 200);
                    acked.push(ack.batch_id);
                    if acked.len() == kill_after {
                        // More batches are in flight behind this ack.
                        victim.take().unwrap().kill9();
                    }
                }
                Ok(None) => panic!("the stream ended without an error"),
                Err(_) => break,
            }
        }
        sender.abort();
        assert!(acked.len() >= kill_after);
        let restarted = Instant::now();
        node = spawn_loopback(dir.path(), &[]);
        eprintln!(
            "round {round}: {} batches acknowledged before kill -9; serving again after {:?}",
            acked.len(),
            restarted.elapsed()
        );
        acked_by_round.push(acked);

        // Every acknowledged batch of every round so far is there, with its values.
        let mut c = node.client().await;
        for (r, acked) in acked_by_round.iter().enumerate() {
            let lookups: Vec<LookupBatch> = acked
                .iter()
                .map(|&id| LookupBatch {
                    namespace: "crash".into(),
                    keys: crash_batch(r as u32, id)
                        .entries
                        .into_iter()
                        .map(|e| e.key)
                        .collect(),
                    batch_id: id,
                    flat: false,
                })
                .collect();
            let results: Vec<LookupBatchResult> = collect(
                c.batch_lookup(tokio_stream::iter(lookups))
                    .await
                    .unwrap()
                    .into_inner(),
            )
            .await;
            assert_eq!(results.len(), acked.len());
            for res in results {
                let want = crash_batch(r as u32, res.batch_id);
                for (got, e) in res.results.iter().zip(&want.entries) {
                    assert!(got.found, "round {r} batch {} lost a key", res.batch_id);
                    assert_eq!(got.value, e.value);
                }
            }
        }
    }
}
