//! Bulk loads: lines read on a blocking thread, parsed, cut into client batches of
//! `chunk` keys, and streamed with two batches in flight, so a file is never held in
//! memory. Line formats are in [`line`]. The same pipeline deletes the keys it reads.

pub mod line;

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::batch::{LoadReport, PutItem};
use crate::client::Client;
use crate::error::{Error, Result};
pub use line::{encode_jsonl, encode_jsonl_ttl, LineFormat};

/// What a malformed line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Report the line and go on.
    Skip,
    /// Report the line and stop (what was sent before it stays written).
    Fail,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub format: LineFormat,
    pub on_error: OnError,
    /// For lines that give none; 0 is forever.
    pub ttl: u32,
    /// Keys per client batch.
    pub chunk: usize,
    /// Delete the keys read (their values are ignored) instead of writing them.
    pub delete: bool,
}

/// Told what a load is doing: a progress bar, a log.
pub trait LoadProgress: Send + Sync + 'static {
    /// `bytes` more of the input were read.
    fn read(&self, _bytes: u64) {}
    /// A line was skipped or a key was not written.
    fn warn(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl LoadProgress for Silent {}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    /// Keys written (deleted, for deletes) on their write quorum.
    pub written: u64,
    /// Deletes only: keys some replica held a live value for.
    pub existed: u64,
    /// Keys that missed their write quorum.
    pub failed: u64,
    pub malformed: u64,
    pub secs: f64,
}

/// Client batches in flight: one streaming while the next is read.
const IN_FLIGHT: usize = 2;
/// Keys not written that are reported one by one; the rest are only counted.
const SHOWN_FAILURES: usize = 10;

impl Client {
    /// Loads every line of `lines` into `ns`.
    pub async fn load_lines(
        &self,
        ns: &str,
        lines: Box<dyn BufRead + Send>,
        opts: LoadOptions,
        progress: Arc<dyn LoadProgress>,
    ) -> Result<LoadSummary> {
        let started = Instant::now();
        let delete = opts.delete;
        let (tx, mut rx) = mpsc::channel::<Result<Vec<PutItem>>>(IN_FLIGHT);
        let reader = {
            let progress = progress.clone();
            tokio::task::spawn_blocking(move || read_lines(lines, &opts, &tx, progress.as_ref()))
        };
        let mut sum = LoadSummary::default();
        let mut in_flight = JoinSet::new();
        let mut fatal = None;
        while let Some(next) = rx.recv().await {
            let items = match next {
                Ok(items) => items,
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            };
            let (c, ns) = (self.clone(), ns.to_string());
            in_flight.spawn(async move {
                let r = match delete {
                    false => c.put_many(&ns, &items).await,
                    true => {
                        let keys: Vec<_> = items.iter().map(|i| i.key.clone()).collect();
                        c.delete_many(&ns, &keys).await
                    }
                };
                (items, r)
            });
            while in_flight.len() >= IN_FLIGHT {
                settle(in_flight.join_next().await, &mut sum, progress.as_ref())?;
            }
        }
        while let Some(done) = in_flight.join_next().await {
            settle(Some(done), &mut sum, progress.as_ref())?;
        }
        sum.malformed = reader.await.unwrap_or(0);
        if let Some(e) = fatal {
            return Err(e);
        }
        sum.secs = started.elapsed().as_secs_f64();
        Ok(sum)
    }
}

type Done = (Vec<PutItem>, Result<LoadReport>);

/// Adds one finished batch to the summary, reporting its first failed keys.
fn settle(
    joined: Option<std::result::Result<Done, tokio::task::JoinError>>,
    sum: &mut LoadSummary,
    progress: &dyn LoadProgress,
) -> Result<()> {
    let Some(joined) = joined else {
        return Ok(());
    };
    let (items, report) = joined.map_err(|e| Error::Input(format!("a load batch failed: {e}")))?;
    let report = report?;
    let shown = (sum.failed as usize).min(SHOWN_FAILURES);
    for (p, e) in report.failed.iter().take(SHOWN_FAILURES - shown) {
        let key = String::from_utf8_lossy(&items[*p].key);
        progress.warn(&format!("key {key:?} not written: {e}"));
    }
    sum.written += report.written;
    sum.existed += report.existed;
    sum.failed += report.failed.len() as u64;
    Ok(())
}

/// Reads, parses and sends batches until the input ends, the receiver goes away or a
/// fatal error (sent on). Returns how many lines were malformed.
fn read_lines(
    mut source: Box<dyn BufRead + Send>,
    opts: &LoadOptions,
    tx: &mpsc::Sender<Result<Vec<PutItem>>>,
    progress: &dyn LoadProgress,
) -> u64 {
    let chunk = opts.chunk.max(1);
    let mut malformed = 0;
    let mut items = Vec::with_capacity(chunk);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        match source.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => progress.read(n as u64),
            Err(e) => {
                let _ = tx.blocking_send(Err(Error::Input(format!(
                    "reading line {}: {e}",
                    number + 1
                ))));
                return malformed;
            }
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match line::parse(opts.format, text) {
            Ok(Some(r)) => items.push(PutItem {
                key: r.key.into(),
                value: r.value.into(),
                ttl_seconds: r.ttl.unwrap_or(opts.ttl),
            }),
            Ok(None) => {}
            Err(why) => {
                malformed += 1;
                progress.warn(&format!("line {number}: {why}"));
                if opts.on_error == OnError::Fail {
                    let e = format!("line {number} is malformed; the lines before it were sent");
                    let _ = tx.blocking_send(Err(Error::Input(e)));
                    return malformed;
                }
            }
        }
        if items.len() >= chunk {
            if tx.blocking_send(Ok(std::mem::take(&mut items))).is_err() {
                return malformed;
            }
            items.reserve(chunk);
        }
    }
    if !items.is_empty() {
        let _ = tx.blocking_send(Ok(items));
    }
    malformed
}
