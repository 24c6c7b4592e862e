//! Docker cannot build images here, so this checks that deploy/ and k8s/ say what the
//! code does: the binary path, the ports, and every `DSTASH_*` variable and subcommand
//! they use.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{run, DSTASH};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// `DSTASH_*` names in `text`.
fn vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("DSTASH_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(name.clone());
        rest = &rest[i + name.len()..];
    }
    out
}

/// The variables the binary reads: from `--help` of the commands deploy/ and k8s/ run.
fn known_vars() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for cmd in ["node", "load", "status"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        known.extend(vars(&out));
    }
    known
}

#[test]
fn the_dockerfile_builds_and_runs_what_the_code_has() {
    let docker = read("deploy/Dockerfile");
    assert!(docker.contains("cargo build --release --locked -p dstash"));
    assert!(docker.contains("cp target/release/dstash /dstash"));
    assert!(
        DSTASH.ends_with("/dstash"),
        "the package's binary is `dstash`"
    );
    assert!(docker.contains("ENTRYPOINT [\"dstash\"]") && docker.contains("CMD [\"node\"]"));
    // Exposed ports are the ones the ENV makes the node listen on.
    assert!(docker.contains("DSTASH_LISTEN=0.0.0.0:5000"));
    assert!(docker.contains("DSTASH_METRICS_LISTEN=0.0.0.0:9100"));
    assert!(docker.contains("EXPOSE 5000 9100"));
    // The health check's command exists and checks the listen port.
    assert!(docker.contains("\"dstash\", \"health\", \"127.0.0.1:5000\""));
    assert_eq!(run(&["health", "--help"]).0, 0);
    assert!(docker.contains("useradd --uid 10001") && docker.contains("USER 10001:10001"));
}

#[test]
fn every_variable_deploy_and_k8s_set_is_one_the_binary_reads() {
    let known = known_vars();
    for file in [
        "deploy/Dockerfile",
        "deploy/docker-compose.yml",
        "k8s/configmap.yaml",
        "k8s/statefulset.yaml",
        "k8s/load-job.yaml",
        "k8s/layout-job.yaml",
    ] {
        for v in vars(&read(file)) {
            assert!(
                known.contains(&v),
                "{file} sets {v}, which no dstash command reads"
            );
        }
    }
}

#[test]
fn the_subcommands_and_ports_k8s_uses_exist() {
    let ss = read("k8s/statefulset.yaml");
    assert!(ss.contains("args: [\"node\"]"));
    assert!(ss.contains("value: 0.0.0.0:5000") && ss.contains("containerPort: 5000"));
    assert!(ss.contains("value: 0.0.0.0:9100") && ss.contains("containerPort: 9100"));
    let job = read("k8s/load-job.yaml");
    assert!(job.contains("args: [\"load\", \"users\", \"/input/users.tsv\"]"));
    assert_eq!(run(&["load", "--help"]).0, 0);
    let layout = read("k8s/layout-job.yaml");
    assert!(layout.contains("- layout\n            - apply\n            - --wait"));
    assert_eq!(run(&["layout", "apply", "--help"]).0, 0);
}

#[test]
fn the_environment_compose_and_k8s_give_starts_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(DSTASH)
        .arg("node")
        .env("DSTASH_DATA_DIR", dir.path())
        .env("DSTASH_LISTEN", "0.0.0.0:0")
        .env("DSTASH_METRICS_LISTEN", "127.0.0.1:0")
        .env("DSTASH_INSECURE", "true")
        .env("DSTASH_NODE_ID", "dstash-0")
        .env("DSTASH_SYNC", "always")
        .env("DSTASH_COUNT_RETENTION", "60")
        .env("DSTASH_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("dstash node dstash-0 serving on 0.0.0.0:"),
        "{line:?}"
    );

    // Without DSTASH_INSECURE, an exposed plaintext node refuses to start.
    let out = Command::new(DSTASH)
        .arg("node")
        .env("DSTASH_DATA_DIR", dir.path().join("other"))
        .env("DSTASH_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
