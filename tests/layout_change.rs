//! The cluster changes shape with nothing lost: five real `dstash node` processes, a
//! cluster first run on three of them with no layout, moved by `dstash layout apply
//! --wait` to all five and then to the last two, while a writer and a reader run
//! throughout. Every acknowledged write is recorded; at the end each reads back, each
//! acknowledged delete stays deleted, and the two remaining nodes (R = 2) each hold
//! every key. Anti-entropy is off: only the handoff can have moved data. Further
//! cases: kill -9 of a sender and of the receiver mid-stream, a second apply and an
//! abort, and writes acknowledged while an old owner was cut off by a proxy.

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dstash_client::{Client, ClientConfig, NodeSpec};
use dstash_proto::v1::LookupBatch;
use support::{run_with, spawn_node, NodeProcess};

const NODES: usize = 5;
const PRELOAD: u32 = 3000;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn list(ports: &[u16], which: &[usize]) -> String {
    which
        .iter()
        .map(|&i| format!("n{i}=127.0.0.1:{}", ports[i]))
        .collect::<Vec<_>>()
        .join(",")
}

fn start(dir: &std::path::Path, ports: &[u16], i: usize) -> NodeProcess {
    start_with(dir, ports, i, &[])
}

fn start_with(dir: &std::path::Path, ports: &[u16], i: usize, extra: &[&str]) -> NodeProcess {
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

async fn connect(nodes: &str) -> Client {
    let specs: Vec<NodeSpec> = nodes.split(',').map(|s| s.parse().unwrap()).collect();
    Client::connect(ClientConfig::new(specs)).await.unwrap()
}

/// Writes `{key}{i}` = `{value}{i}` for i below `n`, in batches, every key acknowledged.
async fn preload(c: &Client, key: &str, value: &str, n: u32) {
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

/// What the writer had acknowledged: key -> Some(value) or None (deleted).
type Acked = Arc<Mutex<BTreeMap<String, Option<String>>>>;

struct Load {
    acked: Acked,
    failed_writes: Arc<AtomicU64>,
    failed_reads: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// A writer (new keys, and deletes of every fifth earlier one) and a reader (random
/// keys acknowledged and never deleted), until stopped.
fn load(client: &Client) -> (Load, Vec<tokio::task::JoinHandle<()>>) {
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

fn apply(before: &str, to: &str) -> String {
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

type Raw = dstash_proto::DstashClient<tonic::transport::Channel>;

/// Which of `keys` the node behind `c` holds itself, asked as a peer would (no layout
/// epoch refuses it), a thousand keys per message.
async fn held(c: &mut Raw, keys: &[String]) -> Vec<bool> {
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
async fn lacking(c: &mut Raw, keys: &[String]) -> usize {
    held(c, keys).await.iter().filter(|h| !**h).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_five_to_two_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let nodes: Vec<NodeProcess> = (0..NODES).map(|i| start(dir.path(), &ports, i)).collect();
    let first = list(&ports, &[0, 1, 2]);
    let client = connect(&first).await;
    preload(&client, "pre-", "p", PRELOAD).await;
    assert!(client.layout().is_none(), "no layout yet");

    let (l, tasks) = load(&client);
    let all = list(&ports, &[0, 1, 2, 3, 4]);
    let c1 = first.clone();
    let to_five = all.clone();
    tokio::task::spawn_blocking(move || apply(&c1, &to_five))
        .await
        .unwrap();
    let last = list(&ports, &[3, 4]);
    let to_two = last.clone();
    tokio::task::spawn_blocking(move || apply(&all, &to_two))
        .await
        .unwrap();
    l.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = l.acked.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged, {} reads during the moves",
        acked.len(),
        l.reads.load(Ordering::Relaxed)
    );
    assert!(acked.len() > 50, "the writer ran during the moves");
    assert_eq!(l.failed_writes.load(Ordering::Relaxed), 0, "failed writes");
    assert_eq!(l.failed_reads.load(Ordering::Relaxed), 0, "failed reads");

    let layout = client.layout().expect("the client routes by the layout");
    assert_eq!(layout.members.len(), 2);
    // Every write reads back through the client, each delete stays deleted...
    for i in 0..PRELOAD {
        let got = client
            .get("ns", format!("pre-{i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(format!("p{i}").as_bytes()), "pre-{i}");
    }
    let mut resurrected = 0;
    for (k, v) in &acked {
        let got = client.get("ns", k.as_bytes()).await.unwrap();
        match v {
            Some(v) => assert_eq!(got.as_deref(), Some(v.as_bytes()), "{k}"),
            None => resurrected += got.is_some() as usize,
        }
    }
    assert_eq!(resurrected, 0, "deletes came back");
    // ...and both remaining nodes (R = 2 of 2) hold every live key themselves.
    for i in [3, 4] {
        let mut c = nodes[i].client().await;
        let c = &mut c;
        let mut live: Vec<String> = (0..PRELOAD).map(|p| format!("pre-{p}")).collect();
        live.extend(
            acked
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone()),
        );
        assert_eq!(lacking(c, &live).await, 0, "n{i} lacks keys it owns");
    }
    let (code, out, _) = run_with(&["--nodes", &last, "layout", "show"], b"", &[]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stage stable") && out.contains("n3") && !out.contains("leaving"),
        "{out}"
    );
}

/// The handoff `id` reports for streaming epoch `epoch`: (partitions done, total, pushed).
async fn handoff_of(c: &Client, id: &str, epoch: u64) -> Option<(u64, u64, u64)> {
    let states = c.layout_states().await;
    let s = states.into_iter().find(|n| n.id == id)?.state.ok()?;
    let h = s.handoff.filter(|_| s.handoff_epoch == epoch)?;
    Some((h.partitions_done, h.partitions_total, h.pushed))
}

/// Waits until the layout is stable after `epoch`.
async fn settle(c: &Client, epoch: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !c.layout_settled_after(epoch).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the transition did not complete"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sender_and_a_killed_receiver_resume_and_complete() {
    const KEYS: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let slow = ["--handoff-rate", "3000"];
    let mut nodes: Vec<Option<NodeProcess>> = (0..4)
        .map(|i| Some(start_with(dir.path(), &ports, i, &slow)))
        .collect();
    let first = list(&ports, &[0, 1, 2]);
    let client = connect(&first).await;
    preload(&client, "k", "v", KEYS).await;
    // A client that connected before the move, and routes by no layout.
    let stale = client.clone();
    let (code, out, err) = run_with(
        &[
            "--nodes",
            &first,
            "layout",
            "apply",
            "--nodes",
            &list(&ports, &[0, 1, 2, 3]),
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{} {err}", String::from_utf8_lossy(&out));
    let applied = {
        client.refresh_layout().await.unwrap();
        client.layout().unwrap().epoch
    };
    // Streaming is two epochs after the apply's (write-both, then streaming).
    let streaming = applied + 1;
    // The keys n1 must send: those of the partitions it owned that n3 gains.
    let moving = {
        let l = client.layout().unwrap();
        let mut at = (*l).clone();
        at.stage = dstash_client::Stage::Streaming;
        let parts: std::collections::HashSet<u32> = at
            .moves_from("n1")
            .into_iter()
            .map(|m| m.partition)
            .collect();
        (0..KEYS)
            .filter(|i| parts.contains(&dstash_cluster::partition_of(format!("k{i}").as_bytes())))
            .count() as u64
    };
    // Kill n1 (a sender, not the driver) halfway through its handoff.
    let (done_before, before) = loop {
        if let Some((done, total, pushed)) = handoff_of(&client, "n1", streaming).await {
            if done * 3 >= total && done < total {
                break (done, pushed);
            }
            assert!(done < total, "the handoff ended before it could be cut");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    nodes[1].take().unwrap().kill9();
    nodes[1] = Some(start_with(dir.path(), &ports, 1, &slow));
    // And the receiver, n3, once the restarted sender is moving again.
    loop {
        if let Some((done, total, _)) = handoff_of(&client, "n1", streaming).await {
            // The restarted sender starts from its cursor, not from the beginning.
            assert!(
                done >= done_before,
                "resumed at {done} of {total}, had {done_before}"
            );
            assert!(done < total, "no time left to cut the receiver");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    nodes[3].take().unwrap().kill9();
    nodes[3] = Some(start_with(dir.path(), &ports, 3, &slow));
    settle(&client, applied).await;
    let (_, _, after) = handoff_of(&client, "n1", streaming).await.unwrap();
    eprintln!(
        "n1 sent {before} keys ({done_before} partitions) before its kill -9 and {after} after, of {moving} it had to"
    );
    // The handoff's metrics say the same.
    let line = &nodes[1].as_ref().unwrap().line;
    let total = support::metric(line, "dstash_handoff_partitions");
    assert!(total > 0);
    assert_eq!(
        support::metric(line, "dstash_handoff_partitions_done"),
        total
    );
    assert_eq!(support::metric(line, "dstash_handoff_pushed_total"), after);
    assert!(support::metric(line, "dstash_layout_epoch") > streaming);
    // The restart resumed at its next group of 16 partitions: it sent again at most
    // what one group holds (about 16 x 20 keys here), not its whole share.
    assert!(
        before + after <= moving + 16 * 40,
        "{before} + {after} sent for {moving}"
    );

    // The client that predates the layout is refused, learns it, and loses nothing.
    for i in 0..200u32 {
        stale
            .put("ns", format!("late{i}").as_bytes(), b"x", 0)
            .await
            .unwrap();
    }
    for i in (0..KEYS).step_by(7) {
        let got = client.get("ns", format!("k{i}").as_bytes()).await.unwrap();
        assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "k{i}");
    }
    // Every key is on both of its owners among the four.
    let l = client.layout().unwrap();
    assert_eq!(l.members.len(), 4);
    let placement = l.placement();
    let mut conns = Vec::new();
    for n in &nodes {
        conns.push(n.as_ref().unwrap().client().await);
    }
    // Per node, the keys it owns.
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); 4];
    let keys = (0..KEYS)
        .map(|i| format!("k{i}"))
        .chain((0..200).map(|i| format!("late{i}")));
    for k in keys {
        for id in placement.replica_ids(k.as_bytes(), 2) {
            owned[id[1..].parse::<usize>().unwrap()].push(k.clone());
        }
    }
    for (n, keys) in owned.iter().enumerate() {
        assert_eq!(
            lacking(&mut conns[n], keys).await,
            0,
            "n{n} lacks copies it owns"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_is_refused_and_an_abort_goes_back() {
    const KEYS: u32 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let slow = ["--handoff-rate", "2000"];
    let nodes: Vec<NodeProcess> = (0..4)
        .map(|i| start_with(dir.path(), &ports, i, &slow))
        .collect();
    let first = list(&ports, &[0, 1, 2]);
    let client = connect(&first).await;
    preload(&client, "k", "v", KEYS).await;
    let four = list(&ports, &[0, 1, 2, 3]);
    let (code, _, err) = run_with(
        &["--nodes", &first, "layout", "apply", "--nodes", &four],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // While it streams, another apply is refused, naming the running transition.
    let (code, _, err) = run_with(
        &[
            "--nodes",
            &first,
            "layout",
            "apply",
            "--nodes",
            &list(&ports, &[0, 1]),
        ],
        b"",
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("a transition is in progress"), "{err}");
    // Abort once streaming has begun; it returns to the three.
    loop {
        client.refresh_layout().await.unwrap();
        if client.layout().unwrap().stage == dstash_client::Stage::Streaming {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (code, out, err) = run_with(&["--nodes", &first, "layout", "abort", "--wait"], b"", &[]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("stable: epoch") && out.contains("members n0,n1,n2"),
        "{out}"
    );
    client.refresh_layout().await.unwrap();
    let l = client.layout().unwrap();
    assert_eq!(
        (l.members.len(), l.stage),
        (3, dstash_client::Stage::Stable)
    );
    for i in (0..KEYS).step_by(3) {
        let got = client.get("ns", format!("k{i}").as_bytes()).await.unwrap();
        assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "k{i}");
    }
    // The old owners still hold every copy.
    let placement = l.placement();
    for (n, node) in nodes.iter().enumerate().take(3) {
        let keys: Vec<String> = (0..KEYS)
            .map(|i| format!("k{i}"))
            .filter(|k| {
                placement
                    .replica_ids(k.as_bytes(), 2)
                    .contains(&format!("n{n}").as_str())
            })
            .collect();
        assert_eq!(lacking(&mut node.client().await, &keys).await, 0, "n{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_while_an_old_owner_was_cut_off_reaches_the_new_owners() {
    const KEYS: u32 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let nodes: Vec<NodeProcess> = (0..4).map(|i| start(dir.path(), &ports, i)).collect();
    // The client reaches n1 through a proxy; the nodes reach each other directly.
    let cut = proxy::Proxy::start(nodes[1].addr);
    let first = format!(
        "n0=127.0.0.1:{},n1={},n2=127.0.0.1:{}",
        ports[0], cut.addr, ports[2]
    );
    let specs: Vec<NodeSpec> = first.split(',').map(|s| s.parse().unwrap()).collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.write_quorum = Some(1);
    let client = Client::connect(cfg).await.unwrap();
    cut.set(proxy::Fault::Cut);
    for i in 0..KEYS {
        client
            .put("ns", format!("k{i}").as_bytes(), b"v", 0)
            .await
            .unwrap();
    }
    let on_n1 = (0..KEYS)
        .filter(|i| {
            client
                .view()
                .replica_ids(format!("k{i}").as_bytes())
                .contains(&"n1")
        })
        .count();
    assert!(on_n1 > KEYS as usize / 3, "n1 owns its share");
    cut.set(proxy::Fault::Pass);
    // n1 holds none of its share: a handoff that took each key from one old owner
    // would lose the ones it took from n1.
    let mut n1 = nodes[1].client().await;
    let all: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    assert_eq!(
        lacking(&mut n1, &all).await,
        KEYS as usize,
        "n1 was cut off"
    );
    apply(&first, &list(&ports, &[0, 1, 2, 3]));
    client.refresh_layout().await.unwrap();
    let placement = client.layout().unwrap().placement();
    let gained: Vec<String> = all
        .iter()
        .filter(|k| placement.replica_ids(k.as_bytes(), 2).contains(&"n3"))
        .cloned()
        .collect();
    assert!(!gained.is_empty());
    let mut n3 = nodes[3].client().await;
    assert_eq!(
        lacking(&mut n3, &gained).await,
        0,
        "n3 lacks writes acknowledged without n1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_with_an_empty_disk_learns_the_layout_and_repair_refills_it() {
    const KEYS: u32 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let three = list(&ports, &[0, 1, 2]);
    let peers = ["--peers", three.as_str()];
    let mut nodes: Vec<Option<NodeProcess>> = (0..3)
        .map(|i| Some(start_with(dir.path(), &ports, i, &peers)))
        .collect();
    let client = connect(&three).await;
    preload(&client, "k", "v", KEYS).await;
    // The same three nodes, now as a layout.
    apply(&three, &three);
    client.refresh_layout().await.unwrap();
    let epoch = client.layout().unwrap().epoch;

    nodes[1].take().unwrap().kill9();
    std::fs::remove_dir_all(dir.path().join("n1")).unwrap();
    nodes[1] = Some(start_with(dir.path(), &ports, 1, &peers));
    let mut n1 = nodes[1].as_ref().unwrap().client().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = n1
            .get_layout(dstash_proto::v1::GetLayoutRequest {})
            .await
            .unwrap()
            .into_inner();
        if s.epoch == epoch {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n1 never learnt the layout"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, out, err) = run_with(&["--nodes", &three, "repair"], b"", &[]);
    assert_eq!(code, 0, "{} {err}", String::from_utf8_lossy(&out));
    let placement = client.layout().unwrap().placement();
    let owned: Vec<String> = (0..KEYS)
        .map(|i| format!("k{i}"))
        .filter(|k| placement.replica_ids(k.as_bytes(), 2).contains(&"n1"))
        .collect();
    assert!(!owned.is_empty());
    assert_eq!(lacking(&mut n1, &owned).await, 0, "repair refilled n1");
}
