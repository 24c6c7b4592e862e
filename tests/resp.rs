//! The Redis protocol on real `dstash node` processes, spoken by the `redis` crate (a
//! real Redis client) and by hand for broken frames: commands and their replies, TTLs,
//! RESP3, pipelines, namespaces and AUTH. Across connections and nodes:
//! `resp_routing.rs`; TLS, exposure and SIGTERM: `resp_listener.rs`.

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use redis::{Commands, Value};
use resp::*;

#[test]
fn values_and_their_options_answer_as_redis_does() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &[]);
    let mut c = connect(&node);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let _: () = c.set("k", "v1").unwrap();
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v1")
    );
    assert_eq!(c.get::<_, Option<String>>("none").unwrap(), None);
    // NX and XX, GET, EX.
    let nx: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(nx, None, "NX on a key that exists sets nothing");
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v1"));
    let xx: Option<String> = redis::cmd("SET")
        .arg("fresh")
        .arg("x")
        .arg("XX")
        .query(&mut c)
        .unwrap();
    assert_eq!(xx, None);
    assert_eq!(c.exists::<_, i64>("fresh").unwrap(), 0);
    let ok: String = redis::cmd("SET")
        .arg("t")
        .arg("x")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    assert!(err_text(
        redis::cmd("SET")
            .arg("t")
            .arg("x")
            .arg("EX")
            .arg(0)
            .query(&mut c)
    )
    .contains("invalid expire time"));
    assert!(err_text(
        redis::cmd("SET")
            .arg("t")
            .arg("x")
            .arg("NX")
            .arg("XX")
            .query(&mut c)
    )
    .contains("syntax error"));
    // Several keys at once.
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut c)
        .unwrap();
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a")
        .arg("zz")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, [Some("1".into()), None, Some("2".into())]);
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("a")
            .arg("b")
            .arg("zz")
            .query::<i64>(&mut c)
            .unwrap(),
        2
    );
    assert_eq!(
        redis::cmd("DEL")
            .arg("a")
            .arg("zz")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("GETDEL")
            .arg("b")
            .query::<Option<String>>(&mut c)
            .unwrap()
            .as_deref(),
        Some("2")
    );
    assert_eq!(c.get::<_, Option<String>>("b").unwrap(), None);
    assert_eq!(
        redis::cmd("TYPE").arg("k").query::<String>(&mut c).unwrap(),
        "string"
    );
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "t"]);
    // SCAN pages until the cursor comes back 0.
    let (mut cursor, mut found) = ("0".to_string(), Vec::new());
    loop {
        let (next, page): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg("k*")
            .query(&mut c)
            .unwrap();
        found.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(found, ["k"]);
    assert!(err_text(redis::cmd("SCAN").arg("-1").query::<Value>(&mut c)).contains("cursor"));
    assert!(err_text(
        redis::cmd("SCAN")
            .arg(0)
            .arg("COUNT")
            .arg(0)
            .query::<Value>(&mut c)
    )
    .contains("syntax"));
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 2);
    // Expiring counts.
    assert_eq!(
        redis::cmd("CNT.ADD")
            .arg("ip")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("CNT.ADD")
            .arg("ip")
            .arg(4)
            .query::<i64>(&mut c)
            .unwrap(),
        5
    );
    assert_eq!(
        redis::cmd("CNT.COUNT")
            .arg("ip")
            .arg(10)
            .query::<i64>(&mut c)
            .unwrap(),
        5
    );
    // Pipelined adds: each answers the count with the ones before it, repeats included.
    let mut p = redis::pipe();
    for k in ["burst", "burst", "other", "burst"] {
        p.cmd("CNT.ADD").arg(k);
    }
    let counts: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(counts, [1, 2, 1, 3]);
    // Unknown and unsupported commands answer an error and the connection goes on.
    assert!(err_text(redis::cmd("MULTI").query(&mut c)).contains("unknown command 'multi'"));
    assert!(
        err_text(redis::cmd("GET").query(&mut c)).contains("wrong number of arguments for 'get'")
    );
    assert_eq!(
        redis::cmd("ECHO")
            .arg("still here")
            .query::<String>(&mut c)
            .unwrap(),
        "still here"
    );
}

#[test]
fn namespaces_pipelines_and_resp3() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &["--resp-namespace", "app"]);
    let mut c = connect(&node);
    let _: () = c.set("k", "in app").unwrap();
    let _: () = redis::cmd("SELECT").arg("other").query(&mut c).unwrap();
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap(),
        None,
        "namespaces are apart"
    );
    assert!(err_text(redis::cmd("SELECT").arg("../etc").query(&mut c)).contains("namespace"));
    let _: () = redis::cmd("SELECT").arg("0").query(&mut c).unwrap();
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("in app"),
        "0 is the default"
    );
    // A pipeline of 200 SETs then 200 GETs: batched, answered in order.
    let mut p = redis::pipe();
    for i in 0..200 {
        p.set(format!("p{i}"), format!("v{i}")).ignore();
    }
    for i in 0..200 {
        p.get(format!("p{i}"));
    }
    let got: Vec<String> = p.query(&mut c).unwrap();
    assert_eq!(got.len(), 200);
    assert!(got.iter().enumerate().all(|(i, v)| *v == format!("v{i}")));
    // RESP3: HELLO answers a map, and nil is RESP3's.
    let hello: Value = redis::cmd("HELLO").arg(3).query(&mut c).unwrap();
    let Value::Map(pairs) = hello else {
        panic!("HELLO 3 answers a map: {hello:?}");
    };
    assert!(pairs
        .iter()
        .any(|(k, v)| *k == Value::BulkString(b"proto".to_vec()) && *v == Value::Int(3)));
    assert_eq!(
        redis::cmd("GET")
            .arg("missing")
            .query::<Value>(&mut c)
            .unwrap(),
        Value::Nil
    );
    let config: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut c)
        .unwrap();
    assert!(
        matches!(config, Value::Map(ref m) if m.len() == 1),
        "{config:?}"
    );
}

