//! `dstash-benches larger-than-ram`: one node in a memory cgroup whose limit is far
//! below its data (issue #6), loaded over loopback, then read at random.
//!
//! The node child runs in a cgroup v1 memory controller group of `--limit-mib` (256 MiB
//! by default) beside `--data-mib` of data (4 GiB by default; 16-byte keys, 1,000-byte
//! values), so its page cache cannot hold the data. Every looked-up value is checked.
//! The run fails if the node is OOM-killed or a lookup is wrong; it is skipped, with a
//! message, where the memory controller is not writable.
//! `cargo run -p dstash-benches --release -- larger-than-ram --data-mib 4096 --limit-mib 256`

use std::path::{Path, PathBuf};
use std::time::Instant;

use dstash_proto::v1::*;
use dstash_proto::{Bytes, DstashClient};
use tonic::transport::Channel;

use crate::loopback::Server;
use crate::workload::{dir_bytes, mix, rss_anon_of};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data to load, in MiB.
    #[arg(long, default_value_t = 4096, value_parser = crate::flags::min_u64::<1>)]
    data_mib: u64,
    /// The memory cgroup's limit, in MiB.
    #[arg(long, default_value_t = 256, value_parser = crate::flags::min_u64::<16>)]
    limit_mib: u64,
    #[arg(long, default_value_t = 200_000, value_parser = crate::flags::min::<1>)]
    lookups: usize,
    /// Lookup streams at once (the disk answers in parallel).
    #[arg(long, default_value_t = 16, value_parser = crate::flags::min::<1>)]
    parallel: usize,
}

const NS: &str = "big";
const VALUE_LEN: usize = 1000;
const BATCH: usize = 1000;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:012}"))
}

/// 1,000 bytes that only key `i` has.
fn value(i: u64) -> Bytes {
    let mut out = Vec::with_capacity(VALUE_LEN);
    let mut x = mix(i + 1);
    while out.len() < VALUE_LEN {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(VALUE_LEN);
    Bytes::from(out)
}

/// A memory cgroup of ours, removed on drop.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// A child of this process's own memory cgroup, limited to `limit` bytes.
    fn create(limit: u64) -> Result<Cgroup, String> {
        let root = Path::new("/sys/fs/cgroup/memory");
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then(|| path.trim_start_matches('/').to_string())
            })
            .ok_or("no cgroup v1 memory controller in /proc/self/cgroup")?;
        let dir = root
            .join(own)
            .join(format!("dstash-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let cg = Cgroup { dir };
        cg.write("memory.limit_in_bytes", &limit.to_string())?;
        Ok(cg)
    }

    fn write(&self, file: &str, v: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), v)
            .map_err(|e| format!("{}: {e}", self.dir.join(file).display()))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn number(&self, file: &str) -> u64 {
        self.read(file).trim().parse().unwrap_or(0)
    }

    /// OOM kills in the group (0 where the kernel does not count them).
    fn oom_kills(&self) -> u64 {
        self.read("memory.oom_control")
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

async fn load(c: &mut DstashClient<Channel>, keys: u64) -> Result<(), String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<PutBatch>(4);
    let producer = tokio::spawn(async move {
        let mut i = 0;
        while i < keys {
            let end = (i + BATCH as u64).min(keys);
            let batch = PutBatch {
                namespace: NS.into(),
                entries: (i..end)
                    .map(|k| Entry {
                        key: key(k),
                        value: value(k),
                        ttl_seconds: 0,
                        ..Default::default()
                    })
                    .collect(),
                batch_id: i,
            };
            if tx.send(batch).await.is_err() {
                return;
            }
            i = end;
        }
    });
    let mut acks = c
        .batch_put(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("load: {e}"))?
        .into_inner();
    let mut written = 0u64;
    while let Some(ack) = acks.message().await.map_err(|e| format!("load: {e}"))? {
        written += u64::from(ack.written);
    }
    producer.await.map_err(|e| e.to_string())?;
    if written != keys {
        return Err(format!("load: {written} of {keys} keys acknowledged"));
    }
    Ok(())
}

