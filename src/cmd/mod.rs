//! The commands, one file each. A client command's `run` takes its arguments and the
//! connection flags given before the subcommand.

pub mod add;
pub mod backup;
pub mod cluster_args;
pub mod completions;
pub mod count;
pub mod del;
pub mod demo;
pub mod dump;
pub mod get;
pub mod health;
pub mod keys;
pub mod layout;
pub mod load;
pub mod lookup;
pub mod node;
pub mod ns;
pub mod put;
pub mod repair;
pub mod resp;
pub mod status;

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;

/// How `keys` and `lookup` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Raw bytes: KEY (keys) or KEY<TAB>VALUE (lookup), one per line. A key or value
    /// holding a newline or tab cannot be told apart.
    Text,
    /// One JSON object per line, {"key": ..., "value": ...}; bytes that are not UTF-8
    /// as "key_base64"/"value_base64". `dstash load --format jsonl` reads it back.
    Jsonl,
}

/// A file to read, or stdin for `-`; with its size when known.
pub fn open(file: &Path) -> Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), len))
}

/// How long a write command waits, before it exits, for the replica writes still
/// running after its write returned at W.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Lets the replicas still being written finish (up to [`LINGER`]): the write is
/// acknowledged already; this only keeps exiting from cutting the others short.
pub async fn linger(c: &dstash_client::Client) {
    let _ = tokio::time::timeout(LINGER, c.finish_background()).await;
}
