//! The CLI as Redis and kubectl users expect it: connection flags before or after the
//! subcommand, a default node, output any bytes survive, and shell completions.

mod support;

use support::{run_with, spawn_loopback, spawn_node};

fn dstash(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    run_with(args, stdin, &[])
}

fn ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let (code, out, err) = dstash(args, stdin);
    assert_eq!(code, 0, "dstash {args:?}: {err}");
    out
}

#[test]
fn connection_flags_go_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let n = spawn_loopback(dir.path(), &[]);
    let nodes = format!("n0={}", n.addr);
    ok(
        &[
            "--nodes",
            &nodes,
            "--replicas",
            "1",
            "put",
            "ns",
            "k",
            "before",
        ],
        b"",
    );
    assert_eq!(
        ok(
            &["get", "ns", "k", "--nodes", &nodes, "--replicas", "1"],
            b""
        ),
        b"before\n"
    );
    // Both given: the one after the subcommand wins.
    let out = ok(
        &[
            "--nodes",
            "127.0.0.1:1",
            "get",
            "ns",
            "k",
            "--nodes",
            &nodes,
        ],
        b"",
    );
    assert_eq!(out, b"before\n");
    // A bad flag before the subcommand is refused with a message and a non-zero exit.
    let (code, _, err) = dstash(&["--replicas", "x", "get", "ns", "k"], b"");
    assert_ne!(code, 0);
    assert!(err.contains("--replicas"), "{err}");
    let (code, _, err) = dstash(
        &["--nodes", &nodes, "--tls-cert", "c.pem", "get", "ns", "k"],
        b"",
    );
    assert_ne!(code, 0);
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn a_bare_node_that_is_down_is_warned_about_and_the_rest_serve() {
    let dir = tempfile::tempdir().unwrap();
    let a = spawn_loopback(&dir.path().join("a"), &[]);
    let b = spawn_loopback(&dir.path().join("b"), &[]);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let nodes = format!("{},{dead},{}", a.addr, b.addr);
    let (code, _, err) = dstash(&["--nodes", &nodes, "put", "ns", "k", "v"], b"");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&dead) && err.contains("cannot learn its node id"),
        "{err}"
    );
    assert_eq!(
        err.matches("cannot learn its node id").count(),
        1,
        "warned once: {err}"
    );
    assert_eq!(ok(&["--nodes", &nodes, "get", "ns", "k"], b""), b"v\n");
}

#[test]
fn with_no_nodes_given_commands_use_the_default_port() {
    // The node's own default port: the test needs it free, and says so when it is not.
    if std::net::TcpListener::bind("127.0.0.1:5000").is_err() {
        eprintln!("skipped: 127.0.0.1:5000 is in use on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let _n = spawn_node(&["--data-dir", data, "--listen", "127.0.0.1:5000"]);
    ok(&["put", "ns", "k", "v"], b"");
    assert_eq!(ok(&["get", "ns", "k"], b""), b"v\n");
    let status = String::from_utf8(ok(&["status"], b"")).unwrap();
    assert!(status.contains("127.0.0.1:5000\tserving"), "{status}");
}

#[test]
fn get_raw_and_jsonl_output_round_trip_any_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let n = spawn_loopback(dir.path(), &[]);
    let nodes = format!("n0={}", n.addr);
    let with = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--nodes".into(), nodes.clone()]);
        v
    };
    let run = |args: &[&str], stdin: &[u8]| {
        let a = with(args);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>(), stdin)
    };
    // Values with a newline, a tab, quotes and bytes that are not UTF-8; a key with a tab
    // and one that is not UTF-8.
    let input = concat!(
        r#"{"key":"plain","value":"two\nlines\tand \"quotes\""}"#,
        "\n",
        r#"{"key":"bin","value_base64":"/wCAgQ=="}"#,
        "\n",
        r#"{"key":"tab\tkey","value":"x"}"#,
        "\n",
        r#"{"key_base64":"/2s=","value":"y"}"#,
        "\n",
    );
    run(&["load", "src", "-", "--format", "jsonl"], input.as_bytes());
    assert_eq!(
        run(&["get", "src", "plain", "--raw"], b""),
        b"two\nlines\tand \"quotes\""
    );
    assert_eq!(
        run(&["get", "src", "bin", "--raw"], b""),
        b"\xff\x00\x80\x81"
    );

    let keys = String::from_utf8(run(&["keys", "src", "--format", "jsonl"], b"")).unwrap();
    for want in [
        r#"{"key":"tab\tkey"}"#,
        r#"{"key_base64":"/2s="}"#,
        r#"{"key":"plain"}"#,
    ] {
        assert!(keys.lines().any(|l| l == want), "{want} not in {keys}");
    }

    // What lookup prints, load reads back into another namespace byte for byte.
    let found = run(
        &["lookup", "src", "-", "--format", "jsonl"],
        b"plain\nbin\nmissing\n",
    );
    assert_eq!(
        found.iter().filter(|&&b| b == b'\n').count(),
        2,
        "{found:?}"
    );
    run(&["load", "copy", "-", "--format", "jsonl"], &found);
    for key in ["plain", "bin"] {
        assert_eq!(
            run(&["get", "copy", key, "--raw"], b""),
            run(&["get", "src", key, "--raw"], b"")
        );
    }
}

#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = String::from_utf8(ok(&["completions", shell], b"")).unwrap();
        for cmd in ["put", "lookup", "completions", "nodes", "write-quorum"] {
            assert!(out.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let (code, _, err) = dstash(&["completions", "tcsh"], b"");
    assert_ne!(code, 0);
    assert!(err.contains("tcsh"), "{err}");
}
