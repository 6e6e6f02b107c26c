//! The command line.

use std::process::ExitCode;

/// smsgate: on-premise two-way SMS gateway.
#[derive(Debug, clap::Parser)]
#[command(name = "smsgate", version, about)]
pub struct Cli {}

/// Run the parsed command line; the only place where errors become an exit code.
pub fn run(_cli: Cli) -> ExitCode {
    ExitCode::SUCCESS
}
