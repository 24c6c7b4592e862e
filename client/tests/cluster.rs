//! The client against real nodes on loopback (in-process `dstash_node::Node`s on
//! `127.0.0.1:0`), some of them stopped to play failed nodes.

use std::time::Duration;

use dstash_client::{Client, ClientConfig, Error, NodeSpec, PutItem};
use dstash_node::{Node, NodeOptions};
use dstash_proto::v1::LookupRequest;
use dstash_proto::{Bytes, DstashClient};

struct Cluster {
    nodes: Vec<Option<Node>>,
    addrs: Vec<String>,
    dirs: Vec<tempfile::TempDir>,
}

async fn start_node(dir: &std::path::Path, id: &str) -> Node {
    let mut opts = NodeOptions::insecure(dir, "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = id.into();
    opts.drain_timeout = Duration::from_millis(200);
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    node
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let mut c = Cluster {
            nodes: Vec::new(),
            addrs: Vec::new(),
            dirs: Vec::new(),
        };
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let node = start_node(dir.path(), &format!("n{i}")).await;
            c.addrs.push(node.local_addr().to_string());
            c.nodes.push(Some(node));
            c.dirs.push(dir);
        }
        c
    }

    fn config(&self, r: usize, w: Option<usize>) -> ClientConfig {
        let nodes = self
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("n{i}={a}").parse::<NodeSpec>().unwrap())
            .collect();
        let mut cfg = ClientConfig::new(nodes);
        cfg.replicas = r;
        cfg.write_quorum = w;
        cfg.timeout = Duration::from_secs(5);
        cfg.connect_timeout = Duration::from_millis(500);
        cfg.retries = 1;
        cfg.batch_keys = 500;
        cfg
    }

    async fn client(&self, r: usize, w: Option<usize>) -> Client {
        Client::connect(self.config(r, w)).await.unwrap()
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
    }

    /// Restarts a stopped node on its data directory; it gets a new port.
    async fn restart(&mut self, i: usize) {
        let node = start_node(self.dirs[i].path(), &format!("n{i}")).await;
        self.addrs[i] = node.local_addr().to_string();
        self.nodes[i] = Some(node);
    }

    /// What node `i` itself holds for `key` (value, seconds left).
    async fn held_by(&self, i: usize, ns: &str, key: &[u8]) -> Option<(Bytes, u32)> {
        let mut c = DstashClient::connect(format!("http://{}", self.addrs[i]))
            .await
            .unwrap();
        let r = c
            .lookup(LookupRequest {
                namespace: ns.into(),
                key: Bytes::copy_from_slice(key),
            })
            .await
            .unwrap()
            .into_inner();
        r.found.then_some((r.value, r.ttl_seconds))
    }
}

