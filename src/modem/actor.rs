//! One actor per modem: open the port, initialise, sweep stored messages, then
//! serve URCs (inbound SMS, status reports, registration), send what the
//! dispatcher hands over, check health every 30 s, and recover: a timeout gets
//! ESC and a resync (in the transport), repeated timeouts a reopen of the port,
//! a vanished port a reopen with backoff, repeated failures `AT+CFUN=1,1`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{interval, Instant, MissedTickBehavior};

use super::dispatch::{Budget, Dispatcher};
use super::identity::read_identity;
use super::pool::{local_day, next_day_start, DailyCounts, FailureRun};
use super::probe::{
    probe_client, ProbeRefused, ProbeReport, ProbeRequest, ProbeResult, ProbeResults,
    CNMI_DAEMON_ORDER,
};
use super::quirks;
use super::status::{ModemState, ModemStatus};
use super::{EngineSettings, Gate, ModemSettings};
use crate::at::command::{
    Cfun, Cmee, Cmgd, Cmgf, Cmgl, Cmgr, Cmgs, Cnma, CopsQuery, CpinEnter, CpinQuery, Csms, Csq,
    Echo, RegistrationQuery,
};
use crate::at::parse::{Domain, MessageStatus as ListStatus, PinState, Registration};
use crate::at::{open_serial, spawn, AtClient, AtError, AtLink, FinalResult, TransportConfig, Urc};
use crate::fleet::{Claim, ClaimFor};
use crate::liveness::Heart;
use crate::pdu::{self, Body, StatusClass, Tpdu};
use crate::store::{
    ErrorInfo, FleetLeg, InboundPart, Message, MessageStatus, PartStatus, ReadFrom, ReceiveOutcome,
    Store,
};

/// How a session with the port ended.
#[derive(Debug)]
enum End {
    Shutdown,
    /// The port vanished: reopen with backoff.
    DeviceGone(String),
    /// Commands keep timing out: reopen.
    Unresponsive(String),
    /// The modem restarted (a boot URC, the SIM asking for its PIN again, our
    /// own `AT+CFUN=1,1`): its settings are gone, so initialise it again on
    /// the same port (which stays open: a USB modem that re-enumerates is
    /// `DeviceGone` instead).
    Reinitialize(String),
    /// Cannot go on without an operator (wrong PIN, no PDU mode): stay offline.
    Fatal(String),
}

/// Consecutive command timeouts before the port is reopened.
const TIMEOUTS_BEFORE_REOPEN: u32 = 3;
/// While a modem is `degraded` after a timeout, how often a bare `AT` asks
/// whether it answers again (sooner than the next health check).
const RECOVERY_PROBE: Duration = Duration::from_secs(2);
/// How long a session's end waits for its transport to close the port before
/// the port is opened again (the old handle holds the exclusive lock).
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Grace for an `AT+CMGS` in flight when shutdown is asked (issue: 8 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// How long the ESC sent at session start waits for the `OK` of a modem that
/// was left in PDU entry (one in command mode answers nothing).
const ESC_PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a part's "sent" mark may wait for the next part's "sending" mark
/// to carry it to disk before it is flushed on its own.
const SENT_FLUSH_DELAY: Duration = Duration::from_millis(5);

/// Seconds a message of the fleet waits when the fence cannot be asked.
const FLEET_RETRY_SECS: i64 = 5;

/// How many times one part's AT+CMGS gives way to an SMS announced before
/// its prompt; after that it goes whatever comes in.
const GIVE_WAY_MAX: u32 = 3;

/// Start the actor for one modem.
pub fn spawn_modem(
    settings: ModemSettings,
    engine: Arc<EngineSettings>,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    stop: watch::Receiver<bool>,
) -> (JoinHandle<()>, watch::Receiver<ModemStatus>) {
    let (status, status_rx) = watch::channel(ModemStatus::new(&settings.id, &settings.port));
    dispatcher.register(&settings.id, status_rx.clone());
    // A probe or two may wait while one runs; more are refused (busy).
    let (probe_tx, probes) = mpsc::channel(2);
    dispatcher.register_probes(&settings.id, probe_tx);
    dispatcher.set_defaults(&settings.id, super::overrides::Defaults::from(&settings));
    let heart = engine
        .liveness
        .as_ref()
        .map(|l| l.heart(&format!("modem {}", settings.id)));
    // Counted for every modem (the modems page's "today"); the
    // `daily_limit` reads the sent count.
    let daily = match DailyCounts::open(&store) {
        Ok(counts) => Some(counts),
        Err(e) => {
            // Without its count a limit cannot be kept: such a modem takes
            // no work rather than overrun the carrier's limit.
            tracing::error!(modem = %settings.id, error = %e, "cannot open the daily send counts");
            None
        }
    };
    let received_daily = match DailyCounts::open_received(&store) {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::error!(modem = %settings.id, error = %e, "cannot open the daily receive counts");
            None
        }
    };
    let actor = Actor {
        heart,
        last_event: None,
        daily,
        received_daily,
        failures: FailureRun::default(),
        probes,
        settings,
        engine,
        store,
        dispatcher,
        status,
        stop,
    };
    (tokio::spawn(actor.run()), status_rx)
}

struct Actor {
    /// Answers the watchdog's liveness pings from every wait.
    heart: Option<Heart>,
    settings: ModemSettings,
    engine: Arc<EngineSettings>,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    status: watch::Sender<ModemStatus>,
    stop: watch::Receiver<bool>,
    /// The state the last `modem.status` event announced: a reopen passes
    /// through `initializing` (never announced), so a modem that goes
    /// offline, retries and comes back is one `offline` and one `ready`, not
    /// an event per attempt.
    last_event: Option<ModemState>,
    /// Parts sent per local day, with `daily_limit` (None: no limit, or the
    /// counts cannot be read: then it takes no work).
    daily: Option<DailyCounts>,
    /// Messages received per local day.
    received_daily: Option<DailyCounts>,
    /// Failed sends in a row and the rest they earned (kept across
    /// reopens of the port: a reopen is no success).
    failures: FailureRun,
    /// Probes asked for (`POST /v1/modems/{id}/probe`): run by the session
    /// between commands, refused while there is none.
    probes: mpsc::Receiver<ProbeRequest>,
}

impl Actor {
    /// The engine's rest policy with this modem's `rest_after_failures`
    /// (changed at run time, else the config's).
    fn rest_policy(&self) -> super::pool::RestPolicy {
        let mut policy = self.engine.rest;
        let set = self
            .dispatcher
            .overrides(&self.settings.id)
            .rest_after_failures;
        if let Some(n) = set.or(self.settings.rest_after_failures) {
            policy.failures = n.max(1);
        }
        policy
    }

    /// Publish a state; a state other than `initializing` that differs from
    /// the last announced one is also a `modem.status` event for webhooks.
    async fn set_state(&mut self, state: ModemState, reason: Option<String>) {
        let mut changed = false;
        let mut state_changed = false;
        self.status.send_modify(|s| {
            changed = s.state != state || s.reason != reason;
            state_changed = s.state != state;
            s.state = state;
            s.reason = reason;
            s.updated_at = Utc::now();
        });
        if !changed {
            return;
        }
        let snapshot = self.status.borrow().clone();
        let reason = snapshot.reason.as_deref().unwrap_or("");
        match state {
            // Stopping with the daemon is not a fault.
            ModemState::Offline | ModemState::Degraded if state_changed && !*self.stop.borrow() => {
                tracing::warn!(modem = %self.settings.id, state = state.as_str(), reason, "modem state")
            }
            _ => {
                tracing::info!(modem = %self.settings.id, state = state.as_str(), reason, "modem state")
            }
        }
        self.dispatcher.notify_all();
        if state != ModemState::Initializing && self.last_event != Some(state) {
            self.last_event = Some(state);
            let data = serde_json::json!({
                "modem": snapshot.id,
                "state": state.as_str(),
                "reason": snapshot.reason,
                "own_number": snapshot.own_number,
                "operator": snapshot.operator,
                "signal_dbm": snapshot.signal_dbm,
            });
            if let Err(e) = self.store.emit("modem.status", data).await {
                tracing::error!(modem = %self.settings.id, error = %e, "cannot record modem.status");
            }
        }
    }

    /// Refuse the probes waiting: no session runs them (`why`).
    fn refuse_probes(&mut self, why: &str) {
        while let Ok(request) = self.probes.try_recv() {
            let _ = request.reply.send(Err(ProbeRefused(why.to_string())));
        }
    }

