//! Bulk deletes and dumps on real `dstash node` processes: `BatchDelete` answers each
//! key in order and refuses bad input whole; `dstash del` deletes given keys or a file
//! of them on every replica, and goes on to quorum with a node killed mid-stream;
//! `dstash dump | dstash load` reproduces a namespace.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::Cluster;
use dstash_proto::v1::{DeleteBatch, LookupRequest, PutBatch, Version};
use dstash_proto::Bytes;
use support::{metric_if_any, spawn_loopback, DSTASH};

fn entry(key: &str, value: &str) -> dstash_proto::v1::Entry {
    dstash_proto::v1::Entry {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..Default::default()
    }
}

fn keys(ks: &[&str]) -> Vec<Bytes> {
    ks.iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect()
}

fn delete_batch(ns: &str, ks: &[&str]) -> DeleteBatch {
    DeleteBatch {
        namespace: ns.into(),
        keys: keys(ks),
        ..Default::default()
    }
}

async fn put_all(c: &mut dstash_proto::DstashClient<tonic::transport::Channel>, b: PutBatch) {
    let mut acks = c
        .batch_put(tokio_stream::iter([b]))
        .await
        .unwrap()
        .into_inner();
    assert!(acks.message().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_answers_each_key_in_order_and_refuses_bad_input_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_loopback(dir.path(), &["--replicas", "1"]);
    let mut c = node.client().await;
    let put = PutBatch {
        namespace: "d".into(),
        entries: vec![entry("a", "1"), entry("b", "2"), entry("c", "3")],
        batch_id: 0,
    };
    put_all(&mut c, put).await;

    // Batches of one stream may run at once: these two name no key in common.
    let mut second = delete_batch("d", &["b", "gone"]);
    second.batch_id = 7;
    let answers: Vec<_> = {
        let s = tokio_stream::iter([delete_batch("d", &["a", "nope", "c"]), second]);
        let mut r = c.batch_delete(s).await.unwrap().into_inner();
        let mut v = Vec::new();
        while let Some(a) = r.message().await.unwrap() {
            v.push(a);
        }
        v
    };
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].found, vec![true, false, true]);
    assert_eq!(
        (answers[1].batch_id, answers[1].found.clone()),
        (7, vec![true, false])
    );

    // Each refused batch names why and writes nothing, not even its good keys.
    let c2 = PutBatch {
        namespace: "d".into(),
        entries: vec![entry("keep", "v")],
        batch_id: 0,
    };
    put_all(&mut c, c2).await;
    let mismatched = DeleteBatch {
        versions: vec![Version { ts: 1, writer: 1 }],
        ..delete_batch("d", &["keep", "b"])
    };
    let cases = [
        (delete_batch("d", &["keep", ""]), "empty"),
        (delete_batch("bad/ns", &["keep"]), "invalid namespace"),
        (mismatched, "versions for 2 keys"),
        (
            delete_batch("d", &["keep", &"k".repeat(70_000)]),
            "the limit is",
        ),
    ];
    for (batch, why) in cases {
        let r = c.batch_delete(tokio_stream::iter([batch])).await;
        let status = match r {
            Err(s) => s,
            Ok(resp) => resp.into_inner().message().await.unwrap_err(),
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(why), "{why}: {status:?}");
    }
    let kept = c
        .lookup(LookupRequest {
            namespace: "d".into(),
            key: Bytes::from_static(b"keep"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.value.as_ref(), b"v");
}

fn lines(range: std::ops::Range<u32>, f: impl Fn(u32) -> String) -> Vec<u8> {
    range.map(|i| f(i) + "\n").collect::<String>().into_bytes()
}

#[test]
fn del_deletes_given_keys_and_a_file_of_them_on_every_replica() {
    let c = Cluster::start(3, &["--metrics-listen", "127.0.0.1:0"], ["3", "2"]);
    c.ok(
        None,
        &["load", "kv", "-"],
        &lines(0..2000, |i| format!("k{i}\tv{i}")),
    );

    let out = c.ok(None, &["del", "kv", "k0", "k1", "missing"], b"");
    assert!(
        out.contains("deleted 3 keys") && out.contains("1 were not there"),
        "{out}"
    );
    let out = c.ok(
        None,
        &["del", "kv", "--from", "-"],
        &lines(2..1000, |i| format!("k{i}")),
    );
    assert!(
        out.contains("deleted 998 keys") && out.contains("0 were not there"),
        "{out}"
    );

    for i in 0..3 {
        let held = c.pairs(Some(i), "kv");
        assert_eq!(held.len(), 1000, "node {i}");
        assert!(held.keys().all(|k| k[1..].parse::<u32>().unwrap() >= 1000));
    }
    let (code, _, err) = c.run(None, &["del", "kv"], b"");
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = c.run(None, &["del", "bad/ns", "a", "b"], b"");
    assert_ne!(code, 0);
    assert!(err.contains("invalid namespace"), "{err}");
}

#[test]
fn del_reaches_its_quorum_with_a_node_killed_mid_stream() {
    let mut c = Cluster::start(3, &["--metrics-listen", "127.0.0.1:0"], ["3", "2"]);
    const N: u32 = 200_000;
    c.ok(
        None,
        &["load", "kv", "-", "--chunk", "20000"],
        &lines(0..N, |i| format!("k{i}\tv{i}")),
    );
    let nodes = c.list(None);
    let mut del = Command::new(DSTASH)
        .args([
            "--replicas",
            "3",
            "--write-quorum",
            "2",
            "del",
            "kv",
            "--from",
            "-",
        ])
        .args(["--chunk", "5000"])
        .env("DSTASH_NODES", &nodes)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = lines(0..N, |i| format!("k{i}"));
    let mut stdin = del.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    // Kill node 2 once it has deleted some keys, while the stream goes on.
    let line = c.nodes[2].as_ref().unwrap().line.clone();
    let started = Instant::now();
    while metric_if_any(&line, "dstash_keys_handled_total{rpc=\"BatchDelete\"}").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no deletes arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    c.nodes[2].take().unwrap().kill9();
    feeder.join().unwrap().unwrap();
    let out = del.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("deleted {N} keys")), "{text}");
    // Nodes 0 and 1 both deleted every key.
    for i in 0..2 {
        assert!(c.pairs(Some(i), "kv").is_empty(), "node {i}");
    }
}

