//! `dstash`: one binary for the node and the client commands.

mod client_cmd;
mod conn_args;
mod demo;
mod health_cmd;
mod input;
mod logging;
mod node_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dstash",
    version,
    about = "A persistent, sharded key/value store"
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a node until SIGTERM or SIGINT.
    Node(node_cmd::NodeArgs),
    /// Write a key to its replicas.
    Put(client_cmd::PutArgs),
    /// Print a key's value (exit code 1 if it is missing).
    Get(client_cmd::KeyArgs),
    /// Delete a key.
    Del(client_cmd::KeyArgs),
    /// Add events to an expiring count; prints the new count.
    Add(client_cmd::AddArgs),
    /// Print an expiring count.
    Count(client_cmd::CountArgs),
    /// List keys matching a glob, from every node.
    Keys(client_cmd::KeysArgs),
    /// Bulk-load KEY<TAB>VALUE lines (or JSON lines) from a file or stdin.
    Load(client_cmd::LoadArgs),
    /// Look up one key per line; prints KEY<TAB>VALUE in input order.
    Lookup(client_cmd::LookupArgs),
    /// One line per node: id, address, health, keys, disk bytes.
    Status(client_cmd::StatusArgs),
    /// Run a throwaway 3-node cluster end to end.
    Demo(demo::DemoArgs),
    /// Ask a node's grpc.health.v1 whether it serves (exit 0 if so): for health checks.
    Health(health_cmd::HealthArgs),
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
    // Ok(false): the command ran but found nothing (get) or a node down (status).
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(a) => node_cmd::run(a).await.map(|()| true),
            Command::Put(a) => client_cmd::put(a).await.map(|()| true),
            Command::Get(a) => client_cmd::get(a).await,
            Command::Del(a) => client_cmd::del(a).await.map(|()| true),
            Command::Add(a) => client_cmd::add(a).await.map(|()| true),
            Command::Count(a) => client_cmd::count(a).await.map(|()| true),
            Command::Keys(a) => client_cmd::keys(a).await.map(|()| true),
            Command::Load(a) => client_cmd::load(a).await.map(|()| true),
            Command::Lookup(a) => client_cmd::lookup(a).await.map(|()| true),
            Command::Status(a) => client_cmd::status(a).await,
            Command::Demo(a) => demo::run(a).await.map(|()| true),
            Command::Health(a) => health_cmd::run(a).await,
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