    /// Sleep `delay` unless shutdown comes first (then `false`).
    async fn pause(&mut self, delay: Duration) -> bool {
        let stop = &mut self.stop;
        beating(&mut self.heart, async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => true,
                _ = stopped(stop) => false,
            }
        })
        .await
    }

    /// Wait until discovery reports a change of this modem's port, or `delay`
    /// passes (`None`: no limit); `false` on shutdown.
    async fn wait_for_port(&mut self, delay: Option<Duration>) -> bool {
        let Some(mut resolver) = self.settings.resolver.clone() else {
            return match delay {
                Some(d) => self.pause(d).await,
                None => {
                    stopped(&mut self.stop).await;
                    false
                }
            };
        };
        let stop = &mut self.stop;
        beating(&mut self.heart, async move {
            let sleep = async {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = resolver.changed() => true,
                _ = sleep => true,
                _ = stopped(stop) => false,
            }
        })
        .await
    }

    async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            if *self.stop.borrow() {
                break;
            }
            // With `port = "auto"`, the port is wherever discovery last saw the
            // modem; until it is plugged in, wait for discovery (or shutdown).
            let path = match &self.settings.resolver {
                None => self.settings.port.clone(),
                Some(resolver) => match resolver.current() {
                    Some(path) => path,
                    None => {
                        self.set_state(
                            ModemState::Offline,
                            Some("waiting for the modem to be plugged in".into()),
                        )
                        .await;
                        if !self.wait_for_port(None).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            self.status.send_modify(|s| s.port = path.clone());
            self.set_state(ModemState::Initializing, None).await;
            let port = match open_serial(&path, self.settings.baud) {
                Ok(port) => port,
                Err(e) => {
                    failures += 1;
                    self.set_state(ModemState::Offline, Some(format!("cannot open port: {e}")))
                        .await;
                    let delay = backoff(failures, self.engine.reopen_backoff_max);
                    if !self.wait_for_port(Some(delay)).await {
                        break;
                    }
                    continue;
                }
            };
            let (client, urcs) = spawn(port, TransportConfig::default());
            let mut session = Session::new(&mut self, client, urcs);
            let end = session.run(failures).await;
            // One owner of the port at a time: the old handle is closed before
            // anything opens the device again (a second open of an exclusive
            // serial port fails with "Unable to acquire exclusive lock").
            let Session { client, .. } = session;
            if !client.close(CLOSE_WAIT).await {
                tracing::warn!(modem = %self.settings.id, "the old port handle is still open after {CLOSE_WAIT:?}");
            }
            let why = match &end {
                End::Shutdown => "the gateway is stopping".to_string(),
                End::DeviceGone(r)
                | End::Unresponsive(r)
                | End::Reinitialize(r)
                | End::Fatal(r) => {
                    format!("the connection ended: {r}")
                }
            };
            self.refuse_probes(&why);
            match end {
                End::Shutdown => break,
                End::Fatal(reason) => {
                    self.set_state(ModemState::Offline, Some(reason)).await;
                    stopped(&mut self.stop).await;
                    break;
                }
                // `Session::run` initialises a restarted modem itself.
                End::DeviceGone(reason) | End::Unresponsive(reason) | End::Reinitialize(reason) => {
                    failures += 1;
                    self.status.send_modify(|s| s.counters.reconnects += 1);
                    self.set_state(ModemState::Offline, Some(reason)).await;
                    let delay = backoff(failures, self.engine.reopen_backoff_max);
                    // A replug (discovery sees the link again) ends the wait early.
                    if !self.wait_for_port(Some(delay)).await {
                        break;
                    }
                }
            }
        }
        self.set_state(ModemState::Offline, Some("stopped".into()))
            .await;
    }
}

/// Await `fut`, answering liveness pings meanwhile (when there is a watchdog).
async fn beating<F: std::future::Future>(heart: &mut Option<Heart>, fut: F) -> F::Output {
    match heart {
        Some(h) => h.beating(fut).await,
        None => fut.await,
    }
}

/// Resolves when a liveness ping comes (never without a watchdog).
async fn pinged(heart: &mut Option<Heart>) {
    match heart {
        Some(h) => h.pinged().await,
        None => std::future::pending().await,
    }
}

/// Resolves once shutdown is asked (the watch value turns true).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// 1 s, 2 s, 4 s ... up to `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(max)
}

/// One open port: init, then the event loop.
struct Session<'a> {
    actor: &'a mut Actor,
    client: AtClient,
    urcs: mpsc::Receiver<Urc>,
    /// The storage `AT+CMGR`/`AT+CMGD` read from (mem1).
    read_storage: String,
    /// `AT+CSMS=1` was needed: `+CMT`/`+CDS` must be acknowledged.
    needs_cnma: bool,
    registered: bool,
    consecutive_timeouts: u32,
    /// Set by a command timeout, cleared by the next answer: the modem is
    /// `degraded` meanwhile (it takes no work) instead of `ready` until the
    /// port is reopened three timeouts later.
    unanswered: bool,
    /// URCs read during init that still need handling once it is done
    /// (status reports, registration); boot URCs from before the modem's
    /// first answer are not among them.
    pending: VecDeque<Urc>,
    /// Earliest moment the next part may go (per-modem rate limit).
    next_send: Instant,
    /// The transport's count of announced SMS when the URC channel was
    /// last drained before a send ([`AtClient::announced`]).
    seen_announced: u64,
    /// The task settling `+CDS` reports in order, started by the first;
    /// each with the count of "sent" marks queued before it arrived.
    reports: Option<mpsc::UnboundedSender<(pdu::SmsStatusReport, u64)>>,
    /// "Sent" marks queued and how many are applied: a status report waits
    /// for those queued before it (its part's message reference is in one).
    sent_marks: SentMarks,
}

/// The count of "sent" marks a session queued, and of those applied.
struct SentMarks {
    queued: u64,
    /// The highest mark applied (the writer applies them in order, so every
    /// one before it is applied too).
    applied: Arc<watch::Sender<u64>>,
}

impl SentMarks {
    fn new() -> SentMarks {
        SentMarks {
            queued: 0,
            applied: Arc::new(watch::channel(0).0),
        }
    }

    /// What a status report arriving now waits for: every mark queued so
    /// far applied (or the session gone).
    fn barrier(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut applied = self.applied.subscribe();
        let queued = self.queued;
        async move {
            let _ = applied.wait_for(|n| *n >= queued).await;
        }
    }
}

