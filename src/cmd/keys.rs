//! `dstash keys NS [PATTERN]`: lists keys matching a glob, from every node.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use dstash_client::load::encode_jsonl;

use super::OutputFormat;
use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// Anchored glob: `*`, `?`, `\` escapes [default: every key].
    #[arg(default_value = "")]
    pattern: String,
    /// List expiring-count keys instead of stored keys.
    #[arg(long)]
    counters: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

pub async fn run(a: KeysArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let keys = c.keys(&a.ns, &a.pattern, a.counters).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for k in keys {
        match a.format {
            OutputFormat::Text => out.write_all(&k)?,
            OutputFormat::Jsonl => out.write_all(encode_jsonl(&k, None).as_bytes())?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(true)
}
