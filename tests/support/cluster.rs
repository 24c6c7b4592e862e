//! Local clusters of real `dstash node` processes driven through the CLI, for the
//! operations tests: start N nodes, run commands against all of them or one alone,
//! read a namespace back with `dump`.

#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use std::collections::BTreeMap;

use crate::support::{run_with, spawn_loopback, NodeProcess};

pub struct Cluster {
    pub nodes: Vec<Option<NodeProcess>>,
    /// `--replicas` and `--write-quorum` of commands run against every node.
    quorum: [&'static str; 2],
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes, each started with `extra`; commands use R and W of `quorum`.
    pub fn start(n: usize, extra: &[&str], quorum: [&'static str; 2]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes = (0..n)
            .map(|i| Some(spawn_loopback(&dir.path().join(format!("n{i}")), extra)))
            .collect();
        Cluster {
            nodes,
            quorum,
            _dir: dir,
        }
    }

    /// `nI=ADDR,...` over the nodes that are up, or node `only` alone.
    pub fn list(&self, only: Option<usize>) -> String {
        let up: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
            .filter_map(|(i, n)| n.as_ref().map(|n| format!("n{i}={}", n.addr)))
            .collect();
        up.join(",")
    }

    /// `dstash ARGS` against every node up, or against node `only` with R = W = 1.
    pub fn run(&self, only: Option<usize>, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let [r, w] = match only {
            None => self.quorum,
            Some(_) => ["1", "1"],
        };
        let mut all = vec!["--replicas", r, "--write-quorum", w];
        all.extend_from_slice(args);
        let (code, out, err) = run_with(&all, stdin, &[("DSTASH_NODES", &self.list(only))]);
        (code, String::from_utf8_lossy(&out).into_owned(), err)
    }

    /// [`run`](Self::run), which must exit 0: its output.
    pub fn ok(&self, only: Option<usize>, args: &[&str], stdin: &[u8]) -> String {
        let (code, out, err) = self.run(only, args, stdin);
        assert_eq!(code, 0, "dstash {args:?}: {err}");
        out
    }

    /// Every key of `ns` with its value, as `dump` prints them in TSV.
    pub fn pairs(&self, only: Option<usize>, ns: &str) -> BTreeMap<String, String> {
        let out = self.ok(only, &["dump", ns, "--format", "tsv"], b"");
        out.lines()
            .map(|l| {
                let (k, v) = l.split_once('\t').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}