/// Index of node `id` ("n2" -> 2).
fn idx(id: &str) -> usize {
    id[1..].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_keys_go_to_r_replicas_and_reads_fail_over() {
    let mut cluster = Cluster::start(3).await;
    let c = cluster.client(2, None).await;
    c.put("kv", b"alice", b"1", 0).await.unwrap();
    let replicas: Vec<usize> = c
        .view()
        .replica_ids(b"alice")
        .iter()
        .map(|id| idx(id))
        .collect();
    for i in 0..3 {
        let held = cluster.held_by(i, "kv", b"alice").await.is_some();
        assert_eq!(held, replicas.contains(&i), "node n{i}");
    }
    assert_eq!(c.add("rl", b"ip", 3).await.unwrap(), 3);
    assert_eq!(c.count("rl", b"ip", 0, false).await.unwrap(), 3);

    cluster.stop(replicas[0]).await;
    assert_eq!(
        c.get("kv", b"alice").await.unwrap().as_deref(),
        Some(&b"1"[..]),
        "failed over"
    );
    assert_eq!(c.get("kv", b"nobody").await.unwrap(), None);
    let keys = c.keys("kv", "*", false).await.unwrap();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        vec![Bytes::from_static(b"alice")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_come_back_in_input_order_even_with_a_node_down() {
    let mut cluster = Cluster::start(3).await;
    let c = cluster.client(2, None).await;
    let items: Vec<PutItem> = (0..10_000)
        .map(|i| PutItem {
            key: format!("key-{i:06}").into_bytes().into(),
            value: format!("value-{i}").into_bytes().into(),
            ttl_seconds: 0,
        })
        .collect();
    let report = c.put_many("bulk", &items).await.unwrap();
    assert_eq!(report.written, 10_000);
    assert!(report.failed.is_empty());

    cluster.stop(1).await;
    let keys: Vec<Bytes> = items
        .iter()
        .map(|i| i.key.clone())
        .chain([Bytes::from_static(b"absent")])
        .collect();
    let got = c.get_many("bulk", &keys).await.unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(got[i].as_ref(), Some(&item.value), "key {i}");
    }
    assert_eq!(got[10_000], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_quorum_names_the_needed_acks_and_each_failure() {
    let mut cluster = Cluster::start(3).await;
    let c = cluster.client(2, Some(2)).await;
    cluster.stop(0).await;
    // A key with n0 among its replicas cannot reach W=2.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| c.view().replica_ids(k.as_bytes()).contains(&"n0"))
        .unwrap();
    let e = c.put("kv", key.as_bytes(), b"v", 0).await.unwrap_err();
    match &e {
        Error::Quorum {
            needed,
            acks,
            failures,
            ..
        } => {
            // The write fails as soon as W is out of reach: n1's ack may or may not
            // have come back by then.
            assert_eq!(*needed, 2);
            assert!(*acks <= 1, "{acks} acks");
            assert_eq!(failures[0].node, "n0");
        }
        other => panic!("{other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("needed 2") && text.contains("got ") && text.contains("n0"),
        "{text}"
    );

    // In a batch, only the keys that have n0 as a replica fail, each reported.
    let items: Vec<PutItem> = (0..3000)
        .map(|i| PutItem {
            key: format!("b{i}").into_bytes().into(),
            value: Bytes::from_static(b"v"),
            ttl_seconds: 0,
        })
        .collect();
    let report = c.put_many("kv", &items).await.unwrap();
    let expect_failed = items
        .iter()
        .filter(|i| c.view().replica_ids(&i.key).contains(&"n0"))
        .count();
    assert_eq!(report.failed.len(), expect_failed);
    assert_eq!(report.written as usize, 3000 - expect_failed);
    assert!(report
        .failed
        .iter()
        .all(|(_, e)| e.to_string().contains("n0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_quorum_above_the_live_replicas_fails_naming_them() {
    let cluster = Cluster::start(1).await;
    let c = cluster.client(2, Some(2)).await;
    let e = c.put("kv", b"k", b"v", 0).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("needed 2 acks from replicas [n0], got 0"),
        "{text}"
    );
    let items = [PutItem {
        key: Bytes::from_static(b"k2"),
        value: Bytes::from_static(b"v"),
        ttl_seconds: 0,
    }];
    let e = c.put_many("kv", &items).await.unwrap_err();
    assert!(e.to_string().contains("needed 2 acks"), "{e}");
    // Had they been sent, the single replica would have them by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        cluster.held_by(0, "kv", b"k").await,
        None,
        "a write that cannot reach W is not sent at all"
    );
    assert_eq!(cluster.held_by(0, "kv", b"k2").await, None, "nor a batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_writes_back_to_a_replica_that_lacks_the_key_keeping_its_ttl() {
    let mut cluster = Cluster::start(2).await;
    let c = cluster.client(2, Some(1)).await;
    // A key whose best replica is n1; write it while n1 is down.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| c.view().replica_ids(k.as_bytes())[0] == "n1")
        .unwrap();
    cluster.stop(1).await;
    c.put("kv", key.as_bytes(), b"v", 300).await.unwrap();
    cluster.restart(1).await;
    let c = cluster.client(2, Some(1)).await;
    assert_eq!(cluster.held_by(1, "kv", key.as_bytes()).await, None);

    assert_eq!(
        c.get("kv", key.as_bytes()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let mut repaired = None;
    for _ in 0..100 {
        repaired = cluster.held_by(1, "kv", key.as_bytes()).await;
        if repaired.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (value, ttl) = repaired.expect("n1 was repaired");
    assert_eq!(&value[..], b"v");
    assert!(
        (290..=300).contains(&ttl),
        "the repaired copy keeps its expiry: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_once_not_failed_over() {
    let cluster = Cluster::start(3).await;
    let c = cluster.client(2, None).await;
    let e = c.put("../etc", b"k", b"v", 0).await.unwrap_err();
    assert!(matches!(e, Error::Rejected(_)), "{e}");
    assert!(e.to_string().contains("InvalidArgument"), "{e}");
    let e = c.get("ok", b"").await.unwrap_err();
    assert!(matches!(e, Error::Rejected(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_are_used_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let path = |f: &str| dir.path().join(f);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("node.pem"), cert.pem()).unwrap();
    std::fs::write(path("node.key"), key.serialize_pem()).unwrap();

    let mut opts = NodeOptions::insecure(path("data"), "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = "secure".into();
    opts.tls = Some(dstash_node::TlsFiles {
        cert: path("node.pem"),
        key: path("node.key"),
        client_ca: None,
    });
    opts.auth = dstash_node::TokenAuth::new("s3cret").unwrap();
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();

    let spec: NodeSpec = format!("localhost:{}", node.local_addr().port())
        .parse()
        .unwrap();
    let mut cfg = ClientConfig::new(vec![spec]);
    cfg.tls = Some(dstash_client::TlsOptions {
        ca: Some(path("ca.pem")),
        ..Default::default()
    });
    cfg.token = Some("s3cret".into());
    // The id is asked of the node, over TLS and with the token.
    let c = Client::connect(cfg.clone()).await.unwrap();
    assert_eq!(c.view().nodes[0].id, "secure");
    c.put("t", b"k", b"v", 0).await.unwrap();
    assert_eq!(c.get("t", b"k").await.unwrap().as_deref(), Some(&b"v"[..]));

    cfg.nodes[0].id = Some("secure".into());
    cfg.token = Some("wrong".into());
    let c = Client::connect(cfg).await.unwrap();
    let e = c.get("t", b"k").await.unwrap_err();
    assert!(matches!(e, Error::Rejected(_)), "{e}");
    assert!(e.to_string().contains("Unauthenticated"), "{e}");
}

/// Flips one byte inside `marker`'s bytes in every segment of `dir` holding them.
fn damage(dir: &std::path::Path, marker: &[u8]) -> usize {
    let mut hit = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dat") {
                let mut bytes = std::fs::read(&p).unwrap();
                if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
                    bytes[at + marker.len() - 1] ^= 0x55;
                    std::fs::write(&p, &bytes).unwrap();
                    hit += 1;
                }
            }
        }
    }
    hit
}

/// Asks node `n` for `key` until it answers with a value (a damaged record answers
/// DATA_LOSS until a repair overwrites it); the value, or None if it never does.
async fn healed(n: &mut DstashClient<tonic::transport::Channel>, key: &Bytes) -> Option<Bytes> {
    let ask = LookupRequest {
        namespace: "kv".into(),
        key: key.clone(),
    };
    for _ in 0..200 {
        if let Ok(r) = n.lookup(ask.clone()).await {
            return Some(r.into_inner().value);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_fails_over_for_its_key_alone_and_is_repaired() {
    use dstash_proto::v1::LookupBatch;

    let mut cluster = Cluster::start(2).await;
    let c = cluster.client(2, Some(2)).await;
    // Two keys whose best replica is n0, so n0 is asked for them first: one is read in
    // a batch, the other alone.
    let victims: Vec<String> = (0..)
        .map(|i| format!("victim{i}"))
        .filter(|k| c.view().replica_ids(k.as_bytes())[0] == "n0")
        .take(2)
        .collect();
    let keys: Vec<Bytes> = ["a", victims[0].as_str(), "b", victims[1].as_str()]
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let items: Vec<PutItem> = keys
        .iter()
        .map(|k| PutItem {
            key: k.clone(),
            value: Bytes::from(format!("value of {}", String::from_utf8_lossy(k))),
            ttl_seconds: 0,
        })
        .collect();
    assert_eq!(c.put_many("kv", &items).await.unwrap().written, 4);
    cluster.stop(0).await;
    for v in &victims {
        let marker = format!("value of {v}");
        assert_eq!(damage(cluster.dirs[0].path(), marker.as_bytes()), 1);
    }
    cluster.restart(0).await;

    // The damaged replica answers the other keys and marks the damaged ones alone.
    let mut n0 = DstashClient::connect(format!("http://{}", cluster.addrs[0]))
        .await
        .unwrap();
    let batch = LookupBatch {
        namespace: "kv".into(),
        keys: keys[..3].to_vec(),
        batch_id: 1,
        flat: false,
    };
    let mut answers = n0
        .batch_lookup(tokio_stream::iter([batch]))
        .await
        .unwrap()
        .into_inner();
    let r = answers.message().await.unwrap().unwrap().results;
    let flags: Vec<(bool, bool)> = r.iter().map(|x| (x.found, x.damaged)).collect();
    assert_eq!(flags, [(true, false), (false, true), (true, false)]);

    // The client fails over for each damaged key and writes it back over the damage:
    // in a batch, and alone.
    let c = cluster.client(2, Some(2)).await;
    let got = c.get_many("kv", &keys[..3]).await.unwrap();
    let want: Vec<Option<Bytes>> = items[..3].iter().map(|i| Some(i.value.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(
        healed(&mut n0, &keys[1]).await,
        Some(items[1].value.clone())
    );
    let alone = c.get("kv", &keys[3]).await.unwrap();
    assert_eq!(alone, Some(items[3].value.clone()));
    assert_eq!(
        healed(&mut n0, &keys[3]).await,
        Some(items[3].value.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_many_counts_each_key_on_its_replicas_and_names_what_missed_its_quorum() {
    let mut cluster = Cluster::start(3).await;
    let c = cluster.client(2, Some(2)).await;
    let keys: Vec<Bytes> = (0..200)
        .map(|i| Bytes::from(format!("ip{i}")))
        .chain([Bytes::from_static(b"ip0")])
        .collect();
    let counts = c.add_many("rl", &keys).await.unwrap();
    assert_eq!(counts.len(), 201);
    for (i, got) in counts.iter().enumerate().take(200) {
        assert!(
            matches!(got, Ok(n) if *n == 1 + (i == 0) as u64),
            "ip{i}: {got:?}"
        );
    }
    // Counted on both replicas: either one answers the count.
    for i in [0usize, 7, 199] {
        let want = 1 + (i == 0) as u64;
        assert_eq!(
            c.count("rl", format!("ip{i}").as_bytes(), 0, false)
                .await
                .unwrap(),
            want
        );
    }
    // With n0 down, W = 2 is out of reach for the keys n0 holds, and only for those.
    cluster.stop(0).await;
    let counts = c.add_many("rl", &keys[..200]).await.unwrap();
    for (i, got) in counts.iter().enumerate() {
        let on_n0 = c.view().replica_ids(&keys[i]).contains(&"n0");
        match got {
            Err(Error::Quorum { needed: 2, .. }) => assert!(on_n0, "ip{i}"),
            Ok(n) => assert!(!on_n0 && *n == 2 + (i == 0) as u64, "ip{i}: {n}"),
            other => panic!("ip{i}: {other:?}"),
        }
    }
}
