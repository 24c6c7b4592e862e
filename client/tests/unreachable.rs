//! The client works with what it can reach: bare HOST:PORT nodes that do not answer are
//! left out of placement until they do, and a node whose calls fail at the transport is
//! marked down for a while instead of being tried (and timed out on) by every call.

use std::time::Duration;

use dstash_client::{Client, ClientConfig, NodeSpec, PutItem};
use dstash_node::{Node, NodeOptions};

async fn start_node(dir: &std::path::Path, id: &str, addr: &str) -> Node {
    let mut opts = NodeOptions::insecure(dir, addr.parse().unwrap());
    opts.service.node_id = id.into();
    opts.drain_timeout = Duration::from_millis(200);
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();
    node
}

/// A loopback address nothing listens on (bound, then released).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn config(specs: &[String], node_down: Duration) -> ClientConfig {
    let nodes = specs
        .iter()
        .map(|s| s.parse::<NodeSpec>().unwrap())
        .collect();
    let mut cfg = ClientConfig::new(nodes);
    cfg.replicas = 2;
    cfg.write_quorum = Some(1);
    cfg.timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.retries = 0;
    cfg.node_down = node_down;
    cfg
}

/// Waits, a bounded number of times, for `cond`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_nodes_that_do_not_answer_join_placement_once_they_do() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n0 = start_node(dirs[0].path(), "n0", "127.0.0.1:0").await;
    let n1 = start_node(dirs[1].path(), "n1", "127.0.0.1:0").await;
    let late = free_addr();
    let specs = [
        n0.local_addr().to_string(),
        late.clone(),
        n1.local_addr().to_string(),
    ];
    let c = Client::connect(config(&specs, Duration::from_millis(100)))
        .await
        .unwrap();

    let ids: Vec<String> = c.view().nodes.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, ["n0", "n1"], "placed over the nodes that answered");
    c.put("kv", b"k", b"v", 0).await.unwrap();
    assert_eq!(c.get("kv", b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let items: Vec<PutItem> = (0..100u32)
        .map(|i| PutItem {
            key: format!("key{i}").into_bytes().into(),
            value: b"x".to_vec().into(),
            ttl_seconds: 0,
        })
        .collect();
    assert_eq!(c.put_many("kv", &items).await.unwrap().written, 100);

    // The node comes up at the address it was given: it is asked again and joins.
    let _n2 = start_node(dirs[2].path(), "n2", &late).await;
    eventually("n2 joins the view", || c.view().nodes.len() == 3).await;
    assert_eq!(c.view().nodes[2].id, "n2");
    drop((n0, n1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_answering_is_an_error_naming_each() {
    let (a, b) = (free_addr(), free_addr());
    let Err(e) = Client::connect(config(&[a.clone(), b.clone()], Duration::from_millis(100))).await
    else {
        panic!("connected with no node up");
    };
    let msg = e.to_string();
    assert!(
        msg.contains(&a) && msg.contains(&b) && msg.contains("node id"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_node_is_marked_down_and_skipped_until_its_while_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let n0 = start_node(dir.path(), "n0", "127.0.0.1:0").await;
    let dead = free_addr();
    let specs = [format!("n0={}", n0.local_addr()), format!("n9={dead}")];
    // A long while, so that nothing here depends on how fast the machine is.
    let c = Client::connect(config(&specs, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        c.view().nodes.len(),
        2,
        "a node given with its id keeps its place"
    );

    // W=1 of R=2: the write is acknowledged by n0; the call to n9 is refused.
    c.put("kv", b"k", b"v", 0).await.unwrap();
    let down = |c: &Client| {
        let c = c.clone();
        async move {
            let st = c.status().await;
            let n9 = st.iter().find(|s| s.id == "n9").unwrap();
            n9.status.as_ref().err().map(|e| e.message().to_string())
        }
    };
    let mut msg = None;
    for _ in 0..200 {
        msg = down(&c).await.filter(|m| m.contains("marked down"));
        if msg.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let msg = msg.expect("n9 is marked down after its refused call");
    assert!(msg.contains("n9"), "{msg}");
    // Reads and writes go on against the live replica without touching n9.
    for i in 0..20u32 {
        let key = format!("k{i}");
        c.put("kv", key.as_bytes(), b"v", 0).await.unwrap();
        assert_eq!(
            c.get("kv", key.as_bytes()).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    let st = c.status().await;
    let n0s = st.iter().find(|s| s.id == "n0").unwrap();
    assert!(n0s.status.is_ok(), "a live node is never marked down");
}
