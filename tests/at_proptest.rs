//! Property tests: the digest and every parser, given arbitrary bytes or
//! strings, return a value or an error and never panic; and the digest gives
//! the same frames however the input is chunked.

use proptest::prelude::*;
use smsgate::at::command::{AtCommand, Cgmi, Cmgl, Cnum, CpmsQuery, Csms, Cusd};
use smsgate::at::parse::{self, Domain, MessageStatus};
use smsgate::at::{CmeError, CmsError, Digester, Frame, Urc};

fn digest_all(command: Option<&str>, input: &[u8], chunk: usize) -> Vec<Frame> {
    let mut d = Digester::new();
    if let Some(c) = command {
        d.begin(c);
    }
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let (frame, used) = d.digest(&buf);
            assert!(used <= buf.len());
            buf.drain(..used);
            match frame {
                Some(f) => frames.push(f),
                None if used == 0 => break,
                None => {}
            }
        }
    }
    frames
}

/// Bytes that look like modem output often enough to reach deep branches.
fn modemish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"OK".to_vec()),
        Just(b"ERROR".to_vec()),
        Just(b"+CMS ERROR: ".to_vec()),
        Just(b"+CME ERROR: ".to_vec()),
        Just(b"+CMT: ,".to_vec()),
        Just(b"+CDS: ".to_vec()),
        Just(b"+CMTI: \"SM\",".to_vec()),
        Just(b"+CMGL: ".to_vec()),
        Just(b"+CMGR: ".to_vec()),
        Just(b"+CREG: ".to_vec()),
        Just(b"> ".to_vec()),
        Just(b"AT+CMGS=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(vec![0u8, 0xff, 0x1a, 0x1b]),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[0-9A-F]{0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn digest_never_panics_on_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = digest_all(None, &input, usize::MAX);
        let _ = digest_all(Some("AT+CMGS=20"), &input, 7);
    }

    #[test]
    fn digest_is_chunking_independent(
        input in modemish(),
        chunk in 1usize..16,
        cmd in prop_oneof![Just(None), Just(Some("AT+CMGL=4")), Just(Some("AT+CMGS=13")), Just(Some("AT+CREG?"))],
    ) {
        prop_assert_eq!(digest_all(cmd, &input, usize::MAX), digest_all(cmd, &input, chunk));
    }

    #[test]
    fn parsers_never_panic(line in ".{0,200}", line2 in ".{0,80}") {
        let lines = vec![line.clone(), line2.clone()];
        let _ = parse::fields(&line);
        let _ = parse::cmgr(&lines);
        let _ = parse::cmgl(&lines);
        let _ = parse::cmgs(&lines);
        let _ = parse::cpms(&lines);
        let _ = parse::csq(&line);
        for d in [Domain::Cs, Domain::Gprs, Domain::Eps] {
            let _ = parse::registration(&line, d, true);
            let _ = parse::registration(&line, d, false);
        }
        let _ = parse::cops(&line);
        let _ = parse::cpin(&line);
        let _ = parse::cnum(&lines);
        let _ = parse::csca(&line);
        let _ = parse::imei(&lines);
        let _ = parse::imsi(&lines);
        let _ = parse::iccid(&lines);
        let _ = parse::storage_index(&line, "+CMTI:");
        let _ = parse::cmt_header(&line);
        let _ = parse::cds_header(&line);
        let _ = parse::clip(&line);
        let _ = parse::cusd(&line);
        let _ = parse::hex_bytes(&line);
        let _ = Urc::parse(&line, Some(&line2));
        let _ = Urc::parse(&line, None);
        let _ = CmsError::parse(&line);
        let _ = CmeError::parse(&line);
        let _ = Cmgl(MessageStatus::All).parse(&lines);
        let _ = CpmsQuery.parse(&lines);
        let _ = Cnum.parse(&lines);
        let _ = Csms(1).parse(&lines);
        let _ = Cgmi.parse(&lines);
        if let Ok(c) = Cusd::new(&line) { let _ = c.parse(&lines); }
    }

    #[test]
    fn prefixed_lines_never_panic(
        prefix in prop_oneof![
            Just("+CMGR: "), Just("+CMGL: "), Just("+CPMS: "), Just("+CSQ: "), Just("+CREG: "),
            Just("+CEREG: "), Just("+COPS: "), Just("+CNUM: "), Just("+CSCA: "), Just("+CMTI: "),
            Just("+CMT: "), Just("+CDS: "), Just("+CLIP: "), Just("+CUSD: "), Just("+QCCID: "), Just("^ICCID: "),
        ],
        rest in "[0-9A-F\",() a-z+-]{0,60}",
        pdu in "[0-9A-Fa-f\"]{0,40}",
    ) {
        let line = format!("{prefix}{rest}");
        let lines = vec![line.clone(), pdu.clone()];
        let _ = parse::cmgr(&lines).map(|m| m.map(|m| m.verified_pdu()));
        let _ = parse::cmgl(&lines);
        let _ = parse::cpms(&lines);
        let _ = parse::csq(&line);
        let _ = parse::registration(&line, Domain::Eps, false);
        let _ = parse::cops(&line);
        let _ = parse::cnum(&lines);
        let _ = parse::iccid(&lines);
        let _ = Urc::parse(&line, Some(&pdu));
        let _ = digest_all(None, format!("{line}\r\n{pdu}\r\n").as_bytes(), 3);
    }
}
