//! `dstash layout`: show the cluster's layout and its transition, move the cluster to
//! a new member set, or abort the move (`docs/layout.md`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dstash_client::layout::{LayoutChange, NodeLayout};
use dstash_client::{Client, Layout, LayoutMember, Stage};
use indicatif::{ProgressBar, ProgressStyle};

use crate::conn::ConnArgs;

#[derive(Debug, Args)]
pub struct LayoutArgs {
    #[command(subcommand)]
    command: LayoutCommand,
}

#[derive(Debug, Subcommand)]
enum LayoutCommand {
    /// Print the epoch, the members, and each node's progress in a transition.
    Show {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Move the cluster to a member set; members left out hand their data off before
    /// they are released. The connection flags go before `layout`.
    Apply(ApplyArgs),
    /// Return to the member set the running transition started from.
    Abort {
        /// Joining members that died and will not come back: ID, comma-separated.
        #[arg(long, value_delimiter = ',')]
        gone: Vec<String>,
        /// Return, exit 0, only once the cluster is stable again.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Declare leaving members of the running transition that died in it gone: it
    /// stops waiting for them, and their copies come from the other replicas.
    Gone {
        /// The members: ID, comma-separated.
        #[arg(value_delimiter = ',', required = true)]
        ids: Vec<String>,
        /// Return, exit 0, only once the transition is complete.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The new member set: ID=HOST:PORT, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Failure domains: ID=ZONE, comma-separated; a key's copies go to distinct zones.
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Shares of the keys: ID=WEIGHT, comma-separated [default: 1 each].
    #[arg(long, value_delimiter = ',')]
    weights: Vec<String>,
    /// Members left out that are down for good (dead, replaced or removed): ID,
    /// comma-separated. The move does not wait for them; their copies come from the
    /// other replicas. Name only a node that will not come back.
    #[arg(long, value_delimiter = ',')]
    gone: Vec<String>,
    /// Return, exit 0, only once the transition is complete (a progress bar on a
    /// terminal).
    #[arg(long)]
    wait: bool,
}

pub async fn run(a: LayoutArgs, before: &ConnArgs) -> Result<bool> {
    match a.command {
        LayoutCommand::Show { conn } => show(&conn.or(before).connect().await?).await,
        LayoutCommand::Apply(a) => apply(a, before).await,
        LayoutCommand::Abort { gone, wait, conn } => {
            let c = conn.or(before).connect().await?;
            let l = c.change_layout(LayoutChange::Abort { gone }).await?;
            println!("aborting: epoch {}, back to {}", l.epoch, ids(&l.members));
            match wait {
                true => wait_for(&c, l.epoch).await,
                false => Ok(true),
            }
        }
        LayoutCommand::Gone {
            ids: gone,
            wait,
            conn,
        } => {
            let c = conn.or(before).connect().await?;
            let l = c.change_layout(LayoutChange::Gone(gone)).await?;
            println!("epoch {}: {} gone", l.epoch, l.gone.join(","));
            match wait {
                true => wait_for(&c, l.epoch).await,
                false => Ok(true),
            }
        }
    }
}

fn pairs(flag: &str, given: &[String]) -> Result<HashMap<String, String>> {
    given
        .iter()
        .map(|p| match p.split_once('=') {
            Some((id, v)) if !id.is_empty() && !v.is_empty() => Ok((id.to_string(), v.to_string())),
            _ => bail!("{flag}: {p:?} is not ID=VALUE"),
        })
        .collect()
}

fn members(a: &ApplyArgs) -> Result<Vec<LayoutMember>> {
    let zones = pairs("--zones", &a.zones)?;
    let weights = pairs("--weights", &a.weights)?;
    let members: Vec<LayoutMember> = a
        .nodes
        .iter()
        .map(|n| {
            let Some((id, addr)) = n
                .split_once('=')
                .filter(|(i, a)| !i.is_empty() && a.contains(':'))
            else {
                bail!("--nodes: {n:?} is not ID=HOST:PORT");
            };
            let weight = match weights.get(id) {
                Some(w) => w
                    .parse()
                    .with_context(|| format!("--weights: {w:?} is not a number"))?,
                None => 1.0,
            };
            Ok(LayoutMember {
                id: id.to_string(),
                addr: addr.to_string(),
                weight,
                zone: zones.get(id).cloned().unwrap_or_default(),
            })
        })
        .collect::<Result<_>>()?;
    for id in zones.keys().chain(weights.keys()) {
        if !members.iter().any(|m| &m.id == id) {
            bail!("{id} has a zone or weight but is not in --nodes");
        }
    }
    Ok(members)
}

async fn apply(a: ApplyArgs, before: &ConnArgs) -> Result<bool> {
    let members = members(&a)?;
    let given = before.nodes.is_some() || before.consul.is_some();
    let mut conn = before.clone();
    if !given {
        conn.nodes = Some(a.nodes.clone());
    }
    let c = conn.connect().await?;
    if c.layout().is_none() && !given {
        bail!(
            "the cluster has no layout yet: name the nodes it runs on now, as \
             dstash --nodes ID=HOST:PORT,... layout apply --nodes ..."
        );
    }
    if c.layout().is_none() {
        check_first(&c, &a, &conn).await?;
    }
    let change = LayoutChange::Apply {
        members,
        gone: a.gone.clone(),
    };
    let l = c.change_layout(change).await?;
    println!(
        "applied: epoch {}, {} -> {}{}",
        l.epoch,
        ids(&l.previous),
        ids(&l.members),
        match l.gone.is_empty() {
            true => String::new(),
            false => format!(" ({} gone)", l.gone.join(",")),
        }
    );
    match a.wait {
        true => wait_for(&c, l.epoch).await,
        false => Ok(true),
    }
}

/// Before a cluster's first layout: every node of the new set that already holds keys
/// must be among the nodes it runs on now (`--nodes` before `layout`). Otherwise the
/// first layout would say the cluster ran without it, nothing would stream its keys,
/// and cleanup would forget those it then does not own.
async fn check_first(current: &Client, a: &ApplyArgs, conn: &ConnArgs) -> Result<()> {
    let known: Vec<String> = current.view().nodes.iter().map(|n| n.id.clone()).collect();
    let mut target = conn.clone();
    target.nodes = Some(a.nodes.clone());
    target.consul = None;
    let new = target.connect().await?;
    for n in new.status().await {
        let keys = n.status.as_ref().map_or(0, |s| s.keys);
        if keys > 0 && !known.contains(&n.id) {
            bail!(
                "{} ({}) holds {keys} keys but is not among the nodes the cluster runs on \
                 now: name every node that holds data with --nodes before `layout`",
                n.id,
                n.addr
            );
        }
    }
    Ok(())
}

fn ids(m: &[LayoutMember]) -> String {
    m.iter()
        .map(|m| m.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Handoff totals over every node that reports the transition's streaming epoch.
fn handoff(states: &[NodeLayout], since: u64) -> (u64, u64, u64, u64, f64) {
    let mut t = (0, 0, 0, 0, 0.0f64);
    for s in states.iter().filter_map(|n| n.state.as_ref().ok()) {
        if let Some(h) = s.handoff.as_ref().filter(|_| s.handoff_epoch > since) {
            t.0 += h.partitions_done;
            t.1 += h.partitions_total;
            t.2 += h.pushed;
            t.3 += h.bytes_sent;
            t.4 = t.4.max(s.handoff_seconds);
        }
    }
    t
}

/// Polls until the layout is stable after `epoch`, drawing progress on a terminal.
async fn wait_for(c: &Client, epoch: u64) -> Result<bool> {
    let bar = ProgressBar::new(0);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} partitions {msg}")
    {
        bar.set_style(style);
    }
    let started = Instant::now();
    loop {
        if c.layout_settled_after(epoch).await? {
            bar.finish_and_clear();
            let l = c.layout().context("the layout vanished")?;
            println!(
                "stable: epoch {}, members {} ({:.1?})",
                l.epoch,
                ids(&l.members),
                started.elapsed()
            );
            return Ok(true);
        }
        let states = c.layout_states().await;
        let (done, total, keys, _, _) = handoff(&states, epoch);
        let stage = c.layout().map_or("none", |l| l.stage.as_str());
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!("{stage}, {keys} keys sent"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn show(c: &Client) -> Result<bool> {
    let states = c.layout_states().await;
    let Some(l) = c.layout() else {
        println!("no layout: keys are placed over the nodes each client is given");
        return Ok(true);
    };
    print_layout(&l);
    let since = l.epoch.saturating_sub(4);
    if l.stage != Stage::Stable {
        let (done, total, keys, bytes, secs) = handoff(&states, since);
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let left = match (total > done, done) {
            (true, d) if d > 0 => format!(
                ", about {:.0}s left",
                secs * (total - done) as f64 / d as f64
            ),
            _ => String::new(),
        };
        println!(
            "handoff: {done}/{total} partitions, {keys} keys, {bytes} bytes, {:.1} MB/s{left}",
            rate / 1e6
        );
    }
    println!(
        "{:<16} {:<22} {:>6} {:>5}  handoff",
        "node", "address", "epoch", "done"
    );
    let mut ok = true;
    for n in &states {
        match &n.state {
            Ok(s) => {
                let h = s.handoff.clone().unwrap_or_default();
                let note = match h.error.is_empty() {
                    true => String::new(),
                    false => format!(" (last error: {})", h.error),
                };
                println!(
                    "{:<16} {:<22} {:>6} {:>5}  {}/{} partitions, {} keys{note}",
                    n.id,
                    n.addr,
                    s.epoch,
                    if s.stage_done { "yes" } else { "no" },
                    h.partitions_done,
                    h.partitions_total,
                    h.pushed
                );
            }
            Err(_) if l.is_gone(&n.id) => {
                println!("{:<16} {:<22} gone (declared)", n.id, n.addr);
            }
            Err(e) => {
                ok = false;
                println!("{:<16} {:<22} unreachable: {}", n.id, n.addr, e.message());
            }
        }
    }
    Ok(ok)
}

fn print_layout(l: &Layout) {
    println!(
        "epoch {}  stage {}  copies {}  driver {}",
        l.epoch,
        l.stage.as_str(),
        l.replicas,
        l.driver()
    );
    let list = |name: &str, ms: &[LayoutMember]| {
        for m in ms {
            let zone = if m.zone.is_empty() { "-" } else { &m.zone };
            println!(
                "{name:<9} {:<16} {:<22} weight {} zone {zone}",
                m.id, m.addr, m.weight
            );
        }
    };
    list("member", &l.members);
    let leaving = l
        .previous
        .iter()
        .filter(|p| !l.members.iter().any(|m| m.id == p.id));
    let (gone, leaving): (Vec<LayoutMember>, Vec<LayoutMember>) =
        leaving.cloned().partition(|m| l.is_gone(&m.id));
    list("leaving", &leaving);
    list("gone", &gone);
}
