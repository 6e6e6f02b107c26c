//! Unsolicited result codes: which lines are URCs (decided by prefix, as atat
//! does), and the typed [`Urc`] enum the modem engine receives on its channel.
//!
//! A URC prefix is only a URC when the command in flight is not the one that
//! asks for it (`+CREG:` answers `AT+CREG?`); the digest applies that rule.
//! `+CMT` and `+CDS` in PDU mode are two lines, the header and the PDU
//! (27.005 §3.4.1); every other URC here is one line.

use serde::Serialize;

use super::parse::{self, Domain, Number, PinState, Registration, SignalQuality, Ussd};

/// How many lines a URC spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrcShape {
    /// The line is the whole URC.
    OneLine,
    /// A header, then the PDU on the next line (`+CMT`, `+CDS`, `+CBM`).
    WithPdu,
}

/// How a known URC is matched.
#[derive(Debug, Clone, Copy)]
enum Match {
    /// The line starts with this prefix (`+CMTI:`).
    Prefix,
    /// The line is exactly this word (`RING`), so `RINGER` is not a URC.
    Exact,
}

/// Every URC we know, with how to recognise it. All entries contain a
/// character that is not a hex digit, so a hex PDU line never matches one
/// (tested below).
const KNOWN: &[(&str, Match, UrcShape)] = &[
    // 27.005 §3.4.1: new-message indications (+CNMI).
    ("+CMTI:", Match::Prefix, UrcShape::OneLine),
    ("+CDSI:", Match::Prefix, UrcShape::OneLine),
    ("+CMT:", Match::Prefix, UrcShape::WithPdu),
    ("+CDS:", Match::Prefix, UrcShape::WithPdu),
    ("+CBM:", Match::Prefix, UrcShape::WithPdu),
    // 27.007 §7.2, §10.1.20, §10.1.22: registration.
    ("+CREG:", Match::Prefix, UrcShape::OneLine),
    ("+CGREG:", Match::Prefix, UrcShape::OneLine),
    ("+CEREG:", Match::Prefix, UrcShape::OneLine),
    // 27.007 §6.2 / V.250: calls.
    ("RING", Match::Exact, UrcShape::OneLine),
    ("+CRING:", Match::Prefix, UrcShape::OneLine),
    ("+CLIP:", Match::Prefix, UrcShape::OneLine),
    ("NO CARRIER", Match::Exact, UrcShape::OneLine),
    ("BUSY", Match::Exact, UrcShape::OneLine),
    ("NO ANSWER", Match::Exact, UrcShape::OneLine),
    ("NO DIALTONE", Match::Exact, UrcShape::OneLine),
    // 27.007 §7.15: USSD.
    ("+CUSD:", Match::Prefix, UrcShape::OneLine),
    // Boot and readiness (SIMCom SIM800, Quectel EC25, Cinterion).
    ("RDY", Match::Exact, UrcShape::OneLine),
    ("^SYSSTART", Match::Exact, UrcShape::OneLine),
    ("+CPIN:", Match::Prefix, UrcShape::OneLine),
    ("+CFUN:", Match::Prefix, UrcShape::OneLine),
    ("Call Ready", Match::Exact, UrcShape::OneLine),
    ("SMS Ready", Match::Exact, UrcShape::OneLine),
    ("PB DONE", Match::Exact, UrcShape::OneLine),
    ("+QIND:", Match::Prefix, UrcShape::OneLine),
    ("+QUSIM:", Match::Prefix, UrcShape::OneLine),
    ("+CPINR:", Match::Prefix, UrcShape::OneLine),
    // Huawei periodic reports (E3372, E1550, E173...).
    ("^RSSI:", Match::Prefix, UrcShape::OneLine),
    ("^HCSQ:", Match::Prefix, UrcShape::OneLine),
    ("^BOOT:", Match::Prefix, UrcShape::OneLine),
    ("^MODE:", Match::Prefix, UrcShape::OneLine),
    ("^SRVST:", Match::Prefix, UrcShape::OneLine),
    ("^SIMST:", Match::Prefix, UrcShape::OneLine),
    ("^DSFLOWRPT:", Match::Prefix, UrcShape::OneLine),
    ("^NDISSTAT:", Match::Prefix, UrcShape::OneLine),
    ("^STIN:", Match::Prefix, UrcShape::OneLine),
    ("^CEND:", Match::Prefix, UrcShape::OneLine),
    ("^ORIG:", Match::Prefix, UrcShape::OneLine),
    ("^CONF:", Match::Prefix, UrcShape::OneLine),
    ("^CONN:", Match::Prefix, UrcShape::OneLine),
    ("^RFSWITCH:", Match::Prefix, UrcShape::OneLine),
    // Generic 27.007 reports that vendors turn on by default.
    ("+CIEV:", Match::Prefix, UrcShape::OneLine),
    ("+CTZV:", Match::Prefix, UrcShape::OneLine),
    ("+CTZE:", Match::Prefix, UrcShape::OneLine),
    ("+CTZU:", Match::Prefix, UrcShape::OneLine),
    ("*PSUTTZ:", Match::Prefix, UrcShape::OneLine),
    ("DST:", Match::Prefix, UrcShape::OneLine),
    ("+CGEV:", Match::Prefix, UrcShape::OneLine),
    ("+PACSP", Match::Prefix, UrcShape::OneLine),
    ("+CSQN:", Match::Prefix, UrcShape::OneLine),
    // SIMCom power warnings.
    ("UNDER-VOLTAGE", Match::Prefix, UrcShape::OneLine),
    ("OVER-VOLTAGE", Match::Prefix, UrcShape::OneLine),
    ("NORMAL POWER DOWN", Match::Exact, UrcShape::OneLine),
];

