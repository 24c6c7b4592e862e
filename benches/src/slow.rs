//! `dstash-benches slow-node`: read latency with one of 3 local nodes healthy, slow
//! (every chunk each way delayed 500 ms by a proxy) or frozen (SIGSTOP), at R=2 and R=3,
//! in one run. Each condition gets a new client that knows nothing of the node yet:
//!
//! - `--gets` single gets of keys whose best replica is the faulty node, one at a time;
//!   the first one is shown apart (it meets the node before it is marked);
//! - `--lookups` lookups of 2,000 keys spread over all nodes, one at a time;
//! - hedges sent per 100 reads (a single get, or a batch message per node).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dstash_client::{Bytes, Client, ClientConfig, NodeSpec, PutItem};

use crate::hist::Hist;
use crate::loopback::Server;

#[path = "../../tests/support/proxy.rs"]
mod proxy;
use proxy::{Fault, Proxy};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000, value_parser = crate::flags::min::<2000>)]
    keys: usize,
    #[arg(long, default_value_t = 2_000, value_parser = crate::flags::min::<1>)]
    gets: usize,
    #[arg(long, default_value_t = 50, value_parser = crate::flags::min::<1>)]
    lookups: usize,
    /// Single puts per write row (as many `put_many` calls of 2,000 keys as lookups).
    #[arg(long, default_value_t = 500, value_parser = crate::flags::min::<1>)]
    puts: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Condition {
    Healthy,
    Slow,
    Frozen,
}

async fn connect(addrs: &[String], r: usize) -> Client {
    connect_with(addrs, r, r, false).await
}

async fn connect_with(addrs: &[String], r: usize, w: usize, sloppy: bool) -> Client {
    let specs = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{i}={a}").parse::<NodeSpec>().expect("spec"))
        .collect();
    let mut cfg = ClientConfig::new(specs);
    cfg.replicas = r;
    cfg.write_quorum = Some(w);
    cfg.sloppy_quorum = sloppy;
    Client::connect(cfg).await.expect("connect")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn stop(node: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &node.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} failed");
}

/// One condition's row: single gets of keys led by n0, then 2,000-key lookups.
async fn measure(a: &Args, addrs: &[String], r: usize, keys: &[Bytes]) -> String {
    let c = connect(addrs, r).await;
    let view = c.view();
    let led: Vec<&Bytes> = keys.iter().filter(|k| view.replicas(k)[0] == 0).collect();
    let (mut gets, mut first) = (Hist::default(), Duration::ZERO);
    for i in 0..a.gets {
        let t = Instant::now();
        let got = c.get("bench", led[i % led.len()]).await.expect("get");
        assert!(got.is_some(), "a loaded key read as missing");
        if i == 0 {
            first = t.elapsed();
        }
        gets.record(t.elapsed());
    }
    let mut lookups = Hist::default();
    for i in 0..a.lookups {
        let batch: Vec<Bytes> = (0..2000)
            .map(|j| keys[(i * 7919 + j * 13) % keys.len()].clone())
            .collect();
        let t = Instant::now();
        let got = c.get_many("bench", &batch).await.expect("get_many");
        lookups.record(t.elapsed());
        assert!(
            got.iter().all(Option::is_some),
            "a loaded key read as missing"
        );
    }
    let hedges = c.metrics().hedges_sent.load(Ordering::Relaxed) as f64;
    // Reads: each get, and each lookup's message per node (2,000 keys fit one).
    let reads = (a.gets + a.lookups * 3) as f64;
    format!(
        "{} | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
        ms(first),
        ms(gets.quantile(0.5)),
        ms(gets.quantile(0.99)),
        ms(gets.quantile(0.999)),
        ms(lookups.quantile(0.5)),
        ms(lookups.quantile(0.99)),
        ms(lookups.quantile(0.999)),
        ms(lookups.max()),
        100.0 * hedges / reads
    )
}

