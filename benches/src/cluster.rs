//! `dstash-benches cluster`: the client's replicated bulk load and batch lookup against
//! local `dstash node` children, in one run:
//!
//! - 1M keys (16-byte keys, 100-byte values) loaded into 3 nodes with R=2 (W=2), beside
//!   the same load into 1 node with R=1;
//! - a lookup of 100k of those keys across the 3 nodes.
//!
//! The load goes the way `dstash load` sends it: client batches of 50,000 keys, two in
//! flight, each split by node and streamed to every node at once, fsync per batch on
//! every node (`--sync always`).

use std::time::Instant;

use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};

use crate::loopback::Server;
use crate::table::{Cell, Unit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::flags::min::<1>)]
    keys: usize,
    /// Keys looked up (at most --keys).
    #[arg(long, default_value_t = 100_000, value_parser = crate::flags::min::<1>)]
    lookups: usize,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
}

fn items(n: usize) -> Vec<PutItem> {
    let (keys, values) = crate::loopback::data(n);
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| PutItem {
            key: Bytes::from(k),
            value: Bytes::from(v),
            ttl_seconds: 0,
        })
        .collect()
}

/// A client of `nodes` (id, server) writing `replicas` copies, all of them acknowledged.
pub async fn client(nodes: &[(&str, &Server)], replicas: usize) -> Client {
    let specs = nodes
        .iter()
        .map(|(id, s)| {
            format!("{id}={}", s.addr)
                .parse::<NodeSpec>()
                .expect("spec")
        })
        .collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.replicas = replicas;
    cfg.write_quorum = Some(replicas);
    Client::connect(cfg).await.expect("connect")
}

/// Loads everything as `dstash load` does; returns seconds.
async fn load(c: &Client, items: &[PutItem]) -> f64 {
    let t = Instant::now();
    let mut chunks = items.chunks(50_000);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() < 2 {
            let Some(chunk) = chunks.next() else { break };
            let (c, chunk) = (c.clone(), chunk.to_vec());
            in_flight.spawn(async move { c.put_many("bench", &chunk).await });
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let report = done.expect("task").expect("put_many");
        assert!(
            report.failed.is_empty(),
            "{} keys failed",
            report.failed.len()
        );
    }
    t.elapsed().as_secs_f64()
}

pub fn run(mut a: Args) -> Result<(), String> {
    a.lookups = a.lookups.min(a.keys);
    let all = items(a.keys);
    let lookup_keys: Vec<Bytes> = all
        .iter()
        .step_by((a.keys / a.lookups).max(1))
        .take(a.lookups)
        .map(|i| i.key.clone())
        .collect();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let (mut three, mut one, mut lookup) = (Cell::default(), Cell::default(), Cell::default());
    for run in 0..a.runs {
        eprintln!("run {}/{}", run + 1, a.runs);
        let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
        let spawn =
            |name: String| Server::spawn(&["serve-node", tmp.path().join(name).to_str().unwrap()]);
        let cluster: Vec<Server> = (0..3).map(|i| spawn(format!("c{i}"))).collect();
        let single = spawn("single".into());
        rt.block_on(async {
            let ids: Vec<String> = (0..cluster.len()).map(|i| format!("n{i}")).collect();
            let nodes: Vec<(&str, &Server)> =
                ids.iter().map(String::as_str).zip(&cluster).collect();
            let c = client(&nodes, 2).await;
            three.0.push(a.keys as f64 / load(&c, &all).await);
            let t = Instant::now();
            let got = c.get_many("bench", &lookup_keys).await.expect("get_many");
            lookup.0.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(got.iter().all(Option::is_some), "a key went missing");
            let c = client(&[("n0", &single)], 1).await;
            one.0.push(a.keys as f64 / load(&c, &all).await);
        });
    }
    println!("| workload | dstash | target |");
    println!("|---|---|---|");
    println!(
        "| bulk load, {} keys, 3 nodes, R=2 W=2 (each key fsynced on 2 nodes) | {} | |",
        a.keys,
        three.show(Unit::PerSec)
    );
    println!(
        "| bulk load, {} keys, 1 node, R=1 | {} | |",
        a.keys,
        one.show(Unit::PerSec)
    );
    println!(
        "| batch lookup of {} keys across 3 nodes (client `get_many`) | {} | |",
        lookup_keys.len(),
        lookup.show(Unit::Millis)
    );
    println!();
    println!(
        "Median of {} runs (range in brackets). Keys of 16 bytes, values of 100 bytes; nodes are local `--sync always` children sharing this machine's 2 cores with the client.",
        a.runs
    );
    Ok(())
}
