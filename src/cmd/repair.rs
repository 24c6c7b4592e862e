//! `dstash repair`: one full repair pass over the cluster. Exit code 0 when every
//! replica of every key listed holds the newest version; 1 when some repair failed.

use anyhow::Result;
use clap::Args;
use dstash_client::RepairProgress;
use indicatif::{ProgressBar, ProgressStyle};

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Keys read per batch.
    #[arg(long, default_value_t = 5_000)]
    chunk: usize,
}

/// A bar on a terminal (indicatif draws nothing otherwise).
struct Bar(ProgressBar);

impl RepairProgress for Bar {
    fn keys(&self, ns: &str, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
        self.0.set_message(ns.to_string());
    }
}

pub async fn run(a: RepairArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} keys") {
        bar.set_style(style);
    }
    let report = c.repair_all(a.chunk, &Bar(bar.clone())).await?;
    bar.finish_and_clear();
    println!(
        "namespaces={} keys compared={} replica writes pushed={} failed={}",
        report.namespaces, report.keys, report.pushed, report.failed
    );
    if report.failed > 0 {
        eprintln!(
            "dstash: {} repairs failed; run dstash repair again",
            report.failed
        );
    }
    Ok(report.failed == 0)
}
