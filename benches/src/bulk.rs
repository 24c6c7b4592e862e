//! `dstash-benches bulk`: the bulk load as users run it, in one run: the `dstash load`
//! command reading a TSV file into real `dstash node` processes (1 node with R=1, and 3
//! nodes with R=2), against `redis-cli --pipe` reading the same keys as SET commands
//! (Redis's documented mass-insertion path) into a Redis without persistence.
//!
//! Both sides are timed from start to exit of the loading command, file reading
//! included. The dstash nodes run with `--sync always`: every client batch is fsynced
//! before it is acknowledged. Needs the `dstash` binary beside this one
//! (`cargo build --release -p dstash`; `dstash-benches all` builds it).
//! `cargo run -p dstash-benches --release -- bulk --keys 1000000 --runs 3`

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::redis_side::{self, Persistence, RedisServer};
use crate::table::{self, Cell, Unit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    #[arg(long, default_value_t = 3, value_parser = crate::flags::min::<1>)]
    runs: usize,
    /// Leave the Redis columns empty.
    #[arg(long)]
    no_redis: bool,
}

/// The `dstash` binary built beside this one.
pub fn dstash_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("dstash");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release -p dstash` first",
            bin.display()
        ))
    }
}

/// 16-byte keys and 100-byte printable values, as TSV and as RESP SET commands.
pub fn write_inputs(n: u64, tsv: &Path, resp: &Path) -> std::io::Result<()> {
    let mut t = BufWriter::new(std::fs::File::create(tsv)?);
    let mut r = BufWriter::new(std::fs::File::create(resp)?);
    let mut value = Vec::with_capacity(100);
    for i in 0..n {
        let key = format!("key-{i:012}");
        value.clear();
        let mut x = crate::workload::mix(i + 1);
        while value.len() < 100 {
            x = crate::workload::mix(x);
            value.push(b'a' + (x % 26) as u8);
        }
        t.write_all(key.as_bytes())?;
        t.write_all(b"\t")?;
        t.write_all(&value)?;
        t.write_all(b"\n")?;
        write!(r, "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$100\r\n", key.len())?;
        r.write_all(&value)?;
        r.write_all(b"\r\n")?;
    }
    t.flush()?;
    r.flush()
}

/// A `dstash node` process on a free loopback port.
pub struct NodeProc {
    child: Child,
    pub addr: String,
    /// The whole line it printed once serving.
    pub line: String,
}

impl NodeProc {
    fn start(bin: &Path, dir: &Path) -> Result<NodeProc, String> {
        Self::start_with(bin, dir, &[])
    }

    /// [`start`](Self::start) with `extra` node flags.
    pub fn start_with(bin: &Path, dir: &Path, extra: &[&str]) -> Result<NodeProc, String> {
        let mut child = Command::new(bin)
            .args([
                "node",
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting dstash node: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .split(" serving on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .ok_or(format!("dstash node printed {line:?}"))?
            .to_string();
        Ok(NodeProc { child, addr, line })
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` fresh nodes in `dir/nI`, and their `nI=ADDR,...` list.
pub fn start_nodes(bin: &Path, dir: &Path, n: usize) -> Result<(Vec<NodeProc>, String), String> {
    let procs: Vec<NodeProc> = (0..n)
        .map(|i| NodeProc::start(bin, &dir.join(format!("n{i}"))))
        .collect::<Result<_, _>>()?;
    let spec: Vec<String> = procs
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}={}", p.addr))
        .collect();
    Ok((procs, spec.join(",")))
}

