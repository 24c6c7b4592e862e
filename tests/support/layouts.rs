//! What the layout tests share: nodes on loopback ports with R = 2 and no
//! anti-entropy (only the handoff moves data), a client, `layout apply --wait`, and
//! looking at what one node holds itself.

#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use std::net::TcpListener;

use dstash_client::{Client, ClientConfig, Layout, NodeSpec};
use dstash_proto::v1::{DigestRequest, LookupBatch};

use crate::support::{run_with, spawn_node, NodeProcess};

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn list(ports: &[u16], which: &[usize]) -> String {
    which
        .iter()
        .map(|&i| format!("n{i}=127.0.0.1:{}", ports[i]))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn start(dir: &std::path::Path, ports: &[u16], i: usize) -> NodeProcess {
    start_with(dir, ports, i, &[])
}

pub fn start_with(dir: &std::path::Path, ports: &[u16], i: usize, extra: &[&str]) -> NodeProcess {
    let (listen, id) = (format!("127.0.0.1:{}", ports[i]), format!("n{i}"));
    let data = dir.join(&id);
    let data = data.to_str().unwrap().to_string();
    let mut args = vec![
        "--data-dir",
        &data,
        "--listen",
        &listen,
        "--node-id",
        &id,
        "--replicas",
        "2",
        "--anti-entropy-interval",
        "0",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    spawn_node(&args)
}

pub async fn connect(nodes: &str) -> Client {
    let specs: Vec<NodeSpec> = nodes.split(',').map(|s| s.parse().unwrap()).collect();
    Client::connect(ClientConfig::new(specs)).await.unwrap()
}

/// Writes `{key}{i}` = `{value}{i}` for i below `n`, in batches, every key acknowledged.
pub async fn preload(c: &Client, key: &str, value: &str, n: u32) {
    let items: Vec<_> = (0..n)
        .map(|i| dstash_client::PutItem {
            key: format!("{key}{i}").into_bytes().into(),
            value: format!("{value}{i}").into_bytes().into(),
            ttl_seconds: 0,
        })
        .collect();
    for chunk in items.chunks(5000) {
        let report = c.put_many("ns", chunk).await.unwrap();
        assert_eq!(report.written, chunk.len() as u64);
    }
}

pub fn apply(before: &str, to: &str) -> String {
    let (code, out, err) = run_with(
        &[
            "--nodes", before, "layout", "apply", "--nodes", to, "--wait",
        ],
        b"",
        &[],
    );
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "layout apply to {to}: {out} {err}");
    eprintln!("{}", out.trim());
    assert!(out.contains("stable: epoch"), "{out}");
    out
}

pub type Raw = dstash_proto::DstashClient<tonic::transport::Channel>;

/// Which of `keys` the node behind `c` holds itself, asked as a peer would (no layout
/// epoch refuses it), a thousand keys per message.
pub async fn held(c: &mut Raw, keys: &[String]) -> Vec<bool> {
    let batches: Vec<LookupBatch> = keys
        .chunks(1000)
        .enumerate()
        .map(|(i, ks)| LookupBatch {
            namespace: "ns".into(),
            keys: ks.iter().map(|k| k.clone().into_bytes().into()).collect(),
            batch_id: i as u64,
        })
        .collect();
    let mut req = tonic::Request::new(tokio_stream::iter(batches));
    req.metadata_mut()
        .insert("dstash-epoch", "peer".parse().unwrap());
    let mut answers = c.batch_lookup(req).await.unwrap().into_inner();
    let mut found = Vec::with_capacity(keys.len());
    while let Some(b) = answers.message().await.unwrap() {
        found.extend(b.results.iter().map(|r| r.found));
    }
    assert_eq!(found.len(), keys.len());
    found
}

/// How many of `keys` the node behind `c` lacks.
pub async fn lacking(c: &mut Raw, keys: &[String]) -> usize {
    held(c, keys).await.iter().filter(|h| !**h).count()
}

/// The handoff `id` reports for streaming epoch `epoch`: (partitions done, total, pushed).
pub async fn handoff_of(c: &Client, id: &str, epoch: u64) -> Option<(u64, u64, u64)> {
    let states = c.layout_states().await;
    let s = states.into_iter().find(|n| n.id == id)?.state.ok()?;
    let h = s.handoff.filter(|_| s.handoff_epoch == epoch)?;
    Some((h.partitions_done, h.partitions_total, h.pushed))
}

/// Waits until the layout is stable after `epoch`.
pub async fn settle(c: &Client, epoch: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !c.layout_settled_after(epoch).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the transition did not complete"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Asserts that the node `id` behind `c` holds nothing (no value, no tombstone) of a
/// partition it does not own in `l`: each such partition's digest is empty.
pub async fn holds_only_owned(c: &mut Raw, l: &Layout, id: &str) {
    let owned = l.owned_by(id);
    let partitions: Vec<u32> = (0..owned.len() as u32).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let digests = loop {
        let mut req = tonic::Request::new(DigestRequest {
            namespace: "ns".into(),
            partitions: partitions.clone(),
            leaves: false,
        });
        req.metadata_mut()
            .insert("dstash-epoch", "peer".parse().unwrap());
        let d = c.digest(req).await.unwrap().into_inner();
        if d.ready {
            break d.digests;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id}: digests never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let stray: Vec<usize> = (0..owned.len())
        .filter(|&p| !owned[p] && digests[p] != 0)
        .collect();
    assert!(
        stray.is_empty(),
        "{id} still holds records of {} partitions it does not own: {:?}...",
        stray.len(),
        &stray[..stray.len().min(8)]
    );
}
