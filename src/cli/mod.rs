//! The command line: argument types, and the one place where an error becomes a
//! line on stderr and a non-zero exit code.

mod modem;
mod pdu;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// smsgate: on-premise two-way SMS gateway.
#[derive(Debug, Parser)]
#[command(name = "smsgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode and encode SMS PDUs (3GPP TS 23.040), as modems print and take them.
    #[command(subcommand)]
    Pdu(pdu::PduCommand),
    /// Check modems: `probe PORT` for one, `list` to find and probe them all.
    #[command(subcommand)]
    Modem(modem::ModemCommand),
    /// Run a virtual GSM modem on a pty, with a JSON control API on loopback.
    Simulate(simulate::SimulateArgs),
}

/// A failure the user can act on: printed as one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::error::Error> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Pdu(command) => pdu::run(command).map(|()| ExitCode::SUCCESS),
        Command::Modem(command) => modem::run(command),
        Command::Simulate(args) => simulate::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("smsgate: {message}");
            ExitCode::from(2)
        }
    }
}
