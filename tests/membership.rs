//! Real `dstash node` processes registering in the Consul double, and clients that
//! find them through it.

mod support;

use std::time::{Duration, Instant};

use dstash_client::{Client, ClientConfig, WatchOptions};
use dstash_membership::ConsulDouble;
use support::{run, spawn_node, NodeProcess};

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node(dir: &std::path::Path, id: &str, consul: &str) -> NodeProcess {
    spawn_node(&[
        "--data-dir",
        dir.join(id).to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--consul",
        consul,
        "--consul-ttl",
        "1",
        "--zone",
        "z1",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_and_clients_follow_them_through_consul() {
    let consul = ConsulDouble::start().await;
    let url = consul.url();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Option<NodeProcess>> = (0..3)
        .map(|i| Some(node(dir.path(), &format!("n{i}"), &url)))
        .collect();
    eventually("three passing nodes", || {
        let s = consul.services("dstash");
        s.len() == 3 && s.values().all(|&p| p)
    })
    .await;

    // The CLI finds the nodes through Consul.
    let (code, _, err) = run(&["put", "--consul", &url, "kv", "alice", "1"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["get", "--consul", &url, "kv", "alice"]);
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");

    let mut watch = WatchOptions::new("dstash");
    watch.wait = Duration::from_secs(2);
    watch.min_interval = Duration::from_millis(20);
    watch.stable_for = Duration::from_millis(200);
    let client = Client::connect_consul(
        ClientConfig::new(vec![]),
        &url,
        watch,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let ids = |c: &Client| {
        c.view()
            .nodes
            .iter()
            .map(|n| n.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&client), ["n0", "n1", "n2"]);

    // A killed node stops passing its TTL check and drops out of the client's set.
    nodes[1].take().unwrap().kill9();
    eventually("n1 to drop out", || ids(&client) == ["n0", "n2"]).await;
    client.put("kv", b"bob", b"2", 0).await.unwrap();

    // The agent restarts and forgets everyone: the nodes register again.
    consul.restart();
    eventually("re-registration", || {
        let s = consul.services("dstash");
        s.len() == 2 && s.values().all(|&p| p)
    })
    .await;

    // Consul is down: the client keeps its last set and keeps working.
    consul.set_leader_lost(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.put("kv", b"carol", b"3", 0).await.unwrap();
    assert_eq!(
        client.get("kv", b"carol").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(ids(&client), ["n0", "n2"]);
    consul.set_leader_lost(false);

    // SIGTERM: the node drains and deregisters.
    let status = nodes[0].take().unwrap().terminate();
    assert!(status.success());
    eventually("n0 deregistered", || {
        !consul.services("dstash").contains_key("n0")
    })
    .await;
}

#[test]
fn a_node_that_cannot_say_where_to_dial_it_refuses_to_register() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[
        "node",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
        "--insecure",
        "--consul",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--advertise"), "{err}");
}
