//! `smsgate simulate`: one virtual modem on a pty, with its control API, until
//! interrupted. Prints one JSON line once both are ready, so a parent process
//! (a test, the demo) knows where to connect.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::UsageError;
use crate::sim::{control, Personality, SimConfig, Simulator};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Symlink to point at the pty (replaced if it is a symlink already).
    #[arg(long)]
    link: PathBuf,
    /// Modem family to imitate: sim800, ec25 or e3372.
    #[arg(long, default_value = "sim800")]
    personality: Personality,
    /// The SIM's own number (AT+CNUM).
    #[arg(long, default_value = "")]
    own_number: String,
    /// Loopback address of the JSON control API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Pace the modem's bytes to this serial speed.
    #[arg(long)]
    baud: Option<u32>,
    /// Lock the SIM with this PIN.
    #[arg(long)]
    pin: Option<String>,
    /// The modem's IMEI (AT+CGSN); default 869012045678901.
    #[arg(long)]
    imei: Option<String>,
    /// Delay of status reports, in milliseconds.
    #[arg(long, default_value_t = 500)]
    status_report_delay_ms: u64,
}

pub fn run(args: SimulateArgs) -> Result<(), UsageError> {
    if !args.control.ip().is_loopback() {
        return Err(UsageError(format!(
            "--control {} is not a loopback address (the control API has no authentication)",
            args.control
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut config = SimConfig::new(args.personality);
        config.link = Some(args.link.clone());
        config.own_number = args.own_number;
        config.baud = args.baud;
        config.pin = args.pin;
        config.imei = args.imei;
        config.status_report_delay = std::time::Duration::from_millis(args.status_report_delay_ms);
        let sim = Simulator::start(config)
            .map_err(|e| UsageError(format!("cannot start the simulator: {e}")))?;
        let bound = control::serve(sim.clone(), args.control).await?;
        let line = json!({ "link": args.link, "control": bound.to_string() });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        drop(stdout);
        wait_for_signal().await;
        sim.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
