//! Replicas that agree, with three real `dstash node` processes and the CLI: a delete
//! a replica missed stays deleted, concurrent overwriters leave every replica with the
//! same newest value, and a replica that missed overwrites does not serve the old
//! values to a read quorum.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use dstash_proto::v1::LookupRequest;
use dstash_proto::Bytes;
use support::{key_lines, moved, run_with, spawn_loopback, tsv, NodeProcess, DSTASH};

struct Cluster {
    nodes: Vec<Option<NodeProcess>>,
    dirs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("n{i}"))).collect();
        let nodes = dirs.iter().map(|d| Some(spawn_loopback(d, &[]))).collect();
        Cluster {
            nodes,
            dirs,
            _dir: dir,
        }
    }

    /// `n0=ADDR,...` over the nodes that are up.
    fn list(&self) -> String {
        let up: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| format!("n{i}={}", n.addr)))
            .collect();
        up.join(",")
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut all = vec!["--replicas", "3", "--write-quorum", "2"];
        all.extend_from_slice(args);
        let (code, out, err) = run_with(&all, stdin, &[("DSTASH_NODES", &self.list())]);
        (code, String::from_utf8_lossy(&out).into_owned(), err)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let (code, out, err) = self.run(args, stdin);
        assert_eq!(code, 0, "dstash {args:?}: {err}");
        out
    }

    /// `dstash` run against node `i` alone, with one copy per key: what it holds.
    fn only(&self, i: usize, args: &[&str], stdin: &[u8]) -> String {
        let addr = format!("n{i}={}", self.nodes[i].as_ref().unwrap().addr);
        let mut all = vec!["--replicas", "1", "--write-quorum", "1"];
        all.extend_from_slice(args);
        let (code, out, err) = run_with(&all, stdin, &[("DSTASH_NODES", &addr)]);
        assert_eq!(code, 0, "dstash {args:?} on n{i}: {err}");
        String::from_utf8_lossy(&out).into_owned()
    }

    fn kill9(&mut self, i: usize) {
        self.nodes[i].take().unwrap().kill9();
    }

    fn restart(&mut self, i: usize) {
        self.nodes[i] = Some(spawn_loopback(&self.dirs[i], &[]));
    }

    /// What node `i` itself holds for `key`: (value if any, tombstone, version ts).
    async fn held(&self, i: usize, key: &str) -> (Option<Bytes>, bool, u64) {
        let mut c = self.nodes[i].as_ref().unwrap().client().await;
        let r = c
            .lookup(LookupRequest {
                namespace: "kv".into(),
                key: Bytes::copy_from_slice(key.as_bytes()),
            })
            .await
            .unwrap()
            .into_inner();
        let ts = r.version.map_or(0, |v| v.ts);
        (r.found.then_some(r.value), r.tombstone, ts)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_a_replica_missed_stays_deleted() {
    let mut c = Cluster::start();
    c.ok(&["load", "kv", "-"], &tsv(0..20, "v"));
    c.kill9(2);
    for i in 0..20 {
        c.ok(&["del", "kv", &format!("key-{i}")], b"");
    }
    c.restart(2);
    // n2 still holds the values; a read quorum of 2 sees the newer tombstones.
    assert!(c.held(2, "key-0").await.0.is_some(), "n2 missed the delete");
    let (_, out, err) = c.run(
        &["--read-quorum", "2", "lookup", "kv", "-"],
        &key_lines(0..20),
    );
    assert_eq!(out, "", "{err}");
    assert!(err.contains("20 of 20 keys not found"), "{err}");
    // Read repair never wrote the old values back to the replicas that deleted them.
    for i in 0..20 {
        let key = format!("key-{i}");
        for n in 0..2 {
            let (value, tombstone, _) = c.held(n, &key).await;
            assert!(value.is_none() && tombstone, "n{n} {key}: {value:?}");
        }
    }
    // A repair pass brings the tombstones to n2.
    let out = c.ok(&["repair"], b"");
    assert!(out.contains("failed=0"), "{out}");
    for i in 0..20 {
        let (value, tombstone, _) = c.held(2, &format!("key-{i}")).await;
        assert!(value.is_none() && tombstone, "n2 key-{i}: {value:?}");
    }
    let again = c.ok(&["repair"], b"");
    assert!(
        again.contains("differing=0") && moved(&again) == 0,
        "every digest agrees: {again}"
    );
    // And it stays so through restarts, with any read quorum.
    for n in 0..3 {
        c.kill9(n);
        c.restart(n);
    }
    let (_, out, err) = c.run(&["lookup", "kv", "-"], &key_lines(0..20));
    assert_eq!(out, "", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overwriters_leave_every_replica_with_the_same_value() {
    let c = Cluster::start();
    let loads: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| {
            let path = c.dirs[0].parent().unwrap().join(format!("{tag}.tsv"));
            std::fs::write(&path, tsv(0..5000, tag)).unwrap();
            Command::new(DSTASH)
                .args(["--replicas", "3", "load", "kv", path.to_str().unwrap()])
                .args(["--chunk", "500"])
                .env("DSTASH_NODES", c.list())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for l in loads {
        let out = l.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut winners = [0, 0];
    for i in (0..5000).step_by(25) {
        let key = format!("key-{i}");
        let held = [
            c.held(0, &key).await,
            c.held(1, &key).await,
            c.held(2, &key).await,
        ];
        assert!(
            held.iter().all(|h| h == &held[0]),
            "{key}: replicas disagree: {held:?}"
        );
        let value = held[0].0.clone().unwrap();
        winners[value.starts_with(b"b") as usize] += 1;
    }
    // Both loaders won some keys: the runs really raced.
    assert!(winners.iter().sum::<u32>() == 200, "{winners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_overwrites_does_not_serve_old_values_to_a_quorum() {
    let mut c = Cluster::start();
    c.ok(&["load", "kv", "-"], &tsv(0..3000, "old"));
    c.kill9(1);
    c.ok(&["load", "kv", "-"], &tsv(0..3000, "new"));
    c.restart(1);
    let out = c.ok(
        &["--read-quorum", "2", "lookup", "kv", "-"],
        &key_lines(0..3000),
    );
    let stale = out.lines().filter(|l| l.contains("\told-")).count();
    assert_eq!(out.lines().count(), 3000);
    assert_eq!(stale, 0, "superseded values served");
    // A repair pass brings n1 up to date on every key.
    let out = c.ok(&["repair"], b"");
    assert!(out.contains("failed=0"), "{out}");
    assert!(moved(&out) > 0, "{out}");
    let alone = c.only(1, &["lookup", "kv", "-"], &key_lines(0..3000));
    assert_eq!(alone.lines().count(), 3000);
    let behind = alone.lines().filter(|l| !l.contains("\tnew-")).count();
    assert_eq!(behind, 0, "n1 alone still serves old values");
    let again = c.ok(&["repair"], b"");
    assert!(
        again.contains("differing=0") && moved(&again) == 0,
        "a second pass finds nothing: {again}"
    );
}
