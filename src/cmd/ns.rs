//! `dstash ns set NS --count-retention S` and `dstash ns show [NS]`: a namespace's
//! settings, set on every node and shown as each node holds them. Exit code 1 when a
//! node did not answer.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

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
        /// How long expiring counts are kept, in seconds (1 to 604800). Changing it
        /// rewrites each node's count tables; counts older than the new retention go.
        #[arg(long, value_name = "S")]
        count_retention: Option<u32>,
    },
    /// One line per namespace and node: retention, keys, count slots.
    Show { ns: Option<String> },
}

pub async fn run(a: NsArgs, before: &ConnArgs) -> Result<bool> {
    let c = a.conn.or(before).connect().await?;
    match a.command {
        NsCommand::Set {
            ns,
            count_retention,
        } => {
            let Some(secs) = count_retention else {
                bail!("nothing to set: give --count-retention S");
            };
            if secs == 0 {
                bail!("--count-retention must be at least 1 second");
            }
            let mut all = true;
            for n in c.set_namespace(&ns, secs).await {
                match n.settings {
                    Ok(s) => println!(
                        "{ns}\t{}\tcount_retention={}",
                        n.id, s.count_retention_seconds
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
                    println!(
                        "{}\t{}\tcount_retention={}\tkeys={}\tcount_slots={}\tcount_bytes={}\tcount_damaged={}",
                        x.name, n.id, x.retention_seconds, x.keys, x.counter_slots, x.counter_bytes,
                        x.counter_quarantined
                    );
                }
            }
            Ok(all)
        }
    }
}
