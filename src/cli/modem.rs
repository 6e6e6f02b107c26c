//! `smsgate modem probe|list`: the field technician's commands.

use std::process::ExitCode;

use clap::Subcommand;

use super::UsageError;
use crate::modem::probe::{
    candidate_ports_in, no_ports_hints, probe, probe_reporting, ProbeReport,
};

#[derive(Debug, Subcommand)]
pub enum ModemCommand {
    /// Open a port and report identity, SIM, network, signal, SMSC, storage and
    /// whether PDU mode and new-message indications work, with a diagnosis.
    /// Exit status 0 when all is well, 1 when something is wrong.
    Probe {
        /// The AT port, e.g. /dev/serial/by-id/usb-SimTech..-if02-port0 or /dev/ttyUSB2.
        port: String,
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// SIM PIN to enter if the SIM asks for one.
        #[arg(long)]
        pin: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find serial ports (/dev/serial/by-id, /dev/ttyUSB*, /dev/ttyACM*) and probe each.
    List {
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        #[arg(long)]
        json: bool,
        /// Where device nodes are (tests point it at a directory of their own).
        #[arg(long, default_value = "/dev", hide = true)]
        dev: std::path::PathBuf,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))
}

fn print(reports: &[ProbeReport], json: bool, single: bool) -> Result<(), UsageError> {
    if json {
        let text = if single {
            serde_json::to_string(&reports[0])
        } else {
            serde_json::to_string(reports)
        };
        println!("{}", text.map_err(|e| UsageError(e.to_string()))?);
    } else {
        for report in reports {
            println!("{}", report.to_text());
        }
    }
    Ok(())
}

pub fn run(command: ModemCommand) -> Result<ExitCode, UsageError> {
    let rt = runtime()?;
    match command {
        ModemCommand::Probe {
            port,
            baud,
            pin,
            json,
        } => {
            // What it waits for goes to stderr as it happens (stdout keeps
            // the report, JSON or text).
            let mut progress = |line: &str| eprintln!("{line}");
            let report = rt.block_on(probe_reporting(&port, baud, pin.as_deref(), &mut progress));
            let ok = report.diagnosis.is_empty();
            print(std::slice::from_ref(&report), json, true)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ModemCommand::List { baud, json, dev } => {
            let ports = candidate_ports_in(&dev);
            if ports.is_empty() && !json {
                println!("{}", no_ports_hints(&dev));
                return Ok(ExitCode::SUCCESS);
            }
            let reports: Vec<ProbeReport> = ports
                .iter()
                .map(|p| rt.block_on(probe(p, baud, None)))
                .collect();
            print(&reports, json, false)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
