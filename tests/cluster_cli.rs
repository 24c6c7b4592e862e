//! The client commands against three real `dstash node` processes.

mod support;

use std::process::{Command, Stdio};

use support::{run_with, spawn_loopback, NodeProcess, DSTASH};

struct Cluster {
    nodes: Vec<Option<NodeProcess>>,
    list: String,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    let mut list = Vec::new();
    for i in 0..3 {
        let n = spawn_loopback(&dir.path().join(format!("n{i}")), &[]);
        list.push(format!("n{i}={}", n.addr));
        nodes.push(Some(n));
    }
    Cluster {
        nodes,
        list: list.join(","),
        _dir: dir,
    }
}

impl Cluster {
    /// Runs `dstash ARGS` against the cluster, with `stdin`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let (code, out, err) = run_with(args, stdin, &[("DSTASH_NODES", &self.list)]);
        (code, String::from_utf8_lossy(&out).into_owned(), err)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args, b"");
        assert_eq!(code, 0, "dstash {args:?}: {err}");
        out
    }
}

#[test]
fn single_key_commands() {
    let c = cluster();
    c.ok(&["put", "kv", "alice", "hello"]);
    assert_eq!(c.ok(&["get", "kv", "alice"]), "hello\n");
    let (code, out, err) = c.run(&["get", "kv", "bob"], b"");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("not found"), "{err}");
    c.ok(&["put", "kv", "bob", "x", "--ttl", "60"]);
    assert_eq!(c.ok(&["keys", "kv"]), "alice\nbob\n");
    assert_eq!(c.ok(&["keys", "kv", "a*"]), "alice\n");
    c.ok(&["del", "kv", "alice"]);
    assert_eq!(c.run(&["get", "kv", "alice"], b"").0, 1);

    assert_eq!(c.ok(&["add", "rl", "ip", "-n", "5"]), "5\n");
    assert_eq!(c.ok(&["add", "rl", "ip"]), "6\n");
    assert_eq!(c.ok(&["count", "rl", "ip", "--window", "60"]), "6\n");
    assert_eq!(c.ok(&["count", "rl", "ip", "--max"]), "6\n");
    assert_eq!(c.ok(&["keys", "rl", "--counters"]), "ip\n");

    let status = c.ok(&["status"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    assert!(status.lines().all(|l| l.contains("serving")), "{status}");

    let (code, _, err) = c.run(&["put", "../etc", "k", "v"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("namespace"), "{err}");
    let (code, _, err) = c.run(&["put", "kv", "k", "v", "--nodes", "nonsense"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn load_then_lookup_survives_a_killed_node() {
    let mut c = cluster();
    let mut file = String::new();
    for i in 0..5000 {
        file.push_str(&format!("key-{i:05}\tvalue-{i}\n"));
    }
    file.push_str("a line without a tab\n");
    let (code, out, err) = c.run(&["load", "bulk", "-"], file.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("loaded 5000 keys in "), "{out}");
    assert!(
        out.contains("keys/s") && out.contains("1 malformed"),
        "{out}"
    );
    assert!(err.contains("line 5001: no tab"), "{err}");

    let (code, _, err) = c.run(&["load", "bulk", "-", "--on-error", "fail"], b"k\tv\nbad\n");
    assert_eq!(code, 1);
    assert!(err.contains("line 2"), "{err}");

    let jsonl = br#"{"key":"j1","value":"v1","ttl":60}
{"key":"j2","value":"v2"}
"#;
    let (code, out, err) = c.run(&["load", "bulk", "-", "--format", "jsonl"], jsonl);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("loaded 2 keys"), "{out}");

    c.nodes[1].take().unwrap().kill9();
    let wanted: String = (0..5000)
        .rev()
        .map(|i| format!("key-{i:05}\n"))
        .chain(["missing\n".to_string()])
        .collect();
    let (code, out, err) = c.run(&["lookup", "bulk", "-"], wanted.as_bytes());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5000, "every key read with one node down");
    assert_eq!(lines[0], "key-04999\tvalue-4999", "input order");
    assert_eq!(lines[4999], "key-00000\tvalue-0");
    assert!(err.contains("1 of 5001 keys not found"), "{err}");

    let status = c.run(&["status"], b"");
    assert_eq!(status.0, 1, "a node is down");
    assert!(
        status.1.contains("n1") && status.1.contains("down"),
        "{}",
        status.1
    );
}

#[test]
fn a_write_quorum_the_live_nodes_cannot_meet_fails_naming_them() {
    let mut c = cluster();
    c.nodes[0].take().unwrap().kill9();
    c.nodes[1].take().unwrap().kill9();
    let (code, _, err) = c.run(
        &[
            "put",
            "kv",
            "k",
            "v",
            "--replicas",
            "3",
            "--write-quorum",
            "2",
        ],
        b"",
    );
    assert_eq!(code, 1);
    assert!(err.contains("write quorum not reached: needed 2"), "{err}");
    assert!(err.contains("n0") && err.contains("n1"), "{err}");
}

#[test]
fn the_demo_runs_end_to_end() {
    let out = Command::new(DSTASH)
        .args(["demo", "--keys", "3000"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("every value correct"), "{text}");
    assert!(text.contains("3000 correct"), "{text}");
}

#[test]
fn a_node_killed_during_a_load_loses_no_acknowledged_key() {
    let mut c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.tsv");
    let mut file = String::new();
    for i in 0..200_000 {
        file.push_str(&format!("k{i:06}\tv{i}\n"));
    }
    std::fs::write(&path, file).unwrap();
    // R=3, W=2: every key still reaches two nodes after one dies mid-stream.
    let load = Command::new(DSTASH)
        .args([
            "load",
            "big",
            path.to_str().unwrap(),
            "--replicas",
            "3",
            "--chunk",
            "20000",
        ])
        .env("DSTASH_NODES", &c.list)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.nodes[2].take().unwrap().kill9();
    let out = load.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("loaded 200000 keys"), "{stdout}");
    eprintln!("{stdout}(node n2 was killed 300 ms after the load started)");

    let wanted: String = (0..200_000)
        .step_by(7)
        .map(|i| format!("k{i:06}\n"))
        .collect();
    let (code, found, err) = c.run(
        &["lookup", "big", "-", "--replicas", "3"],
        wanted.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(found.lines().count(), wanted.lines().count(), "{err}");
}

#[test]
fn a_namespace_retention_is_set_on_every_node_and_windows_follow_it() {
    let c = cluster();
    let (code, _, err) = c.run(&["count", "day", "ip", "--window", "3600"], b"");
    assert_eq!(code, 1, "a window past the default retention of 60 s");
    assert!(err.contains("retention"), "{err}");
    let set = c.ok(&["ns", "set", "day", "--count-retention", "86400"]);
    assert_eq!(set.lines().count(), 3, "{set}");
    assert!(
        set.lines().all(|l| l.ends_with("count_retention=86400")),
        "{set}"
    );
    assert_eq!(c.ok(&["add", "day", "ip", "-n", "4"]), "4\n");
    assert_eq!(c.ok(&["count", "day", "ip", "--window", "3600"]), "4\n");
    let show = c.ok(&["ns", "show", "day"]);
    assert_eq!(show.lines().count(), 3, "{show}");
    assert!(
        show.lines().all(|l| l.contains("count_retention=86400")),
        "{show}"
    );
    for bad in [["0"], ["700000"]] {
        let (code, _, err) = c.run(&["ns", "set", "day", "--count-retention", bad[0]], b"");
        assert_eq!(code, 1, "retention {bad:?}");
        assert!(err.contains("retention") || err.contains("second"), "{err}");
    }
    let (code, _, err) = c.run(&["ns", "set", "../x", "--count-retention", "5"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("namespace"), "{err}");
}
