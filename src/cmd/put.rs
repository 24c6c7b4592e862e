//! `dstash put NS KEY VALUE`: writes a key to its replicas.

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    value: String,
    /// Seconds to live [default: forever].
    #[arg(long)]
    ttl: Option<u32>,
}

pub async fn run(a: PutArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let ttl = a.ttl.unwrap_or(0);
    c.put(&a.ns, a.key.as_bytes(), a.value.as_bytes(), ttl)
        .await?;
    super::linger(&c).await;
    Ok(true)
}
