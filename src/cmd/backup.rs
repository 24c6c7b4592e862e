//! `dstash backup --out FILE` and `dstash restore FILE`: a whole serving cluster into
//! one checksummed file, and back into a cluster of any shape. The file is written
//! beside its name and renamed once complete and synced; a restore checks every block
//! before it writes anything.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dstash_client::backup::{self, BackupSummary};

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The backup file to write (replaced only once the new one is complete).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Keys listed per page.
    #[arg(long, default_value_t = 10_000)]
    page: u32,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The backup file.
    file: PathBuf,
}

fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs.max(1e-9)
}

pub async fn run_backup(a: BackupArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let tmp = a.out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(4 << 20, file);
    let result = c.backup(&mut out, a.page).await;
    let sum = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("renaming to {}", a.out.display()))?;
    report(&a.out, &sum);
    Ok(true)
}

fn report(path: &std::path::Path, s: &BackupSummary) {
    for f in &s.failed {
        eprintln!("dstash: node {f}: what it holds was read from other replicas");
    }
    let secs = (s.finished_ms - s.started_ms) as f64 / 1000.0;
    println!(
        "backed up {} namespaces, {} keys, {} bytes to {} in {secs:.2} s ({:.1} MB/s)",
        s.namespaces,
        s.records,
        s.bytes,
        path.display(),
        mb_per_sec(s.bytes, secs)
    );
    println!(
        "it holds every key as of its start (Unix time {:.3} s) that was not changed after; keys written or deleted after that (until {:.3} s) may or may not be in it",
        s.started_ms as f64 / 1000.0,
        s.finished_ms as f64 / 1000.0
    );
}

pub async fn run_restore(a: RestoreArgs, before: &ConnArgs) -> Result<bool> {
    let open = || {
        std::fs::File::open(&a.file)
            .map(|f| BufReader::with_capacity(4 << 20, f))
            .with_context(|| format!("opening {}", a.file.display()))
    };
    let info = backup::verify(open()?)?;
    eprintln!(
        "verified {}: {} namespaces, {} keys, taken from Unix time {:.3} s",
        a.file.display(),
        info.namespaces.len(),
        info.records,
        info.started_ms as f64 / 1000.0
    );
    let c = a.conn.or(before).connect().await?;
    let s = c.restore(open()?).await?;
    super::linger(&c).await;
    println!(
        "restored {} namespaces, {} keys in {:.2} s ({:.1} MB/s of backup); {} had expired; {} failed",
        s.namespaces,
        s.written,
        s.secs,
        mb_per_sec(info.bytes, s.secs),
        s.expired,
        s.failed
    );
    std::io::stdout().flush()?;
    for f in &s.settings_failed {
        eprintln!("dstash: node {f}: did not take a namespace's settings");
    }
    if s.failed > 0 {
        bail!(
            "{} keys missed their write quorum: the restore is incomplete",
            s.failed
        );
    }
    Ok(s.settings_failed.is_empty())
}
