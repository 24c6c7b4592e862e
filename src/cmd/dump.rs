//! `dstash dump NS [PATTERN]`: every live key with its value (and, in JSON lines, its
//! seconds to live), each key once, its newest version across replicas.
//! `dstash dump NS --format jsonl | dstash load NS2 --format jsonl -` copies a namespace.

use std::io::Write;

use anyhow::Result;
use clap::{Args, ValueEnum};
use dstash_client::load::encode_jsonl_ttl;
use dstash_client::{Dumped, Error};

use crate::conn::ConnArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// KEY<TAB>VALUE, what `load` reads. TTLs are not kept; a key or value holding a
    /// newline cannot be written so and is skipped with a warning.
    Tsv,
    /// One JSON object per line: key, value (base64 when not UTF-8) and ttl.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// Only keys matching this glob.
    #[arg(default_value = "*")]
    pattern: String,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: DumpFormat,
    /// Keys listed per page.
    #[arg(long, default_value_t = 10_000)]
    page: u32,
}

pub async fn run(a: DumpArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut skipped = 0u64;
    let format = a.format;
    let sum = c
        .dump(&a.ns, &a.pattern, a.page, |page| {
            write_page(&mut out, format, &page, &mut skipped)
                .map_err(|e| Error::Input(format!("writing the dump: {e}")))
        })
        .await?;
    out.flush()?;
    for f in &sum.failed {
        eprintln!("dstash: node {f}: its keys were read from other replicas");
    }
    if skipped > 0 {
        eprintln!("dstash: {skipped} keys holding a newline were skipped: use --format jsonl");
    }
    eprintln!("dumped {} keys", sum.keys);
    Ok(skipped == 0)
}

fn write_page(
    out: &mut impl Write,
    format: DumpFormat,
    page: &[Dumped],
    skipped: &mut u64,
) -> std::io::Result<()> {
    for d in page {
        match format {
            DumpFormat::Jsonl => {
                let line = encode_jsonl_ttl(&d.key, Some(&d.value), d.ttl_seconds);
                out.write_all(line.as_bytes())?;
            }
            DumpFormat::Tsv => {
                if d.key.contains(&b'\n') || d.key.contains(&b'\t') || d.value.contains(&b'\n') {
                    *skipped += 1;
                    continue;
                }
                out.write_all(&d.key)?;
                out.write_all(b"\t")?;
                out.write_all(&d.value)?;
            }
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}
