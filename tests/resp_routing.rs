//! The Redis protocol across connections and nodes: many connections pipelining at
//! once through shared batches, each getting its own answers, a command past the
//! limits failing alone, and three nodes where any node answers for any key.

#[path = "support/resp.rs"]
mod resp;
mod support;

use redis::{Commands, Value};
use resp::*;
use support::{spawn_node, NodeProcess};

#[test]
fn any_of_three_nodes_answers_for_any_key() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let peers: String = (0..3)
        .map(|i| format!("n{i}=127.0.0.1:{}", ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let nodes: Vec<NodeProcess> = (0..3)
        .map(|i| {
            let (data, listen) = (
                dir.path().join(format!("n{i}")),
                format!("127.0.0.1:{}", ports[i]),
            );
            spawn_node(&[
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                &listen,
                "--node-id",
                &format!("n{i}"),
                "--peers",
                &peers,
                "--replicas",
                "2",
                "--resp-listen",
                "127.0.0.1:0",
            ])
        })
        .collect();
    let mut first = connect(&nodes[0]);
    for i in 0..300 {
        let _: () = first.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    for n in &nodes[1..] {
        let mut c = connect(n);
        for i in (0..300).step_by(7) {
            let got: Option<String> = c.get(format!("k{i}")).unwrap();
            assert_eq!(got, Some(format!("v{i}")), "k{i} through {}", n.line);
        }
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg("k1")
            .arg("k2")
            .arg("nope")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, [Some("v1".into()), Some("v2".into()), None]);
    }
    // SCAN through one node walks every node, a page at a time: the redis crate's
    // iterator follows the cursor to its end and sees every key.
    let mut c = connect(&nodes[1]);
    let seen: std::collections::HashSet<String> = c
        .scan_match::<_, String>("k*")
        .unwrap()
        .map(|k| k.unwrap())
        .collect();
    assert_eq!(seen.len(), 300, "every key, each named at least once");
    let mut pages = 0;
    let mut cursor = 0u64;
    loop {
        let (next, _): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(20)
            .query(&mut c)
            .unwrap();
        pages += 1;
        if next == 0 {
            break;
        }
        assert!(pages < 1000, "the cursor moves on");
        cursor = next;
    }
    assert!(
        pages >= 3 * 2,
        "pages of about 20 of ~200 keys on each of 3 nodes: {pages}"
    );
    // Each key is on its two owners only, not on all three.
    let mut total = 0;
    for n in &nodes {
        let rt = tokio::runtime::Runtime::new().unwrap();
        total += rt.block_on(async {
            let mut c = n.client().await;
            let s = c
                .status(dstash_proto::v1::StatusRequest {})
                .await
                .unwrap()
                .into_inner();
            s.namespaces
                .iter()
                .filter(|ns| ns.name == "default")
                .map(|ns| ns.keys)
                .sum::<u64>()
        });
    }
    assert_eq!(total, 600, "300 keys x R = 2");

    // DEL of many keys through one node deletes them on every owner, and counts those
    // that were there once.
    let mut del = redis::cmd("DEL");
    (0..100).for_each(|i| {
        del.arg(format!("k{i}"));
    });
    del.arg("nope").arg("k0");
    assert_eq!(del.query::<i64>(&mut c).unwrap(), 100);
    let mut other = connect(&nodes[2]);
    let gone: Vec<Option<String>> = redis::cmd("MGET")
        .arg("k0")
        .arg("k99")
        .arg("k100")
        .query(&mut other)
        .unwrap();
    assert_eq!(gone, [None, None, Some("v100".into())]);
}

#[test]
fn connections_share_batches_and_each_gets_its_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &["--max-value-bytes", "1000"]);
    let addr = resp_addr(&node);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = format!("redis://{addr}/");
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                for round in 0..5 {
                    let mut p = redis::pipe();
                    for i in 0..50 {
                        p.set(format!("t{t}-{i}"), format!("v{t}-{i}-{round}"))
                            .ignore();
                    }
                    for i in 0..50 {
                        p.get(format!("t{t}-{i}"));
                    }
                    let got: Vec<String> = p.query(&mut c).unwrap();
                    for (i, v) in got.iter().enumerate() {
                        assert_eq!(*v, format!("v{t}-{i}-{round}"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A value past the limit and an empty key fail alone; the rest of the run is written.
    let mut c = connect(&node);
    let big = "x".repeat(2000);
    let mut p = redis::pipe();
    p.set("ok1", "a")
        .set("big", &big)
        .set("ok2", "b")
        .get("")
        .get("ok1");
    let failures = p.query::<Vec<Value>>(&mut c).unwrap_err().to_string();
    assert!(
        failures.contains("Index 1") && failures.contains("Index 3"),
        "{failures}"
    );
    assert!(
        ["Index 0", "Index 2", "Index 4"]
            .iter()
            .all(|i| !failures.contains(i)),
        "{failures}"
    );
    assert_eq!(
        c.get::<_, Option<String>>("ok1").unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        c.get::<_, Option<String>>("ok2").unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(c.get::<_, Option<String>>("big").unwrap(), None);
    assert!(
        err_text(redis::cmd("SET").arg("big").arg(&big).query(&mut c))
            .contains("the limit is 1000 bytes")
    );
}
