//! The transport: one task per port that owns the byte stream, runs the
//! [`Digester`], forwards URCs to a channel at all times, and executes one
//! command at a time for any number of [`AtClient`] handles.
//!
//! Why a task rather than a struct with `async fn send`: URCs (`+CMTI`) must
//! reach the engine even when no command is running, and a reader that only
//! runs inside `send` would leave them in the kernel buffer. The task
//! `select!`s over the port and the request queue, so it reads whenever bytes
//! arrive. Its timeouts use `tokio::time`, so tests run on a paused clock.
//!
//! Failure handling: a command that times out is abandoned (the digester
//! forgets it, so its late answer becomes a stray), a pending `> ` prompt is
//! closed with ESC (27.005 §3.5.1), and the link is resynchronised by sending
//! `AT` until `OK` (bounded). EOF or EIO/ENXIO/ENODEV/broken pipe end the task
//! with [`AtError::DeviceGone`], which the engine treats as "reopen", never as
//! a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use super::command::{AtCommand, CTRL_Z, ESC, PROMPT_TIMEOUT};
use super::digest::{Digester, Frame, Response};
use super::error::AtError;
use super::urc::Urc;

/// Knobs of the transport task.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// URCs buffered for the engine. When it is full, URCs are dropped and
    /// counted ([`AtClient::dropped_urcs`]) rather than blocking the port: a
    /// blocked port would stall the command the engine itself is waiting for.
    /// Lost `+CMTI`s are recovered by the engine's periodic `AT+CMGL` sweep.
    pub urc_capacity: usize,
    /// `AT` probes per resync.
    pub resync_attempts: u32,
    /// How long each probe waits for `OK`.
    pub resync_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            urc_capacity: 256,
            resync_attempts: 3,
            resync_timeout: Duration::from_secs(1),
        }
    }
}

/// One unit of work for the task.
struct Request {
    /// `AT...\r` as written.
    line: Vec<u8>,
    /// Bytes for after the `> ` prompt, Ctrl-Z included.
    payload: Option<Vec<u8>>,
    /// The command's own timeout.
    timeout: Duration,
    /// For a two-phase command: give way (ESC, [`AtError::GaveWay`]) when
    /// an SMS was announced after the caller saw this many announcements.
    give_way_after: Option<u64>,
    /// For a two-phase command: the payload waits at the prompt for this
    /// to say `true`; `false`, a dropped sender or no word within
    /// [`PROMPT_TIMEOUT`] withholds it (ESC, [`AtError::Withheld`]).
    go: Option<oneshot::Receiver<bool>>,
    /// How long the payload waited at the prompt for `go` (set as it runs).
    held: Duration,
    /// Where the raw response goes.
    reply: oneshot::Sender<Result<Exchanged, AtError>>,
}

/// A command's raw response, and how long its payload waited at the `> `
/// prompt for the caller's word (zero without one): time the modem did not
/// take, kept out of its latency.
struct Exchanged {
    response: Response,
    held: Duration,
}

/// A handle to the transport task; cheap to clone. Dropping every handle
/// stops the task.
#[derive(Clone)]
pub struct AtClient {
    /// Queue of requests; the task runs them in order, one in flight.
    requests: mpsc::Sender<Request>,
    /// URCs lost to a full channel.
    dropped_urcs: Arc<AtomicU64>,
    /// Inbound SMS announced so far (`+CMTI`, `+CMT`), counted as forwarded.
    announced: Arc<AtomicU64>,
    /// Why the task stopped, once it has.
    gone: Arc<Mutex<Option<String>>>,
    /// Turns true once the task has ended and dropped the port: a reopen of
    /// the same device must wait for it (an exclusive serial port is still
    /// locked while the old handle lives).
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for AtClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtClient")
            .field("dropped_urcs", &self.dropped_urcs())
            .finish()
    }
}

