//! The simulator's task: one per simulated modem. It owns the pty and the
//! firmware ([`Modem`]), paces bytes to the configured baud rate, runs the
//! network's timers (status reports, handset replies) and applies faults.
//!
//! Everything happens on this one task, so the firmware needs no lock; the
//! network model is shared with [`super::SimHandle`] behind a mutex held only
//! for short, non-async sections.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant, MissedTickBehavior};

use super::faults::{garbage, Fault};
use super::modem::{Effect, Modem};
use super::network::PendingReport;
use super::pty::Pty;
use super::{Shared, SimConfig};

/// Orders from a [`super::SimHandle`].
#[derive(Debug)]
pub(crate) enum Control {
    /// The network has something new (an injected SMS): try to deliver it.
    Wake,
    Fault(Fault),
    Shutdown,
}

/// The driver's own timers coming due.
#[derive(Debug)]
enum Timer {
    Report(PendingReport),
    HandsetReply {
        from: String,
        text: String,
    },
    /// End a timed fault, unless a newer one replaced it (the token).
    EndStopAnswering(u64),
    EndStorageFull(u64),
    PlugBackIn,
}

pub(crate) struct Driver {
    config: SimConfig,
    shared: Arc<Shared>,
    modem: Modem,
    /// `None` while unplugged.
    pty: Option<Pty>,
    control: mpsc::UnboundedReceiver<Control>,
    timers_tx: mpsc::UnboundedSender<Timer>,
    timers_rx: mpsc::UnboundedReceiver<Timer>,
    /// Sleeping timers; dropped (aborted) with the driver.
    tasks: JoinSet<()>,
    /// Bytes waiting for the pty.
    out: Vec<u8>,
    /// URCs in `out`: where each ends in it, and its line.
    urc_ends: VecDeque<(usize, String)>,
    /// Throttling: the next byte may not leave before this.
    next_write: Instant,
    stopped: bool,
    fault_token: u64,
    /// Status reports that came while unplugged.
    held_reports: Vec<PendingReport>,
    /// [`Fault::SmsBeforePrompt`] waiting for the next `AT+CMGS`.
    sms_before_prompt: Option<(String, String)>,
}

impl Driver {
    pub(crate) fn new(
        config: SimConfig,
        shared: Arc<Shared>,
        modem: Modem,
        pty: Pty,
        control: mpsc::UnboundedReceiver<Control>,
    ) -> Driver {
        let (timers_tx, timers_rx) = mpsc::unbounded_channel();
        Driver {
            config,
            shared,
            modem,
            pty: Some(pty),
            control,
            timers_tx,
            timers_rx,
            tasks: JoinSet::new(),
            out: Vec::new(),
            urc_ends: VecDeque::new(),
            next_write: Instant::now(),
            stopped: false,
            fault_token: 0,
            held_reports: Vec::new(),
            sms_before_prompt: None,
        }
    }

    /// Bytes per second on the wire: 10 bits per byte (start, 8 data, stop).
    fn byte_rate(&self) -> Option<f64> {
        self.config
            .baud
            .filter(|b| *b > 0)
            .map(|b| f64::from(b) / 10.0)
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        match self.byte_rate() {
            Some(rate) => Duration::from_secs_f64(bytes as f64 / rate),
            None => Duration::ZERO,
        }
    }

