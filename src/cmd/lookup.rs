//! `dstash lookup NS FILE`: looks up one key per line, in batches; prints what it found
//! in input order and counts the missing on stderr.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::Args;
use dstash_client::load::encode_jsonl;
use dstash_client::Bytes;

use super::OutputFormat;
use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct LookupArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// One key per line; - for stdin.
    file: PathBuf,
    #[arg(long, default_value_t = 50_000)]
    chunk: usize,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// Up to `n` keys, one per line, blank lines skipped.
fn read_keys(source: &mut dyn BufRead, n: usize) -> Result<Vec<Bytes>> {
    let mut keys = Vec::with_capacity(n);
    let mut line = Vec::new();
    while keys.len() < n {
        line.clear();
        if source.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let k = line.strip_suffix(b"\n").unwrap_or(&line);
        let k = k.strip_suffix(b"\r").unwrap_or(k);
        if !k.is_empty() {
            keys.push(Bytes::copy_from_slice(k));
        }
    }
    Ok(keys)
}

fn print(out: &mut impl Write, format: OutputFormat, key: &[u8], value: &[u8]) -> Result<()> {
    match format {
        OutputFormat::Text => {
            out.write_all(key)?;
            out.write_all(b"\t")?;
            out.write_all(value)?;
        }
        OutputFormat::Jsonl => out.write_all(encode_jsonl(key, Some(value)).as_bytes())?,
    }
    out.write_all(b"\n")?;
    Ok(())
}

pub async fn run(a: LookupArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let (mut source, _) = super::open(&a.file)?;
    let (mut total, mut missing) = (0u64, 0u64);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let keys = read_keys(&mut source, a.chunk.max(1))?;
        if keys.is_empty() {
            break;
        }
        let values = c.get_many(&a.ns, &keys).await?;
        for (k, v) in keys.iter().zip(values) {
            total += 1;
            match v {
                Some(v) => print(&mut out, a.format, k, &v)?,
                None => missing += 1,
            }
        }
    }
    out.flush()?;
    c.finish_background().await;
    if missing > 0 {
        eprintln!("dstash: {missing} of {total} keys not found");
    }
    let hedged = c.metrics().hedges_sent.load(Ordering::Relaxed);
    if hedged > 0 {
        eprintln!(
            "dstash: {hedged} node shares moved on to the next replica (a node too slow to answer)"
        );
    }
    Ok(true)
}