/// Starts the transport task on `port` (a `SerialStream` in production, a
/// `tokio::io::duplex` end in tests). Returns the command handle and the URC
/// channel. Must be called inside a tokio runtime.
pub fn spawn<P>(port: P, config: TransportConfig) -> (AtClient, mpsc::Receiver<Urc>)
where
    P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (req_tx, req_rx) = mpsc::channel(16);
    let (urc_tx, urc_rx) = mpsc::channel(config.urc_capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let announced = Arc::new(AtomicU64::new(0));
    let gone = Arc::new(Mutex::new(None));
    let task = Task {
        port,
        digester: Digester::new(),
        buf: Vec::with_capacity(1024),
        urcs: urc_tx,
        dropped: dropped.clone(),
        announced: announced.clone(),
        needs_resync: false,
        config,
    };
    let gone_slot = gone.clone();
    let (closed_tx, closed) = watch::channel(false);
    tokio::spawn(async move {
        // `run` consumes the task: the port is dropped (closed) when it returns.
        if let Err(reason) = task.run(req_rx).await {
            if let Ok(mut slot) = gone_slot.lock() {
                *slot = Some(reason);
            }
        }
        closed_tx.send_replace(true);
    });
    (
        AtClient {
            requests: req_tx,
            dropped_urcs: dropped,
            announced,
            gone,
            closed,
        },
        urc_rx,
    )
}

/// What typed commands are sent through: a transport of its own
/// ([`AtClient`]), or a modem actor's session, which also decides what a
/// command's error means for the modem (the technician's probe runs over
/// either).
pub trait AtLink {
    /// Runs `cmd` as [`AtClient::send`] does.
    fn send<C: AtCommand>(
        &mut self,
        cmd: &C,
    ) -> impl std::future::Future<Output = Result<C::Response, AtError>>;
}

impl AtLink for AtClient {
    fn send<C: AtCommand>(
        &mut self,
        cmd: &C,
    ) -> impl std::future::Future<Output = Result<C::Response, AtError>> {
        AtClient::send(self, cmd)
    }
}

impl AtClient {
    /// Runs a typed command: writes it, waits for its final result within
    /// `C::TIMEOUT` (and the prompt, for two-phase commands), and parses the
    /// information lines.
    pub async fn send<C: AtCommand>(&self, cmd: &C) -> Result<C::Response, AtError> {
        self.typed(cmd, None, None)
            .await
            .map(|(response, _)| response)
    }

    /// As [`AtClient::send`], but a two-phase command (`AT+CMGS`) whose
    /// modem announces an SMS after the caller had seen `seen`
    /// announcements ([`AtClient::announced`]) and before the `> ` prompt
    /// is abandoned with ESC instead of its PDU: [`AtError::GaveWay`],
    /// nothing sent. The caller reads the SMS and sends again, so an answer
    /// from a customer does not wait behind a send (a modem announces
    /// between commands only).
    pub async fn send_unless_announced<C: AtCommand>(
        &self,
        cmd: &C,
        seen: u64,
    ) -> Result<C::Response, AtError> {
        self.typed(cmd, Some(seen), None)
            .await
            .map(|(response, _)| response)
    }

    /// As [`AtClient::send_unless_announced`] (or [`AtClient::send`] without
    /// `seen`), but the payload waits at the `> ` prompt until `go` says
    /// `true`: the caller prepares what must be done before anything
    /// reaches the network (the "sending" mark) while the command line and
    /// its prompt cross the wire. `false`, a dropped sender, a caller that
    /// gave up, or no word within [`PROMPT_TIMEOUT`] end it with ESC
    /// instead: [`AtError::Withheld`], nothing sent. With the response,
    /// how long the payload waited at the prompt for the word.
    pub async fn send_when<C: AtCommand>(
        &self,
        cmd: &C,
        seen: Option<u64>,
        go: oneshot::Receiver<bool>,
    ) -> Result<(C::Response, Duration), AtError> {
        self.typed(cmd, seen, Some(go)).await
    }