#[test]
fn dump_piped_into_load_reproduces_a_namespace() {
    let c = Cluster::start(3, &["--metrics-listen", "127.0.0.1:0"], ["3", "2"]);
    let mut input = lines(0..3000, |i| {
        format!("{{\"key\":\"k{i}\",\"value\":\"v{i}\"}}")
    });
    input.extend(lines(0..50, |i| {
        format!("{{\"key\":\"t{i}\",\"value\":\"x\",\"ttl\":3600}}")
    }));
    input.extend(b"{\"key_base64\":\"AAH/\",\"value_base64\":\"/wAB\"}\n");
    c.ok(None, &["load", "src", "--format", "jsonl", "-"], &input);
    c.ok(
        None,
        &["del", "src", "--from", "-"],
        &lines(0..100, |i| format!("k{i}")),
    );

    let dump = c.ok(None, &["dump", "src", "--format", "jsonl"], b"");
    assert_eq!(dump.lines().count(), 2900 + 50 + 1, "each live key once");
    assert!(dump.contains("\"key_base64\":\"AAH/\"") && dump.contains("\"value_base64\":\"/wAB\""));
    let ttl_line = dump.lines().find(|l| l.contains("\"t7\"")).unwrap();
    let ttl: u32 = ttl_line.split("\"ttl\":").nth(1).unwrap()[..4]
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl_line}");

    c.ok(
        None,
        &["load", "dst", "--format", "jsonl", "-"],
        dump.as_bytes(),
    );
    let again = c.ok(None, &["dump", "dst", "--format", "jsonl"], b"");
    let sorted = |s: &str| {
        // TTLs count down between the dumps: compare without them.
        let mut v: Vec<String> = s
            .lines()
            .map(|l| match l.find("\"ttl\":") {
                Some(at) => {
                    let end = at + l[at..].find(',').unwrap() + 1;
                    format!("{}{}", &l[..at], &l[end..])
                }
                None => l.to_string(),
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&again), sorted(&dump));
    assert_eq!(
        c.pairs(None, "src").get("k150").map(String::as_str),
        Some("v150")
    );
    assert!(!c.pairs(None, "dst").contains_key("k50"));
}
