//! `dstash load NS FILE`: bulk-loads KEY<TAB>VALUE lines (or JSON lines) from a file or
//! stdin, with a progress bar on a terminal. The pipeline is the client library's.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use dstash_client::{LineFormat, LoadOptions, LoadProgress, OnError};
use indicatif::{ProgressBar, ProgressStyle};

use crate::conn::ConnArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// KEY<TAB>VALUE; the value is the rest of the line, tabs included.
    Tsv,
    /// One JSON object per line: "key", "value" (strings, or "key_base64" and
    /// "value_base64"), optional "ttl" (seconds). What `lookup --format jsonl` prints.
    Jsonl,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnErrorArg {
    /// Report the line and go on.
    Skip,
    /// Report the line and stop (what was sent before it stays written).
    Fail,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    conn: ConnArgs,
    ns: String,
    /// The file, or - for stdin.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "tsv")]
    format: Format,
    /// What a malformed line does.
    #[arg(long, value_enum, default_value = "skip")]
    on_error: OnErrorArg,
    /// Seconds to live for lines that give none [default: forever].
    #[arg(long)]
    ttl: Option<u32>,
    /// Keys per client batch (each is split by node and streamed).
    #[arg(long, default_value_t = 50_000)]
    chunk: usize,
}

/// The load's progress on stderr: a bar on a terminal, warnings above it.
pub(super) struct Bar(pub(super) ProgressBar);

impl LoadProgress for Bar {
    fn read(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn warn(&self, message: &str) {
        self.0.suspend(|| eprintln!("dstash: {message}"));
    }
}

pub(super) fn progress(size: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub async fn run(a: LoadArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let (lines, size) = super::open(&a.file)?;
    let opts = LoadOptions {
        format: match a.format {
            Format::Tsv => LineFormat::Tsv,
            Format::Jsonl => LineFormat::Jsonl,
        },
        on_error: match a.on_error {
            OnErrorArg::Skip => OnError::Skip,
            OnErrorArg::Fail => OnError::Fail,
        },
        ttl: a.ttl.unwrap_or(0),
        chunk: a.chunk.max(1),
        delete: false,
    };
    let bar = Arc::new(Bar(progress(size)));
    let result = c.load_lines(&a.ns, lines, opts, bar.clone()).await;
    bar.0.finish_and_clear();
    super::linger(&c).await;
    let l = result?;
    println!(
        "loaded {} keys in {:.2} s ({:.0} keys/s); {} failed; {} malformed lines skipped",
        l.written,
        l.secs,
        l.written as f64 / l.secs.max(1e-9),
        l.failed,
        l.malformed
    );
    if l.failed > 0 {
        bail!("{} keys missed their write quorum", l.failed);
    }
    Ok(true)
}
