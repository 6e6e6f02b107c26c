//! Third-party PDU vectors from ../shared/testdata/pdu (see its README): cases
//! from ModemManager's test-sms-part-3gpp.c with hand-written expectations, and
//! real `AT+CMGR` replies from gammu's tests/at-sms.

use std::path::{Path, PathBuf};

use serde_json::Value;
use smsgate::pdu::{self, Address, Body, SubmitOptions, Tpdu, ValidityPeriod};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/pdu")
        .join(rel)
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(testdata("modemmanager-vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// ModemManager writes zones as "-05", "+04" or "Z"; ours are RFC 3339 "±HH:MM".
fn rfc3339(expected: &str) -> String {
    if let Some(base) = expected.strip_suffix('Z') {
        return format!("{base}+00:00");
    }
    let (base, zone) = expected.split_at(expected.len() - 3);
    format!("{base}{zone}:00")
}

#[test]
fn modemmanager_decode_cases() {
    let mut checked = 0;
    for case in vectors().iter().filter(|c| c["kind"] == "decode") {
        let name = case["test"].as_str().unwrap();
        let decoded = pdu::decode_hex(case["pdu"].as_str().unwrap(), true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            decoded.smsc.as_ref().map(|a| a.value.as_str()),
            case["smsc"].as_str(),
            "{name}: smsc"
        );
        let (number, timestamp) = match &decoded.tpdu {
            Tpdu::Deliver(d) => (&d.originator, Some(d.service_centre_time)),
            Tpdu::Submit(s) => (&s.destination, None),
            Tpdu::StatusReport(r) => (&r.recipient, Some(r.service_centre_time)),
        };
        assert_eq!(
            Some(number.value.as_str()),
            case["number"].as_str(),
            "{name}: number"
        );
        assert_eq!(
            timestamp.map(|t| t.to_rfc3339()),
            case["timestamp"].as_str().map(rfc3339),
            "{name}: timestamp"
        );
        let user_data = decoded.user_data();
        let multipart = user_data
            .and_then(|u| u.header.as_ref())
            .and_then(|h| h.concat())
            .is_some();
        assert_eq!(
            Some(multipart),
            case["multipart"].as_bool(),
            "{name}: multipart"
        );
        let (text, data) = match user_data.map(|u| &u.body) {
            Some(Body::Text(t)) => (Some(t.as_str()), None),
            Some(Body::Data(d)) => (None, Some(pdu::hex::encode(d))),
            None => (None, None),
        };
        assert_eq!(text, case["text"].as_str(), "{name}: text");
        assert_eq!(data.as_deref(), case["data"].as_str(), "{name}: data");
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn modemmanager_reject_cases() {
    let mut checked = 0;
    for case in vectors().iter().filter(|c| c["kind"] == "reject") {
        let name = case["test"].as_str().unwrap();
        let result = pdu::decode_hex(case["pdu"].as_str().unwrap(), true);
        assert!(result.is_err(), "{name}: decoded as {result:?}");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn modemmanager_address_cases() {
    let mut checked = 0;
    for case in vectors().iter().filter(|c| c["kind"] == "address") {
        let name = case["test"].as_str().unwrap();
        let address = Address::parse_number(case["address"].as_str().unwrap()).unwrap();
        let mut out = Vec::new();
        if case["is_smsc"].as_bool().unwrap() {
            Address::encode_smsc(Some(&address), &mut out).unwrap();
        } else {
            address.encode(&mut out).unwrap();
        }
        assert_eq!(
            pdu::hex::encode(&out),
            case["expected"].as_str().unwrap(),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn modemmanager_encode_cases() {
    let mut checked = 0;
    for case in vectors().iter().filter(|c| c["kind"] == "encode") {
        let name = case["test"].as_str().unwrap();
        let minutes = case["validity_min"].as_u64().unwrap();
        let options = SubmitOptions {
            smsc: case["smsc"]
                .as_str()
                .map(|s| Address::parse_number(s).unwrap()),
            validity: (minutes > 0).then(|| ValidityPeriod::relative_at_least(minutes * 60)),
            class: u8::try_from(case["msg_class"].as_i64().unwrap()).ok(),
            ..SubmitOptions::default()
        };
        let to = Address::parse_number(case["number"].as_str().unwrap()).unwrap();
        let message = pdu::encode_submit(&to, case["text"].as_str().unwrap(), &options).unwrap();
        assert_eq!(message.parts.len(), 1, "{name}");
        let part = &message.parts[0];
        assert_eq!(
            pdu::hex::encode(&part.pdu),
            case["expected_pdu"].as_str().unwrap(),
            "{name}"
        );
        let offset = case["tpdu_offset"].as_u64().unwrap() as usize;
        assert_eq!(
            part.tpdu_length,
            part.pdu.len() - offset,
            "{name}: TPDU length"
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// The PDU line of a gammu `AT+CMGR` dump: the line after `+CMGR:`.
fn cmgr_pdu(dump: &str) -> Option<&str> {
    let mut lines = dump.lines().map(str::trim);
    lines.find(|l| l.starts_with("+CMGR:"))?;
    lines.next()
}

fn dumps(dir: &str) -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(testdata(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dump"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Some dumps are not UTF-8 clean; the PDU line is ASCII either way.
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (name, text)
        })
        .collect();
    out.sort();
    out
}

/// The testdata README calls 41.dump and 42.dump truncated. 41 is: its TP-UDL
/// asks for 93 septets that are not there. 42 is complete by 23.038: its TP-DCS
/// FB is coding group 1111 with bit 2 clear, i.e. GSM 7-bit class 3 (bit 3 is
/// reserved, and a receiver reads reserved codings as the default alphabet, §4);
/// its 29 septets fill the 26 octets exactly and read as a plausible ticket
/// text. gammu reads FB as 8-bit, and then finds 29 octets three short, which is
/// where "truncated" comes from. We decode it and pin the text.
#[test]
fn gammu_42_is_gsm7_class_3_not_truncated() {
    let all = dumps("gammu-at-sms");
    let (_, text) = all.iter().find(|(n, _)| n == "42.dump").unwrap();
    let decoded = pdu::decode_hex(cmgr_pdu(text).unwrap(), true).unwrap();
    let Tpdu::Deliver(deliver) = decoded.tpdu else {
        panic!("not a deliver")
    };
    assert_eq!(deliver.dcs.alphabet, pdu::Alphabet::Gsm7);
    assert_eq!(deliver.dcs.class, Some(3));
    assert_eq!(
        deliver.user_data.body,
        Body::Text("1917812300     22:30   RATTHI".into())
    );
}

#[test]
fn gammu_replies_decode() {
    let truncated = ["41.dump"];
    let all = dumps("gammu-at-sms");
    assert!(all.len() == 36, "found {} dumps", all.len());
    let mut wrong = Vec::new();
    for (name, text) in &all {
        let Some(pdu_line) = cmgr_pdu(text) else {
            wrong.push(format!("{name}: no +CMGR line"));
            continue;
        };
        match (
            pdu::decode_hex(pdu_line, true),
            truncated.contains(&name.as_str()),
        ) {
            (Ok(_), false) => {}
            (Err(pdu::PduError::Truncated { .. }), true) => {}
            (Err(e), false) => wrong.push(format!("{name}: {e}")),
            (result, true) => wrong.push(format!("{name}: truncated, yet {result:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn gammu_failing_replies_are_refused() {
    let all = dumps("gammu-at-sms-failing");
    assert!(all.len() == 10, "found {} dumps", all.len());
    for (name, text) in &all {
        let refused = match cmgr_pdu(text) {
            None => true,
            Some(line) => pdu::decode_hex(line, true).is_err(),
        };
        assert!(
            refused,
            "{name} was accepted: {:?}",
            cmgr_pdu(text).map(|l| pdu::decode_hex(l, true))
        );
    }
}
