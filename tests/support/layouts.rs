//! What the layout tests share: nodes on loopback ports with R = 2 and no
//! anti-entropy (only the handoff moves data), a client, `layout apply --wait`, and
//! looking at what one node holds itself.

#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// `n` nodes on free ports over `dir`, each started with `extra`; a test may take one
/// out (kill it) and put a restarted one back.
pub fn nodes(
    dir: &std::path::Path,
    n: usize,
    extra: &[&str],
) -> (Vec<u16>, Vec<Option<NodeProcess>>) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let nodes = (0..n)
        .map(|i| Some(start_with(dir, &ports, i, extra)))
        .collect();
    (ports, nodes)
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

/// `dstash layout ARGS`, off the async threads, which must exit 0; its output.
pub async fn layout_cmd(args: Vec<String>) -> String {
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with(&refs, b"", &[])
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "{out} {err}");
    out
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
            flat: false,
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

/// Asserts that the node `id` behind `c` holds every one of `keys` it owns in `l`
/// (R = 2), and nothing of a partition it does not own.
pub async fn audit(c: &mut Raw, l: &Layout, id: &str, keys: &[String]) {
    let placement = l.placement();
    let owned: Vec<String> = keys
        .iter()
        .filter(|k| placement.replica_ids(k.as_bytes(), 2).contains(&id))
        .cloned()
        .collect();
    assert_eq!(lacking(c, &owned).await, 0, "{id} lacks keys it owns");
    holds_only_owned(c, l, id).await;
}

/// `n` counter keys `c{i}`, key i counted (i % 7) + 1 times.
pub async fn preload_counts(c: &Client, n: u32) {
    for i in 0..n {
        let key = format!("c{i}");
        c.add("ns", key.as_bytes(), i % 7 + 1).await.unwrap();
    }
}

/// Asserts that every key of [`preload_counts`] counts what was added, asking one
/// replica only.
pub async fn check_counts(c: &Client, n: u32) {
    for i in 0..n {
        let key = format!("c{i}");
        let got = c.count("ns", key.as_bytes(), 0, false).await.unwrap();
        assert_eq!(got, (i % 7 + 1) as u64, "{key}");
    }
}

/// The counter keys with a live count that the node behind `c` holds itself.
pub async fn counter_keys(c: &mut Raw) -> Vec<String> {
    let mut req = tonic::Request::new(dstash_proto::v1::KeysRequest {
        namespace: "ns".into(),
        pattern: String::new(),
        limit: 0,
        counters: true,
    });
    req.metadata_mut()
        .insert("dstash-epoch", "peer".parse().unwrap());
    let mut chunks = c.keys(req).await.unwrap().into_inner();
    let mut keys = Vec::new();
    while let Some(chunk) = chunks.message().await.unwrap() {
        keys.extend(
            chunk
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
        );
    }
    keys
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

/// What the writer had acknowledged: key -> Some(value) or None (deleted).
pub type Acked = Arc<Mutex<BTreeMap<String, Option<String>>>>;

pub struct Load {
    pub acked: Acked,
    pub failed_writes: Arc<AtomicU64>,
    pub failed_reads: Arc<AtomicU64>,
    pub reads: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
}

/// A writer (new keys, and deletes of every fifth earlier one) and a reader (random
/// keys acknowledged and never deleted), until stopped.
pub fn load(client: &Client) -> (Load, Vec<tokio::task::JoinHandle<()>>) {
    let l = Load {
        acked: Arc::default(),
        failed_writes: Arc::default(),
        failed_reads: Arc::default(),
        reads: Arc::default(),
        stop: Arc::default(),
    };
    let writer = {
        let (c, acked, failed, stop) = (
            client.clone(),
            l.acked.clone(),
            l.failed_writes.clone(),
            l.stop.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let (k, v) = (format!("live-{i}"), format!("v{i}"));
                match c.put("ns", k.as_bytes(), v.as_bytes(), 0).await {
                    Ok(()) => {
                        acked.lock().unwrap().insert(k, Some(v));
                    }
                    Err(e) => {
                        eprintln!("write failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if i.is_multiple_of(5) && i >= 5 {
                    let k = format!("live-{}", i - 5);
                    match c.delete("ns", k.as_bytes()).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(k, None);
                        }
                        Err(e) => {
                            eprintln!("delete failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                i += 1;
            }
        })
    };
    let reader = {
        let (c, acked, failed, reads, stop) = (
            client.clone(),
            l.acked.clone(),
            l.failed_reads.clone(),
            l.reads.clone(),
            l.stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let pick = {
                    let a = acked.lock().unwrap();
                    // Keys that are never deleted: those the writer wrote at i % 5 != 0 - 5.
                    a.iter()
                        .filter(|(k, v)| v.is_some() && !k.ends_with('0') && !k.ends_with('5'))
                        .nth((n * 7919) as usize % a.len().max(1))
                        .map(|(k, v)| (k.clone(), v.clone()))
                };
                let Some((k, v)) = pick else {
                    tokio::task::yield_now().await;
                    continue;
                };
                reads.fetch_add(1, Ordering::Relaxed);
                match c.get("ns", k.as_bytes()).await {
                    Ok(Some(got)) if Some(got.as_ref()) == v.as_deref().map(str::as_bytes) => {}
                    other => {
                        eprintln!("read of {k} gave {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    (l, vec![writer, reader])
}
