//! `cargo +nightly fuzz run pdu_decode`: the PDU decoder on arbitrary input
//! gives a value or an error, never a crash (STYLE.md habit 4); a decoded
//! PDU re-encodes without a crash, and what it re-encodes to decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgate::pdu;

fn check(decoded: Result<pdu::Pdu, pdu::PduError>) {
    let Ok(decoded) = decoded else { return };
    // Re-encoding may refuse (an error is a value too), but must not panic;
    // what it writes must read back as the same message.
    if let Ok(bytes) = decoded.encode() {
        assert_eq!(pdu::decode(&bytes, true).as_ref(), Ok(&decoded));
    }
}

fuzz_target!(|data: &[u8]| {
    check(pdu::decode(data, true));
    check(pdu::decode(data, false));
    if let Ok(text) = std::str::from_utf8(data) {
        check(pdu::decode_hex(text, true));
        check(pdu::decode_hex(text, false));
    }
});
