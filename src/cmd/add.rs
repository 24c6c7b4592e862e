//! `dstash add NS KEY [-n N]`: adds events to an expiring count; prints the new count.

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    /// Events to add.
    #[arg(short, default_value_t = 1)]
    n: u32,
}

pub async fn run(a: AddArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    println!("{}", c.add(&a.ns, a.key.as_bytes(), a.n.max(1)).await?);
    super::linger(&c).await;
    Ok(true)
}
