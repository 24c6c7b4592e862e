//! `dstash repair`: one anti-entropy pass over the cluster. Exit code 0 when every
//! node compared every partition with its co-replicas and moved every difference.

use anyhow::Result;
use clap::Args;
use dstash_client::{RepairProgress, RepairReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    conn: ConnArgs,
}

/// A bar on a terminal (indicatif draws nothing otherwise).
struct Bar(ProgressBar);

impl RepairProgress for Bar {
    fn update(&self, report: &RepairReport) {
        let r = &report.totals;
        self.0.set_length(r.partitions_total);
        self.0.set_position(r.partitions_done);
        self.0.set_message(format!(
            "{} keys compared, {} moved",
            r.keys_compared,
            r.pushed + r.pulled
        ));
    }
}

pub async fn run(a: RepairArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} partitions {msg}") {
        bar.set_style(style);
    }
    let report = c.repair_all(&Bar(bar.clone())).await;
    bar.finish_and_clear();
    let r = &report.totals;
    println!(
        "nodes={} partitions compared={} differing={} keys compared={} pushed={} pulled={} bytes sent={} received={} failed={}",
        report.nodes,
        r.partitions_done,
        r.partitions_differing,
        r.keys_compared,
        r.pushed,
        r.pulled,
        r.bytes_sent,
        r.bytes_received,
        r.failed
    );
    for e in &report.errors {
        eprintln!("dstash: repair: {e}");
    }
    if r.failed > 0 {
        eprintln!(
            "dstash: {} repair sessions failed; run dstash repair again",
            r.failed
        );
    }
    Ok(r.failed == 0)
}