    pub(crate) async fn run(mut self) {
        let noise_period = self
            .config
            .noise_interval
            .or(self
                .modem
                .personality()
                .noise_interval_ms()
                .map(Duration::from_millis))
            .filter(|d| !d.is_zero());
        let mut noise = noise_period.map(|p| {
            let mut i = tokio::time::interval_at(Instant::now() + p, p);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        let mut buf = vec![0u8; 4096];
        loop {
            self.pump_inbound();
            if self.pty.is_some() && !self.stopped && self.modem.is_idle() && self.modem.has_urcs()
            {
                self.queue_urcs();
            }
            let chunk = match self.byte_rate() {
                // Small chunks keep the pacing smooth: about 10 ms of wire each.
                Some(rate) => ((rate / 100.0) as usize).clamp(1, 4096),
                None => 4096,
            };
            let writing = !self.out.is_empty();
            let next_write = self.next_write;
            let out = &self.out[..self.out.len().min(chunk)];
            let pty = self.pty.as_ref();
            tokio::select! {
                // Orders first: a fault injected before the client writes applies
                // to what it writes (tests rely on that order).
                biased;
                message = self.control.recv() => match message {
                    None | Some(Control::Shutdown) => break,
                    Some(Control::Wake) => {}
                    Some(Control::Fault(fault)) => self.fault(fault),
                },
                Some(timer) = self.timers_rx.recv() => self.timer(timer),
                read = async { pty?.read(&mut buf).await.ok() }, if pty.is_some() => {
                    match read {
                        Some(n) if n > 0 => self.input_bytes(&buf[..n]).await,
                        // EIO or EOF on a master whose slave we hold should not
                        // happen; back off rather than spin.
                        _ => sleep(Duration::from_millis(20)).await,
                    }
                }
                written = async {
                    tokio::time::sleep_until(next_write).await;
                    pty?.write(out).await.ok()
                }, if writing && pty.is_some() => {
                    if let Some(n) = written {
                        self.shared.wire_tx.fetch_add(n as u64, Ordering::Relaxed);
                        let n = n.min(self.out.len());
                        self.out.drain(..n);
                        self.urcs_left(n);
                        self.next_write = Instant::now() + self.wire_time(n);
                    }
                }
                _ = async {
                    match noise.as_mut() {
                        Some(i) => { i.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => self.modem.push_noise(),
            }
        }
    }

    /// An SMS delivered and announced at once, whatever the modem is doing.
    fn announce_now(&mut self, from: &str, text: &str) {
        let injected = self
            .shared
            .network
            .lock()
            .map(|mut n| n.inject(from, text).is_ok());
        if injected.unwrap_or(false) {
            self.pump_inbound();
            self.queue_urcs();
        }
    }

    /// The modem's pending URCs into `out`, each logged when written.
    fn queue_urcs(&mut self) {
        for urc in self.modem.take_urc_frames() {
            self.out.extend_from_slice(&urc);
            let line = String::from_utf8_lossy(&urc).trim().to_string();
            self.urc_ends.push_back((self.out.len(), line));
        }
    }

    /// `n` bytes of `out` were written: the URCs among them are logged.
    fn urcs_left(&mut self, n: usize) {
        for end in self.urc_ends.iter_mut() {
            end.0 = end.0.saturating_sub(n);
        }
        while self.urc_ends.front().is_some_and(|(end, _)| *end == 0) {
            if let Some((_, line)) = self.urc_ends.pop_front() {
                self.shared.urc_written(line);
            }
        }
    }

    async fn input_bytes(&mut self, bytes: &[u8]) {
        // Counted even while "hung": the bytes crossed the wire all the same.
        self.shared
            .wire_rx
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if self.stopped {
            return;
        }
        // The client's bytes take wire time to arrive too.
        let inbound = self.wire_time(bytes.len());
        if !inbound.is_zero() {
            sleep(inbound).await;
        }
        if bytes.windows(8).any(|w| w == b"AT+CMGS=") {
            if let Some((from, text)) = self.sms_before_prompt.take() {
                self.announce_now(&from, &text);
            }
        }
        let before = self.modem.lines_run();
        let mut out = Vec::new();
        let mut effects = Vec::new();
        self.modem.receive(bytes, &mut out, &mut effects);
        if self.modem.lines_run() != before && !self.config.command_latency.is_zero() {
            sleep(self.config.command_latency).await;
        }
        self.out.extend_from_slice(&out);
        for effect in effects {
            self.effect(effect);
        }
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Submitted {
                pdu,
                message_reference,
            } => {
                let submission = match self.shared.network.lock() {
                    Ok(mut network) => network.submit(&pdu, message_reference),
                    Err(_) => return,
                };
                // The interim report, then the final one a delay later, in
                // that order even on a machine too busy to wake the two
                // timers apart (one task sends both).
                let delay = self.config.status_report_delay;
                let reports: Vec<Timer> = [submission.interim, submission.report]
                    .into_iter()
                    .flatten()
                    .map(Timer::Report)
                    .collect();
                self.after_each(delay, reports);
                if let Some(message) = submission.completed {
                    self.shared.notify_received();
                    let answer = self
                        .shared
                        .network
                        .lock()
                        .ok()
                        .and_then(|mut n| n.handset_answer(&message.to));
                    if let Some((text, delay)) = answer {
                        let reply = Timer::HandsetReply {
                            from: message.to.clone(),
                            text,
                        };
                        self.after(delay, reply);
                    }
                }
            }
            Effect::StorageFreed | Effect::Rebooted => {}
        }
    }

    /// `timers` in order, `delay` apart (the first after `delay`).
    fn after_each(&mut self, delay: Duration, timers: Vec<Timer>) {
        if timers.is_empty() {
            return;
        }
        let tx = self.timers_tx.clone();
        self.tasks.spawn(async move {
            for timer in timers {
                sleep(delay).await;
                if tx.send(timer).is_err() {
                    return;
                }
            }
        });
    }

    fn after(&mut self, delay: Duration, timer: Timer) {
        self.after_each(delay, vec![timer]);
    }

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Report(report) => {
                if self.pty.is_some() {
                    self.modem.status_report(&report.pdu, report.tpdu_length);
                } else {
                    self.held_reports.push(report);
                }
            }
            Timer::HandsetReply { from, text } => {
                if let Ok(mut network) = self.shared.network.lock() {
                    let _ = network.inject(&from, &text);
                }
            }
            Timer::EndStopAnswering(token) if token == self.fault_token => self.stopped = false,
            Timer::EndStorageFull(token) if token == self.fault_token => {
                self.modem.set_storage_full(false)
            }
            Timer::EndStopAnswering(_) | Timer::EndStorageFull(_) => {}
            Timer::PlugBackIn => self.plug_in(),
        }
    }

    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::StopAnswering { duration } => {
                self.stopped = true;
                self.fault_token += 1;
                if let Some(d) = duration {
                    self.after(d, Timer::EndStopAnswering(self.fault_token));
                }
            }
            Fault::Garbage { count } => self.out.extend_from_slice(&garbage(count)),
            Fault::CmsError { code, count } => self
                .modem
                .set_cms_fault((count > 0).then_some((code, count))),
            Fault::StorageFull { duration } => {
                self.modem.set_storage_full(true);
                self.fault_token += 1;
                if let Some(d) = duration {
                    self.after(d, Timer::EndStorageFull(self.fault_token));
                }
            }
            Fault::Unplug { duration } => {
                if self.pty.take().is_some() {
                    self.out.clear();
                    self.urc_ends.clear();
                    self.after(duration, Timer::PlugBackIn);
                }
            }
            Fault::SmsBeforePrompt { from, text } => self.sms_before_prompt = Some((from, text)),
            Fault::Reboot => {
                self.out.clear();
                self.urc_ends.clear();
                self.modem.reboot();
            }
            Fault::Clear => {
                self.fault_token += 1;
                self.stopped = false;
                self.modem.set_cms_fault(None);
                self.modem.set_storage_full(false);
                self.sms_before_prompt = None;
            }
        }
    }

    /// The device is back: a new pty at the same link, the firmware freshly booted.
    fn plug_in(&mut self) {
        match Pty::open(self.config.link.as_deref()) {
            Ok(pty) => {
                self.shared.set_slave_path(pty.slave_path().to_path_buf());
                self.pty = Some(pty);
                self.modem.reboot();
                for report in std::mem::take(&mut self.held_reports) {
                    self.modem.status_report(&report.pdu, report.tpdu_length);
                }
                self.shared.bump_generation();
            }
            // No pty to be had (fd exhaustion): try again shortly.
            Err(_) => self.after(Duration::from_millis(200), Timer::PlugBackIn),
        }
    }

    /// Hand waiting inbound SMS to the modem while it has room (a powered modem
    /// only: unplugged, they wait in the network as they would for real).
    fn pump_inbound(&mut self) {
        if self.pty.is_none() {
            return;
        }
        let Ok(mut network) = self.shared.network.lock() else {
            return;
        };
        while let Some(part) = network.waiting.front() {
            if self.modem.deliver(&part.pdu, part.tpdu_length).is_err() {
                break;
            }
            network.waiting.pop_front();
        }
    }
}
