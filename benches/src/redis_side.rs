//! The Redis side of the loopback benchmark: a throwaway `redis-server` on a free
//! loopback port, and MSET/MGET in chunks as a Redis user would batch.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds redis-server, installing it with apt when it is missing and we may.
pub fn find_or_install() -> Result<PathBuf, String> {
    let found = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = found() {
        return Ok(p);
    }
    eprintln!("redis-server is missing: installing it with apt-get");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        // The index may be stale on a fresh machine.
        let _ = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdout(Stdio::null())
            .status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
    found().ok_or_else(|| "redis-server is not installed and apt-get could not install it".into())
}

#[derive(Clone, Copy)]
pub enum Persistence {
    /// `--save "" --appendonly no`: nothing reaches disk.
    None,
    /// `--appendonly yes --appendfsync always`: fsync per write command.
    AofAlways,
}

pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    pub fn start(bin: &PathBuf, persistence: Persistence) -> Result<Self, String> {
        let dir = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null());
        match persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AofAlways => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting redis-server: {e}"))?;
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = server.connect() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer PING within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn connect(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }

    /// MSET of every pair, `chunk` pairs per command, one command at a time.
    pub fn mset(&self, keys: &[Vec<u8>], values: &[Vec<u8>], chunk: usize) -> Duration {
        let mut c = self.connect().expect("connect");
        let t = Instant::now();
        for (ks, vs) in keys.chunks(chunk).zip(values.chunks(chunk)) {
            let mut cmd = redis::cmd("MSET");
            for (k, v) in ks.iter().zip(vs) {
                cmd.arg(k).arg(v);
            }
            cmd.query::<()>(&mut c).expect("MSET");
        }
        t.elapsed()
    }

    /// MGET of every key, `chunk` keys per command; checks every value.
    pub fn mget(&self, keys: &[Vec<u8>], values: &[Vec<u8>], chunk: usize) -> Duration {
        let mut c = self.connect().expect("connect");
        let t = Instant::now();
        for (ks, vs) in keys.chunks(chunk).zip(values.chunks(chunk)) {
            let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(ks).query(&mut c).expect("MGET");
            assert!(got.iter().zip(vs).all(|(g, v)| g.as_ref() == Some(v)));
        }
        t.elapsed()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
