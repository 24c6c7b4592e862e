//! `dstash demo`: a throwaway 3-node cluster on this machine, end to end, with nothing
//! to install: static membership, temporary directories, free loopback ports.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::Bytes;
use dstash_client::{Client, ClientConfig, NodeSpec, PutItem};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keys to load.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Nodes to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

/// A `dstash node` child; killed when dropped.
struct NodeChild {
    id: String,
    child: Child,
    addr: String,
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &std::path::Path, id: &str) -> Result<NodeChild> {
    let exe = std::env::current_exe().context("finding the dstash binary")?;
    let mut child = Command::new(exe)
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            id,
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a node")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .context("reading the node's serving line")?;
    let Some(addr) = line
        .split(" serving on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
    else {
        let _ = child.kill();
        bail!("node {id} did not start: {line:?}");
    };
    Ok(NodeChild {
        id: id.to_string(),
        addr: addr.to_string(),
        child,
    })
}

/// How many of `items` came back with their own value.
fn correct(found: &[Option<Bytes>], items: &[PutItem]) -> usize {
    found
        .iter()
        .zip(items)
        .filter(|(f, i)| f.as_ref() == Some(&i.value))
        .count()
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:.0} keys/s", n as f64 / secs.max(1e-9))
}

pub async fn run(a: DemoArgs) -> Result<()> {
    if a.nodes < 2 {
        bail!("the demo needs at least 2 nodes to show a failover");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let mut nodes = Vec::new();
    for i in 0..a.nodes {
        nodes.push(spawn(
            &tmp.path().join(format!("node-{i}")),
            &format!("node-{i}"),
        )?);
    }
    println!("1. started {} nodes (R=2, static membership):", nodes.len());
    for n in &nodes {
        println!("     {} on {}", n.id, n.addr);
    }
    let specs = nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.addr).parse::<NodeSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::connect(ClientConfig::new(specs)).await?;

    let items: Vec<PutItem> = (0..a.keys)
        .map(|i| PutItem {
            key: Bytes::from(format!("user:{i:08}")),
            value: Bytes::from(format!("profile-{i}-{}", "x".repeat(64))),
            ttl_seconds: 0,
        })
        .collect();
    let keys: Vec<Bytes> = items.iter().map(|i| i.key.clone()).collect();
    let t = Instant::now();
    let report = client.put_many("demo", &items).await?;
    let load_secs = t.elapsed().as_secs_f64();
    if !report.failed.is_empty() {
        bail!("{} keys missed their write quorum", report.failed.len());
    }
    println!(
        "2. loaded {} keys, 2 copies each, fsync per batch: {:.2} s ({})",
        report.written,
        load_secs,
        rate(a.keys, load_secs)
    );
    let t = Instant::now();
    let found = client.get_many("demo", &keys).await?;
    let lookup_secs = t.elapsed().as_secs_f64();
    let right = correct(&found, &items);
    if right != a.keys {
        bail!("{} of {} keys read back wrong", a.keys - right, a.keys);
    }
    println!(
        "   looked all of them up: {:.2} s ({}), every value correct",
        lookup_secs,
        rate(a.keys, lookup_secs)
    );

    let t = Instant::now();
    let mut last = 0;
    for _ in 0..1000 {
        last = client.add("ratelimit", b"10.0.0.7", 1).await?;
    }
    let add_secs = t.elapsed().as_secs_f64();
    let counted = client.count("ratelimit", b"10.0.0.7", 60, false).await?;
    println!(
        "3. added 1000 events one call at a time ({}/s): count over 60 s = {counted} (last add saw {last})",
        (1000.0 / add_secs.max(1e-9)) as u64
    );
    if counted != 1000 {
        bail!("counted {counted}, expected 1000");
    }

    let victim = nodes.remove(1);
    let victim_id = victim.id.clone();
    drop(victim); // SIGKILL
    let t = Instant::now();
    let found = client.get_many("demo", &keys).await?;
    let failover_secs = t.elapsed().as_secs_f64();
    let right = correct(&found, &items);
    println!(
        "4. killed {victim_id} (kill -9); read all {} keys again: {right} correct in {:.2} s ({})",
        a.keys,
        failover_secs,
        rate(a.keys, failover_secs)
    );
    if right != a.keys {
        bail!("{} keys unreadable with one node down", a.keys - right);
    }
    drop(nodes);
    println!(
        "5. stopped the cluster and removed {}",
        tmp.path().display()
    );
    Ok(())
}
