//! The command line: argument types, and the one place where an error becomes a
//! line on stderr and a non-zero exit code.

mod modem;
mod pdu;
mod run;
mod send;
mod simulate;
mod user;

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
    /// Run the gateway: modems, store, HTTP API (under systemd: Type=notify).
    Run(run::RunArgs),
    /// Run the gateway with a simulated modem and simulated customers, on
    /// 127.0.0.1:8080 (API) and 127.0.0.1:8081 (simulator control).
    Demo(run::DemoArgs),
    /// Validate a configuration file without starting anything.
    CheckConfig(run::RunArgs),
    /// Send an SMS through the local API.
    Send(send::SendArgs),
    /// Decode and encode SMS PDUs (3GPP TS 23.040), as modems print and take them.
    #[command(subcommand)]
    Pdu(pdu::PduCommand),
    /// Check modems: `probe PORT` for one, `list` to find and probe them all.
    #[command(subcommand)]
    Modem(modem::ModemCommand),
    /// Run a virtual GSM modem on a pty, with a JSON control API on loopback.
    Simulate(simulate::SimulateArgs),
    /// The people who sign in to the web inbox (through the API; an admin token).
    #[command(subcommand)]
    User(user::UserCommand),
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
        Command::Run(args) => run::run(args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => run::demo(args).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig(args) => run::check_config(args).map(|()| ExitCode::SUCCESS),
        Command::Send(args) => send::run(args),
        Command::Pdu(command) => pdu::run(command).map(|()| ExitCode::SUCCESS),
        Command::Modem(command) => modem::run(command),
        Command::Simulate(args) => simulate::run(args).map(|()| ExitCode::SUCCESS),
        Command::User(command) => user::run(command),
    };
    match result {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("smsgate: {message}");
            ExitCode::from(2)
        }
    }
}
