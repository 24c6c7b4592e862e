//! `dstash get NS KEY`: prints a key's value; exit code 1 when it is missing.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    key: String,
    /// Write the value's bytes exactly, with no newline after them.
    #[arg(long)]
    raw: bool,
}

pub async fn run(a: GetArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let found = c.get(&a.ns, a.key.as_bytes()).await?;
    c.finish_background().await;
    match found {
        Some(v) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&v)?;
            if !a.raw {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(true)
        }
        None => {
            eprintln!("dstash: {}/{}: not found", a.ns, a.key);
            Ok(false)
        }
    }
}