    /// A typed command through [`AtClient::exchange`], its response parsed
    /// (with how long it was held at the prompt).
    async fn typed<C: AtCommand>(
        &self,
        cmd: &C,
        give_way_after: Option<u64>,
        go: Option<oneshot::Receiver<bool>>,
    ) -> Result<(C::Response, Duration), AtError> {
        let mut line = Vec::new();
        cmd.write(&mut line);
        let Exchanged { response, held } = self
            .exchange(line, cmd.payload(), C::TIMEOUT, give_way_after, go)
            .await?;
        let lines = response.into_lines()?;
        Ok((cmd.parse(&lines)?, held))
    }

    /// How many inbound SMS the modem has announced (`+CMTI`, `+CMT`) on
    /// this transport: read before draining the URC channel, then given to
    /// [`AtClient::send_unless_announced`].
    pub fn announced(&self) -> u64 {
        self.announced.load(Ordering::Acquire)
    }

    /// Runs a raw command line (no `\r`) and returns the response unparsed,
    /// whatever its final result: for `smsgate modem probe` and vendor
    /// commands that have no type yet.
    pub async fn raw(&self, line: &str, timeout: Duration) -> Result<Response, AtError> {
        let mut bytes = line.trim_end().as_bytes().to_vec();
        bytes.push(b'\r');
        self.exchange(bytes, None, timeout, None, None)
            .await
            .map(|exchanged| exchanged.response)
    }

    /// Sends `AT` until `OK` (bounded by [`TransportConfig::resync_attempts`]).
    pub async fn resync(&self) -> Result<(), AtError> {
        self.send(&super::command::At).await
    }

    /// Ends the session with the port: no new command is taken once every
    /// handle is dropped; this waits, at most `limit`, until the task has
    /// ended and closed the port (`false`: still open after `limit`, e.g. a
    /// command of another handle still in flight). Consumes this handle so
    /// that it does not keep the task alive itself.
    pub async fn close(self, limit: Duration) -> bool {
        let AtClient {
            requests,
            mut closed,
            ..
        } = self;
        drop(requests);
        let waited = tokio::time::timeout(limit, closed.wait_for(|c| *c)).await;
        waited.is_ok()
    }

    /// How many URCs were dropped because the channel was full.
    pub fn dropped_urcs(&self) -> u64 {
        self.dropped_urcs.load(Ordering::Relaxed)
    }

    async fn exchange(
        &self,
        line: Vec<u8>,
        payload: Option<Vec<u8>>,
        timeout: Duration,
        give_way_after: Option<u64>,
        go: Option<oneshot::Receiver<bool>>,
    ) -> Result<Exchanged, AtError> {
        let (reply, rx) = oneshot::channel();
        let request = Request {
            line,
            payload,
            timeout,
            give_way_after,
            go,
            held: Duration::ZERO,
            reply,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> AtError {
        match self.gone.lock().ok().and_then(|g| g.clone()) {
            Some(reason) => AtError::DeviceGone { reason },
            None => AtError::Closed,
        }
    }
}

/// Whether an I/O error means the device went away (USB unplugged, pty
/// closed) rather than a passing problem. EIO (5), ENXIO (6) and ENODEV (19)
/// have these values on Linux and the BSDs.
pub fn is_device_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | BrokenPipe | NotConnected | ConnectionReset | ConnectionAborted
    ) || matches!(e.raw_os_error(), Some(5 | 6 | 19))
}

/// What waiting for the modem produced.
enum Waited {
    Prompt,
    Response(Response),
    Timeout,
}

/// The task's state: the port and everything derived from its bytes.
struct Task<P> {
    /// The serial port (or a test double).
    port: P,
    /// Cuts bytes into frames; knows the command in flight.
    digester: Digester,
    /// Bytes read but not yet consumed by the digester.
    buf: Vec<u8>,
    /// Where URCs go.
    urcs: mpsc::Sender<Urc>,
    /// Count of URCs lost to a full channel (shared with the clients).
    dropped: Arc<AtomicU64>,
    /// Count of inbound SMS announced (shared with the clients).
    announced: Arc<AtomicU64>,
    /// Set after garbage (an overflowing line) or a failed resync: the next
    /// command resyncs first.
    needs_resync: bool,
    /// Knobs.
    config: TransportConfig,
}

