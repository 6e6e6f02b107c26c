//! Byte-exact replies of the firmware, per personality: command line in, reply
//! bytes out (echo off unless the case is about echo).

use super::*;
use crate::pdu::{encode_deliver, encode_submit, Address, DeliverOptions, SubmitOptions};

fn modem(p: Personality) -> Modem {
    let mut m = Modem::new(ModemIdentity::new(p));
    m.settings.echo = false;
    m
}

fn send(m: &mut Modem, bytes: &[u8]) -> (String, Vec<Effect>) {
    let mut out = Vec::new();
    let mut effects = Vec::new();
    m.receive(bytes, &mut out, &mut effects);
    (String::from_utf8_lossy(&out).into_owned(), effects)
}

fn reply(m: &mut Modem, line: &str) -> String {
    send(m, format!("{line}\r").as_bytes()).0
}

#[test]
fn replies_are_byte_exact_per_personality() {
    use Personality::*;
    let cases: &[(Personality, &str, &str)] = &[
        (Sim800, "AT", "\r\nOK\r\n"),
        (Sim800, "ATZ", "\r\nOK\r\n"),
        (Sim800, "AT+CSQ", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n"),
        (Sim800, "AT+CREG?", "\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
        (
            Sim800,
            "AT+CREG=2;+CREG?",
            "\r\n+CREG: 2,1,\"00C3\",\"0000A1B2\"\r\n\r\nOK\r\n",
        ),
        (Ec25, "AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n"),
        (
            Sim800,
            "AT+CPMS?",
            "\r\n+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30\r\n\r\nOK\r\n",
        ),
        (
            Ec25,
            "AT+CPMS?",
            "\r\n+CPMS: \"ME\",0,255,\"ME\",0,255,\"ME\",0,255\r\n\r\nOK\r\n",
        ),
        (
            Ec25,
            "AT+CPMS=?",
            "\r\n+CPMS: (\"ME\",\"SM\",\"SR\"),(\"ME\",\"SM\"),(\"ME\",\"SM\")\r\n\r\nOK\r\n",
        ),
        (
            Sim800,
            "AT+CPMS=\"SM\",\"SM\",\"SM\"",
            "\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+CPMS=\"XX\"", "\r\n+CMS ERROR: 302\r\n"),
        (Sim800, "AT+CNMI=2,1,0,2,0", "\r\nOK\r\n"),
        (
            Sim800,
            "AT+CNMI=2,1,0,2;+CNMI?",
            "\r\n+CNMI: 2,1,0,2,0\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+CNMI=9", "\r\nERROR\r\n"),
        (Sim800, "AT+CMEE=1;+CNMI=9", "\r\n+CME ERROR: 50\r\n"),
        (
            Sim800,
            "AT+CMEE=2;+CNMI=9",
            "\r\n+CME ERROR: Incorrect parameters\r\n",
        ),
        (
            Sim800,
            "AT+CNMI=?",
            "\r\n+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)\r\n\r\nOK\r\n",
        ),
        (
            Sim800,
            "AT+CSCS=?",
            "\r\n+CSCS: (\"IRA\",\"GSM\",\"UCS2\")\r\n\r\nOK\r\n",
        ),
        (
            Sim800,
            "AT+CSCS=\"UCS2\";+CSCS?",
            "\r\n+CSCS: \"UCS2\"\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+CMGF?", "\r\n+CMGF: 0\r\n\r\nOK\r\n"),
        (Sim800, "AT+CMGF=1;+CMGL=4", "\r\n+CMS ERROR: 302\r\n"),
        (
            Sim800,
            "AT+CSCA?",
            "\r\n+CSCA: \"+15550000000\",145\r\n\r\nOK\r\n",
        ),
        (
            Sim800,
            "AT+CSCA=\"+15551112222\",145;+CSCA?",
            "\r\n+CSCA: \"+15551112222\",145\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+CSMP?", "\r\n+CSMP: 17,167,0,0\r\n\r\nOK\r\n"),
        (Sim800, "AT+CSMP=49,167,0,0", "\r\nOK\r\n"),
        (Sim800, "AT+CSMS=0", "\r\n+CSMS: 1,1,1\r\n\r\nOK\r\n"),
        (Sim800, "AT+CFUN?", "\r\n+CFUN: 1\r\n\r\nOK\r\n"),
        (Sim800, "AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n"),
        (Sim800, "AT+CGMI", "\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"),
        (Ec25, "AT+CGMI", "\r\nQuectel\r\n\r\nOK\r\n"),
        (E3372, "AT+CGMM", "\r\nE3372\r\n\r\nOK\r\n"),
        (Sim800, "AT+CGSN", "\r\n869012045678901\r\n\r\nOK\r\n"),
        (Sim800, "AT+CIMI", "\r\n001010123456789\r\n\r\nOK\r\n"),
        (Sim800, "AT+CCID", "\r\n89001012012345678901\r\n\r\nOK\r\n"),
        (
            Ec25,
            "AT+QCCID",
            "\r\n+QCCID: 89001012012345678901\r\n\r\nOK\r\n",
        ),
        (
            E3372,
            "AT^ICCID?",
            "\r\n^ICCID: 89001012012345678901\r\n\r\nOK\r\n",
        ),
        (
            Sim800,
            "AT+ICCID",
            "\r\n+ICCID: 89001012012345678901\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+QCCID", "\r\nERROR\r\n"),
        (
            Sim800,
            "AT+COPS=3,0;+COPS?",
            "\r\n+COPS: 0,0,\"SIMNET\"\r\n\r\nOK\r\n",
        ),
        (
            Ec25,
            "AT+COPS=3,2;+COPS?",
            "\r\n+COPS: 0,2,\"00101\",7\r\n\r\nOK\r\n",
        ),
        (Sim800, "AT+CGATT?", "\r\n+CGATT: 1\r\n\r\nOK\r\n"),
        (Sim800, "AT+CLIP=1;+CRC=1;+CVHU=0", "\r\nOK\r\n"),
        (Sim800, "AT+CNUM", "\r\nOK\r\n"),
        (Sim800, "AT+CMGL=4", "\r\nOK\r\n"),
        (Sim800, "AT+CMGR=1", "\r\nOK\r\n"),
        (Sim800, "AT+CMGR=31", "\r\n+CMS ERROR: 321\r\n"),
        (Ec25, "AT+CMGR=0", "\r\nOK\r\n"),
        (Sim800, "AT+CMGD=1", "\r\nOK\r\n"),
        (Sim800, "AT+CMGD=1,4", "\r\nOK\r\n"),
        (Sim800, "AT+CMGD=0", "\r\n+CMS ERROR: 321\r\n"),
        (Sim800, "AT+WIND?", "\r\nERROR\r\n"),
        (Sim800, "AT+ZPAS?", "\r\nERROR\r\n"),
        (E3372, "AT+WIND?", "\r\nCOMMAND NOT SUPPORT\r\n"),
        (E3372, "AT^CURC=0", "\r\nOK\r\n"),
        // gammu 1.42's Huawei PostConnect sends AT^PORTSEL=1 and gives up on an error.
        (
            E3372,
            "AT^PORTSEL=1;^PORTSEL?",
            "\r\n^PORTSEL: 1\r\n\r\nOK\r\n",
        ),
        (E3372, "AT^PORTSEL=?", "\r\n^PORTSEL: (0-1)\r\n\r\nOK\r\n"),
        (E3372, "AT^PORTSEL=2", "\r\nERROR\r\n"),
        (Sim800, "AT^PORTSEL=1", "\r\nERROR\r\n"),
        (Ec25, "AT+CHUP=?", "\r\nOK\r\n"),
        (
            Sim800,
            "AT+CUSD=1,\"*100#\",15",
            "\r\nOK\r\n\r\n+CUSD: 0,\"Your balance is 10.00\",15\r\n",
        ),
        (Sim800, "AT+CMEE=1;+CMEE?", "\r\n+CMEE: 1\r\n\r\nOK\r\n"),
        (
            Sim800,
            "AT+CSQ;+CREG?",
            "\r\n+CSQ: 21,99\r\n\r\n+CREG: 0,1\r\n\r\nOK\r\n",
        ),
        (Sim800, "at+csq", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n"),
        (Sim800, "  AT + CSQ  ", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n"),
        (Sim800, "AT+CMGS=20", "\r\n> "),
        (Sim800, "AT+CMGS=999", "\r\nERROR\r\n"),
        (Sim800, "hello", ""),
        (Sim800, "AT!", "\r\nERROR\r\n"),
    ];
    for (p, line, expected) in cases {
        let mut m = modem(*p);
        let mut got = reply(&mut m, line);
        // Replies and the URCs they cause, in wire order.
        got.extend(String::from_utf8(m.take_urcs()));
        assert_eq!(got, *expected, "{p} {line}");
    }
}

#[test]
fn echo_is_on_at_boot_and_ate0_turns_it_off() {
    let mut m = Modem::new(ModemIdentity::new(Personality::Sim800));
    assert_eq!(reply(&mut m, "ATE0"), "ATE0\r\r\nOK\r\n");
    assert_eq!(reply(&mut m, "AT"), "\r\nOK\r\n");
    assert_eq!(reply(&mut m, "ATE1"), "\r\nOK\r\n");
    assert_eq!(send(&mut m, b"AT\r\n").0, "AT\r\r\nOK\r\n\n");
}

#[test]
fn terminators_cr_lf_and_crlf_all_work_even_split_per_byte() {
    for terminator in ["\r", "\n", "\r\n"] {
        let mut m = modem(Personality::Sim800);
        let mut all = String::new();
        for b in format!("AT+CSQ{terminator}AT{terminator}").bytes() {
            all += &send(&mut m, &[b]).0;
        }
        assert_eq!(
            all, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n\r\nOK\r\n",
            "{terminator:?}"
        );
    }
}

#[test]
fn clac_lists_one_command_per_line() {
    let mut m = modem(Personality::E3372);
    let got = reply(&mut m, "AT+CLAC");
    assert!(got.starts_with("\r\nAT&F\r\nATE\r\n"), "{got}");
    assert!(got.contains("\r\nAT+CMGS\r\n") && got.contains("\r\nAT^ICCID\r\n"));
    assert!(got.ends_with("\r\n\r\nOK\r\n"));
}

fn submit_pdu(text: &str, srr: bool) -> Vec<crate::pdu::EncodedPart> {
    let options = SubmitOptions {
        status_report: srr,
        ..SubmitOptions::default()
    };
    encode_submit(&Address::parse_number("+15550100").unwrap(), text, &options)
        .unwrap()
        .parts
}

#[test]
fn cmgs_prompts_takes_hex_and_ctrl_z_and_reports_the_reference() {
    let mut m = modem(Personality::Sim800);
    let part = &submit_pdu("hello", true)[0];
    assert_eq!(
        reply(&mut m, &format!("AT+CMGS={}", part.tpdu_length)),
        "\r\n> "
    );
    assert!(!m.is_idle());
    let (out, effects) = send(&mut m, format!("{}\x1a", hex::encode(&part.pdu)).as_bytes());
    assert_eq!(out, "\r\n+CMGS: 1\r\n\r\nOK\r\n");
    assert_eq!(
        effects,
        [Effect::Submitted {
            pdu: part.pdu.clone(),
            message_reference: 1
        }]
    );
    assert!(m.is_idle());
    // A wrong <length> and non-hex are refused (27.005 §3.2.5: 304).
    reply(&mut m, &format!("AT+CMGS={}", part.tpdu_length + 1));
    let (out, effects) = send(&mut m, format!("{}\x1a", hex::encode(&part.pdu)).as_bytes());
    assert_eq!(
        (out.as_str(), effects.len()),
        ("\r\n+CMS ERROR: 304\r\n", 0)
    );
    reply(&mut m, "AT+CMGS=5");
    assert_eq!(send(&mut m, b"zz\x1a").0, "\r\n+CMS ERROR: 304\r\n");
    // ESC cancels.
    reply(&mut m, "AT+CMGS=5");
    assert_eq!(send(&mut m, b"00\x1b").0, "\r\nOK\r\n");
    assert_eq!(reply(&mut m, "AT"), "\r\nOK\r\n");
}

#[test]
fn cms_error_fault_fails_the_next_n_sends() {
    let mut m = modem(Personality::Ec25);
    m.set_cms_fault(Some((500, 2)));
    let part = &submit_pdu("x", false)[0];
    let send_one = |m: &mut Modem| {
        reply(m, &format!("AT+CMGS={}", part.tpdu_length));
        send(m, format!("{}\x1a", hex::encode(&part.pdu)).as_bytes()).0
    };
    assert_eq!(send_one(&mut m), "\r\n+CMS ERROR: 500\r\n");
    assert_eq!(send_one(&mut m), "\r\n+CMS ERROR: 500\r\n");
    assert_eq!(send_one(&mut m), "\r\n+CMGS: 1\r\n\r\nOK\r\n");
}

fn deliver_parts(text: &str) -> Vec<crate::pdu::EncodedPart> {
    let time = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00+02:00").unwrap();
    encode_deliver(
        &Address::parse_number("+15550100").unwrap(),
        text,
        time,
        &DeliverOptions::default(),
    )
    .unwrap()
    .parts
}

#[test]
fn inbound_is_stored_announced_listed_read_and_deleted() {
    let mut m = modem(Personality::Sim800);
    let part = &deliver_parts("hi")[0];
    m.deliver(&part.pdu, part.tpdu_length).unwrap();
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n"
    );
    let pdu = hex::encode(&part.pdu);
    let len = part.tpdu_length;
    assert_eq!(
        reply(&mut m, "AT+CMGL=0"),
        format!("\r\n+CMGL: 1,0,,{len}\r\n{pdu}\r\n\r\nOK\r\n")
    );
    // Listing marked it read.
    assert_eq!(reply(&mut m, "AT+CMGL=0"), "\r\nOK\r\n");
    assert_eq!(
        reply(&mut m, "AT+CMGR=1"),
        format!("\r\n+CMGR: 1,,{len}\r\n{pdu}\r\n\r\nOK\r\n")
    );
    let (out, effects) = send(&mut m, b"AT+CMGD=1\r");
    assert_eq!(
        (out.as_str(), effects),
        ("\r\nOK\r\n", vec![Effect::StorageFreed])
    );
    assert_eq!(reply(&mut m, "AT+CMGL=4"), "\r\nOK\r\n");
}

/// Huawei ends the `+CMGL`/`+CMGR` header with a plain CR LF before the PDU:
/// HUAWEI MU509 AT Command Interface Specification Issue 04 §6.14 (and EM770W
/// Issue 18 §5.15) give `+CMGL: <index>,<stat>,[<reserved>],<length><CR><LF><pdu>`,
/// and a raw E1752 trace (gammu issue #126) shows `+CMGL: 0,0,,23` 0D 0A `0791...`.
/// The `\r\r\n` seen in such traces is the echoed command's CR before the
/// response's CR LF, which echo already produces; a `\r\r\n` after the header
/// made clients that split lines at CR LF (python-gsmmodem-new) read
/// `+CMGR: 0,,18\r` and fail.
#[test]
fn huawei_listings_end_header_lines_with_cr_lf() {
    let mut m = modem(Personality::E3372);
    let part = &deliver_parts("hi")[0];
    m.deliver(&part.pdu, part.tpdu_length).unwrap();
    let (len, pdu) = (part.tpdu_length, hex::encode(&part.pdu));
    assert_eq!(
        reply(&mut m, "AT+CMGR=0"),
        format!("\r\n+CMGR: 0,,{len}\r\n{pdu}\r\n\r\nOK\r\n")
    );
    assert_eq!(
        reply(&mut m, "AT+CMGL=4"),
        format!("\r\n+CMGL: 0,1,,{len}\r\n{pdu}\r\n\r\nOK\r\n")
    );
}

#[test]
fn cnmi_mt_2_routes_inbound_directly_as_cmt() {
    let mut m = modem(Personality::Sim800);
    reply(&mut m, "AT+CNMI=2,2,0,1,0");
    let part = &deliver_parts("hi")[0];
    m.deliver(&part.pdu, part.tpdu_length).unwrap();
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        format!(
            "\r\n+CMT: ,{}\r\n{}\r\n",
            part.tpdu_length,
            hex::encode(&part.pdu)
        )
    );
    assert_eq!(reply(&mut m, "AT+CMGL=4"), "\r\nOK\r\n");
}

#[test]
fn full_storage_refuses_inbound_until_a_delete() {
    let mut m = modem(Personality::Sim800);
    let part = &deliver_parts("hi")[0];
    for _ in 0..30 {
        m.deliver(&part.pdu, part.tpdu_length).unwrap();
    }
    assert_eq!(m.deliver(&part.pdu, part.tpdu_length), Err(StorageFull));
    let unsent = &submit_pdu("draft", false)[0];
    reply(&mut m, &format!("AT+CMGW={}", unsent.tpdu_length));
    let (out, _) = send(
        &mut m,
        format!("{}\x1a", hex::encode(&unsent.pdu)).as_bytes(),
    );
    assert_eq!(out, "\r\n+CMS ERROR: 322\r\n");
    reply(&mut m, "AT+CMGD=3");
    assert!(m.deliver(&part.pdu, part.tpdu_length).is_ok());
    m.set_storage_full(true);
    reply(&mut m, "AT+CMGD=3");
    assert_eq!(m.deliver(&part.pdu, part.tpdu_length), Err(StorageFull));
}

#[test]
fn status_reports_follow_cnmi_ds_and_quectel_stores_them() {
    let report = [0u8, 0x06, 0x01, 0x00, 0x81, 0x00];
    let mut m = modem(Personality::Sim800);
    reply(&mut m, "AT+CNMI=2,1,0,1,0");
    m.status_report(&report, 5);
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        "\r\n+CDS: 5\r\n000601008100\r\n"
    );
    reply(&mut m, "AT+CNMI=2,1,0,2,0");
    m.status_report(&report, 5);
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        "\r\n+CDSI: \"SM\",1\r\n"
    );

    let mut m = modem(Personality::Ec25);
    reply(&mut m, "AT+CNMI=2,1,0,1,0");
    m.status_report(&report, 5);
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        "\r\n+CDSI: \"SR\",0\r\n"
    );
    assert_eq!(
        reply(&mut m, "AT+CPMS=\"SR\";+CMGR=0"),
        "\r\n+CPMS: 1,255,0,255,0,255\r\n\r\n+CMGR: 0,,5\r\n000601008100\r\n\r\nOK\r\n"
    );
    reply(&mut m, "AT+CNMI=2,1,0,0,0");
    m.status_report(&report, 5);
    assert!(!m.has_urcs());
}