impl<'a> Session<'a> {
    fn new(actor: &'a mut Actor, client: AtClient, urcs: mpsc::Receiver<Urc>) -> Session<'a> {
        Session {
            actor,
            client,
            urcs,
            read_storage: "SM".into(),
            needs_cnma: false,
            registered: false,
            consecutive_timeouts: 0,
            unanswered: false,
            pending: VecDeque::new(),
            next_send: Instant::now(),
            seen_announced: 0,
            reports: None,
            sent_marks: SentMarks::new(),
        }
    }

    fn id(&self) -> &str {
        &self.actor.settings.id
    }

    /// Count an AT command's round trip in the modem's latency histogram.
    fn record_latency(&mut self, took: Duration) {
        self.actor
            .status
            .send_modify(|s| s.counters.at_latency.observe(took));
    }

    /// Classify a command error: the ones that end the session, and timeouts.
    async fn check(&mut self, e: &AtError) -> Result<(), End> {
        match e {
            AtError::DeviceGone { reason } => Err(End::DeviceGone(reason.clone())),
            AtError::Closed => Err(End::DeviceGone("transport closed".into())),
            AtError::Timeout { command, timeout } => {
                self.consecutive_timeouts += 1;
                self.actor.status.send_modify(|s| {
                    s.counters.timeouts += 1;
                    s.last_error = Some(e.to_string());
                });
                if self.consecutive_timeouts >= TIMEOUTS_BEFORE_REOPEN {
                    return Err(End::Unresponsive(format!(
                        "{} timeouts in a row (last: {command})",
                        self.consecutive_timeouts
                    )));
                }
                // Out of `ready` at the first timeout: the dispatcher stops
                // handing this modem work until it answers again.
                self.unanswered = true;
                if self.actor.status.borrow().state == ModemState::Ready {
                    self.actor
                        .set_state(
                            ModemState::Degraded,
                            Some(format!("no answer to {command} within {timeout:?}")),
                        )
                        .await;
                }
                Ok(())
            }
            other => {
                self.actor
                    .status
                    .send_modify(|s| s.last_error = Some(other.to_string()));
                Ok(())
            }
        }
    }

    /// Registered and answering: `ready`, or `degraded` while it rests after
    /// failed sends (visible in `/v1/modems` and as a `modem.status` event).
    async fn publish_ready(&mut self) {
        let now = Instant::now();
        match self.actor.failures.resting_until.filter(|u| *u > now) {
            Some(until) => {
                let reason = format!(
                    "resting {}s after {} failed sends in a row; its queue goes to the other modems",
                    (until - now).as_secs().max(1),
                    self.actor.rest_policy().failures
                );
                self.actor
                    .set_state(ModemState::Degraded, Some(reason))
                    .await;
            }
            None => self.actor.set_state(ModemState::Ready, None).await,
        }
    }

    /// Today's budget under `daily_limit` (None: no limit); `left` 0 when the
    /// counts cannot be read.
    fn budget(&self) -> Option<Budget> {
        let per_day = self
            .actor
            .dispatcher
            .overrides(self.id())
            .daily_limit
            .or(self.actor.settings.daily_limit)?;
        let left = match &self.actor.daily {
            Some(counts) => {
                let day = local_day(Utc::now(), self.actor.engine.day_zone);
                counts
                    .get(self.id(), day)
                    .map(|sent| per_day.saturating_sub(sent))
                    .unwrap_or(0)
            }
            None => 0,
        };
        Some(Budget { left, per_day })
    }

    /// When this modem may take work again (None: now): after its rest, its
    /// daily limit's next day, its per-minute rate limit's next slot. Out of
    /// the pool (its sticky contacts' messages go to others) while resting
    /// or out of today's budget; a rate-limit wait is seconds, and keeps them.
    fn hold(&self) -> Option<Instant> {
        let now = Instant::now();
        let resting = self.actor.failures.resting_until.filter(|u| *u > now);
        let spent = match self.budget() {
            Some(b) if b.left == 0 => {
                let day = local_day(Utc::now(), self.actor.engine.day_zone);
                let wait = (next_day_start(day, self.actor.engine.day_zone) - Utc::now())
                    .to_std()
                    .unwrap_or_default();
                // Look again at least hourly (a clock change, a store error).
                Some(now + wait.min(Duration::from_secs(3600)))
            }
            _ => None,
        };
        let paused = self.actor.dispatcher.is_paused(self.id());
        self.actor
            .dispatcher
            .set_away(self.id(), resting.is_some() || spent.is_some() || paused);
        let rate = Some(self.next_send)
            .filter(|n| *n > now && self.sends_per_minute().is_some_and(|n| n > 0));
        [resting, spent, rate].into_iter().flatten().max()
    }

    /// Count a part sent today, against the budget if there is one
    /// (`delta` -1: it did not go out after all). A store error is logged:
    /// the count errs low then.
    fn count_part(&self, delta: i64) {
        if let Some(counts) = &self.actor.daily {
            self.count_today(counts, delta, "cannot count a part sent today");
        }
    }

    /// Count a message received today.
    fn count_received(&self) {
        if let Some(counts) = &self.actor.received_daily {
            self.count_today(counts, 1, "cannot count a message received today");
        }
    }

    fn count_today(&self, counts: &DailyCounts, delta: i64, failed: &str) {
        let day = local_day(Utc::now(), self.actor.engine.day_zone);
        if let Err(e) = counts.add(self.id(), day, delta) {
            tracing::error!(modem = %self.id(), error = %e, "{failed}");
        }
        if delta > 0 {
            if let Some(yesterday) = day.pred_opt() {
                let _ = counts.prune_before(self.id(), yesterday);
            }
        }
    }

    /// Send a command; session-ending errors propagate, others are returned.
    async fn send<C: crate::at::AtCommand>(
        &mut self,
        cmd: &C,
    ) -> Result<Result<C::Response, AtError>, End> {
        let started = Instant::now();
        let result = beating(&mut self.actor.heart, self.client.send(cmd)).await;
        self.record_latency(started.elapsed());
        match &result {
            Ok(_) => self.answered().await,
            // Any final result (an ERROR too) is an answer.
            Err(AtError::Cme(_) | AtError::Cms(_) | AtError::Error(_) | AtError::Parse { .. }) => {
                self.answered().await
            }
            Err(e) => self.check(e).await?,
        }
        Ok(result)
    }

    /// The modem answered: it is `ready` again if a timeout had made it
    /// `degraded` (and it is registered).
    async fn answered(&mut self) {
        self.consecutive_timeouts = 0;
        if std::mem::take(&mut self.unanswered)
            && self.registered
            && self.actor.status.borrow().state == ModemState::Degraded
        {
            self.publish_ready().await;
        }
    }

    async fn raw(&mut self, line: &str) -> Result<bool, End> {
        let started = Instant::now();
        let result = beating(
            &mut self.actor.heart,
            self.client.raw(line, Duration::from_secs(5)),
        )
        .await;
        self.record_latency(started.elapsed());
        match &result {
            Ok(r) => {
                self.answered().await;
                Ok(r.result == FinalResult::Ok)
            }
            Err(e) => {
                self.check(e).await?;
                Ok(false)
            }
        }
    }

    /// Initialise, sweep, check health, serve; a modem that restarts is
    /// initialised again on the same port, `degraded` meanwhile.
    async fn run(&mut self, mut failures: u32) -> End {
        loop {
            let end = match self.session(failures).await {
                Ok(()) => return End::Shutdown,
                Err(end) => end,
            };
            let End::Reinitialize(reason) = end else {
                return end;
            };
            failures = 0;
            self.registered = false;
            self.unanswered = false;
            self.actor
                .set_state(
                    ModemState::Degraded,
                    Some(format!("{reason}: initialising it again")),
                )
                .await;
        }
    }

    async fn session(&mut self, failures: u32) -> Result<(), End> {
        self.init(failures).await?;
        self.sweep().await?;
        self.health().await?;
        self.serve().await
    }

    async fn init(&mut self, failures: u32) -> Result<(), End> {
        // After repeated failures, a modem reset sometimes clears a wedged
        // firmware (issue: optional AT+CFUN=1,1).
        if let Some(limit) = self.actor.engine.reset_after_failures {
            if failures >= limit && failures % limit == 0 {
                let _ = self
                    .send(&Cfun {
                        fun: 1,
                        reset: true,
                    })
                    .await?;
                return Err(End::Reinitialize(format!(
                    "reset with AT+CFUN=1,1 after {failures} failures"
                )));
            }
        }
        // A modem left waiting for PDU text after its `> ` prompt (the daemon
        // was killed between `AT+CMGS=<n>` and the PDU) takes every `AT` as
        // more PDU text and never answers. ESC ends that (27.005 §3.5.1: the
        // send is cancelled and OK answered); in command mode it is ignored
        // and the probe just times out. Either way the link is in step after.
        let _ = self.client.raw("\u{1b}", ESC_PROBE_TIMEOUT).await;
        let mut answered = false;
        for _ in 0..3 {
            if self.client.resync().await.is_ok() {
                answered = true;
                break;
            }
        }
        if !answered {
            return Err(End::Unresponsive("no answer to AT".into()));
        }
        // Every URC before the modem's first answer was read before any of
        // this init's settings: a replugged or restarted modem's boot URCs
        // (buffered on the port before we opened it) are no reason to
        // initialise again. The rest waits for `serve`.
        self.pending.clear();
        while let Ok(urc) = self.urcs.try_recv() {
            if !matches!(urc, Urc::Boot | Urc::SimStatus(_) | Urc::Ready(_)) {
                self.pending.push_back(urc);
            }
        }
        let _ = self.send(&Echo(false)).await?;
        let _ = self.send(&Cmee(1)).await?;
        self.unlock_sim().await?;
        if self.send(&Cmgf).await?.is_err() {
            return Err(End::Fatal("the modem refuses PDU mode (AT+CMGF=0)".into()));
        }
        let identity = beating(&mut self.actor.heart, read_identity(&mut self.client)).await;
        for line in quirks::extra_init(identity.manufacturer.as_deref()) {
            let _ = self.raw(line).await?;
        }
        for storage in quirks::storage_preference(self.actor.settings.storage.as_deref()) {
            if self
                .raw(&format!(
                    "AT+CPMS=\"{storage}\",\"{storage}\",\"{storage}\""
                ))
                .await?
            {
                self.read_storage = storage;
                break;
            }
        }
        let mut cnmi_ok = false;
        // Status reports routed directly (`+CDS`, ds=1) first: a stored one
        // (`+CDSI`, ds=2) costs an `AT+CMGR` and an `AT+CMGD` on the line
        // ahead of the next send (issue 15 measured 129-190 msg/s against
        // 418 without reports), a routed one only its own bytes.
        for cnmi in CNMI_DAEMON_ORDER {
            if self.send(&cnmi).await?.is_ok() {
                cnmi_ok = true;
                break;
            }
        }
        if !cnmi_ok {
            self.actor.status.send_modify(|s| {
                s.last_error =
                    Some("AT+CNMI refused: inbound SMS found by the periodic sweep only".into())
            });
        }
        if self.send(&Csms(0)).await?.is_err() {
            self.needs_cnma = self.send(&Csms(1)).await?.is_ok();
        }
        let operator = self.send(&CopsQuery).await?.ok().and_then(|o| o.name);
        let own_number = self
            .actor
            .settings
            .own_number
            .clone()
            .or_else(|| identity.own_number.clone());
        self.actor.status.send_modify(|s| {
            s.identity = identity;
            s.operator = operator;
            s.own_number = own_number;
        });
        Ok(())
    }

    async fn unlock_sim(&mut self) -> Result<(), End> {
        let state = self.send(&CpinQuery).await?;
        match state {
            Ok(PinState::Ready) => Ok(()),
            Ok(PinState::SimPin) => {
                let Some(pin) = self.actor.settings.pin.clone() else {
                    return Err(End::Fatal("SIM PIN required and none configured".into()));
                };
                let cmd = CpinEnter::new(&pin)
                    .map_err(|e| End::Fatal(format!("invalid PIN in config: {e}")))?;
                match self.send(&cmd).await? {
                    Ok(()) => Ok(()),
                    // Never retried: three wrong PINs lock the SIM.
                    Err(e) => Err(End::Fatal(format!(
                        "the SIM refused the configured PIN ({e}); not retrying"
                    ))),
                }
            }
            Ok(PinState::SimPuk) => Err(End::Fatal("SIM is PUK-locked".into())),
            Ok(PinState::NotInserted) => Err(End::Fatal("no SIM inserted".into())),
            Ok(other) => Err(End::Fatal(format!("SIM not ready: {other:?}"))),
            // Some modems do not answer +CPIN? before the SIM is up; go on.
            Err(_) => Ok(()),
        }
    }

    /// `AT+CMGL=4`: everything stored (a URC may have been missed).
    async fn sweep(&mut self) -> Result<(), End> {
        let listed = match self.send(&Cmgl(ListStatus::All)).await? {
            Ok(listed) => listed,
            Err(_) => return Ok(()),
        };
        let storage = self.read_storage.clone();
        let indexes: Vec<u32> = listed.iter().map(|item| item.index).collect();
        if let Err(e) = self.actor.store.slots_listed(self.id(), &storage, &indexes) {
            tracing::error!(modem = %self.id(), error = %e, "cannot release the dedupe keys of empty slots");
        }
        for item in listed {
            let Ok(bytes) = item.message.pdu_bytes() else {
                continue;
            };
            let from = ReadFrom::Slot {
                storage: &storage,
                index: item.index,
            };
            if self.ingest(&bytes, from).await? {
                self.delete_slot(&storage, item.index).await?;
            }
        }
        Ok(())
    }

    /// `AT+CMGD` of a slot whose message is stored, then release its dedupe
    /// key: what is read there next is a new delivery.
    async fn delete_slot(&mut self, storage: &str, index: u32) -> Result<(), End> {
        if self.send(&Cmgd { index, flag: None }).await?.is_ok() {
            if let Err(e) = self.actor.store.slot_deleted(self.id(), storage, index) {
                tracing::error!(modem = %self.id(), error = %e, "cannot release a deleted slot's dedupe key");
            }
        }
        Ok(())
    }

    /// Signal and registration; Ready when registered, else Degraded.
    async fn health(&mut self) -> Result<(), End> {
        if let Ok(csq) = self.send(&Csq).await? {
            self.actor.status.send_modify(|s| {
                s.signal_csq = Some(csq.rssi);
                s.signal_dbm = csq.dbm();
            });
        }
        let mut registration = None;
        for domain in [Domain::Cs, Domain::Eps] {
            if let Ok(reg) = self.send(&RegistrationQuery(domain)).await? {
                let done = reg.status.is_registered();
                registration = Some(reg);
                if done {
                    break;
                }
            }
        }
        if let Some(reg) = registration {
            self.on_registration(&reg).await;
        } else if !self.registered {
            self.actor
                .set_state(ModemState::Degraded, Some("registration unknown".into()))
                .await;
        }
        Ok(())
    }

    async fn on_registration(&mut self, reg: &Registration) {
        self.registered = reg.status.is_registered();
        self.actor
            .status
            .send_modify(|s| s.registration = Some(format!("{:?}", reg.status).to_lowercase()));
        if self.registered {
            self.publish_ready().await;
        } else {
            self.actor
                .set_state(
                    ModemState::Degraded,
                    Some("not registered: sends wait".into()),
                )
                .await;
        }
    }

    async fn serve(&mut self) -> Result<(), End> {
        let mut health = interval(self.actor.engine.health_interval);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        health.reset();
        let mut sweep = interval(self.actor.engine.sweep_interval);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        sweep.reset();
        let mut stop = self.actor.stop.clone();
        let mut work_stop = self.actor.stop.clone();
        let dispatcher = self.actor.dispatcher.clone();
        let mut settings_changed = dispatcher.changes();
        let id = self.id().to_string();
        while let Some(urc) = self.pending.pop_front() {
            self.on_urc(urc).await?;
        }
        loop {
            if self
                .actor
                .failures
                .resting_until
                .is_some_and(|until| until <= Instant::now())
            {
                self.actor.failures.resting_until = None;
                if self.registered && !self.unanswered {
                    self.publish_ready().await;
                }
            }
            let hold = self.hold();
            let ready = self.registered && !self.unanswered && hold.is_none();
            let unanswered = self.unanswered;
            let budget = self.budget();
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => return Ok(()),
                _ = pinged(&mut self.actor.heart) => {}
                _ = tokio::time::sleep(RECOVERY_PROBE), if unanswered => {
                    let _ = self.send(&crate::at::command::At).await?;
                }
                urc = self.urcs.recv() => match urc {
                    Some(urc) => self.on_urc(urc).await?,
                    None => return Err(End::DeviceGone("transport ended".into())),
                },
                _ = health.tick() => self.health().await?,
                _ = sweep.tick() => self.sweep().await?,
                // Before the next send: sends wait and go after it.
                Some(request) = self.actor.probes.recv() => self.probe(request).await?,
                // An administrator changed a modem's settings: decide again
                // (a paused modem stops taking work, a raised limit frees it).
                Ok(()) = settings_changed.changed() => {}
                // Back in the pool after a rest, a new day, a rate-limit slot.
                _ = tokio::time::sleep_until(hold.unwrap_or_else(Instant::now)), if hold.is_some() => {}
                message = dispatcher.next_for(&id, budget, &mut work_stop), if ready => {
                    if let Some(message) = message {
                        let id = message.id.clone();
                        self.actor.status.send_modify(|s| s.queue_depth = 1);
                        let result = self.send_message(message).await;
                        self.actor.status.send_modify(|s| s.queue_depth = 0);
                        dispatcher.release(&id);
                        result?;
                    }
                }
            }
        }
    }

