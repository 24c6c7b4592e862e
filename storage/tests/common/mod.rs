//! Helpers shared by the scenario tests.
#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use std::path::Path;
use std::sync::Arc;

use dstash_storage::{ManualClock, Options, PutEntry, Store, SyncMode};

pub const T0: u64 = 1_700_000_000;

/// Options for tests: no background thread (tests drive checkpoints and compaction),
/// small segments so rolls and compaction happen, and a clock the test moves.
pub fn opts(clock: &ManualClock) -> Options {
    Options {
        sync: SyncMode::Always,
        segment_size: 1 << 20,
        max_value_len: 64 << 10,
        background: false,
        clock: Arc::new(clock.clone()),
        ..Options::default()
    }
}

pub fn open(dir: &Path, clock: &ManualClock) -> Store {
    Store::open(dir, opts(clock)).expect("open store")
}

/// Puts keys `range` in `ns`, each with `value` and `ttl`, 500 per batch.
pub fn put_range(s: &Store, ns: &str, range: std::ops::Range<u64>, value: &[u8], ttl: u32) {
    let keys: Vec<_> = range.map(key).collect();
    for chunk in keys.chunks(500) {
        let e: Vec<_> = chunk
            .iter()
            .map(|k| PutEntry {
                key: k,
                value,
                ttl_secs: ttl,
                version: None,
            })
            .collect();
        s.put_many(ns, &e).unwrap();
    }
}

pub fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

pub fn value(i: u64, version: u64) -> Vec<u8> {
    let len = 20 + (i * 31 + version * 7) % 200;
    let mut v = format!("v{version}-{i}-").into_bytes();
    v.resize(len as usize, b'x');
    v
}

/// Files in the namespace's kv directory whose name starts with `prefix`, sorted.
pub fn kv_files(dir: &Path, ns: &str, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("ns").join(ns).join("kv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Copies a data directory (minus its lock) so one crash image can be damaged many ways.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

/// Batch entries (no TTL) pairing `keys[i]` with `values[i]`.
pub fn entries<'a>(keys: &'a [Vec<u8>], values: &'a [Vec<u8>]) -> Vec<PutEntry<'a>> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| PutEntry {
            key: k,
            value: v,
            ttl_secs: 0,
            version: None,
        })
        .collect()
}

/// Every key a listing streams, sorted.
pub fn drain(mut stream: dstash_storage::KeyStream) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        v.extend(chunk);
    }
    v.sort();
    v
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// A well-mixed function of `seed`: where a kill test kills its child.
pub fn pseudo_random(seed: u64) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Rounds of a kill -9 test: `DSTASH_KILL9_ROUNDS`, 5 by default.
pub fn kill9_rounds() -> u64 {
    std::env::var("DSTASH_KILL9_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// Runs the ignored test `name` of this test binary as a child process with `envs`,
/// its stdout piped for the parent to read its acknowledgements; the kill -9 tests'
/// child half.
pub fn spawn_child(name: &str, envs: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    std::process::Command::new(exe)
        .args(["--exact", name, "--ignored", "--nocapture"])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
