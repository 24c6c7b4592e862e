//! `dstash status`: one line per node (id, address, health, keys, disk bytes, the
//! client's view of it: up, suspect or down, and its latency); exit code 1 when any
//! node is down.

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
}

pub async fn run(a: StatusArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let mut all_up = true;
    for n in c.status().await {
        let seen = match n.latency {
            Some(l) => format!(
                "client={}\tlatency={:.2}ms",
                n.state.as_str(),
                l.as_secs_f64() * 1e3
            ),
            None => format!("client={}", n.state.as_str()),
        };
        match n.status {
            Ok(s) => println!(
                "{}\t{}\tserving\tkeys={}\tdisk={}\t{seen}",
                n.id, n.addr, s.keys, s.disk_bytes
            ),
            Err(e) => {
                all_up = false;
                println!(
                    "{}\t{}\tdown ({:?}: {})\t{seen}",
                    n.id,
                    n.addr,
                    e.code(),
                    e.message()
                );
            }
        }
    }
    Ok(all_up)
}
