//! Faults in the middle of a transition, between real `dstash node` processes: kill -9
//! of a sender and of the receiver, a stale client, a write acknowledged while an old
//! owner was cut off by a proxy, and a node back with an empty disk.

#[path = "support/layouts.rs"]
mod layouts;
#[path = "support/proxy.rs"]
mod proxy;
mod support;

use dstash_client::{Client, ClientConfig, NodeSpec};
use layouts::*;
use support::{run_with, NodeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sender_and_a_killed_receiver_resume_and_complete() {
    const KEYS: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let slow = ["--handoff-rate", "3000"];
    let (ports, mut nodes) = layouts::nodes(dir.path(), 4, &slow);
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
        holds_only_owned(&mut conns[n], &l, &format!("n{n}")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_in_one_transition_and_repair_finishes_it() {
    const KEYS: u32 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let (ports, mut nodes) = layouts::nodes(dir.path(), 4, &[]);
    let three = list(&ports, &[0, 1, 2]);
    // Until the move starts, writes of n0's keys go to stand-ins (sloppy quorum).
    let specs: Vec<NodeSpec> = three.split(',').map(|s| s.parse().unwrap()).collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.sloppy_quorum = true;
    let client = Client::connect(cfg).await.unwrap();
    preload(&client, "k", "v", KEYS).await;
    apply(&three, &three);
    // n0, the layout's driver, dies for good; n3 takes its place while writes go on.
    nodes[0].take().unwrap().kill9();
    std::fs::remove_dir_all(dir.path().join("n0")).unwrap();
    let (l, tasks) = load(&client);
    let to = list(&ports, &[1, 2, 3]);
    let args = [
        "--nodes", &three, "layout", "apply", "--nodes", &to, "--gone", "n0", "--wait",
    ];
    let out = layout_cmd(args.iter().map(|a| a.to_string()).collect()).await;
    assert!(
        out.contains("(n0 gone)") && out.contains("stable: epoch"),
        "{out}"
    );
    l.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = l.acked.lock().unwrap().clone();
    eprintln!("{}\n{} writes acknowledged", out.trim(), acked.len());
    assert!(acked.len() > 20, "the writer ran during the move");
    assert_eq!(
        l.failed_writes.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(l.failed_reads.load(std::sync::atomic::Ordering::Relaxed), 0);
    let (code, out, err) = run_with(&["--nodes", &to, "repair"], b"", &[]);
    assert_eq!(code, 0, "{} {err}", String::from_utf8_lossy(&out));

    client.refresh_layout().await.unwrap();
    let layout = client.layout().unwrap();
    assert_eq!(layout.members.len(), 3);
    let mut live: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    live.extend(
        acked
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone()),
    );
    for k in &live {
        assert!(
            client.get("ns", k.as_bytes()).await.unwrap().is_some(),
            "{k}"
        );
    }
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let mut c = n.as_ref().unwrap().client().await;
        audit(&mut c, &layout, &format!("n{i}"), &live).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_that_dies_mid_move_is_declared_gone_and_the_move_completes() {
    const KEYS: u32 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let slow = ["--handoff-rate", "2000"];
    let (ports, mut nodes) = layouts::nodes(dir.path(), 4, &slow);
    let three = list(&ports, &[0, 1, 2]);
    let client = connect(&three).await;
    preload(&client, "k", "v", KEYS).await;
    apply(&three, &three);
    let to = list(&ports, &[1, 2, 3]);
    let (code, _, err) = run_with(
        &["--nodes", &three, "layout", "apply", "--nodes", &to],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // n0, leaving and the transition's driver, dies while it streams.
    loop {
        client.refresh_layout().await.unwrap();
        if client.layout().unwrap().stage == dstash_client::Stage::Streaming {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    nodes[0].take().unwrap().kill9();
    std::fs::remove_dir_all(dir.path().join("n0")).unwrap();
    let args = ["--nodes", &to, "layout", "gone", "n0", "--wait"];
    let out = layout_cmd(args.iter().map(|a| a.to_string()).collect()).await;
    assert!(
        out.contains("n0 gone") && out.contains("stable: epoch"),
        "{out}"
    );
    client.refresh_layout().await.unwrap();
    let layout = client.layout().unwrap();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let mut c = n.as_ref().unwrap().client().await;
        audit(&mut c, &layout, &format!("n{i}"), &keys).await;
    }
}