/// One condition's write row: single puts of keys led by n0, then 2,000-key
/// `put_many` calls, each timed; failed writes counted, not timed.
async fn measure_writes(
    a: &Args,
    addrs: &[String],
    quorum: (usize, usize, bool),
    keys: &[Bytes],
) -> String {
    let (r, w, sloppy) = quorum;
    let c = connect_with(addrs, r, w, sloppy).await;
    let view = c.view();
    let led: Vec<&Bytes> = keys.iter().filter(|k| view.replicas(k)[0] == 0).collect();
    let value = Bytes::from(vec![b'w'; 100]);
    let (mut puts, mut first, mut failed) = (Hist::default(), Duration::ZERO, 0);
    for i in 0..a.puts {
        let t = Instant::now();
        match c.put("bench", led[i % led.len()], &value, 0).await {
            Ok(()) => puts.record(t.elapsed()),
            Err(_) => failed += 1,
        }
        if i == 0 {
            first = t.elapsed();
        }
    }
    let mut batches = Hist::default();
    for i in 0..a.lookups {
        let items: Vec<PutItem> = (0..2000)
            .map(|j| PutItem {
                key: keys[(i * 7919 + j * 13) % keys.len()].clone(),
                value: value.clone(),
                ttl_seconds: 0,
            })
            .collect();
        let t = Instant::now();
        let report = c.put_many("bench", &items).await.expect("put_many");
        batches.record(t.elapsed());
        failed += report.failed.len();
    }
    let q = |h: &Hist, f| match h.count() {
        0 => "–".to_string(),
        _ => ms(h.quantile(f)),
    };
    format!(
        "{} | {} | {} | {} | {} | {} |",
        ms(first),
        q(&puts, 0.5),
        q(&puts, 0.99),
        q(&batches, 0.5),
        q(&batches, 1.0),
        failed
    )
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let nodes: Vec<Server> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("n{i}"));
            Server::spawn(&[
                "serve-node",
                dir.to_str().unwrap(),
                "--id",
                &format!("n{i}"),
            ])
        })
        .collect();
    let proxy = Proxy::start(nodes[0].addr);
    let mut addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    addrs[0] = proxy.addr.to_string();
    let keys: Vec<Bytes> = crate::loopback::data(a.keys)
        .0
        .into_iter()
        .map(Bytes::from)
        .collect();
    rt.block_on(async {
        let c = connect(&addrs, 3).await;
        let items: Vec<PutItem> = keys
            .iter()
            .map(|k| PutItem {
                key: k.clone(),
                value: Bytes::from(vec![b'v'; 100]),
                ttl_seconds: 0,
            })
            .collect();
        let r = c.put_many("bench", &items).await.expect("load");
        assert!(r.failed.is_empty(), "{} keys failed to load", r.failed.len());
        println!(
            "| R | n0 | first get | get p50 | get p99 | get p99.9 | lookup p50 | lookup p99 | lookup p99.9 | lookup max | hedges per 100 reads |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let mut writes = Vec::new();
        for cond in [Condition::Healthy, Condition::Slow, Condition::Frozen] {
            match cond {
                Condition::Healthy => proxy.set(Fault::Pass),
                Condition::Slow => proxy.set(Fault::Delay(Duration::from_millis(500))),
                Condition::Frozen => {
                    proxy.set(Fault::Pass);
                    stop(&nodes[0], "-STOP");
                }
            }
            let name = match cond {
                Condition::Healthy => "healthy",
                Condition::Slow => "slow (500 ms)",
                Condition::Frozen => "frozen (SIGSTOP)",
            };
            for r in [2, 3] {
                println!("| {r} | {name} | {}", measure(&a, &addrs, r, &keys).await);
            }
            // Through the slow proxy every chunk waits 500 ms in turn, so batch writes
            // there measure the proxy's throughput: writes run healthy and frozen only.
            let quorums = match cond {
                Condition::Slow => &[][..],
                _ => &[(3, 2, false), (2, 2, false), (2, 2, true)][..],
            };
            for &quorum in quorums {
                let row = measure_writes(&a, &addrs, quorum, &keys).await;
                writes.push(format!("| {}/{}{} | {name} | {row}", quorum.0, quorum.1, match quorum.2 {
                    true => " sloppy",
                    false => "",
                }));
            }
        }
        stop(&nodes[0], "-CONT");
        println!();
        println!("| R/W | n0 | first put | put p50 | put p99 | put_many p50 | put_many max | failed writes |");
        println!("|---|---|---|---|---|---|---|---|");
        for row in &writes {
            println!("{row}");
        }
    });
    println!();
    println!(
        "{} keys at R=3; each row a new client. Gets read keys whose best replica is n0; \
         lookups read 2,000 keys spread over the nodes. Writes: single puts of keys led \
         by n0, then put_many calls of 2,000 keys spread over the nodes (as many as \
         lookups); failed writes are counted, not timed. Local `--sync always` children \
         sharing this machine's 2 cores.",
        a.keys
    );
    Ok(())
}