/// `dstash load` of the TSV into `nodes` fresh nodes at R=`replicas`: keys/s.
fn dstash_load(
    bin: &Path,
    tsv: &Path,
    n: u64,
    nodes: usize,
    replicas: usize,
) -> Result<f64, String> {
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let (_procs, spec) = start_nodes(bin, tmp.path(), nodes)?;
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["load", "bench", tsv.to_str().unwrap()])
        .args(["--nodes", &spec, "--replicas", &replicas.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("dstash load: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !said.starts_with(&format!("loaded {n} keys")) {
        return Err(format!(
            "dstash load failed ({}): {said}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(n as f64 / secs)
}

/// `redis-cli --pipe` of the RESP file into a fresh Redis: keys/s.
fn redis_pipe(bin: &PathBuf, resp: &Path, n: u64) -> Result<f64, String> {
    let server = RedisServer::start(bin, Persistence::None)?;
    let rate = pipe_into(server.port(), resp, n)?;
    let mut c = server.connect().map_err(|e| e.to_string())?;
    let size: u64 = redis::cmd("DBSIZE")
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    if size != n {
        return Err(format!("Redis holds {size} keys of {n}"));
    }
    Ok(rate)
}

/// `redis-cli --pipe` of the RESP file of `n` commands into the server on `port`:
/// commands/s, once every one is answered without an error.
pub fn pipe_into(port: u16, resp: &Path, n: u64) -> Result<f64, String> {
    let t = Instant::now();
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--pipe"])
        .stdin(std::fs::File::open(resp).map_err(|e| e.to_string())?)
        .output()
        .map_err(|e| format!("redis-cli --pipe: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !said.contains(&format!("errors: 0, replies: {n}")) {
        return Err(format!("redis-cli --pipe failed: {said}"));
    }
    Ok(n as f64 / secs)
}

pub fn run(a: Args) -> Result<(), String> {
    let bin = dstash_bin()?;
    let redis = if a.no_redis {
        None
    } else {
        Some(redis_side::find_or_install()?)
    };
    let tmp = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
    let (tsv, resp) = (tmp.path().join("keys.tsv"), tmp.path().join("keys.resp"));
    write_inputs(a.keys, &tsv, &resp).map_err(|e| format!("writing the inputs: {e}"))?;
    let (mut one, mut three, mut pipe) = (Cell::default(), Cell::default(), Cell::default());
    for run in 0..a.runs {
        eprintln!("bulk: run {}/{}", run + 1, a.runs);
        one.0.push(dstash_load(&bin, &tsv, a.keys, 1, 1)?);
        three.0.push(dstash_load(&bin, &tsv, a.keys, 3, 2)?);
        if let Some(r) = &redis {
            pipe.0.push(redis_pipe(r, &resp, a.keys)?);
        }
    }
    let ratio = |d: &Cell| {
        if pipe.0.is_empty() {
            String::new()
        } else {
            format!("×{:.2}", d.median() / pipe.median())
        }
    };
    println!(
        "| bulk load of {} keys from a file | keys/s | ÷ `redis-cli --pipe` | target |",
        a.keys
    );
    println!("|---|---|---|---|");
    println!(
        "| `dstash load` into 1 node, R=1, fsync per batch | {} | {} | ≥ 1.0× |",
        one.show(Unit::PerSec),
        ratio(&one)
    );
    println!(
        "| `dstash load` into 3 nodes, R=2 W=2, fsync per batch on each | {} | {} | |",
        three.show(Unit::PerSec),
        ratio(&three)
    );
    println!(
        "| `redis-cli --pipe` of SET commands, no persistence | {} | | |",
        pipe.show(Unit::PerSec)
    );
    println!();
    println!(
        "{}",
        table::target(
            "bulk load, `dstash load` into 1 node with fsync per batch ÷ `redis-cli --pipe` with no persistence",
            table::over(&one, &pipe),
            1.0,
            "The loader, the node and their fsyncs share 2 cores; the load is one client stream per node.",
        )
    );
    println!();
    println!(
        "Median of {} runs (range in brackets). Keys of 16 bytes, values of 100 bytes, from a TSV file (dstash) or a file of RESP SET commands (Redis); each timed from the loading command's start to its exit. Every node is a `dstash node` process with default settings; all share this machine's 2 cores with the loader.",
        a.runs
    );
    Ok(())
}
