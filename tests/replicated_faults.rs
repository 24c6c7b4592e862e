//! Bulk loads through the client into 3 real nodes while one is killed with `kill -9`
//! and restarted: at R=2/W=2 and at R=3/W=2, no acknowledged key is lost, reads succeed
//! throughout, and the errors the client saw are counted and printed
//! (`cargo test -p dstash --test replicated_faults -- --nocapture`).

mod support;

use std::time::Duration;

use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};
use support::{spawn_loopback, NodeProcess};

const CHUNKS: usize = 24;
const PER_CHUNK: usize = 2_000;

fn chunk(c: usize) -> Vec<PutItem> {
    (0..PER_CHUNK)
        .map(|i| PutItem {
            key: Bytes::from(format!("c{c:02}-k{i:05}")),
            value: Bytes::from(format!("value-{c}-{i}")),
            ttl_seconds: 0,
        })
        .collect()
}

fn config(addrs: &[String], r: usize) -> ClientConfig {
    let specs = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{i}={a}").parse::<NodeSpec>().unwrap())
        .collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.replicas = r;
    cfg.write_quorum = Some(2);
    cfg.timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg
}

async fn load_through_a_kill_and_restart(r: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Option<NodeProcess>> = (0..3)
        .map(|i| Some(spawn_loopback(&dir.path().join(format!("n{i}")), &[])))
        .collect();
    let mut addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().addr.to_string())
        .collect();
    let mut client = Client::connect(config(&addrs, r)).await.unwrap();
    let mut acked: Vec<PutItem> = Vec::new();
    let (mut failed_keys, mut read_checks) = (0usize, 0usize);
    for c in 0..CHUNKS {
        if c == 8 {
            nodes[2].take().unwrap().kill9();
        }
        if c == 16 {
            // Restarted on its data directory, on a new port.
            let n = spawn_loopback(&dir.path().join("n2"), &[]);
            addrs[2] = n.addr.to_string();
            nodes[2] = Some(n);
            client = Client::connect(config(&addrs, r)).await.unwrap();
        }
        let items = chunk(c);
        let report = client.put_many("bulk", &items).await.unwrap();
        failed_keys += report.failed.len();
        let failed: std::collections::HashSet<usize> =
            report.failed.iter().map(|(p, _)| *p).collect();
        acked.extend(
            items
                .into_iter()
                .enumerate()
                .filter(|(p, _)| !failed.contains(p))
                .map(|(_, i)| i),
        );
        // Reads succeed throughout: every key acknowledged so far, every 4th chunk.
        if c % 4 == 3 {
            let keys: Vec<Bytes> = acked.iter().map(|i| i.key.clone()).collect();
            let got = client.get_many("bulk", &keys).await.unwrap();
            for (i, g) in acked.iter().zip(&got) {
                assert_eq!(g.as_ref(), Some(&i.value), "R={r}: {:?} lost", i.key);
            }
            read_checks += 1;
        }
    }
    let keys: Vec<Bytes> = acked.iter().map(|i| i.key.clone()).collect();
    let got = client.get_many("bulk", &keys).await.unwrap();
    let lost = acked
        .iter()
        .zip(&got)
        .filter(|(i, g)| g.as_ref() != Some(&i.value))
        .count();
    println!(
        "R={r} W=2: {} keys sent, {} acknowledged, {failed_keys} refused for a missed quorum, \
         {read_checks} full read checks during the run, {lost} lost",
        CHUNKS * PER_CHUNK,
        acked.len()
    );
    assert_eq!(lost, 0);
    if r == 3 {
        assert_eq!(failed_keys, 0, "R=3 W=2 rides out one dead node");
    } else {
        assert!(
            failed_keys > 0,
            "R=2 W=2 must refuse the dead node's keys while it is down"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_w2_load_through_a_node_kill_and_restart() {
    load_through_a_kill_and_restart(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_w2_load_through_a_node_kill_and_restart() {
    load_through_a_kill_and_restart(3).await;
}
