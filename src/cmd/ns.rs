//! `dstash ns set NS [--max-bytes N] [--default-ttl S] [--count-retention S]` and
//! `dstash ns show [NS]`: a namespace's settings, set on every node and shown as each
//! node holds them. Exit code 1 when a node did not answer.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use dstash_client::proto::{NamespaceSettings, NamespaceStatus};

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct NsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: NsCommand,
}

#[derive(Debug, Subcommand)]
enum NsCommand {
    /// Change a namespace's settings (created if needed) on every node.
    Set {
        ns: String,
        /// Make it a cache of at most this many bytes of data per node (suffixes K, M,
        /// G; 0 lifts the bound; at least 16M): past it, its oldest data is dropped
        /// whole, oldest segment first.
        #[arg(long, value_name = "N", value_parser = parse_bytes)]
        max_bytes: Option<u64>,
        /// Seconds to live of puts that give none (0: none).
        #[arg(long, value_name = "S")]
        default_ttl: Option<u32>,
        /// How long expiring counts are kept, in seconds (1 to 604800). Changing it
        /// rewrites each node's count tables; counts older than the new retention go.
        #[arg(long, value_name = "S")]
        count_retention: Option<u32>,
    },
    /// One line per namespace and node: its settings, keys and counts.
    Show { ns: Option<String> },
}

/// Bytes with an optional K, M or G suffix (powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 30),
        t => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (a number with K, M or G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub async fn run(a: NsArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    match a.command {
        NsCommand::Set {
            ns,
            max_bytes,
            default_ttl,
            count_retention,
        } => {
            if max_bytes.is_none() && default_ttl.is_none() && count_retention.is_none() {
                bail!("nothing to set: give --max-bytes, --default-ttl or --count-retention");
            }
            if count_retention == Some(0) {
                bail!("--count-retention must be at least 1 second");
            }
            let req = NamespaceSettings {
                namespace: ns.clone(),
                count_retention_seconds: count_retention.unwrap_or(0),
                max_bytes,
                default_ttl_seconds: default_ttl,
                changed_at: 0,
            };
            let mut all = true;
            for n in c.set_namespace(req).await {
                match n.settings {
                    Ok(s) => println!(
                        "{ns}\t{}\tmax_bytes={}\tdefault_ttl={}\tcount_retention={}",
                        n.id,
                        s.max_bytes.unwrap_or(0),
                        s.default_ttl_seconds.unwrap_or(0),
                        s.count_retention_seconds
                    ),
                    Err(e) => {
                        // A refusal of the setting itself is the same on every node.
                        if e.code() == tonic::Code::InvalidArgument {
                            bail!("{}", e.message());
                        }
                        all = false;
                        println!("{ns}\t{}\tfailed ({:?}: {})", n.id, e.code(), e.message());
                    }
                }
            }
            Ok(all)
        }
        NsCommand::Show { ns } => {
            let mut all = true;
            for n in c.status().await {
                let s = match n.status {
                    Ok(s) => s,
                    Err(e) => {
                        all = false;
                        println!("-\t{}\tdown ({:?}: {})", n.id, e.code(), e.message());
                        continue;
                    }
                };
                for x in s
                    .namespaces
                    .iter()
                    .filter(|x| ns.as_ref().is_none_or(|w| *w == x.name))
                {
                    println!("{}", show_line(&n.id, x));
                }
            }
            Ok(all)
        }
    }
}

fn show_line(node: &str, x: &NamespaceStatus) -> String {
    format!(
        "{}\t{node}\tmax_bytes={}\tdefault_ttl={}\tcount_retention={}\tkeys={}\tdata_bytes={}\tevicted_segments={}\tcount_slots={}\tcount_bytes={}\tcount_damaged={}\tsettings={}",
        x.name,
        x.max_bytes,
        x.default_ttl_seconds,
        x.retention_seconds,
        x.keys,
        x.data_bytes,
        x.evicted_segments,
        x.counter_slots,
        x.counter_bytes,
        x.counter_quarantined,
        x.settings
    )
}
