//! What the Redis-protocol tests share: a node with `--resp-listen`, the address it
//! prints, a `redis` crate connection, and an error's text.

#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use redis::Value;

use crate::support::{spawn_loopback, NodeProcess};

/// The Redis address the node printed on its serving line.
pub fn resp_addr(node: &NodeProcess) -> String {
    node.line
        .split("redis protocol on ")
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no redis address in {:?}", node.line))
        .to_string()
}

pub fn connect(node: &NodeProcess) -> redis::Connection {
    let url = format!("redis://{}/", resp_addr(node));
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

pub fn resp_node(dir: &std::path::Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--resp-listen", "127.0.0.1:0", "--replicas", "1"];
    args.extend_from_slice(extra);
    spawn_loopback(dir, &args)
}

pub fn err_text(r: redis::RedisResult<Value>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}
