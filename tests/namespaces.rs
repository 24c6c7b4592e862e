//! Namespace settings on real `dstash node` processes: a cache namespace holds its
//! bound under a load several times larger and keeps its newest keys; a default TTL
//! applies to puts that give none; damaged settings never keep a node from starting;
//! bad settings are refused with a message.

mod support;

use std::time::{Duration, Instant};

use support::{metric, run_with, spawn_loopback};

fn dstash(addr: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut all = vec!["--nodes", addr, "--replicas", "1"];
    all.extend_from_slice(args);
    let (code, out, err) = run_with(&all, stdin, &[]);
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

fn ok(addr: &str, args: &[&str], stdin: &[u8]) -> String {
    let (code, out, err) = dstash(addr, args, stdin);
    assert_eq!(code, 0, "dstash {args:?}: {err}");
    out
}

/// A `name=N` figure of the node's `ns show` line for `ns`.
fn shown(addr: &str, ns: &str, name: &str) -> String {
    let out = ok(addr, &["ns", "show", ns], b"");
    let at = out
        .find(&format!("\t{name}="))
        .unwrap_or_else(|| panic!("{out}"));
    out[at + name.len() + 2..]
        .split(['\t', '\n'])
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_cache_namespace_holds_its_bound_and_keeps_its_newest_keys() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(dir.path(), &["--replicas", "1"]);
    let addr = node.addr.to_string();
    let set = ok(&addr, &["ns", "set", "c", "--max-bytes", "16M"], b"");
    assert!(set.contains("max_bytes=16777216"), "{set}");
    let max = 16u64 << 20;
    // Five times the bound, in loads of a fifth of it each.
    let value = "v".repeat(4_000);
    for round in 0..5 {
        let lines: String = (0..4_200)
            .map(|i| format!("k{round}-{i}\t{value}\n"))
            .collect();
        ok(&addr, &["load", "c", "-"], lines.as_bytes());
    }
    let started = Instant::now();
    while shown(&addr, "c", "data_bytes").parse::<u64>().unwrap() > max {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "over the bound"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(shown(&addr, "c", "evicted_segments"), "0");
    let got = ok(&addr, &["get", "c", "k4-4199"], b"");
    assert_eq!(got.trim_end(), value);
    let (code, _, _) = dstash(&addr, &["get", "c", "k0-0"], b"");
    assert_eq!(code, 1, "the oldest key is gone");
}

#[test]
fn a_default_ttl_applies_to_puts_that_give_none() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(dir.path(), &["--replicas", "1"]);
    let addr = node.addr.to_string();
    ok(&addr, &["ns", "set", "s", "--default-ttl", "500"], b"");
    ok(&addr, &["put", "s", "k", "v"], b"");
    let dump = ok(&addr, &["dump", "s"], b"");
    let ttl: u32 = dump.split("\"ttl\":").nth(1).unwrap()[..3].parse().unwrap();
    assert!((490..=500).contains(&ttl), "{dump}");
    assert_eq!(shown(&addr, "s", "default_ttl"), "500");
}

#[test]
fn damaged_settings_never_keep_a_node_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--replicas", "1", "--metrics-listen", "127.0.0.1:0"];
    let node = spawn_loopback(dir.path(), &extra);
    let addr = node.addr.to_string();
    ok(&addr, &["ns", "set", "c", "--max-bytes", "1G"], b"");
    ok(&addr, &["put", "c", "k", "v"], b"");
    assert!(node.terminate().success());
    let ns_dir = dir.path().join("ns").join("c");
    let flip = |name: &str, at: usize| {
        let p = ns_dir.join(name);
        let mut b = std::fs::read(&p).unwrap();
        b[at] ^= 0x40;
        std::fs::write(&p, b).unwrap();
    };

    flip("NAMESPACE", 20);
    let node = spawn_loopback(dir.path(), &extra);
    let addr = node.addr.to_string();
    assert_eq!(shown(&addr, "c", "settings"), "repaired");
    assert_eq!(shown(&addr, "c", "max_bytes"), (1u64 << 30).to_string());
    assert_eq!(
        metric(&node.line, "dstash_store_settings_damaged{namespace=\"c\"}"),
        1
    );
    assert!(node.terminate().success());

    flip("NAMESPACE", 5);
    flip("NAMESPACE-B", 17);
    let node = spawn_loopback(dir.path(), &extra);
    let addr = node.addr.to_string();
    assert_eq!(shown(&addr, "c", "settings"), "lost");
    assert_eq!(shown(&addr, "c", "max_bytes"), "0");
    assert_eq!(ok(&addr, &["get", "c", "k"], b""), "v\n", "the keys stay");
    assert_eq!(
        metric(&node.line, "dstash_store_settings_damaged{namespace=\"c\"}"),
        2
    );
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(dir.path(), &["--replicas", "1"]);
    let addr = node.addr.to_string();
    for (args, why) in [
        (vec!["ns", "set", "c", "--max-bytes", "1000"], "least bound"),
        (
            vec!["ns", "set", "c", "--max-bytes", "12Q"],
            "not a byte count",
        ),
        (vec!["ns", "set", "c"], "nothing to set"),
        (
            vec!["ns", "set", "../c", "--default-ttl", "5"],
            "invalid namespace",
        ),
    ] {
        let (code, _, err) = dstash(&addr, &args, b"");
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert_eq!(ok(&addr, &["ns", "show"], b""), "", "nothing was created");
}
