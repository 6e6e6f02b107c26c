//! Fuzzes the AT digest and the parsers it feeds: arbitrary modem bytes must
//! give frames or nothing, never a panic, whatever command is in flight and
//! however the bytes are chunked. Run: `cargo +nightly fuzz run at_digest`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgate::at::parse;
use smsgate::at::{Digester, Frame};

const COMMANDS: &[&str] = &["", "AT+CMGL=4", "AT+CMGR=1", "AT+CMGS=20", "AT+CREG?", "ATD123;"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[usize::from(selector) % COMMANDS.len()];
    let chunk = usize::from(selector >> 4) + 1;

    let mut digester = Digester::new();
    if !command.is_empty() {
        digester.begin(command);
    }
    let mut buf = Vec::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let (frame, used) = digester.digest(&buf);
            assert!(used <= buf.len());
            buf.drain(..used);
            match frame {
                Some(Frame::Response(r)) => {
                    let _ = parse::cmgr(&r.lines).map(|m| m.map(|m| m.verified_pdu()));
                    let _ = parse::cmgl(&r.lines);
                    let _ = parse::cpms(&r.lines);
                    let _ = parse::iccid(&r.lines);
                    if let Some(line) = r.lines.first() {
                        let _ = parse::csq(line);
                        let _ = parse::registration(line, parse::Domain::Cs, true);
                        let _ = parse::cops(line);
                    }
                }
                Some(_) => {}
                None if used == 0 => break,
                None => {}
            }
        }
    }
});