/// Whether `line` starts a URC, and how many lines it has.
pub fn urc_shape(line: &str) -> Option<UrcShape> {
    KNOWN.iter().find_map(|(prefix, how, shape)| {
        let hit = match how {
            Match::Prefix => line.starts_with(prefix),
            Match::Exact => line == *prefix,
        };
        hit.then_some(*shape)
    })
}

/// What became ready (the engine waits for SMS before its first `AT+CMGL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Readiness {
    /// `+CPIN: READY` unsolicited.
    Sim,
    /// `Call Ready`
    Calls,
    /// `SMS Ready`, `+QIND: SMS DONE`
    Sms,
    /// `PB DONE`, `+QIND: PB DONE`
    Phonebook,
}

/// A typed unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Urc {
    /// `+CMTI: <mem>,<index>`: an SMS was stored; read it with `AT+CMGR`.
    NewMessage {
        /// Storage (`"SM"`, `"ME"`).
        storage: String,
        /// Index in it.
        index: u32,
    },
    /// `+CDSI: <mem>,<index>`: a status report was stored.
    StatusReportStored {
        /// Storage.
        storage: String,
        /// Index in it.
        index: u32,
    },
    /// `+CMT: [<alpha>],<length>` + PDU: an SMS-DELIVER routed straight to us
    /// (must be acknowledged with `AT+CNMA` when `+CSMS` service is 1).
    Deliver {
        /// Phonebook name, if any.
        alpha: Option<String>,
        /// TPDU length in octets.
        length: u16,
        /// The PDU, hex, SMSC first.
        pdu: String,
    },
    /// `+CDS: <length>` + PDU: an SMS-STATUS-REPORT routed straight to us.
    StatusReport {
        /// TPDU length in octets.
        length: u16,
        /// The PDU, hex.
        pdu: String,
    },
    /// `+CREG`/`+CGREG`/`+CEREG` change.
    Registration(Registration),
    /// `RING` / `+CRING:`: an incoming call (we do not answer calls).
    Ring,
    /// `+CLIP`: the caller's number.
    Clip(Number),
    /// `+CUSD`: a USSD answer or network-initiated USSD.
    Ussd(Ussd),
    /// `NO CARRIER`, `BUSY`... outside a dial: a call ended.
    CallEnded(String),
    /// The modem restarted (`RDY`, `^SYSSTART`): every setting (`ATE0`,
    /// `+CMGF`, `+CNMI`) is lost and the engine must initialise again.
    Boot,
    /// Something became ready.
    Ready(Readiness),
    /// `+CPIN: <code>` other than READY, unsolicited: the SIM went away or
    /// wants a PIN.
    SimStatus(PinState),
    /// Huawei `^RSSI: <rssi>` (the `+CSQ` scale).
    Signal(SignalQuality),
    /// A recognised vendor report the engine does not act on (`^BOOT`,
    /// `^MODE`, `+QIND: csq`...).
    Noise(String),
    /// A known URC whose parameters did not parse (kept for logs).
    Malformed {
        /// The header line.
        line: String,
        /// The PDU line, when there was one.
        pdu: Option<String>,
    },
}

