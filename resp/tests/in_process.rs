//! The front end's client reaches the node it runs beside by a call, not over gRPC: a
//! client whose address for that node leads nowhere still writes, reads and counts
//! through the node's store, and a client over the network sees what it wrote. A
//! store-level refusal comes back per key as the stream's answer would.

use std::time::Duration;

use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};
use dstash_node::{Node, NodeOptions};

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn config(id: &str, addr: String) -> ClientConfig {
    let mut cfg = ClientConfig::new(vec![NodeSpec {
        id: Some(id.into()),
        addr,
    }]);
    cfg.replicas = 1;
    cfg.retries = 0;
    cfg.timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.probe_every = Duration::ZERO;
    cfg
}

fn items(n: usize) -> Vec<PutItem> {
    (0..n)
        .map(|i| PutItem {
            key: Bytes::from(format!("k{i}")),
            value: Bytes::from(format!("v{i}")),
            ttl_seconds: 0,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_process_is_called_not_dialled() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions::insecure(dir.path(), "127.0.0.1:0".parse().unwrap());
    opts.service.node_id = "n1".into();
    opts.drain_timeout = Duration::from_millis(200);
    let mut node = Node::start(opts).await.unwrap();
    node.ready().await.unwrap();

    // Nothing listens where this client thinks n1 is: without the hook, writes fail.
    let nowhere = free_addr();
    let dialled = Client::connect(config("n1", nowhere.clone()))
        .await
        .unwrap();
    let report = dialled.put_many("ns", &items(3)).await;
    assert!(
        report.map_or(true, |r| r.failed.len() == 3),
        "a write to an address nothing listens on cannot succeed"
    );

    let mut cfg = config("n1", nowhere);
    cfg.local = Some(dstash_resp::in_process::hook("n1", node.local_batches()));
    let local = Client::connect(cfg).await.unwrap();
    let report = local.put_many("ns", &items(200)).await.unwrap();
    assert_eq!((report.written, report.failed.len()), (200, 0));
    let keys: Vec<Bytes> = items(200).into_iter().map(|i| i.key).collect();
    let got = local.get_many("ns", &keys).await.unwrap();
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, v)| v.as_deref() == Some(format!("v{i}").as_bytes())));
    let counts = local.add_many("ns", &keys[..3]).await.unwrap();
    assert_eq!(
        counts.into_iter().map(|c| c.unwrap()).collect::<Vec<_>>(),
        vec![1, 1, 1]
    );

    // Over the network, the node holds what the in-process client wrote.
    let net = Client::connect(config("n1", node.local_addr().to_string()))
        .await
        .unwrap();
    let seen = net.get_many("ns", &keys[..5]).await.unwrap();
    assert_eq!(seen[4].as_deref(), Some(&b"v4"[..]));

    // The store's refusal of a bad namespace comes back as the stream's would.
    let bad = local.put_many("../escape", &items(1)).await;
    let said = match bad {
        Err(e) => e.to_string(),
        Ok(r) => r
            .failed
            .first()
            .map(|(_, e)| e.to_string())
            .unwrap_or_default(),
    };
    assert!(said.contains("namespace"), "{said}");
    node.shutdown().await.unwrap();
}
