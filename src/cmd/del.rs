//! `dstash del NS KEY`: deletes a key from its replicas.

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct DelArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
}

pub async fn run(a: DelArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    if !c.delete(&a.ns, a.key.as_bytes()).await? {
        eprintln!("dstash: {}/{}: was not there", a.ns, a.key);
    }
    super::linger(&c).await;
    Ok(true)
}
