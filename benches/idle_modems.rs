//! Idle cost of many modems: 32 simulated SIM800 modems on one daemon. The
//! simulators run in a child process (this bench re-executed), so only the
//! daemon's CPU is counted; the daemon runs in this process with the default
//! engine settings (health check every 30 s, sweep every 5 min). Once all 32
//! are ready and settled, this process's CPU time (user + system, from
//! /proc/self/stat) is read over 60 s of idle, and its RSS.
//!
//! Run: `cargo bench --bench idle_modems` (`-- --quick`: 10 s of idle).
//! Target (ARCHITECTURE.md, "Targets"): idle CPU under 1% of a core.

mod harness;

use std::time::{Duration, Instant};

use harness::{DaemonThread, SimChild};

const MODEMS: usize = 32;

fn main() {
    harness::run_sim_child_if_asked();
    let quick = harness::quick();
    let window = Duration::from_secs(if quick { 10 } else { 60 });
    let dir = harness::scratch("idle_modems");
    let sims = SimChild::spawn(MODEMS, &dir);
    let config = harness::config(&dir.join("db"), 16, &sims.modems());
    let booted = Instant::now();
    let daemon = DaemonThread::start(config);
    daemon.wait_ready(Duration::from_secs(60));
    let ready_after = booted.elapsed();
    // Let the start-up work (sweeps, modem.status events) settle.
    std::thread::sleep(Duration::from_secs(2));

    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let cpu0 = harness::cpu_time("self");
    let sim_cpu0 = harness::cpu_time(&sims.pid());
    let t0 = Instant::now();
    std::thread::sleep(window);
    let cpu = harness::cpu_time("self") - cpu0;
    let sim_cpu = harness::cpu_time(&sims.pid()) - sim_cpu0;
    let wall = t0.elapsed();
    println!("load after:  {}", harness::load());
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    let ready = daemon
        .started
        .dispatcher
        .statuses()
        .iter()
        .filter(|s| s.state == smsgate::modem::ModemState::Ready)
        .count();
    println!(
        "{MODEMS} simulated modems, {ready} ready after {:.2} s; idle for {:.1} s",
        ready_after.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "daemon CPU {:.3} s = {:.3}% of a core (simulator child: {:.3} s, not counted)",
        cpu.as_secs_f64(),
        share * 100.0,
        sim_cpu.as_secs_f64()
    );
    println!(
        "daemon RSS {:.1} MiB (peak {:.1} MiB)",
        harness::rss_kib("self") as f64 / 1024.0,
        harness::peak_rss_kib("self") as f64 / 1024.0
    );
    println!(
        "target (idle CPU < 1% of a core): {}",
        harness::met(share < 0.01 && ready == MODEMS)
    );
    daemon.stop();
    drop(sims);
    let _ = std::fs::remove_dir_all(&dir);
}