/// Why the task stopped: `Err(reason)` when the device is gone.
type Stop = Result<(), String>;

impl<P> Task<P>
where
    P: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(mut self, mut requests: mpsc::Receiver<Request>) -> Stop {
        loop {
            // A read may have carried a command's final result and a URC
            // behind it (`OK` then `+CMTI`); `wait` returned at the result, so
            // forward what is still buffered before sleeping on the port, or
            // the URC would wait for the next byte or command.
            let _ = self.pump();
            let mut chunk = [0u8; 512];
            tokio::select! {
                request = requests.recv() => {
                    let Some(mut request) = request else { return Ok(()) };
                    let result = self.execute(&mut request).await.map(|response| Exchanged {
                        response,
                        held: request.held,
                    });
                    let gone = match &result {
                        Err(AtError::DeviceGone { reason }) => Some(reason.clone()),
                        _ => None,
                    };
                    // The caller may have given up (dropped its future): fine.
                    let _ = request.reply.send(result);
                    if let Some(reason) = gone {
                        return Err(reason);
                    }
                }
                read = AsyncReadExt::read(&mut self.port, &mut chunk) => {
                    match read {
                        Ok(0) => return Err("end of file on the port".into()),
                        Ok(n) => {
                            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                            // Nothing is in flight, so nothing is awaited.
                            let _ = self.pump();
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }

    async fn execute(&mut self, request: &mut Request) -> Result<Response, AtError> {
        self.settle().await?;
        if self.needs_resync {
            self.resync().await?;
        }
        let command = String::from_utf8_lossy(&request.line)
            .trim_end()
            .to_string();
        self.digester.begin(&command);
        self.write(&request.line).await?;

        if let Some(payload) = &request.payload {
            match self.wait(PROMPT_TIMEOUT.min(request.timeout)).await? {
                Waited::Prompt => {}
                // An error instead of a prompt (`+CMS ERROR: 304`).
                Waited::Response(r) => return Ok(r),
                Waited::Timeout => {
                    // The prompt may still come: ESC makes sure the modem
                    // does not take our next command as PDU text.
                    self.write(&[ESC]).await?;
                    self.abandon().await?;
                    return Err(AtError::NoPrompt { command });
                }
            }
            let announced = self.announced.load(Ordering::Acquire);
            if request.give_way_after.is_some_and(|seen| announced > seen) {
                // 27.005 §3.5.1: ESC at the prompt sends nothing.
                self.write(&[ESC]).await?;
                self.abandon().await?;
                return Err(AtError::GaveWay { command });
            }
            if let Some(go) = request.go.take() {
                let prompted = tokio::time::Instant::now();
                let go = tokio::time::timeout(PROMPT_TIMEOUT, go).await;
                request.held = prompted.elapsed();
                if !matches!(go, Ok(Ok(true))) || request.reply.is_closed() {
                    // 27.005 §3.5.1: ESC at the prompt sends nothing.
                    self.write(&[ESC]).await?;
                    self.abandon().await?;
                    return Err(AtError::Withheld { command });
                }
            }
            let echo = String::from_utf8_lossy(payload)
                .trim_end_matches(char::from(CTRL_Z))
                .to_string();
            self.digester.begin_payload(&echo);
            self.write(payload).await?;
        }

        match self.wait(request.timeout).await? {
            Waited::Response(r) => Ok(r),
            Waited::Prompt | Waited::Timeout => {
                if request.payload.is_some() {
                    // 27.005 §3.5.1: ESC leaves a `> ` prompt that is still
                    // waiting (a lost Ctrl-Z, a wrong length) without sending.
                    self.write(&[ESC]).await?;
                }
                self.abandon().await?;
                Err(AtError::Timeout {
                    command,
                    timeout: request.timeout,
                })
            }
        }
    }

    /// Digests whatever already arrived, with no command in flight, so a late
    /// answer to an abandoned command (an extra `OK`) becomes a stray instead
    /// of the next command's result. Reads only what is ready now.
    async fn settle(&mut self) -> Result<(), AtError> {
        self.digester.cancel();
        loop {
            let mut chunk = [0u8; 512];
            match self.read_ready(&mut chunk) {
                None => break,
                Some(Ok(0)) => {
                    return Err(AtError::DeviceGone {
                        reason: "end of file on the port".into(),
                    })
                }
                Some(Ok(n)) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Err(io_error(e)),
            }
        }
        let _ = self.pump();
        Ok(())
    }

    /// A read of what the port holds now, without waiting: `None` when
    /// nothing is there. One poll (outside the task's cooperative budget,
    /// so bytes that are there are always seen) instead of a read under a
    /// zero timeout: tokio's timer rounds that up to its next millisecond
    /// tick, which cost every command 2.4 ms on average with 64 modems
    /// sending (BENCHMARKS.md, the pool).
    fn read_ready(&mut self, chunk: &mut [u8]) -> Option<std::io::Result<usize>> {
        let read = tokio::task::unconstrained(AsyncReadExt::read(&mut self.port, chunk));
        let mut read = std::pin::pin!(read);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(read.as_mut(), &mut cx) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        }
    }

    /// Forgets the command in flight and resyncs.
    async fn abandon(&mut self) -> Result<(), AtError> {
        self.digester.cancel();
        self.resync().await
    }

    /// `AT` until `OK`, bounded. A failure is not an error here (the caller
    /// reports its own timeout); the next command tries again.
    async fn resync(&mut self) -> Result<(), AtError> {
        self.needs_resync = true;
        for _ in 0..self.config.resync_attempts {
            self.digester.begin("AT");
            self.write(b"AT\r").await?;
            match self.wait(self.config.resync_timeout).await? {
                Waited::Response(_) => {
                    // Any final result proves the modem parses our lines again.
                    self.needs_resync = false;
                    return Ok(());
                }
                Waited::Prompt | Waited::Timeout => {
                    self.digester.cancel();
                }
            }
        }
        Ok(())
    }

    /// Waits for the prompt or the final result of the command in flight,
    /// forwarding URCs meanwhile.
    async fn wait(&mut self, timeout: Duration) -> Result<Waited, AtError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(w) = self.pump() {
                return Ok(w);
            }
            let mut chunk = [0u8; 512];
            tokio::select! {
                read = AsyncReadExt::read(&mut self.port, &mut chunk) => match read {
                    Ok(0) => {
                        return Err(AtError::DeviceGone { reason: "end of file on the port".into() })
                    }
                    Ok(n) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error(e)),
                },
                _ = sleep_until(deadline) => return Ok(Waited::Timeout),
            }
        }
    }

    /// Digests buffered bytes: URCs go out, the first prompt or response is
    /// returned, the rest stays buffered.
    fn pump(&mut self) -> Option<Waited> {
        loop {
            let (frame, used) = self.digester.digest(&self.buf);
            let used = used.min(self.buf.len());
            self.buf.drain(..used);
            match frame {
                None if used == 0 => return None,
                None => {}
                Some(Frame::Urc(urc)) => self.forward(urc),
                Some(Frame::Response(r)) => return Some(Waited::Response(r)),
                Some(Frame::Prompt) => return Some(Waited::Prompt),
                Some(Frame::Overflow(_)) => self.needs_resync = true,
                Some(Frame::Echo(_)) | Some(Frame::Stray(_)) => {}
            }
        }
    }

    fn forward(&self, urc: Urc) {
        let sms = matches!(urc, Urc::NewMessage { .. } | Urc::Deliver { .. });
        if let Err(mpsc::error::TrySendError::Full(_)) = self.urcs.try_send(urc) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Counted once in the channel: a client that reads the count, then
        // drains the channel, has seen every SMS counted.
        if sms {
            self.announced.fetch_add(1, Ordering::AcqRel);
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        let result = async {
            AsyncWriteExt::write_all(&mut self.port, bytes).await?;
            AsyncWriteExt::flush(&mut self.port).await
        }
        .await;
        result.map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> AtError {
    if is_device_gone(&e) {
        AtError::DeviceGone {
            reason: e.to_string(),
        }
    } else {
        AtError::Io(e)
    }
}