    /// The technician's probe over this session's connection (its commands
    /// are this session's: their timeouts count as any other's, and one
    /// that ends the session ends it after the probe). The result is stored,
    /// then answered.
    async fn probe(&mut self, request: ProbeRequest) -> Result<(), End> {
        let mut report = ProbeReport {
            port: self.actor.status.borrow().port.clone(),
            baud: self.actor.settings.baud,
            ..ProbeReport::default()
        };
        let mut link = SessionLink {
            session: self,
            end: None,
        };
        // No PIN: this session unlocked the SIM, and a SIM asking again
        // restarts the session.
        probe_client(
            &mut link,
            None,
            &CNMI_DAEMON_ORDER,
            &mut report,
            &mut |_| {},
        )
        .await;
        let end = link.end;
        let result = ProbeResult::new(self.id(), Utc::now(), report);
        let stored = ProbeResults::open(&self.actor.store).and_then(|r| r.put(&result));
        let stored = match stored {
            Ok(()) => self.actor.store.sync().await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::error!(modem = %self.id(), error = %e, "cannot store the probe result");
        }
        tracing::info!(
            modem = %self.id(),
            problems = result.report.diagnosis.len(),
            "probe run over the modem's connection"
        );
        let _ = request.reply.send(Ok(result));
        match end {
            Some(end) => Err(end),
            None => Ok(()),
        }
    }

