//! Anti-entropy with real `dstash node` processes: nodes given `--peers` heal a replica
//! in the background, `dstash repair` restores a damaged record from a healthy
//! replica, and its traffic follows the differences, not the key count.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{figure, key_lines, run_with, spawn_node, tsv, NodeProcess};

struct Cluster {
    nodes: Vec<Option<NodeProcess>>,
    dirs: Vec<PathBuf>,
    /// Fixed ports, so that a restarted node keeps the address its peers know.
    ports: Vec<u16>,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Three nodes; with `peers`, each knows the others and runs anti-entropy every
    /// second.
    fn start(peers: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("n{i}"))).collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let list: Vec<String> = (0..3)
            .map(|i| format!("n{i}=127.0.0.1:{}", ports[i]))
            .collect();
        // The cluster's replication factor, as the CLI below writes with.
        let mut extra = vec!["--replicas".to_string(), "3".to_string()];
        extra.extend(match peers {
            true => vec![
                "--peers".to_string(),
                list.join(","),
                "--anti-entropy-interval".to_string(),
                "1".to_string(),
            ],
            false => vec!["--anti-entropy-interval".to_string(), "0".to_string()],
        });
        let mut c = Cluster {
            nodes: vec![None, None, None],
            dirs,
            ports,
            extra,
            _dir: dir,
        };
        for i in 0..3 {
            c.up(i);
        }
        c
    }

    fn up(&mut self, i: usize) {
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let dir = self.dirs[i].to_str().unwrap();
        let mut args: Vec<&str> = vec!["--data-dir", dir, "--listen", &listen];
        args.extend(self.extra.iter().map(String::as_str));
        self.nodes[i] = Some(spawn_node(&args[..]));
    }

    fn list(&self, only: Option<usize>) -> String {
        (0..3)
            .filter(|&i| only.is_none_or(|o| o == i) && self.nodes[i].is_some())
            .map(|i| format!("n{i}=127.0.0.1:{}", self.ports[i]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `dstash ARGS` against the nodes that are up (R=3, W=2), or against node `only`
    /// alone with one copy per key.
    fn run(&self, only: Option<usize>, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut all = match only {
            Some(_) => vec!["--replicas", "1", "--write-quorum", "1"],
            None => vec!["--replicas", "3", "--write-quorum", "2"],
        };
        all.extend_from_slice(args);
        let (code, out, err) = run_with(&all, stdin, &[("DSTASH_NODES", &self.list(only))]);
        (code, String::from_utf8_lossy(&out).into_owned(), err)
    }

    fn ok(&self, only: Option<usize>, args: &[&str], stdin: &[u8]) -> String {
        let (code, out, err) = self.run(only, args, stdin);
        assert_eq!(code, 0, "dstash {args:?}: {err}");
        out
    }
}

/// Lines of node `i`'s own answer for `keys` that hold `tag`.
fn held_with(c: &Cluster, i: usize, keys: std::ops::Range<u32>, tag: &str) -> usize {
    let (_, out, _) = c.run(Some(i), &["lookup", "kv", "-"], &key_lines(keys));
    out.lines()
        .filter(|l| l.contains(&format!("\t{tag}-")))
        .count()
}

#[test]
fn peers_heal_a_replica_in_the_background() {
    let mut c = Cluster::start(true);
    c.ok(None, &["load", "kv", "-"], &tsv(0..500, "old"));
    c.nodes[2].take().unwrap().kill9();
    c.ok(None, &["load", "kv", "-"], &tsv(0..500, "new"));
    c.up(2);
    assert_eq!(held_with(&c, 2, 0..500, "new"), 0, "n2 missed the writes");
    // No reads and no repair command: the nodes' own passes bring n2 up to date.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let new = held_with(&c, 2, 0..500, "new");
        if new == 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n2 holds {new} of 500 after 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Flips a byte inside the first occurrence of `needle` in any file under `dir`.
fn damage(dir: &Path, needle: &[u8]) -> bool {
    for e in walk(dir) {
        let mut bytes = std::fs::read(&e).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + needle.len() - 1] ^= 0x55;
            std::fs::write(&e, bytes).unwrap();
            return true;
        }
    }
    false
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn repair_restores_a_damaged_record_from_a_healthy_replica() {
    let mut c = Cluster::start(false);
    c.ok(None, &["load", "kv", "-"], &tsv(0..100, "value"));
    assert!(c.nodes[1].take().unwrap().terminate().success());
    assert!(damage(&c.dirs[1], b"value-42"), "no record of key-42 on n1");
    c.up(1);
    let (_, _, err) = c.run(Some(1), &["get", "kv", "key-42"], b"");
    assert!(
        err.contains("corrupt") || err.contains("damaged"),
        "n1 reads the damage: {err}"
    );
    let out = c.ok(None, &["repair"], b"");
    assert!(out.contains("failed=0"), "{out}");
    // Each healthy peer may bring it (the two sessions run at once); one is enough.
    let moved = figure(&out, "pushed") + figure(&out, "pulled");
    assert!(
        (1..=2).contains(&moved),
        "only the damaged key moves: {out}"
    );
    assert_eq!(c.ok(Some(1), &["get", "kv", "key-42"], b""), "value-42\n");
    let again = c.ok(None, &["repair"], b"");
    assert!(again.contains("differing=0"), "{again}");
}

#[test]
fn repair_traffic_follows_the_differences() {
    let mut c = Cluster::start(false);
    let keys = 20_000;
    c.ok(None, &["load", "kv", "-"], &tsv(0..keys, "v"));
    let same = c.ok(None, &["repair"], b"");
    assert!(same.contains("differing=0"), "{same}");
    c.nodes[2].take().unwrap().kill9();
    c.ok(None, &["load", "kv", "-"], &tsv(0..20, "w"));
    c.up(2);
    let out = c.ok(None, &["repair"], b"");
    assert!(out.contains("failed=0"), "{out}");
    let bytes = figure(&out, "bytes sent") + figure(&out, "received");
    // A full copy of the keys to n2 alone is keys x (key + value + version) bytes.
    let full_copy = keys as u64 * ("key-10000".len() + "v-10000".len() + 16) as u64;
    assert!(
        bytes * 5 < full_copy,
        "{bytes} bytes exchanged, full copy {full_copy}: {out}"
    );
    assert_eq!(held_with(&c, 2, 0..20, "w"), 20);
}

#[test]
fn repair_with_a_node_down_fails_and_names_it() {
    let mut c = Cluster::start(false);
    c.ok(None, &["load", "kv", "-"], &tsv(0..100, "v"));
    let n2 = c.list(Some(2));
    c.nodes[2].take().unwrap().kill9();
    // The node is still named (ID=ADDR), so the pass must cover it and cannot.
    let nodes = format!("{},{n2}", c.list(None));
    let (code, out, err) = run_with(
        &["--replicas", "3", "repair"],
        b"",
        &[("DSTASH_NODES", &nodes)],
    );
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("n2"), "{err}");
    assert!(figure(&out, "failed") > 0, "{out}");
}

/// Waits up to 30 s for node `i`'s `ns show NS` line to hold `want`.
fn settles_to(c: &Cluster, i: usize, ns: &str, want: &str) {
    let started = std::time::Instant::now();
    loop {
        let out = c.ok(Some(i), &["ns", "show", ns], b"");
        if out.contains(want) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "node {i} still shows {out:?}, not {want}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_node_that_missed_ns_set_takes_the_newest_settings_from_its_peers() {
    let mut c = Cluster::start(true);
    c.nodes[2].take().unwrap().kill9();
    let out = c.ok(None, &["ns", "set", "cache", "--max-bytes", "1G"], b"");
    assert_eq!(out.lines().count(), 2, "{out}");
    c.up(2);
    settles_to(&c, 2, "cache", "max_bytes=1073741824");
    // A later change made on one node alone reaches the others; the earlier one, which
    // they also hold, does not undo it.
    c.ok(Some(2), &["ns", "set", "cache", "--default-ttl", "60"], b"");
    for i in 0..2 {
        settles_to(&c, i, "cache", "default_ttl=60");
        settles_to(&c, i, "cache", "max_bytes=1073741824");
    }
}
