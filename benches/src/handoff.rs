//! `dstash-benches handoff`: a layout change under load. Four local nodes; a cluster on
//! three of them (R = 2) loaded with `--keys` keys of `--value-bytes`, then moved to all
//! four with no handoff limit, then back to three at the default `--handoff-rate`.
//! A prober runs single gets and puts throughout, so the steady rows and the transition
//! rows come from one run. Beside them: what the handoff moved, how fast, and the
//! disk's sequential write speed measured in the same directory.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstash_client::layout::LayoutChange;
use dstash_client::{Bytes, Client, ClientConfig, Layout, LayoutMember, NodeSpec, PutItem, Stage};

use crate::hist::Hist;
use crate::loopback::Server;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 200_000, value_parser = crate::flags::min::<1000>)]
    keys: usize,
    #[arg(long, default_value_t = 1000, value_parser = crate::flags::min::<1>)]
    value_bytes: usize,
    /// Seconds of steady load measured before the first change.
    #[arg(long, default_value_t = 5)]
    steady_secs: u64,
}

#[derive(Default)]
struct Probe {
    gets: Hist,
    puts: Hist,
    failed: u64,
}

/// Single gets of loaded keys and puts of new ones, one at a time, into the probe
/// `into` names, until `stop`.
async fn probe(c: Client, keys: Arc<Vec<Bytes>>, into: Arc<Mutex<Probe>>, stop: Arc<AtomicBool>) {
    let value = Bytes::from(vec![b'p'; 100]);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let t = Instant::now();
        let got = c.get("bench", &keys[(i * 7919) % keys.len()]).await;
        let took = t.elapsed();
        let t = Instant::now();
        let put = c
            .put("bench", format!("probe-{i}").as_bytes(), &value, 0)
            .await;
        let put_took = t.elapsed();
        let mut p = into.lock().unwrap_or_else(|e| e.into_inner());
        match got {
            Ok(Some(_)) => p.gets.record(took),
            _ => p.failed += 1,
        }
        match put {
            Ok(()) => p.puts.record(put_took),
            Err(_) => p.failed += 1,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn row(name: &str, p: &Probe) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        ms(p.gets.quantile(0.5)),
        ms(p.gets.quantile(0.99)),
        ms(p.puts.quantile(0.5)),
        ms(p.puts.quantile(0.99)),
        p.gets.count() + p.puts.count(),
        p.failed
    )
}

/// Sequential write speed of the disk under `dir`: 256 MiB in 1 MiB writes, fsynced.
fn disk_mb_per_sec(dir: &std::path::Path) -> f64 {
    let path = dir.join("seq.bin");
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).expect("create");
    for _ in 0..256 {
        f.write_all(&chunk).expect("write");
    }
    f.sync_all().expect("fsync");
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    256.0 * 1.048_576 / secs
}

/// What one transition did: per stage, when it was first seen.
struct Moved {
    took: Duration,
    streaming: Duration,
    keys: u64,
    bytes: u64,
}

