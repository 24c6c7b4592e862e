//! The cluster changes shape with nothing lost: five real `dstash node` processes, a
//! cluster first run on three of them with no layout, moved by `dstash layout apply
//! --wait` to all five and then to the last two, while a writer and a reader run
//! throughout. Every acknowledged write is recorded; at the end each reads back, each
//! acknowledged delete stays deleted, the two remaining nodes (R = 2) each hold every
//! key, and the three that left hold nothing. Anti-entropy is off: only the handoff
//! can have moved data. Also: a second apply is refused and an abort goes back.
//! Faults during a transition are in `layout_faults.rs`.

#[path = "support/layouts.rs"]
mod layouts;
mod support;

use std::sync::atomic::Ordering;

use layouts::*;
use support::{run_with, NodeProcess};

const NODES: usize = 5;
const PRELOAD: u32 = 3000;
const COUNTERS: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_five_to_two_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let nodes: Vec<NodeProcess> = (0..NODES).map(|i| start(dir.path(), &ports, i)).collect();
    let first = list(&ports, &[0, 1, 2]);
    let client = connect(&first).await;
    preload(&client, "pre-", "p", PRELOAD).await;
    preload_counts(&client, COUNTERS).await;
    assert!(client.layout().is_none(), "no layout yet");

    let (l, tasks) = load(&client);
    let all = list(&ports, &[0, 1, 2, 3, 4]);
    let c1 = first.clone();
    let to_five = all.clone();
    tokio::task::spawn_blocking(move || apply(&c1, &to_five))
        .await
        .unwrap();
    // Once at five, each node holds only the partitions it owns among the five.
    client.refresh_layout().await.unwrap();
    let five = client.layout().unwrap();
    assert_eq!(five.members.len(), 5);
    for (i, n) in nodes.iter().enumerate() {
        holds_only_owned(&mut n.client().await, &five, &format!("n{i}")).await;
    }
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
    // The three that left hold nothing, not even tombstones or counts.
    for (i, n) in nodes.iter().enumerate().take(3) {
        let mut c = n.client().await;
        holds_only_owned(&mut c, &layout, &format!("n{i}")).await;
        assert_eq!(counter_keys(&mut c).await, Vec::<String>::new(), "n{i}");
    }
    // Counts moved with their keys: each remaining node counts every key itself.
    check_counts(&client, COUNTERS).await;
    for i in [3, 4] {
        let held = counter_keys(&mut nodes[i].client().await).await;
        assert_eq!(held.len(), COUNTERS as usize, "n{i} counter keys");
    }
    let (code, out, _) = run_with(&["--nodes", &last, "layout", "show"], b"", &[]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stage stable") && out.contains("n3") && !out.contains("leaving"),
        "{out}"
    );
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
    // The old owners still hold every copy, and n3's partial copies are gone.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for (n, node) in nodes.iter().enumerate() {
        audit(&mut node.client().await, &l, &format!("n{n}"), &keys).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_layout_that_leaves_out_a_node_holding_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ports, _nodes) = layouts::nodes(dir.path(), 3, &[]);
    let three = list(&ports, &[0, 1, 2]);
    let client = connect(&three).await;
    preload(&client, "k", "v", 500).await;
    // The cluster runs on three, but the operator names one as where it runs now.
    let (code, _, err) = run_with(
        &[
            "--nodes",
            &list(&ports, &[0]),
            "layout",
            "apply",
            "--nodes",
            &three,
        ],
        b"",
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("holds") && err.contains("is not among the nodes"),
        "{err}"
    );
    client.refresh_layout().await.unwrap();
    assert!(client.layout().is_none(), "nothing was applied");
}
