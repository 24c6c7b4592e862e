//! `dstash status`: one line per node (id, address, health, keys, disk bytes); exit
//! code 1 when any node is down.

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
        match n.status {
            Ok(s) => println!(
                "{}\t{}\tserving\tkeys={}\tdisk={}",
                n.id, n.addr, s.keys, s.disk_bytes
            ),
            Err(e) => {
                all_up = false;
                println!(
                    "{}\t{}\tdown ({:?}: {})",
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