#[test]
fn a_token_is_asked_for_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let data = dir.path().join("d");
    let node = resp_node(&data, &["--auth-token-file", token.to_str().unwrap()]);
    let mut c = connect(&node);
    assert!(err_text(redis::cmd("GET").arg("k").query(&mut c)).contains("NOAUTH"));
    assert!(err_text(redis::cmd("AUTH").arg("wrong").query(&mut c)).contains("WRONGPASS"));
    let ok: String = redis::cmd("AUTH")
        .arg("default")
        .arg("s3cret")
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v")
    );
}

#[test]
fn broken_frames_get_protocol_errors_and_cost_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &[]);
    let addr = resp_addr(&node);
    let answer = |bytes: &[u8]| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert_eq!(
        answer(b"*1\r\n$-5\r\n"),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(
        answer(b"*x\r\n"),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    let huge = format!("*2\r\n$3\r\nGET\r\n${}\r\n", 1u64 << 40);
    assert!(answer(huge.as_bytes()).contains("invalid bulk length"));
    // Many arguments, each within the limit, that never end: cut off, not held.
    let node_small = resp_node(&dir.path().join("small"), &["--max-value-bytes", "1000"]);
    let mut s = TcpStream::connect(resp_addr(&node_small)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"*100000\r\n$4\r\nMSET\r\n").unwrap();
    let arg = format!("$60000\r\n{}\r\n", "x".repeat(60_000));
    let mut reply = String::new();
    for _ in 0..100 {
        if s.write_all(arg.as_bytes()).is_err() {
            break;
        }
    }
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("request too large"), "{reply:?}");
    // Half a frame, then the client goes away.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"*2\r\n$3\r\nSET\r\n$100\r\nabc").unwrap();
    drop(s);
    // Inline commands, as typed into a terminal, and the node still serves.
    assert_eq!(answer(b"PING\r\nQUIT\r\n"), "+PONG\r\n+OK\r\n");
    let mut c = connect(&node);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn time_to_live_is_read_set_kept_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &[]);
    let mut c = connect(&node);
    let ttl =
        |c: &mut redis::Connection, k: &str| redis::cmd("TTL").arg(k).query::<i64>(c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert!(
        (98..=100).contains(&ttl(&mut c, "k")),
        "{}",
        ttl(&mut c, "k")
    );
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut c).unwrap();
    assert!((98_000..=100_000).contains(&pttl), "{pttl}");
    assert_eq!(ttl(&mut c, "missing"), -2);
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(50)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert!((48..=50).contains(&ttl(&mut c, "k")));
    // KEEPTTL writes a new value under the TTL the key has.
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("KEEPTTL")
        .query(&mut c)
        .unwrap();
    assert!((48..=50).contains(&ttl(&mut c, "k")));
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v2")
    );
    assert!(err_text(
        redis::cmd("SET")
            .arg("k")
            .arg("x")
            .arg("KEEPTTL")
            .arg("EX")
            .arg(5)
            .query(&mut c)
    )
    .contains("syntax error"));
    assert_eq!(
        redis::cmd("PERSIST").arg("k").query::<i64>(&mut c).unwrap(),
        1
    );
    assert_eq!(ttl(&mut c, "k"), -1);
    assert_eq!(
        redis::cmd("PERSIST").arg("k").query::<i64>(&mut c).unwrap(),
        0,
        "no TTL left to remove"
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("missing")
            .arg(5)
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    // A time already past deletes the key.
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(0)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(c.get::<_, Option<String>>("k").unwrap(), None);
}

/// A pipeline far longer than one read goes out as many runs at once; each command
/// still sees every command sent before it on its connection.
#[test]
fn a_long_pipeline_overlaps_its_runs_and_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = resp_node(dir.path(), &[]);
    let mut c = connect(&node);
    let value = |i: usize| format!("{i:0>200}");
    let mut p = redis::pipe();
    let mut expect = Vec::new();
    // 4,000 rounds of SET, GET and CNT.ADD over 40 keys: about 1 MB, many reads, and
    // every run names keys the runs before it name.
    for i in 0..4000 {
        let k = format!("o{}", i % 40);
        p.set(&k, value(i)).ignore();
        p.get(&k);
        expect.push(Value::BulkString(value(i).into_bytes()));
        p.cmd("CNT.ADD").arg(format!("c{}", i % 40));
        expect.push(Value::Int((i / 40 + 1) as i64));
    }
    let got: Vec<Value> = p.query(&mut c).unwrap();
    assert_eq!(got.len(), expect.len());
    for (n, (g, e)) in got.iter().zip(&expect).enumerate() {
        assert_eq!(g, e, "reply {n}");
    }
    // Disjoint keys: a pipeline of 20,000 SETs, all acknowledged and all held.
    let mut p = redis::pipe();
    for i in 0..20_000 {
        p.set(format!("d{i}"), value(i)).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    let keys: Vec<String> = (0..20_000).step_by(997).map(|i| format!("d{i}")).collect();
    let vals: Vec<String> = c.mget(&keys).unwrap();
    for (k, v) in keys.iter().zip(vals) {
        assert_eq!(v, value(k[1..].parse().unwrap()));
    }
}
