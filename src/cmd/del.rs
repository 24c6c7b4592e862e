//! `dstash del NS KEY...` and `dstash del NS --from FILE|-`: deletes keys from their
//! replicas. One key is one call; more keys, or a file of them (one per line, or the
//! JSON lines `dump` prints), go through the bulk pipeline `load` uses, with its
//! quorum, progress bar and summary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use dstash_client::{LineFormat, LoadOptions, LoadSummary, OnError};

use super::load::{progress, Bar};
use crate::conn::ConnArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyFormat {
    /// One key per line, the whole line.
    Keys,
    /// KEY<TAB>anything: the key is what comes before the first tab.
    Tsv,
    /// One JSON object per line with "key" (or "key_base64"): what `dump` prints.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// The keys to delete.
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    keys: Vec<String>,
    /// Read the keys from this file, or - for stdin.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// How --from lines give their keys.
    #[arg(long, value_enum, default_value = "keys", requires = "from")]
    format: KeyFormat,
    /// Keys per client batch (each is split by node and streamed).
    #[arg(long, default_value_t = 50_000)]
    chunk: usize,
}

pub async fn run(a: DelArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    if let [key] = a.keys.as_slice() {
        if !c.delete(&a.ns, key.as_bytes()).await? {
            eprintln!("dstash: {}/{}: was not there", a.ns, key);
        }
        super::linger(&c).await;
        return Ok(true);
    }
    let (lines, size) = match &a.from {
        Some(file) => super::open(file)?,
        None => {
            let text: String = a.keys.iter().map(|k| format!("{k}\n")).collect();
            let len = text.len() as u64;
            let lines: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(text));
            (lines, Some(len))
        }
    };
    let format = match (&a.from, a.format) {
        (None, _) | (_, KeyFormat::Keys) => LineFormat::Keys,
        (_, KeyFormat::Tsv) => LineFormat::Tsv,
        (_, KeyFormat::Jsonl) => LineFormat::Jsonl,
    };
    let opts = LoadOptions {
        format,
        on_error: OnError::Skip,
        ttl: 0,
        chunk: a.chunk.max(1),
        delete: true,
    };
    let bar = Arc::new(Bar(progress(size)));
    let result = c.load_lines(&a.ns, lines, opts, bar.clone()).await;
    bar.0.finish_and_clear();
    super::linger(&c).await;
    summary(&result?)
}

fn summary(l: &LoadSummary) -> Result<bool> {
    println!(
        "deleted {} keys in {:.2} s ({:.0} keys/s); {} were not there; {} failed; {} malformed lines skipped",
        l.written,
        l.secs,
        l.written as f64 / l.secs.max(1e-9),
        l.written.saturating_sub(l.existed),
        l.failed,
        l.malformed
    );
    if l.failed > 0 {
        bail!("{} keys missed their write quorum", l.failed);
    }
    Ok(true)
}
