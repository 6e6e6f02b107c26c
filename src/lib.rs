//! smsgate: an on-premise two-way SMS gateway.
//!
//! # Layout
//!
//! The crate is a library with a thin `smsgate` binary (`src/main.rs`) on top.
//! Data flows through these modules, lowest layer first:
//!
//! - [`pdu`]: 3GPP TS 23.040 / 23.038 codec. Pure functions over bytes: SMS-DELIVER,
//!   SMS-SUBMIT and SMS-STATUS-REPORT, addresses, timestamps, the GSM 7-bit alphabets
//!   (default, extension and national language tables), UCS-2, user data headers and
//!   segmentation of long texts into concatenated parts. No I/O.
//! - [`at`]: 3GPP TS 27.005 / 27.007 wire protocol. Bytes are digested into echo,
//!   responses, `> ` prompts and URCs; nom parsers type the lines; typed commands
//!   carry their own timeouts; a transport task keeps one command in flight and
//!   feeds URCs to a channel. Works over any tokio byte stream (serial port, pty).
//! - [`sim`]: a virtual GSM modem on a pty (personalities, network model,
//!   faults, control API) for tests, the demo and the benchmarks.
//! - [`store`]: sled trees behind a narrow interface: messages, threads, the
//!   outbox, inbound parts and dedupe keys, message references, sticky senders,
//!   events, the consent ledger. Every change is one transaction; writes return
//!   once flushed (group commit).
//! - [`modem`]: one actor per modem (init, receive by URC, send, status
//!   reports, health, recovery), the dispatcher (sticky sender, least loaded),
//!   expiry, the technician's probe.
//! - [`policy`]: consent keywords and replies, the check before every send,
//!   quiet hours, rate limits.
//! - [`phone`]: E.164 normalisation with a default country.
//! - [`compose`]: the one way an outbound text becomes a message and its
//!   parts (alphabet, segments, concatenation reference), for every send path.
//! - [`wire`]: what the API and the webhooks serve, apart from the stored
//!   records (internal fields stay internal); the OpenAPI schemas derive from it.
//! - [`api`]: the axum router: bearer scopes, problem+json, OpenAPI.
//! - [`web`]: the web inbox (people sign in, read and answer threads),
//!   served beside the API; its pages call the API's own handlers.
//! - [`webhook`]: durable, signed (Standard Webhooks), retried delivery of
//!   store events to LAN receivers, in order per message; reply by response;
//!   the event log by pull and SSE is in [`api`].
//! - [`config`], [`daemon`], [`demo`]: settings, wiring and shutdown, the demo.
//! - [`cli`]: the command line; the one place where errors become an exit code.
//! - [`udev_rules`]: a reader of udev(7) rules files, to check the shipped
//!   `udev/60-smsgate.rules`.
//!
//! Modems are driven in PDU mode only (see ARCHITECTURE.md): every body and number
//! reaches the modem as hex produced by [`pdu`].

pub mod api;
pub mod at;
pub mod cli;
pub mod compose;
pub mod config;
pub mod conversation;
pub mod daemon;
pub mod demo;
pub mod duration;
pub mod fleet;
pub mod liveness;
pub mod memory;
pub mod modem;
pub mod notify;
pub mod pdu;
pub mod phone;
pub mod policy;
pub mod sim;
pub mod store;
pub mod udev_rules;
pub mod web;
pub mod webhook;
pub mod wire;
