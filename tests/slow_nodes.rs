//! A slow or frozen node costs a reader milliseconds, not the call deadline: three real
//! `dstash node` processes at R=3 W=2, one of them frozen with SIGSTOP, or behind a
//! fault-injecting proxy that delays, drops or cuts its traffic. Single gets and
//! 2,000-key lookups answer correctly from the healthy replicas, the node is marked,
//! and it is used again once it answers.

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use std::time::{Duration, Instant};

use dstash_client::health::NodeState;
use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};
use proxy::{Fault, Proxy};
use support::{run_with, spawn_loopback, NodeProcess};

const KEYS: usize = 2_000;
/// Far above what any answer here needs: a read that waited for it would show.
const DEADLINE: Duration = Duration::from_secs(30);

fn config(addrs: &[String]) -> ClientConfig {
    let specs = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{i}={a}").parse::<NodeSpec>().unwrap())
        .collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.replicas = 3;
    cfg.write_quorum = Some(2);
    cfg.timeout = DEADLINE;
    cfg
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{i:05}"))
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i}"))
}

fn start() -> (tempfile::TempDir, Vec<NodeProcess>) {
    let dir = tempfile::tempdir().unwrap();
    let nodes = (0..3)
        .map(|i| spawn_loopback(&dir.path().join(format!("n{i}")), &[]))
        .collect();
    (dir, nodes)
}

async fn load(client: &Client) {
    let items: Vec<PutItem> = (0..KEYS)
        .map(|i| PutItem {
            key: key(i),
            value: value(i),
            ttl_seconds: 0,
        })
        .collect();
    let report = client.put_many("kv", &items).await.unwrap();
    assert_eq!(report.written as usize, KEYS, "{:?}", report.failed);
}

/// A key whose best replica is node `n`.
fn led_by(client: &Client, n: usize) -> usize {
    let view = client.view();
    (0..KEYS)
        .find(|&i| view.replicas(&key(i))[0] == n)
        .expect("some key is led by every node")
}

/// Every key read back, each its value, well before the deadline.
async fn read_all(client: &Client, what: &str) {
    let keys: Vec<Bytes> = (0..KEYS).map(key).collect();
    let t = Instant::now();
    let got = client.get_many("kv", &keys).await.unwrap();
    assert!(
        t.elapsed() < DEADLINE / 3,
        "{what}: lookup took {:?}",
        t.elapsed()
    );
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.as_ref(), Some(&value(i)), "{what}: key {i}");
    }
}

async fn get_fast(client: &Client, i: usize, what: &str) {
    let t = Instant::now();
    let got = client.get("kv", &key(i)).await.unwrap();
    assert!(
        t.elapsed() < DEADLINE / 3,
        "{what}: get took {:?}",
        t.elapsed()
    );
    assert_eq!(got, Some(value(i)), "{what}");
}

