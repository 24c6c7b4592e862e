//! Space comes back on a real node: after overwrite, delete and expiry loops in a
//! namespace far smaller than a segment, its data files return within a minute to at
//! most twice its live bytes, plus one growth step of the active file.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{run_with, spawn_loopback};

const KEYS: u32 = 20_000;
const VALUE: usize = 1_000;
/// Record header bytes (dstash_storage::record::RECORD_HEADER_LEN).
const HEADER: u64 = 32;
/// What the active file may hold past its last record: its growth step.
const SLACK: u64 = 8 << 20;

fn segment_bytes(data: &Path, ns: &str) -> u64 {
    let kv = data.join("ns").join(ns).join("kv");
    std::fs::read_dir(kv)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn live(value: usize) -> u64 {
    KEYS as u64 * (HEADER + format!("key-{KEYS}").len() as u64 + value as u64)
}

/// Waits up to a minute for the namespace's segments to come within the bound.
fn settles(data: &Path, live: u64, what: &str) {
    let bound = 2 * live + SLACK;
    let started = Instant::now();
    loop {
        let used = segment_bytes(data, "s");
        if used <= bound {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {used} bytes on disk after a minute, for {live} live (bound {bound})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dstash(addr: &str, args: &[&str], stdin: &[u8]) {
    let mut all = vec!["--nodes", addr, "--replicas", "1"];
    all.extend_from_slice(args);
    let (code, _, err) = run_with(&all, stdin, &[]);
    assert_eq!(code, 0, "dstash {args:?}: {err}");
}

#[test]
fn overwrites_deletes_and_expiry_give_their_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(dir.path(), &["--replicas", "1"]);
    let addr = node.addr.to_string();
    let value = "v".repeat(VALUE - 1);
    let tsv = |tag: &str| -> Vec<u8> {
        (0..KEYS)
            .map(|i| format!("key-{i:05}\t{tag}{value}\n"))
            .collect::<String>()
            .into_bytes()
    };
    for round in 0..6 {
        dstash(&addr, &["load", "s", "-"], &tsv(&round.to_string()));
    }
    settles(dir.path(), live(VALUE), "overwrites");

    let keys: String = (0..KEYS).map(|i| format!("key-{i:05}\n")).collect();
    dstash(&addr, &["del", "s", "--from", "-"], keys.as_bytes());
    // Tombstones stay for their grace period: they are the live bytes now.
    settles(dir.path(), live(0), "deletes");

    dstash(&addr, &["load", "s", "-", "--ttl", "1"], &tsv("t"));
    dstash(&addr, &["load", "s", "-", "--ttl", "1"], &tsv("u"));
    settles(dir.path(), live(0), "expiry");
}
