//! Modems: identity, the technician's probe, and (with the gateway) one actor
//! per modem.

pub mod identity;
pub mod probe;