fn hedges(client: &Client) -> u64 {
    client
        .metrics()
        .hedges_sent
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn signal(node: &NodeProcess, sig: i32) {
    // SAFETY: plain syscall on our own child's pid.
    assert_eq!(unsafe { libc::kill(node.child.id() as i32, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_is_read_around_and_used_again_when_it_resumes() {
    let (_dir, nodes) = start();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let client = Client::connect(config(&addrs)).await.unwrap();
    load(&client).await;
    let k = led_by(&client, 0);
    signal(&nodes[0], libc::SIGSTOP);

    get_fast(&client, k, "first get that meets the frozen node").await;
    assert_ne!(client.view().nodes[0].state(), NodeState::Up);
    assert!(
        client
            .metrics()
            .hedges_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    for _ in 0..20 {
        get_fast(&client, k, "gets once it is marked").await;
    }
    read_all(&client, "lookup with n0 frozen").await;
    // A write still reaches W=2 on the two healthy replicas.
    client.put("kv", &key(k), &value(k), 0).await.unwrap();

    // The CLI, a new process that knows nothing of n0 yet.
    let list = format!("n0={},n1={},n2={}", addrs[0], addrs[1], addrs[2]);
    let env = [("DSTASH_NODES", list.as_str())];
    let common = ["--replicas", "3", "--write-quorum", "2", "--timeout", "30"];
    let t = Instant::now();
    let (code, out, err) = run_with(
        &[&common[..], &["get", "kv", &format!("k{k:05}")]].concat(),
        b"",
        &env,
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (0, format!("value-{k}").as_str()),
        "{err}"
    );
    assert!(
        t.elapsed() < DEADLINE / 3,
        "dstash get took {:?}",
        t.elapsed()
    );
    let lines: String = (0..KEYS).map(|i| format!("k{i:05}\n")).collect();
    let t = Instant::now();
    let (code, out, err) = run_with(
        &[&common[..], &["lookup", "kv", "-"]].concat(),
        lines.as_bytes(),
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let found = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| l.contains("value-"))
        .count();
    assert_eq!(found, KEYS, "{err}");
    assert!(
        t.elapsed() < DEADLINE / 3,
        "dstash lookup took {:?}",
        t.elapsed()
    );

    signal(&nodes[0], libc::SIGCONT);
    let t = Instant::now();
    loop {
        let status = client.status().await;
        if status[0].status.is_ok() && status[0].state == NodeState::Up {
            break;
        }
        assert!(
            t.elapsed() < DEADLINE,
            "n0 never came back: {:?}",
            status[0].state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    read_all(&client, "lookup after n0 resumed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_faulty_path_costs_readers_no_deadline() {
    let (_dir, nodes) = start();
    let proxy = Proxy::start(nodes[0].addr);
    let mut addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    addrs[0] = proxy.addr.to_string();
    let client = Client::connect(config(&addrs)).await.unwrap();
    load(&client).await;
    let k = led_by(&client, 0);
    for fault in [
        Fault::Delay(Duration::from_millis(500)),
        Fault::Drop,
        Fault::Cut,
    ] {
        proxy.set(fault);
        let what = format!("{fault:?}");
        let hedged = hedges(&client);
        get_fast(&client, k, &what).await;
        read_all(&client, &what).await;
        get_fast(&client, k, &what).await;
        if fault != Fault::Cut {
            // A refused connection fails over at once; a silent one is hedged.
            assert!(hedges(&client) > hedged, "{what}: no read was hedged");
        }
        proxy.set(Fault::Pass);
        // Wait out the node's down-while, then it answers again.
        let t = Instant::now();
        while client.status().await[0].status.is_err() {
            assert!(t.elapsed() < DEADLINE, "{what}: n0 never answered again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    read_all(&client, "after the faults").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_write_returns_at_quorum_while_a_replica_is_frozen() {
    let (_dir, nodes) = start();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut cfg = config(&addrs);
    // Keep-alive alone would give up on the frozen node after 10 s: a write that waited
    // for it would take at least that long.
    cfg.keepalive = Duration::from_secs(10);
    let client = Client::connect(cfg).await.unwrap();
    load(&client).await;
    signal(&nodes[0], libc::SIGSTOP);

    let items: Vec<PutItem> = (0..KEYS)
        .map(|i| PutItem {
            key: key(i),
            value: Bytes::from(format!("new-{i}")),
            ttl_seconds: 0,
        })
        .collect();
    let t = Instant::now();
    let report = client.put_many("kv", &items).await.unwrap();
    assert_eq!(report.written as usize, KEYS, "{:?}", report.failed);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );

    // n0's share went on in the background and lands once it resumes.
    signal(&nodes[0], libc::SIGCONT);
    let mut n0 = nodes[0].client().await;
    let t = Instant::now();
    loop {
        let r = n0
            .lookup(dstash_proto::v1::LookupRequest {
                namespace: "kv".into(),
                key: key(KEYS - 1),
            })
            .await
            .unwrap()
            .into_inner();
        if r.value == format!("new-{}", KEYS - 1).as_bytes() {
            break;
        }
        assert!(t.elapsed() < DEADLINE, "n0 never got the batch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
