//! `dstash`: one binary for the node and the client commands.

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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => node_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dstash: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
