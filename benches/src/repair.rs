//! `dstash-benches repair`: one anti-entropy pass (`dstash repair`) over 3 local nodes
//! holding the same keys at R=3, with a few keys changed on one node only, against a
//! full copy of the keys to a fresh node, in one run:
//!
//! - the pass over identical replicas (the cost of comparing digests alone);
//! - the pass after `--differ` keys were overwritten on one node only;
//! - a full copy: every key and value streamed to an empty node (`put_many`), the
//!   other way to bring a replica up to date. Its bytes are the keys and values alone,
//!   a lower bound of what it sends.

use std::time::Instant;

use dstash_client::{Bytes, Client, PutItem, RepairProgress, RepairReport};

use dstash_proto::v1::RepairProgress as Totals;

use crate::cluster::client;
use crate::loopback::Server;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::flags::min::<1>)]
    keys: usize,
    /// Keys overwritten on one node only before the second pass.
    #[arg(long, default_value_t = 1_000, value_parser = crate::flags::min::<1>)]
    differ: usize,
}

struct Quiet;

impl RepairProgress for Quiet {
    fn update(&self, _: &RepairReport) {}
}

fn items(n: usize, tag: u8) -> Vec<PutItem> {
    let (keys, mut values) = crate::loopback::data(n);
    for v in &mut values {
        v[0] = tag;
    }
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| PutItem {
            key: Bytes::from(k),
            value: Bytes::from(v),
            ttl_seconds: 0,
        })
        .collect()
}

async fn load(c: &Client, items: &[PutItem]) -> f64 {
    let t = Instant::now();
    for chunk in items.chunks(50_000) {
        let r = c.put_many("bench", chunk).await.expect("put_many");
        assert!(r.failed.is_empty(), "{} keys failed", r.failed.len());
    }
    t.elapsed().as_secs_f64()
}

async fn pass(c: &Client) -> (f64, Totals) {
    let t = Instant::now();
    let r = c.repair_all(&Quiet).await;
    assert_eq!(r.totals.failed, 0, "repair failed: {:?}", r.errors);
    (t.elapsed().as_secs_f64(), r.totals)
}

fn row(what: &str, secs: f64, bytes: u64, moved: u64) {
    println!(
        "| {what} | {:.2} s | {:.2} MiB | {moved} |",
        secs,
        bytes as f64 / (1 << 20) as f64
    );
}

pub fn run(a: Args) -> Result<(), String> {
    let all = items(a.keys, b'a');
    let changed: Vec<PutItem> = items(a.differ.min(a.keys), b'b')
        .into_iter()
        .enumerate()
        .map(|(i, mut it)| {
            // Spread the changed keys over the whole key range.
            it.key = all[i * (a.keys / a.differ.min(a.keys))].key.clone();
            it
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let spawn = |id: &str| {
        let dir = tmp.path().join(id);
        Server::spawn(&["serve-node", dir.to_str().unwrap(), "--id", id])
    };
    let nodes: Vec<Server> = ["n0", "n1", "n2"].iter().map(|id| spawn(id)).collect();
    let fresh = spawn("fresh");
    rt.block_on(async {
        let ids = ["n0", "n1", "n2"];
        let three: Vec<(&str, &Server)> = ids.iter().copied().zip(nodes.iter()).collect();
        let c = client(&three, 3).await;
        eprintln!("loading {} keys at R=3", a.keys);
        load(&c, &all).await;
        let (same_secs, same) = pass(&c).await;
        let only_n2 = client(&three[2..], 1).await;
        load(&only_n2, &changed).await;
        let (diff_secs, diff) = pass(&c).await;
        let again = pass(&c).await.1;
        assert_eq!(again.pushed + again.pulled, 0, "a second pass moved records");
        let to_fresh = client(&[("fresh", &fresh)], 1).await;
        let copy_secs = load(&to_fresh, &all).await;
        let copy_bytes: u64 = all.iter().map(|i| (i.key.len() + i.value.len()) as u64).sum();
        println!("| pass over 3 nodes, {} keys each | time | bytes exchanged | records moved |", a.keys);
        println!("|---|---|---|---|");
        row("identical replicas", same_secs, same.bytes_sent + same.bytes_received, same.pushed + same.pulled);
        row(
            &format!("{} keys changed on one node", a.differ),
            diff_secs,
            diff.bytes_sent + diff.bytes_received,
            diff.pushed + diff.pulled,
        );
        row("full copy to one empty node", copy_secs, copy_bytes, a.keys as u64);
        println!();
        println!(
            "Partitions differing in the second pass: {} (of {} compared); keys listed and compared: {}. \
             Nodes are local `--sync always` children sharing this machine's 2 cores.",
            diff.partitions_differing, diff.partitions_done, diff.keys_compared
        );
    });
    Ok(())
}
