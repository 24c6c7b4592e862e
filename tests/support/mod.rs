//! Real `dstash` processes for the integration tests.

#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dstash_proto::DstashClient;
use tonic::transport::Channel;

pub const DSTASH: &str = env!("CARGO_BIN_EXE_dstash");

pub struct NodeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The whole "serving on" line.
    pub line: String,
    /// From spawn to the "serving on" line.
    pub startup: Duration,
}

/// Starts `dstash node` with `args` and waits for its "serving on" line.
pub fn spawn_node(args: &[&str]) -> NodeProcess {
    match start_node(args, Stdio::inherit()) {
        Ok(node) => node,
        Err(status) => panic!("dstash node did not start (exit: {status:?})"),
    }
}

/// Starts `dstash node` with its stderr going to `stderr`: the node once it serves, or
/// its exit status if it stopped before serving.
pub fn start_node(
    args: &[&str],
    stderr: impl Into<Stdio>,
) -> Result<NodeProcess, std::process::ExitStatus> {
    let started = Instant::now();
    let mut child = Command::new(DSTASH)
        .arg("node")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawning dstash");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if !line.contains(" serving on ") {
        assert!(line.is_empty(), "unexpected output {line:?}");
        return Err(child.wait().unwrap());
    }
    let addr = line
        .split(" serving on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Ok(NodeProcess {
        child,
        addr,
        line: line.trim_end().to_string(),
        startup: started.elapsed(),
    })
}

/// Starts a plaintext loopback node on a free port over `dir`.
pub fn spawn_loopback(dir: &Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec![
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    spawn_node(&args)
}

impl NodeProcess {
    pub async fn client(&self) -> DstashClient<Channel> {
        DstashClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `dstash ARGS` to completion: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(DSTASH)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running dstash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `dstash ARGS` with `stdin` and `env`, and no DSTASH_NODES or DSTASH_CONSUL
/// from the test's own environment: (exit code, stdout, stderr).
pub fn run_with(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(DSTASH)
        .args(args)
        .env_remove("DSTASH_NODES")
        .env_remove("DSTASH_CONSUL")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning dstash");
    let mut input = child.stdin.take().expect("piped stdin");
    std::io::Write::write_all(&mut input, stdin).expect("writing dstash's stdin");
    drop(input);
    let out = child.wait_with_output().expect("running dstash");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), out.stdout, err)
}

/// `var` parsed, or `default` when it is unset or does not parse.
pub fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A run's seed: `var` when set (to replay a run), else the clock.
pub fn seed(var: &str) -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    env_or(var, clock | 1)
}

/// xorshift64*: random choices that a seed replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `key-I<TAB>TAG-I` lines for `dstash load`.
pub fn tsv(keys: std::ops::Range<u32>, tag: &str) -> Vec<u8> {
    keys.map(|i| format!("key-{i}\t{tag}-{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `key-I` lines for `dstash lookup`.
pub fn key_lines(keys: std::ops::Range<u32>) -> Vec<u8> {
    keys.map(|i| format!("key-{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// A figure from a `name=N` summary line, such as `dstash repair`'s `pushed`.
pub fn figure(out: &str, name: &str) -> u64 {
    let at = out
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {out}"));
    out[at + name.len() + 1..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} in {out}"))
}

/// Records a `dstash repair` pass moved between replicas.
pub fn moved(out: &str) -> u64 {
    figure(out, "pushed") + figure(out, "pulled")
}

/// A metric's value as the node whose "serving on" `line` names a metrics listener
/// reports it now.
pub fn metric(line: &str, name: &str) -> u64 {
    metric_if_any(line, name).unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// [`metric`], or None while the node has not reported it (a labelled counter appears
/// at its first count).
pub fn metric_if_any(line: &str, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let addr = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"));
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    let prefix = format!("{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().parse().unwrap())
}
