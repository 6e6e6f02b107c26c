//! The AT command layer: 3GPP TS 27.005 (SMS) and 27.007 (general) over a
//! serial byte stream, PDU mode only.
//!
//! # Tour
//!
//! Bytes flow upwards through three stages, as in mini-redis's bytes -> frame
//! -> command split:
//!
//! - [`digest`]: bytes -> [`Frame`]s. Cuts the stream into echo, information
//!   lines, final results, `> ` prompts and URCs, once, at the byte layer
//!   (atat's digester). Incomplete input is normal; garbage is skipped.
//! - [`urc`]: which lines are URCs, and the typed [`Urc`] enum.
//! - [`parse`]: nom parsers for information lines (`+CMGL`, `+CSQ`, ...):
//!   pure functions, PDUs returned as hex for the `pdu` module to decode.
//! - [`command`]: typed commands ([`AtCommand`]): how each is written, its
//!   timeout, how its response parses.
//! - [`error`]: [`AtError`], and `+CME ERROR`/`+CMS ERROR` as enums with
//!   meanings and a transient/permanent class for retries.
//! - [`transport`]: the task that owns a port: one command in flight, URCs on
//!   a channel always, ESC and resync after timeouts, "device gone" apart.
//! - [`serial`]: [`open_serial`], tokio-serial 8N1.
//!
//! The modem engine calls [`spawn`] on a port from [`open_serial`], sends
//! typed commands through the [`AtClient`], and reads [`Urc`]s from the
//! receiver. The simulator and the fixture tests use [`Digester`] and the
//! parsers directly.

pub mod command;
pub mod digest;
pub mod error;
pub mod parse;
pub mod serial;
pub mod transport;
pub mod urc;

pub use command::AtCommand;
pub use digest::{Digester, FinalResult, Frame, Response};
pub use error::{AtError, CmeError, CmsError};
pub use serial::open_serial;
pub use transport::{spawn, AtClient, AtLink, TransportConfig};
pub use urc::Urc;