    async fn on_urc(&mut self, urc: Urc) -> Result<(), End> {
        match urc {
            Urc::NewMessage { storage, index } | Urc::StatusReportStored { storage, index } => {
                self.read_stored(&storage, index).await
            }
            // Nothing to acknowledge (`AT+CSMS=0`): the report is settled
            // off the send path (issue 15: reports must not stall sends).
            // Reports routed this way are not stored on the modem, so there
            // is no slot to keep until the write is durable.
            Urc::StatusReport { pdu, .. } if !self.needs_cnma => {
                if let Ok(bytes) = pdu::hex::decode(&pdu) {
                    match pdu::decode(&bytes, true) {
                        Ok(pdu::Pdu {
                            tpdu: Tpdu::StatusReport(report),
                            ..
                        }) => self.queue_report(report),
                        _ => {
                            self.ingest(&bytes, ReadFrom::Direct).await?;
                        }
                    }
                }
                Ok(())
            }
            Urc::Deliver { pdu, .. } | Urc::StatusReport { pdu, .. } => {
                if let Ok(bytes) = pdu::hex::decode(&pdu) {
                    self.ingest(&bytes, ReadFrom::Direct).await?;
                }
                if self.needs_cnma {
                    let _ = self.send(&Cnma).await?;
                }
                Ok(())
            }
            Urc::Registration(reg) => {
                self.on_registration(&reg).await;
                Ok(())
            }
            Urc::Signal(csq) => {
                self.actor.status.send_modify(|s| {
                    s.signal_csq = Some(csq.rssi);
                    s.signal_dbm = csq.dbm();
                });
                Ok(())
            }
            Urc::Boot => Err(End::Reinitialize("the modem restarted".into())),
            Urc::SimStatus(state) => Err(End::Reinitialize(format!(
                "the SIM status changed to {state:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Read the message at `index` of `storage` (switching the read storage
    /// there and back when it is another, e.g. "SR"), store it, delete it.
    async fn read_stored(&mut self, storage: &str, index: u32) -> Result<(), End> {
        let storage = storage.trim_matches('"').to_ascii_uppercase();
        let switch = storage != self.read_storage;
        if switch && !self.raw(&format!("AT+CPMS=\"{storage}\"")).await? {
            return Ok(());
        }
        let read = self.send(&Cmgr(index)).await?;
        if let Ok(Some(stored)) = read {
            if let Ok(bytes) = stored.pdu_bytes() {
                let from = ReadFrom::Slot {
                    storage: &storage,
                    index,
                };
                if self.ingest(&bytes, from).await? {
                    self.delete_slot(&storage, index).await?;
                }
            }
        }
        if switch {
            let back = self.read_storage.clone();
            let _ = self.raw(&format!("AT+CPMS=\"{back}\"")).await?;
        }
        Ok(())
    }

    /// Store what a PDU carries. `true` when it is safely stored (or was
    /// already) and may be deleted from the modem.
    async fn ingest(&mut self, bytes: &[u8], from: ReadFrom<'_>) -> Result<bool, End> {
        let own = self
            .actor
            .status
            .borrow()
            .own_number
            .clone()
            .unwrap_or_default();
        let modem = self.id().to_string();
        let decoded = pdu::decode(bytes, true);
        let stored = match decoded {
            Ok(pdu::Pdu {
                tpdu: Tpdu::Deliver(d),
                ..
            }) => {
                let (text, error) = match &d.user_data.body {
                    Body::Text(t) => (t.clone(), None),
                    Body::Data(data) => (
                        pdu::hex::encode(data),
                        Some(ErrorInfo {
                            code: "binary_body".into(),
                            text: "8-bit data, shown as hex".into(),
                        }),
                    ),
                };
                let part = InboundPart {
                    modem: &modem,
                    own_number: &own,
                    raw_pdu: bytes,
                    sender: &d.originator.value,
                    text: &text,
                    alphabet: d.dcs.alphabet.as_str(),
                    network_time: d.service_centre_time.with_timezone(&Utc),
                    concat: d.user_data.header.as_ref().and_then(|h| h.concat()),
                    error,
                };
                self.actor.store.receive_read(part, from).await
            }
            Ok(pdu::Pdu {
                tpdu: Tpdu::StatusReport(report),
                ..
            }) => {
                self.on_status_report(&report).await;
                return Ok(true);
            }
            // One of our own stored outgoing messages: not ours to delete.
            Ok(_) => return Ok(false),
            Err(e) => {
                // Kept, not dropped: the raw PDU with the reason.
                let hex = pdu::hex::encode(bytes);
                let part = InboundPart {
                    modem: &modem,
                    own_number: &own,
                    raw_pdu: bytes,
                    sender: "unknown",
                    text: &hex,
                    alphabet: "8bit",
                    network_time: Utc::now(),
                    concat: None,
                    error: Some(ErrorInfo {
                        code: "undecodable_pdu".into(),
                        text: e.to_string(),
                    }),
                };
                self.actor.store.receive_read(part, from).await
            }
        };
        match stored {
            Ok(outcome) => {
                if let ReceiveOutcome::Complete(message, events) = &outcome {
                    self.actor.status.send_modify(|s| s.counters.received += 1);
                    self.count_received();
                    // A STOP was recorded with the message; now cancel what
                    // still waits for this contact (the check before AT+CMGS
                    // would stop it anyway, this makes it visible at once).
                    let opted_out = events
                        .iter()
                        .any(|e| e.kind == "consent.changed" && e.data["status"] == "opted_out");
                    if opted_out {
                        let _ = self
                            .actor
                            .store
                            .fail_waiting_to(
                                &message.contact,
                                "recipient_opted_out",
                                "cancelled: the recipient opted out (STOP)",
                            )
                            .await;
                    }
                    // A confirmation or HELP reply may have been queued.
                    self.actor.dispatcher.notify();
                }
                Ok(true)
            }
            Err(e) => {
                // Not durable: leave it on the modem for the next sweep.
                self.actor
                    .status
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                Ok(false)
            }
        }
    }

    async fn on_status_report(&mut self, report: &pdu::SmsStatusReport) {
        self.actor
            .status
            .send_modify(|s| s.counters.status_reports += 1);
        self.sent_marks.barrier().await;
        apply_status_report(&self.actor.store, self.id(), report).await;
    }

    /// Hand a `+CDS` report to this session's report task: it settles the
    /// part in the store while the next `AT+CMGS` goes, in arrival order.
    fn queue_report(&mut self, report: pdu::SmsStatusReport) {
        self.actor
            .status
            .send_modify(|s| s.counters.status_reports += 1);
        let barrier = self.sent_marks.barrier();
        let queued = self.sent_marks.queued;
        let tx = self.reports.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<(pdu::SmsStatusReport, u64)>();
            let store = self.actor.store.clone();
            let modem = self.actor.settings.id.clone();
            let mut applied = self.sent_marks.applied.subscribe();
            tokio::spawn(async move {
                while let Some((report, queued)) = rx.recv().await {
                    let _ = applied.wait_for(|n| *n >= queued).await;
                    apply_status_report(&store, &modem, &report).await;
                }
            });
            tx
        });
        if let Err(mpsc::error::SendError((report, _))) = tx.send((report, queued)) {
            // Cannot happen while the sender lives; settle it here then.
            let store = self.actor.store.clone();
            let modem = self.id().to_string();
            tokio::spawn(async move {
                barrier.await;
                apply_status_report(&store, &modem, &report).await
            });
        }
    }

    /// `sends_per_minute`, changed at run time or the config's.
    fn sends_per_minute(&self) -> Option<u32> {
        self.actor
            .dispatcher
            .overrides(self.id())
            .sends_per_minute
            .or(self.actor.settings.sends_per_minute)
    }

    /// How long until the per-modem rate limit lets the next part go.
    fn rate_wait(&self) -> Duration {
        match self.sends_per_minute().filter(|n| *n > 0) {
            Some(_) => self.next_send.saturating_duration_since(Instant::now()),
            None => Duration::ZERO,
        }
    }

    /// Take the rate limit's next slot (waiting for it if need be).
    async fn rate_limit(&mut self) {
        if let Some(per_minute) = self.sends_per_minute().filter(|n| *n > 0) {
            let gap = Duration::from_secs(60) / per_minute;
            let now = Instant::now();
            if self.next_send > now {
                tokio::time::sleep_until(self.next_send).await;
            }
            self.next_send = Instant::now().max(now) + gap;
        }
    }

    /// Handle what the modem announced and is already waiting in the
    /// channel (an inbound SMS is read and stored), without waiting for more.
    async fn read_announced(&mut self) -> Result<(), End> {
        loop {
            // Read before draining: every SMS counted so far is in the
            // channel. One announced while these were read: drain again.
            self.seen_announced = self.client.announced();
            while let Ok(urc) = self.urcs.try_recv() {
                self.on_urc(urc).await?;
            }
            if self.client.announced() == self.seen_announced {
                return Ok(());
            }
        }
    }

    /// Right before an AT+CMGS whose part is marked `sending`: read what
    /// the modem announced (nothing of the part reached it yet). If that
    /// ends the session, or it was a STOP from this recipient, the part
    /// goes back to the queue unsent (`false`: do not send).
    async fn read_before_cmgs(
        &mut self,
        message: &Message,
        seq: u8,
        own: Option<&str>,
    ) -> Result<bool, End> {
        let received = self.actor.status.borrow().counters.received;
        if let Err(end) = self.read_announced().await {
            self.count_part(-1);
            self.put_back(&message.id, seq, "the modem's session ended before AT+CMGS")
                .await;
            return Err(end);
        }
        if self.actor.status.borrow().counters.received != received {
            let latest = self.actor.store.get(&message.id).ok().flatten();
            let latest = latest.unwrap_or_else(|| message.clone());
            if !self.gate_says_send(&latest, own) {
                self.count_part(-1);
                self.put_back(&message.id, seq, "checked again after an inbound SMS")
                    .await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The policy's verdict on `message` right before its AT+CMGS, acted
    /// on: `false` when it was deferred or failed and must not be sent.
    async fn passes_gate(&mut self, message: &Message, first: bool, own: Option<&str>) -> bool {
        let Some(gate) = self.actor.engine.gate.clone() else {
            return true;
        };
        let latest = self.actor.store.get(&message.id).ok().flatten();
        let latest = latest.unwrap_or_else(|| message.clone());
        match gate.check(&self.actor.store, &latest, own, Utc::now()) {
            Gate::Send => true,
            Gate::Defer { until, reason } if first => {
                self.defer(&message.id, until, reason).await;
                false
            }
            // A later part of a message already under way goes.
            Gate::Defer { .. } => true,
            // The fleet's copy of a message another gateway accepted goes
            // back when its recipient opted out: that gateway fails its
            // record and reports it (once for the fleet). Not once a part
            // is on the air (a later part put back before its AT+CMGS):
            // it fails here, where it was sent.
            Gate::Refuse(error)
                if error.code == crate::policy::Refusal::OptedOut.code()
                    && first
                    && latest.fleet_copy
                    && latest.fleet == Some(FleetLeg::Taken)
                    && latest.status.is_waiting() =>
            {
                match self.actor.store.give_back_opted_out(&message.id).await {
                    Ok(true) => {}
                    // Changed meanwhile (no longer waiting): failed here.
                    Ok(false) => self.fail(&message.id, &error.code, &error.text).await,
                    Err(e) => {
                        tracing::error!(message_id = %message.id, error = %e, "fleet: cannot give a message back");
                    }
                }
                false
            }
            Gate::Refuse(error) => {
                self.fail(&message.id, &error.code, &error.text).await;
                false
            }
        }
    }

    /// Whether the policy lets `message` go now (no action taken).
    fn gate_says_send(&self, message: &Message, own: Option<&str>) -> bool {
        match &self.actor.engine.gate {
            Some(gate) => matches!(
                gate.check(&self.actor.store, message, own, Utc::now()),
                Gate::Send
            ),
            None => true,
        }
    }

    /// A part marked `sending` that never reached the modem goes back to
    /// the queue at once (no attempt spent); its parts already sent stay.
    async fn put_back(&mut self, id: &str, seq: u8, note: &str) {
        let now = Utc::now();
        let result = self
            .actor
            .store
            .update(id, |m| {
                if m.status != MessageStatus::Sending {
                    return false;
                }
                if let Some(p) = m.part_status.iter_mut().find(|p| p.seq == seq) {
                    p.status = PartStatus::Pending;
                }
                m.not_before = Some(now);
                m.transition(now, MessageStatus::Queued).note = Some(note.to_string());
                true
            })
            .await;
        if let Err(e) = result {
            tracing::error!(message_id = %id, error = %e, "cannot put an unsent part back in the queue");
        }
        self.actor.dispatcher.notify();
    }

    /// Put a message back as `deferred` until `until`, saying why.
    async fn defer(&mut self, id: &str, until: chrono::DateTime<Utc>, reason: String) {
        let now = Utc::now();
        let _ = self
            .actor
            .store
            .update(id, |m| {
                if !m.status.is_waiting() {
                    return false;
                }
                m.not_before = Some(until);
                m.transition(now, MessageStatus::Deferred).note = Some(reason.clone());
                true
            })
            .await;
    }

    /// Send the parts of `message` not sent yet, one `AT+CMGS` each.
    async fn send_message(&mut self, claimed: Message) -> Result<(), End> {
        // Re-read: it may have been cancelled since it was claimed.
        let Ok(Some(message)) = self.actor.store.get(&claimed.id) else {
            return Ok(());
        };
        if !(message.status.is_waiting() || message.status == MessageStatus::Sending) {
            return Ok(());
        }
        // Handed to the fleet: another gateway sends it.
        if message.fleet == Some(FleetLeg::Handed) {
            return Ok(());
        }
        let engine = self.actor.engine.clone();
        if message.fleet == Some(FleetLeg::Taken) && engine.fleet.is_none() {
            // Taken from a fleet's work queue by this store, now running
            // without [cluster]: it cannot be claimed, so it is not sent.
            let until = Utc::now() + chrono::Duration::hours(1);
            self.defer(
                &message.id,
                until,
                "taken from the fleet's work queue: needs [cluster] to be claimed before it is sent".into(),
            )
            .await;
            return Ok(());
        }
        let encoded = crate::compose::encode(&message, message.validity.or(engine.validity), 0);
        let encoded = match encoded {
            Ok(e) => e,
            Err(e) => {
                self.fail(&message.id, "encoding_failed", &e.to_string())
                    .await;
                return Ok(());
            }
        };
        let modem = self.id().to_string();
        let own_number = self.actor.status.borrow().own_number.clone();
        for (i, part) in encoded.parts.iter().enumerate() {
            let seq = (i + 1) as u8;
            let done = message.part_status.iter().any(|p| {
                p.seq == seq && matches!(p.status, PartStatus::Sent | PartStatus::Delivered)
            });
            if done {
                continue;
            }
            let first = message.part_status.iter().all(|p| p.mr.is_none());
            // A per-modem limit that would stall the modem defers the message
            // instead, visibly (another modem may take it meanwhile).
            let wait = self.rate_wait();
            if first && wait > Duration::from_secs(5) {
                let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let per_minute = self.sends_per_minute().unwrap_or(0);
                self.defer(
                    &message.id,
                    until,
                    format!("modem {modem} rate limit ({per_minute}/min)"),
                )
                .await;
                return Ok(());
            }
            self.rate_limit().await;
            // An SMS the modem announced meanwhile is read first: its
            // AT+CMGR is short, and the customer's answer should not wait
            // behind this send. A later part's message is `sending`: if that
            // ends the session, it goes back to the queue.
            if let Err(end) = self.read_announced().await {
                self.put_back(&message.id, seq, "the modem's session ended before AT+CMGS")
                    .await;
                return Err(end);
            }
            // The policy, right before AT+CMGS: a STOP that arrived while this
            // message waited here stops it.
            if !self
                .passes_gate(&message, first, own_number.as_deref())
                .await
            {
                return Ok(());
            }
            // Taken from the fleet's work queue: claimed in the fleet's
            // fence before anything of it reaches a modem, so that one
            // gateway sends it whoever else the work queue gave it to.
            if first && message.fleet == Some(FleetLeg::Taken) {
                if let Some(fleet) = &engine.fleet {
                    // A claim made for it may have expired: not claimed
                    // (the gateway that accepted it settles it `unknown`).
                    if crate::fleet::past_the_fence(&message, Utc::now()) {
                        tracing::warn!(message_id = %message.id, "fleet: past the fence's memory; not claimed, given back");
                        if let Err(e) = self.actor.store.give_back_to_fleet(&message.id).await {
                            tracing::error!(message_id = %message.id, error = %e, "fleet: cannot give a message back");
                        }
                        return Ok(());
                    }
                    // The record is durable before the claim: a gateway
                    // that claims, dies and comes back still has the
                    // message (the others see the claim and leave it).
                    if let Err(e) = self.actor.store.sync().await {
                        tracing::error!(message_id = %message.id, error = %e, "fleet: cannot make a taken message durable; not claimed");
                        return Ok(());
                    }
                    match fleet.claim(&message.id, ClaimFor::Send).await {
                        Ok(Claim::Mine) => {}
                        // Sent by another gateway, or cancelled where it was
                        // accepted: that gateway's events bring its state
                        // (and its webhooks fired there, once).
                        Ok(Claim::Theirs(holder) | Claim::Cancelled(holder)) => {
                            tracing::info!(message_id = %message.id, %holder, "fleet: claimed elsewhere; not sent here");
                            if let Err(e) = self.actor.store.give_back_to_fleet(&message.id).await {
                                tracing::error!(message_id = %message.id, error = %e, "fleet: cannot give a message back");
                            }
                            return Ok(());
                        }
                        Err(e) => {
                            let until = Utc::now() + chrono::Duration::seconds(FLEET_RETRY_SECS);
                            self.defer(
                                &message.id,
                                until,
                                format!("waiting for the fleet's broker to claim it: {e}"),
                            )
                            .await;
                            return Ok(());
                        }
                    }
                }
            }
            let cmd = match Cmgs::new(&part.pdu) {
                Ok(cmd) => cmd,
                Err(e) => {
                    self.fail(&message.id, "encoding_failed", &e.to_string())
                        .await;
                    return Ok(());
                }
            };
            // Counted before the "sending" mark, whose flush carries the
            // count to disk: a part that went out is never missing from it.
            self.count_part(1);
            let now = Utc::now();
            // Grouped with the other modems' marks into one transaction, and
            // made while `AT+CMGS=<length>` and its prompt cross the wire:
            // the PDU, the only thing that reaches the network, waits at
            // the prompt until the mark is durable (or is withheld with ESC
            // when the message was cancelled meanwhile or the store failed).
            let (sender, own) = (modem.clone(), own_number.clone());
            let store = self.actor.store.clone();
            let id = message.id.clone();
            let (go, go_rx) = oneshot::channel();
            let mark = async move {
                let marked = match store
                    .update_grouped(&id, move |m| {
                        if !(m.status.is_waiting() || m.status == MessageStatus::Sending)
                            || m.fleet == Some(FleetLeg::Handed)
                        {
                            return false;
                        }
                        m.modem = Some(sender.clone());
                        if let Some(own) = &own {
                            m.from = own.clone();
                        }
                        if let Some(p) = m.part_status.iter_mut().find(|p| p.seq == seq) {
                            p.status = PartStatus::Sending;
                        }
                        if m.status != MessageStatus::Sending {
                            m.transition(now, MessageStatus::Sending);
                        }
                        true
                    })
                    .await
                {
                    Ok((marked, durability)) => durability.wait().await.map(|()| marked),
                    Err(e) => Err(e),
                };
                let sending =
                    matches!(&marked, Ok(Some((m, _))) if m.status == MessageStatus::Sending);
                let _ = go.send(sending);
                sending
            };
            let (sending, first_try) =
                tokio::join!(mark, self.cmgs_with_grace(&cmd, true, Some(go_rx)));
            if !sending {
                // Cancelled meanwhile, or the store failed: nothing was
                // sent (the PDU waited for the mark).
                self.count_part(-1);
                if let Some(Err(AtError::Withheld { .. } | AtError::GaveWay { .. })) = first_try {
                    self.answered().await;
                }
                return Ok(());
            }
            // An SMS announced before the prompt makes the modem give way
            // (ESC, nothing sent): it is read, then the part goes (a few
            // times at most, so that a flood of SMS cannot stall sends).
            let mut gave_way = 0;
            let mut attempt = Some(first_try);
            let result = loop {
                let result = match attempt.take() {
                    Some(first) => first,
                    None => {
                        self.cmgs_with_grace(&cmd, gave_way < GIVE_WAY_MAX, None)
                            .await
                    }
                };
                match result {
                    Some(Err(AtError::GaveWay { .. })) => {
                        gave_way += 1;
                        self.answered().await;
                        if !self
                            .read_before_cmgs(&message, seq, own_number.as_deref())
                            .await?
                        {
                            return Ok(());
                        }
                    }
                    // The mark took longer than the modem's prompt may
                    // wait: nothing was sent, the part goes back.
                    Some(Err(AtError::Withheld { .. })) => {
                        self.answered().await;
                        self.count_part(-1);
                        self.put_back(
                            &message.id,
                            seq,
                            "the \"sending\" mark outlasted the prompt",
                        )
                        .await;
                        return Ok(());
                    }
                    result => break result,
                }
            };
            let Some(result) = result else {
                self.unknown(&message.id, "shutdown while AT+CMGS was in flight")
                    .await;
                return Err(End::Shutdown);
            };
            match result {
                Ok(mr) => {
                    self.answered().await;
                    self.actor.failures.succeeded();
                    self.actor
                        .status
                        .send_modify(|s| s.counters.sent_parts += 1);
                    let last = seq as usize == encoded.parts.len();
                    let now = Utc::now();
                    let validity = message.validity.or(engine.validity);
                    // "Sent" is queued now and applied while this modem goes
                    // on (before the next part's "sending" mark: the writer
                    // keeps their order; a status report waits for it), and
                    // not made durable on its own: the next "sending" mark,
                    // which must be durable before its PDU goes, carries it
                    // to disk in the same flush (one flush per part instead
                    // of two). Lost in a crash, the part is still `sending`
                    // on disk and becomes `unknown` at restart, never a
                    // resend. When no part follows soon, a flush after
                    // SENT_FLUSH_DELAY makes it durable anyway.
                    let queued = self.actor.store.submit_grouped(&message.id, move |m| {
                        if let Some(p) = m.part_status.iter_mut().find(|p| p.seq == seq) {
                            p.status = PartStatus::Sent;
                            p.mr = Some(mr);
                        }
                        if last && m.status == MessageStatus::Sending {
                            if m.status_report {
                                let secs = i64::from(validity.unwrap_or(24 * 3600)) + 3600;
                                m.report_deadline = Some(now + chrono::Duration::seconds(secs));
                            }
                            let parts = m.part_status.clone();
                            m.transition(now, MessageStatus::Sent).parts = parts;
                        }
                        true
                    });
                    self.sent_marks.queued += 1;
                    let number = self.sent_marks.queued;
                    let applied = self.sent_marks.applied.clone();
                    let id = message.id.clone();
                    tokio::spawn(async move {
                        let outcome = queued.applied().await;
                        applied.send_if_modified(|n| {
                            let later = number > *n;
                            if later {
                                *n = number;
                            }
                            later
                        });
                        match outcome {
                            Ok((_, durability)) => {
                                tokio::time::sleep(SENT_FLUSH_DELAY).await;
                                if let Err(e) = durability.wait().await {
                                    tracing::error!(message_id = %id, error = %e, "cannot make \"sent\" durable");
                                }
                            }
                            Err(e) => {
                                tracing::error!(message_id = %id, error = %e, "cannot record \"sent\"");
                            }
                        }
                    });
                }
                Err(e) => return self.send_failed(&message, seq, e).await,
            }
        }
        Ok(())
    }

    /// `AT+CMGS`, but if shutdown is asked meanwhile, wait at most the grace
    /// period (`None`: gave up waiting).
    ///
    /// With `give_way`, an SMS announced after the last [`read_announced`]
    /// and before the prompt ends it with [`AtError::GaveWay`], nothing sent.
    /// With `go`, the PDU waits at the prompt for its word
    /// ([`AtClient::send_when`]).
    ///
    /// [`read_announced`]: Session::read_announced
    async fn cmgs_with_grace(
        &mut self,
        cmd: &Cmgs,
        give_way: bool,
        go: Option<oneshot::Receiver<bool>>,
    ) -> Option<Result<u8, AtError>> {
        let mut stop = self.actor.stop.clone();
        let started = Instant::now();
        let client = self.client.clone();
        let seen = give_way.then_some(self.seen_announced);
        let result = beating(&mut self.actor.heart, async move {
            let send = async {
                match (seen, go) {
                    (seen, Some(go)) => client.send_when(cmd, seen, go).await,
                    (Some(seen), None) => client
                        .send_unless_announced(cmd, seen)
                        .await
                        .map(|mr| (mr, Duration::ZERO)),
                    (None, None) => client.send(cmd).await.map(|mr| (mr, Duration::ZERO)),
                }
            };
            tokio::pin!(send);
            tokio::select! {
                r = &mut send => return Some(r),
                _ = stopped(&mut stop) => {}
            }
            tokio::time::timeout(SHUTDOWN_GRACE, send).await.ok()
        })
        .await;
        // The modem's time: not the wait at its prompt for the "sending"
        // mark (the store's, not the modem's); a payload withheld there
        // measured no answer of the modem's.
        let held = match &result {
            Some(Ok((_, held))) => Some(*held),
            Some(Err(AtError::Withheld { .. })) => None,
            _ => Some(Duration::ZERO),
        };
        if let Some(held) = held {
            self.record_latency(started.elapsed().saturating_sub(held));
        }
        result.map(|r| r.map(|(mr, _)| mr))
    }

    async fn send_failed(&mut self, message: &Message, seq: u8, e: AtError) -> Result<(), End> {
        let now = Utc::now();
        tracing::warn!(
            message = %message.id,
            modem = %self.id(),
            part = seq,
            error = %e,
            "AT+CMGS failed"
        );
        // The modem's failures (not the message's: a permanent error such
        // as an unassigned number says nothing about the modem) count
        // towards a rest, during which its queue goes to the other modems.
        let modem_failure = !matches!(&e, AtError::Cms(_) | AtError::Cme(_)) || e.is_transient();
        let rest = if modem_failure {
            let policy = self.actor.rest_policy();
            self.actor.failures.failed(Instant::now(), &policy)
        } else {
            None
        };
        if let Some(rest) = rest {
            tracing::warn!(
                modem = %self.id(),
                rest_s = rest.as_secs(),
                failures = self.actor.rest_policy().failures,
                "failed sends in a row: the modem rests, its queue goes to the others"
            );
            self.actor.dispatcher.set_away(self.id(), true);
        }
        let result = self
            .classify_failure(message, seq, e, now, rest.is_some())
            .await;
        if rest.is_some() && self.registered && !self.unanswered {
            self.publish_ready().await;
        }
        result
    }

    async fn classify_failure(
        &mut self,
        message: &Message,
        seq: u8,
        e: AtError,
        now: chrono::DateTime<Utc>,
        resting: bool,
    ) -> Result<(), End> {
        match &e {
            AtError::DeviceGone { .. } | AtError::Closed => {
                self.unknown(&message.id, &format!("port gone during AT+CMGS: {e}"))
                    .await;
                self.check(&e).await
            }
            AtError::Timeout { .. } => {
                // The modem may have sent it: never resend silently.
                self.unknown(&message.id, &format!("no answer to AT+CMGS: {e}"))
                    .await;
                self.check(&e).await
            }
            _ => {
                // A final result, even an error, is an answer; the part did
                // not go out, so it does not count against the daily limit.
                self.answered().await;
                self.count_part(-1);
                let modem = self.id().to_string();
                // Only a message no modem accepted any part of may move.
                let moves = resting && message.part_status.iter().all(|p| p.mr.is_none());
                let transient = matches!(e, AtError::NoPrompt { .. }) || e.is_transient();
                let (code, text) = error_code(&e);
                self.actor
                    .status
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                let engine = self.actor.engine.clone();
                let _ = self
                    .actor
                    .store
                    .update(&message.id, |m| {
                        if let Some(p) = m.part_status.iter_mut().find(|p| p.seq == seq) {
                            p.status = PartStatus::Pending;
                        }
                        let error = ErrorInfo {
                            code: code.clone(),
                            text: text.clone(),
                        };
                        if transient && moves {
                            // Blamed on the modem, which now rests: another
                            // modem takes it at once, no attempt spent.
                            m.not_before = Some(now);
                            let step = m.transition(now, MessageStatus::Queued);
                            step.error = Some(error);
                            step.note = Some(format!(
                                "modem {modem} rests after failed sends; another modem takes it"
                            ));
                            return true;
                        }
                        m.attempts += 1;
                        if transient && m.attempts < engine.max_attempts {
                            let delay =
                                engine.retry_base * 2u32.saturating_pow(m.attempts - 1).min(64);
                            m.not_before =
                                Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
                            let note = format!(
                                "transient failure, retry {} of {}",
                                m.attempts,
                                engine.max_attempts - 1
                            );
                            let step = m.transition(now, MessageStatus::Queued);
                            step.error = Some(error);
                            step.note = Some(note);
                        } else {
                            m.error = Some(error.clone());
                            m.transition(now, MessageStatus::Failed).error = Some(error);
                        }
                        true
                    })
                    .await;
                if !transient {
                    self.actor.status.send_modify(|s| s.counters.failed += 1);
                }
                Ok(())
            }
        }
    }

    async fn fail(&mut self, id: &str, code: &str, text: &str) {
        let now = Utc::now();
        self.actor.status.send_modify(|s| s.counters.failed += 1);
        let _ = self
            .actor
            .store
            .update(id, |m| {
                // Someone else may have settled it meanwhile (a STOP cancels
                // waiting messages on its own).
                if !(m.status.is_waiting() || m.status == MessageStatus::Sending) {
                    return false;
                }
                m.settle_with_error(now, MessageStatus::Failed, code, text);
                true
            })
            .await;
    }

    async fn unknown(&mut self, id: &str, note: &str) {
        let now = Utc::now();
        let _ = self
            .actor
            .store
            .update(id, |m| {
                m.transition(now, MessageStatus::Unknown).note = Some(note.to_string());
                true
            })
            .await;
    }
}

/// A session as the probe's link: each command through `Session::send`, so
/// a timeout counts as any other; once one ends the session, the probe's
/// remaining commands fail at once and the session ends after it.
struct SessionLink<'s, 'a> {
    session: &'s mut Session<'a>,
    end: Option<End>,
}

impl AtLink for SessionLink<'_, '_> {
    async fn send<C: crate::at::AtCommand>(&mut self, cmd: &C) -> Result<C::Response, AtError> {
        if self.end.is_some() {
            return Err(AtError::Closed);
        }
        match self.session.send(cmd).await {
            Ok(result) => result,
            Err(end) => {
                self.end = Some(end);
                Err(AtError::Closed)
            }
        }
    }
}

/// A stable code and words for a send error.
fn error_code(e: &AtError) -> (String, String) {
    match e {
        AtError::Cms(cms) => (
            cms.code()
                .map_or("cms_error".into(), |n| format!("cms_{n}")),
            cms.meaning().to_string(),
        ),
        AtError::Cme(cme) => (
            cme.code()
                .map_or("cme_error".into(), |n| format!("cme_{n}")),
            cme.meaning().to_string(),
        ),
        AtError::NoPrompt { .. } => ("no_prompt".into(), e.to_string()),
        AtError::GaveWay { .. } => ("gave_way".into(), e.to_string()),
        AtError::Withheld { .. } => ("withheld".into(), e.to_string()),
        other => ("modem_error".into(), other.to_string()),
    }
}

/// Settle the part a status report is about (27.005 §3.4.1: `+CDS` or a
/// stored report), in the store.
async fn apply_status_report(store: &Store, modem: &str, report: &pdu::SmsStatusReport) {
    let found = store.find_by_reference(modem, report.message_reference, &report.recipient.value);
    let Ok(Some((message, seq))) = found else {
        return;
    };
    let status = report.status;
    let now = Utc::now();
    let _ = store
        .update(&message.id, |m| {
            let Some(part) = m.part_status.iter_mut().find(|p| p.seq == seq) else {
                return false;
            };
            if part.report_status == Some(status.0) && part.status != PartStatus::Sent {
                return false;
            }
            part.report_status = Some(status.0);
            match status.class() {
                StatusClass::Delivered => part.status = PartStatus::Delivered,
                StatusClass::Failed => part.status = PartStatus::Failed,
                StatusClass::Pending => {}
            }
            if m.status.is_final() && m.status != MessageStatus::Expired {
                return true;
            }
            let meaning = status.meaning().unwrap_or("reserved status").to_string();
            if m.part_status.iter().any(|p| p.status == PartStatus::Failed) {
                m.error = Some(ErrorInfo {
                    code: format!("status_{:02x}", status.0),
                    text: meaning,
                });
                let parts = m.part_status.clone();
                m.transition(now, MessageStatus::Failed).parts = parts;
            } else if m
                .part_status
                .iter()
                .all(|p| p.status == PartStatus::Delivered)
            {
                m.report_deadline = None;
                let parts = m.part_status.clone();
                m.transition(now, MessageStatus::Delivered).parts = parts;
            }
            true
        })
        .await;
}
