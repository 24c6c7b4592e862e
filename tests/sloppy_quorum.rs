//! Writes where the quorum allows, and failing fast where it cannot: three real `dstash
//! node` processes with `--peers`, written at R=2 W=2 while one replica is frozen with
//! SIGSTOP. Without sloppy quorum a write that needs the frozen node fails at once,
//! naming it. With it, the write lands on the third node as a durable hint, which
//! survives that node's kill -9 and reaches the frozen replica once it resumes.
//! Anti-entropy is off, so only hinted handoff can have moved the writes.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dstash_client::health::NodeState;
use dstash_client::{Bytes, Client, ClientConfig, NodeSpec};
use dstash_proto::v1::LookupRequest;
use support::{run_with, spawn_node, NodeProcess};

const DEADLINE: Duration = Duration::from_secs(30);

struct Cluster {
    nodes: Vec<Option<NodeProcess>>,
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            nodes: vec![None, None, None],
            dirs: (0..3).map(|i| dir.path().join(format!("n{i}"))).collect(),
            ports: (0..3).map(|_| free_port()).collect(),
            _dir: dir,
        };
        for i in 0..3 {
            c.up(i);
        }
        c
    }

    fn list(&self) -> String {
        (0..3)
            .map(|i| format!("n{i}=127.0.0.1:{}", self.ports[i]))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn up(&mut self, i: usize) {
        let (listen, id, peers) = (
            format!("127.0.0.1:{}", self.ports[i]),
            format!("n{i}"),
            self.list(),
        );
        let dir = self.dirs[i].to_str().unwrap();
        self.nodes[i] = Some(spawn_node(&[
            "--data-dir",
            dir,
            "--listen",
            &listen,
            "--node-id",
            &id,
            "--peers",
            &peers,
            "--replicas",
            "2",
            "--anti-entropy-interval",
            "0",
            "--hint-interval-ms",
            "200",
            "--metrics-listen",
            "127.0.0.1:0",
        ]));
    }

    fn node(&self, i: usize) -> &NodeProcess {
        self.nodes[i].as_ref().unwrap()
    }

    fn signal(&self, i: usize, sig: i32) {
        // SAFETY: plain syscall on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.node(i).child.id() as i32, sig) },
            0
        );
    }

    async fn client(&self, sloppy: bool) -> Client {
        let specs = self
            .list()
            .split(',')
            .map(|s| s.parse::<NodeSpec>().unwrap())
            .collect();
        let mut cfg = ClientConfig::new(specs);
        cfg.replicas = 2;
        cfg.write_quorum = Some(2);
        cfg.timeout = DEADLINE;
        cfg.sloppy_quorum = sloppy;
        Client::connect(cfg).await.unwrap()
    }

    /// Node `i`'s `dstash_hints_pending` gauge.
    async fn hints_pending(&self, i: usize) -> u64 {
        support::metric(&self.node(i).line, "dstash_hints_pending")
    }

    /// What node `i` itself holds for `key`: Some(value), or None (absent or deleted).
    async fn held(&self, i: usize, key: &Bytes) -> Option<Bytes> {
        let mut rpc = self.node(i).client().await;
        let r = rpc
            .lookup(LookupRequest {
                namespace: "kv".into(),
                key: key.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        r.found.then_some(r.value)
    }
}

/// Keys whose two replicas are n0 and n1, so n2 is the only stand-in.
fn keys_on_n0_and_n1(client: &Client, n: usize) -> Vec<Bytes> {
    let view = client.view();
    (0..10_000)
        .map(|i| Bytes::from(format!("k{i}")))
        .filter(|k| {
            let mut r = view.replicas(k);
            r.sort();
            r == [0, 1]
        })
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_for_a_frozen_replica_fail_fast_or_land_as_hints_it_receives_later() {
    let mut c = Cluster::start();
    let strict = c.client(false).await;
    let keys = keys_on_n0_and_n1(&strict, 4);
    let v = |s: &str| Bytes::from(s.to_string());
    // keys[3] exists everywhere before the freeze; it is deleted while n0 is frozen.
    strict.put("kv", &keys[3], b"old", 0).await.unwrap();
    c.signal(0, libc::SIGSTOP);

    // Strict quorum: W=2 needs n0. The first write finds out (the connection's
    // keep-alive gives up on it); the next fails at once, naming it.
    assert!(strict.put("kv", &keys[0], b"a", 0).await.is_err());
    assert_ne!(strict.view().nodes[0].state(), NodeState::Up);
    let t = Instant::now();
    let e = strict.put("kv", &keys[0], b"a", 0).await.unwrap_err();
    assert!(t.elapsed() < DEADLINE / 3, "took {:?}", t.elapsed());
    let msg = e.to_string();
    assert!(
        msg.contains("n0") && (msg.contains("suspect") || msg.contains("marked down")),
        "{msg}"
    );

    // Sloppy quorum, from a client that knows nothing of n0 yet: n2 stands in.
    let sloppy = c.client(true).await;
    sloppy.put("kv", &keys[0], b"v0", 0).await.unwrap();
    sloppy.put("kv", &keys[1], b"v1", 0).await.unwrap();
    sloppy.put("kv", &keys[2], b"v2", 60).await.unwrap();
    sloppy.delete("kv", &keys[3]).await.unwrap();
    // The same through the CLI, a process of its own.
    let list = c.list();
    let (code, _, err) = run_with(
        &[
            "--replicas",
            "2",
            "--write-quorum",
            "2",
            "--sloppy-quorum",
            "--timeout",
            "30",
            "put",
            "kv",
            std::str::from_utf8(&keys[1]).unwrap(),
            "v1-cli",
        ],
        b"",
        &[("DSTASH_NODES", list.as_str())],
    );
    assert_eq!(code, 0, "{err}");
    for k in &keys {
        assert_eq!(c.held(2, k).await, None, "a hint is not served as a value");
    }
    assert_eq!(c.held(1, &keys[1]).await, Some(v("v1-cli")));

    // The stand-in crashes and comes back: its hints were durable.
    c.nodes[2].take().unwrap().kill9();
    c.up(2);
    c.signal(0, libc::SIGCONT);

    let want = [Some(v("v0")), Some(v("v1-cli")), Some(v("v2")), None];
    let t = Instant::now();
    loop {
        let mut got = Vec::new();
        for k in &keys {
            got.push(c.held(0, k).await);
        }
        if got == want {
            break;
        }
        assert!(t.elapsed() < DEADLINE, "n0 holds {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every hint was handed over and deleted: n2's hint store holds none.
    let t = Instant::now();
    while c.hints_pending(2).await > 0 {
        assert!(t.elapsed() < DEADLINE, "hints still held on n2");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = c.nodes[2].take().unwrap().terminate();
    assert!(status.success());
    let hints = dstash_storage::Store::open(c.dirs[2].join("hints"), Default::default()).unwrap();
    let mut listing = hints.keys("kv", "").unwrap();
    assert_eq!(listing.next_chunk().unwrap().unwrap_or_default().len(), 0);
}