impl Urc {
    /// Types a URC from its line (and PDU line for `+CMT`/`+CDS`). Never
    /// fails: what does not parse becomes [`Urc::Malformed`] or [`Urc::Noise`].
    pub fn parse(line: &str, pdu: Option<&str>) -> Urc {
        let malformed = || Urc::Malformed {
            line: line.to_string(),
            pdu: pdu.map(str::to_string),
        };
        let word = |w: &str| line == w;
        if line.starts_with("+CMTI:") || line.starts_with("+CDSI:") {
            let prefix = if line.starts_with("+CMTI:") {
                "+CMTI:"
            } else {
                "+CDSI:"
            };
            return match parse::storage_index(line, prefix) {
                Ok((storage, index)) if prefix == "+CMTI:" => Urc::NewMessage { storage, index },
                Ok((storage, index)) => Urc::StatusReportStored { storage, index },
                Err(_) => malformed(),
            };
        }
        if line.starts_with("+CMT:") {
            return match (parse::cmt_header(line), pdu) {
                (Ok((alpha, length)), Some(pdu)) => Urc::Deliver {
                    alpha,
                    length,
                    pdu: pdu.to_string(),
                },
                _ => malformed(),
            };
        }
        if line.starts_with("+CDS:") {
            return match (parse::cds_header(line), pdu) {
                (Ok(length), Some(pdu)) => Urc::StatusReport {
                    length,
                    pdu: pdu.to_string(),
                },
                _ => malformed(),
            };
        }
        for (prefix, domain) in [
            ("+CREG:", Domain::Cs),
            ("+CGREG:", Domain::Gprs),
            ("+CEREG:", Domain::Eps),
        ] {
            if line.starts_with(prefix) {
                return parse::registration(line, domain, false)
                    .map(Urc::Registration)
                    .unwrap_or_else(|_| malformed());
            }
        }
        if word("RING") || line.starts_with("+CRING:") {
            return Urc::Ring;
        }
        if line.starts_with("+CLIP:") {
            return parse::clip(line)
                .map(Urc::Clip)
                .unwrap_or_else(|_| malformed());
        }
        if line.starts_with("+CUSD:") {
            return parse::cusd(line)
                .map(Urc::Ussd)
                .unwrap_or_else(|_| malformed());
        }
        if ["NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"].contains(&line) {
            return Urc::CallEnded(line.to_string());
        }
        if word("RDY") || word("^SYSSTART") {
            return Urc::Boot;
        }
        if line.starts_with("+CPIN:") {
            return match parse::cpin(line) {
                Ok(PinState::Ready) => Urc::Ready(Readiness::Sim),
                Ok(state) => Urc::SimStatus(state),
                Err(_) => malformed(),
            };
        }
        if word("Call Ready") {
            return Urc::Ready(Readiness::Calls);
        }
        if word("SMS Ready") || line.eq_ignore_ascii_case("+QIND: SMS DONE") {
            return Urc::Ready(Readiness::Sms);
        }
        if word("PB DONE") || line.eq_ignore_ascii_case("+QIND: PB DONE") {
            return Urc::Ready(Readiness::Phonebook);
        }
        if let Some(rssi) = parse::params(line, "^RSSI:") {
            return rssi
                .parse()
                .map(|rssi| Urc::Signal(SignalQuality { rssi, ber: 99 }))
                .unwrap_or_else(|_| malformed());
        }
        Urc::Noise(line.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::parse::RegistrationStatus;

    #[test]
    fn no_urc_prefix_is_all_hex() {
        for (prefix, _, _) in KNOWN {
            assert!(
                !prefix.bytes().all(|b| b.is_ascii_hexdigit()),
                "{prefix} could match a PDU line"
            );
        }
    }

    #[test]
    fn typed() {
        assert_eq!(
            Urc::parse("+CMTI: \"SM\",3", None),
            Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            }
        );
        assert_eq!(
            Urc::parse("+CDSI: \"SR\",1", None),
            Urc::StatusReportStored {
                storage: "SR".into(),
                index: 1
            }
        );
        assert!(matches!(
            Urc::parse("+CMT: ,24", Some("0791")),
            Urc::Deliver { length: 24, .. }
        ));
        assert!(matches!(
            Urc::parse("+CDS: 25", Some("00")),
            Urc::StatusReport { length: 25, .. }
        ));
        assert!(matches!(
            Urc::parse("+CMT: ,24", None),
            Urc::Malformed { .. }
        ));
        match Urc::parse("+CREG: 1,\"1A2B\",\"00C3\"", None) {
            Urc::Registration(r) => assert_eq!(r.status, RegistrationStatus::Home),
            other => panic!("{other:?}"),
        }
        assert_eq!(Urc::parse("RING", None), Urc::Ring);
        assert_eq!(Urc::parse("RDY", None), Urc::Boot);
        assert_eq!(Urc::parse("SMS Ready", None), Urc::Ready(Readiness::Sms));
        assert_eq!(
            Urc::parse("+QIND: SMS DONE", None),
            Urc::Ready(Readiness::Sms)
        );
        assert_eq!(Urc::parse("+CPIN: READY", None), Urc::Ready(Readiness::Sim));
        assert_eq!(
            Urc::parse("+CPIN: NOT READY", None),
            Urc::SimStatus(PinState::Other("NOT READY".into()))
        );
        assert_eq!(
            Urc::parse("^RSSI: 17", None),
            Urc::Signal(SignalQuality { rssi: 17, ber: 99 })
        );
        assert_eq!(
            Urc::parse("^HCSQ:\"LTE\",47,39,156,28", None),
            Urc::Noise("^HCSQ:\"LTE\",47,39,156,28".into())
        );
    }

    #[test]
    fn shapes() {
        assert_eq!(urc_shape("+CMT: ,24"), Some(UrcShape::WithPdu));
        assert_eq!(urc_shape("+CMTI: \"SM\",1"), Some(UrcShape::OneLine));
        assert_eq!(urc_shape("RINGER"), None);
        assert_eq!(urc_shape("+CMGR: 0,,24"), None);
        assert_eq!(urc_shape("0791447758100650"), None);
    }
}