/// `n` random lookups of loaded keys on one stream, batches of 100; every value checked.
async fn lookups(
    mut c: DstashClient<Channel>,
    keys: u64,
    n: usize,
    seed: u64,
) -> Result<(), String> {
    let mut x = mix(seed);
    let mut picks = Vec::with_capacity(n);
    for _ in 0..n {
        x = mix(x);
        picks.push(x % keys);
    }
    let batches: Vec<LookupBatch> = picks
        .chunks(100)
        .enumerate()
        .map(|(b, chunk)| LookupBatch {
            namespace: NS.into(),
            keys: chunk.iter().map(|&k| key(k)).collect(),
            batch_id: b as u64,
            flat: false,
        })
        .collect();
    let mut answers = c
        .batch_lookup(tokio_stream::iter(batches))
        .await
        .map_err(|e| format!("lookup: {e}"))?
        .into_inner();
    let mut checked = 0;
    while let Some(r) = answers
        .message()
        .await
        .map_err(|e| format!("lookup: {e}"))?
    {
        let chunk = &picks[r.batch_id as usize * 100..];
        for (res, &k) in r.results.iter().zip(chunk) {
            if !res.found || res.value != value(k) {
                return Err(format!("key {k}: wrong answer (found: {})", res.found));
            }
            checked += 1;
        }
    }
    if checked != n {
        return Err(format!("{checked} of {n} lookups answered"));
    }
    Ok(())
}

pub fn run(a: Args) -> Result<(), String> {
    let cg = match Cgroup::create(a.limit_mib << 20) {
        Ok(cg) => cg,
        Err(why) => {
            println!(
                "SKIPPED: larger-than-RAM needs a writable cgroup v1 memory controller ({why})"
            );
            return Ok(());
        }
    };
    let keys = (a.data_mib << 20) / (VALUE_LEN as u64 + 16);
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let dir = tmp.path().join("big");
    let server = Server::spawn(&["serve-node", dir.to_str().unwrap()]);
    // Before any data: the child has only set up its runtime and an empty store.
    cg.write("cgroup.procs", &server.pid().to_string())?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut c = server.client().await;
        eprintln!(
            "larger-than-ram: loading {keys} keys ({} MiB of values) into a node limited to {} MiB",
            a.data_mib, a.limit_mib
        );
        let t = Instant::now();
        load(&mut c, keys).await?;
        let load_s = t.elapsed().as_secs_f64();
        let on_disk = dir_bytes(&dir);
        let rss_after_load = rss_anon_of(&server.pid().to_string());

        let t = Instant::now();
        let per = a.lookups.div_ceil(a.parallel);
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..a.parallel {
            tasks.spawn(lookups(server.client().await, keys, per, p as u64 + 7));
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| e.to_string())??;
        }
        let lookup_s = t.elapsed().as_secs_f64();
        let total = per * a.parallel;
        let rss = rss_anon_of(&server.pid().to_string());
        let alive = std::fs::metadata(format!("/proc/{}", server.pid())).is_ok();
        let ooms = cg.oom_kills();

        println!(
            "Larger than RAM: one node (`--sync always`) in a cgroup v1 memory group limited to {} MiB.",
            a.limit_mib
        );
        println!();
        println!("| figure | value |");
        println!("|---|---|");
        println!("| keys loaded (16 B keys, {VALUE_LEN} B values) | {keys} |");
        println!(
            "| data on disk | {:.0} MiB ({:.1}× the limit) |",
            mib(on_disk),
            on_disk as f64 / (a.limit_mib << 20) as f64
        );
        println!(
            "| load, one BatchPut stream of {BATCH}-key batches | {:.1} s, {:.0} K keys/s, {:.0} MiB/s |",
            load_s,
            keys as f64 / load_s / 1e3,
            mib(keys * (VALUE_LEN as u64 + 16)) / load_s
        );
        println!(
            "| random lookups, {} streams of 100-key batches, every value checked | {total} in {:.1} s: {:.0} K lookups/s |",
            a.parallel,
            lookup_s,
            total as f64 / lookup_s / 1e3
        );
        println!(
            "| node RssAnon after the load / after the lookups | {:.1} MiB / {:.1} MiB |",
            mib(rss_after_load),
            mib(rss)
        );
        println!(
            "| cgroup peak usage (page cache included) | {:.0} MiB |",
            mib(cg.number("memory.max_usage_in_bytes"))
        );
        println!(
            "| times the cgroup hit its limit (memory.failcnt) | {} |",
            cg.number("memory.failcnt")
        );
        println!("| OOM kills | {ooms} |");
        if !alive || ooms > 0 {
            return Err(format!("the node died (alive: {alive}, OOM kills: {ooms})"));
        }
        Ok(())
    })?;
    drop(server);
    drop(cg);
    Ok(())
}
