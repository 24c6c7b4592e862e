//! `dstash count NS KEY [--window S]`: prints an expiring count.

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct CountArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    /// Count the last S seconds [default: the namespace's retention].
    #[arg(long, value_name = "S", default_value_t = 0)]
    window: u32,
    /// Ask every replica and print the highest count.
    #[arg(long)]
    max: bool,
}

pub async fn run(a: CountArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let n = c.count(&a.ns, a.key.as_bytes(), a.window, a.max).await?;
    println!("{n}");
    Ok(true)
}