#[test]
fn pin_lock_counts_wrong_pins_down_to_puk() {
    let mut id = ModemIdentity::new(Personality::Sim800);
    id.pin = Some("1234".into());
    let mut m = Modem::new(id);
    m.settings.echo = false;
    assert_eq!(
        reply(&mut m, "AT+CPIN?"),
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(reply(&mut m, "AT+CMGL=4"), "\r\n+CMS ERROR: 311\r\n");
    assert_eq!(reply(&mut m, "AT+CMEE=1;+CIMI"), "\r\n+CME ERROR: 11\r\n");
    assert_eq!(reply(&mut m, "AT+CREG?"), "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(reply(&mut m, "AT+CPIN=\"0000\""), "\r\n+CME ERROR: 16\r\n");
    assert_eq!(reply(&mut m, "AT+CPIN=\"1234\""), "\r\nOK\r\n");
    assert_eq!(
        String::from_utf8(m.take_urcs()).unwrap(),
        "\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
    );
    assert_eq!(reply(&mut m, "AT+CPIN?"), "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    // Reboot locks it again; three wrong PINs ask for the PUK.
    m.reboot();
    m.take_urcs();
    reply(&mut m, "ATE0;+CMEE=1");
    for _ in 0..3 {
        assert_eq!(reply(&mut m, "AT+CPIN=9999"), "\r\n+CME ERROR: 16\r\n");
    }
    assert_eq!(
        reply(&mut m, "AT+CPIN?"),
        "\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
    );
    assert_eq!(reply(&mut m, "AT+CPIN=1234"), "\r\n+CME ERROR: 12\r\n");
    assert_eq!(reply(&mut m, "AT+CPIN=\"12345678\",\"4321\""), "\r\nOK\r\n");
}

#[test]
fn reboot_restores_volatile_settings_and_prints_boot_urcs() {
    let mut m = modem(Personality::Ec25);
    reply(&mut m, "AT+CMGF=1;+CNMI=2,2,0,1,0;+CMEE=2");
    let (out, effects) = send(&mut m, b"AT+CFUN=1,1\r");
    assert_eq!(out, "\r\nOK\r\n");
    assert_eq!(effects, [Effect::Rebooted]);
    let urcs = String::from_utf8(m.take_urcs()).unwrap();
    assert!(
        urcs.starts_with("\r\nRDY\r\n") && urcs.contains("+QIND: SMS DONE"),
        "{urcs}"
    );
    assert_eq!(reply(&mut m, "AT"), "AT\r\r\nOK\r\n");
    assert_eq!(
        reply(&mut m, "ATE0;+CMGF?;+CNMI?"),
        "ATE0;+CMGF?;+CNMI?\r\r\n+CMGF: 0\r\n\r\n+CNMI: 2,1,0,0,0\r\n\r\nOK\r\n"
    );
}

#[test]
fn noise_inside_responses_only_when_asked() {
    let mut m = modem(Personality::E3372);
    assert_eq!(reply(&mut m, "AT+CSQ"), "\r\n+CSQ: 21,99\r\n\r\nOK\r\n");
    let mut id = ModemIdentity::new(Personality::E3372);
    id.noise_in_responses = true;
    let mut m = Modem::new(id);
    m.settings.echo = false;
    assert_eq!(
        reply(&mut m, "AT+CSQ"),
        "\r\n+CSQ: 21,99\r\n\r\n^RSSI: 21\r\n\r\nOK\r\n"
    );
    // No information text, nothing to put noise inside.
    assert_eq!(reply(&mut m, "AT"), "\r\nOK\r\n");
}

#[test]
fn garbage_input_never_panics() {
    let mut m = Modem::new(ModemIdentity::new(Personality::E3372));
    let mut x: u32 = 7;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = match x % 7 {
            0 => b'\r',
            1 => b'A',
            2 => b'T',
            3 => b'+',
            4 => 0x1A,
            _ => (x >> 8) as u8,
        };
        send(&mut m, &[b]);
    }
    send(&mut m, &[b'x'; 5000]);
    assert_eq!(
        send(&mut m, b"\r").0.trim_start_matches('x'),
        "\r\r\nERROR\r\n"
    );
}
