//! Opening a modem's AT port with tokio-serial: 8N1, no flow control (USB
//! modems ignore the line settings; real UARTs such as a SIM800 on a Pi's GPIO
//! need them). Also opens a pty slave, which is how the simulator and the
//! tests exercise this exact code path.
//!
//! `SerialStream` implements both `std::io::Read` and tokio's `AsyncRead`:
//! callers must use the tokio traits explicitly (`AsyncReadExt::read(&mut
//! port, ..)`), as [`super::transport`] does.

use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::error::AtError;

/// Opens `path` at `baud`, 8N1, no flow control, exclusive on Unix.
pub fn open_serial(path: &str, baud: u32) -> Result<SerialStream, AtError> {
    tokio_serial::new(path, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .open_native_async()
        .map_err(|e| match e.kind() {
            // A path that vanished (USB unplugged between udev and us) is the
            // same condition as losing it mid-session.
            tokio_serial::ErrorKind::NoDevice => AtError::DeviceGone {
                reason: format!("{path}: {e}"),
            },
            _ => AtError::Open {
                path: path.to_string(),
                reason: e.to_string(),
            },
        })
}
