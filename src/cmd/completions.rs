//! `dstash completions bash|zsh|fish`: prints a shell completion script.

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub fn run(a: CompletionsArgs) -> Result<bool> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "dstash", &mut std::io::stdout());
    Ok(true)
}