/// Applies `members` and waits for it, timing the streaming stage from the client's
/// polls (every 20 ms), and summing what every node reports it pushed.
async fn transition(c: &Client, members: Vec<LayoutMember>) -> Moved {
    let t = Instant::now();
    let l = c
        .change_layout(LayoutChange::Apply {
            members,
            gone: Vec::new(),
        })
        .await
        .expect("apply");
    let streaming_epoch = l.epoch + 1;
    let (mut started, mut ended) = (None, None);
    loop {
        c.refresh_layout().await.expect("refresh");
        let now: Arc<Layout> = c.layout().expect("layout");
        if now.epoch >= streaming_epoch && started.is_none() {
            started = Some(Instant::now());
        }
        if now.epoch > streaming_epoch && ended.is_none() {
            ended = Some(Instant::now());
        }
        if now.stage == Stage::Stable && now.epoch > l.epoch {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    let (mut keys, mut bytes) = (0, 0);
    for n in c.layout_states().await {
        if let Ok(s) = n.state {
            if let Some(h) = s.handoff.filter(|_| s.handoff_epoch == streaming_epoch) {
                keys += h.pushed;
                bytes += h.bytes_sent;
            }
        }
    }
    let streaming = match (started, ended) {
        (Some(a), Some(b)) => b - a,
        _ => took,
    };
    Moved {
        took,
        streaming,
        keys,
        bytes,
    }
}

fn member(i: usize, s: &Server) -> LayoutMember {
    LayoutMember {
        id: format!("n{i}"),
        addr: s.addr.to_string(),
        weight: 1.0,
        zone: String::new(),
    }
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let disk = disk_mb_per_sec(tmp.path());
    let spawn = |i: usize, rate: &str| {
        let dir = tmp.path().join(format!("n{i}"));
        let id = format!("n{i}");
        Server::spawn(&[
            "serve-node",
            dir.to_str().unwrap(),
            "--id",
            &id,
            "--handoff-rate",
            rate,
        ])
    };
    // n0..n2 send the scale-out at no limit; n3 sends the scale-in at the default.
    let nodes: Vec<Server> = (0..4)
        .map(|i| spawn(i, if i < 3 { "0" } else { "50000" }))
        .collect();
    let keys: Arc<Vec<Bytes>> = Arc::new(
        (0..a.keys)
            .map(|i| Bytes::from(format!("key-{i:012}")))
            .collect(),
    );
    rt.block_on(async {
        let specs = (0..3)
            .map(|i| format!("n{i}={}", nodes[i].addr).parse::<NodeSpec>().expect("spec"))
            .collect();
        let c = Client::connect(ClientConfig::new(specs)).await.expect("connect");
        let value = Bytes::from(vec![b'v'; a.value_bytes]);
        for chunk in keys.chunks(20_000) {
            let items: Vec<PutItem> = chunk
                .iter()
                .map(|k| PutItem {
                    key: k.clone(),
                    value: value.clone(),
                    ttl_seconds: 0,
                })
                .collect();
            let r = c.put_many("bench", &items).await.expect("load");
            assert!(r.failed.is_empty(), "{} keys failed to load", r.failed.len());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let phases: Vec<Arc<Mutex<Probe>>> = (0..3).map(|_| Arc::default()).collect();
        let mut moved = Vec::new();
        for (i, phase) in phases.iter().enumerate() {
            let stop_phase = Arc::new(AtomicBool::new(false));
            let prober = tokio::spawn(probe(c.clone(), keys.clone(), phase.clone(), stop_phase.clone()));
            match i {
                0 => tokio::time::sleep(Duration::from_secs(a.steady_secs)).await,
                1 => moved.push(transition(&c, (0..4).map(|i| member(i, &nodes[i])).collect()).await),
                _ => moved.push(transition(&c, (0..3).map(|i| member(i, &nodes[i])).collect()).await),
            }
            stop_phase.store(true, Ordering::Relaxed);
            let _ = prober.await;
        }
        stop.store(true, Ordering::Relaxed);
        println!("| phase | get p50 | get p99 | put p50 | put p99 | calls | failed |");
        println!("|---|---|---|---|---|---|---|");
        let names = ["steady, 3 nodes", "3 → 4, no handoff limit", "4 → 3, --handoff-rate 50000"];
        for (name, p) in names.iter().zip(&phases) {
            println!("{}", row(name, &p.lock().unwrap_or_else(|e| e.into_inner())));
        }
        println!();
        println!("| transition | took | streaming | records pushed | MB sent | keys/s streaming | MB/s streaming |");
        println!("|---|---|---|---|---|---|---|");
        for (name, m) in names[1..].iter().zip(&moved) {
            let s = m.streaming.as_secs_f64().max(1e-3);
            println!(
                "| {name} | {:.1} s | {:.1} s | {} | {:.1} | {:.0} | {:.1} |",
                m.took.as_secs_f64(),
                s,
                m.keys,
                m.bytes as f64 / 1e6,
                m.keys as f64 / s,
                m.bytes as f64 / 1e6 / s
            );
        }
    });
    println!();
    println!(
        "{} keys of {} bytes at R=2. The disk's sequential write speed here, in the same \
         run: {disk:.0} MB/s (256 MiB in 1 MiB writes, then fsync). Streaming is timed from \
         the client's 20 ms polls of the layout; records pushed sum every sender's count \
         (each old owner of a moving partition compares it, so a record can be counted by \
         two). Local `--sync always` children sharing this machine's 2 cores; the prober \
         is one client doing a get then a put, one at a time.",
        a.keys, a.value_bytes
    );
    Ok(())
}
