//! `dstash`: one binary for the node, the client commands and the operator commands.
//!
//! Each command is one file under `cmd/`; the connection flags every client command
//! shares are in `conn.rs`.

mod cmd;
mod conn;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::*;
use conn::ConnArgs;

#[derive(Debug, Parser)]
#[command(
    name = "dstash",
    version,
    about = "A persistent, sharded key/value store",
    after_help = "Client commands talk to 127.0.0.1:5000 unless --nodes, --consul or \
                  DSTASH_NODES say otherwise; their connection flags go before or after \
                  the subcommand."
)]
struct Cli {
    /// Log format, on stderr.
    #[arg(
        long,
        env = "DSTASH_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: logging::LogFormat,
    /// Connection flags given before the subcommand (client commands only).
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a node until SIGTERM or SIGINT.
    Node(Box<node::NodeArgs>),
    /// Write a key to its replicas.
    Put(put::PutArgs),
    /// Print a key's value (exit code 1 if it is missing).
    Get(get::GetArgs),
    /// Delete keys: given, or one per line from a file or stdin.
    Del(del::DelArgs),
    /// Print every live key with its value (JSON lines or KEY<TAB>VALUE), each once.
    Dump(dump::DumpArgs),
    /// Add events to an expiring count; prints the new count.
    Add(add::AddArgs),
    /// Print an expiring count.
    Count(count::CountArgs),
    /// List keys matching a glob, from every node.
    Keys(keys::KeysArgs),
    /// Bulk-load KEY<TAB>VALUE lines (or JSON lines) from a file or stdin.
    Load(load::LoadArgs),
    /// Look up one key per line; prints KEY<TAB>VALUE (or JSON lines) in input order.
    Lookup(lookup::LookupArgs),
    /// Show or change a namespace's settings on every node.
    Ns(ns::NsArgs),
    /// One line per node: id, address, health, keys, disk bytes.
    Status(status::StatusArgs),
    /// Write every namespace of the serving cluster to one checksummed file.
    Backup(backup::BackupArgs),
    /// Load a backup file into the cluster (of any shape), after checking all of it.
    Restore(backup::RestoreArgs),
    /// Bring every replica of every key to its newest version: one full pass.
    Repair(repair::RepairArgs),
    /// Show or change the cluster's member set: staged, with handoff.
    Layout(layout::LayoutArgs),
    /// Run a throwaway 3-node cluster end to end.
    Demo(demo::DemoArgs),
    /// Ask a node's grpc.health.v1 whether it serves (exit 0 if so): for health checks.
    Health(health::HealthArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("dstash: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dstash: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let before = &cli.conn;
    // Ok(false): the command ran but found nothing (get) or a node down (status).
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(a) => node::run(*a).await.map(|()| true),
            Command::Put(a) => put::run(a, before).await,
            Command::Get(a) => get::run(a, before).await,
            Command::Del(a) => del::run(a, before).await,
            Command::Dump(a) => dump::run(a, before).await,
            Command::Add(a) => add::run(a, before).await,
            Command::Count(a) => count::run(a, before).await,
            Command::Keys(a) => keys::run(a, before).await,
            Command::Load(a) => load::run(a, before).await,
            Command::Lookup(a) => lookup::run(a, before).await,
            Command::Status(a) => status::run(a, before).await,
            Command::Ns(a) => ns::run(a, before).await,
            Command::Repair(a) => repair::run(a, before).await,
            Command::Backup(a) => backup::run_backup(a, before).await,
            Command::Restore(a) => backup::run_restore(a, before).await,
            Command::Layout(a) => layout::run(a, before).await,
            Command::Demo(a) => demo::run(a).await.map(|()| true),
            Command::Health(a) => health::run(a).await,
            Command::Completions(a) => completions::run(a),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dstash: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
