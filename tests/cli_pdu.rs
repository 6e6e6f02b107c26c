//! `smsgate pdu decode|encode`: the JSON contract and its refusals, through the
//! real binary.

use std::process::{Command, Output};

use serde_json::Value;

fn smsgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(args)
        .output()
        .expect("run smsgate")
}

fn json(args: &[&str]) -> Value {
    let out = smsgate(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn decode_deliver() {
    // pdu2 of ModemManager's test-sms-part-3gpp.c: alphanumeric sender, UCS-2.
    let v = json(&[
        "pdu",
        "decode",
        "07919730071111f10414d04937bd2c7797e9d3e614000811309291024061080442043504410442",
    ]);
    assert_eq!(v["type"], "deliver");
    assert_eq!(v["smsc"], "+79037011111");
    assert_eq!(v["sender"], "InternetSMS");
    assert_eq!(v["address_type"], "alphanumeric");
    assert_eq!(v["timestamp"], "2011-03-29T19:20:04+04:00");
    assert_eq!(v["alphabet"], "ucs2");
    assert_eq!(v["dcs"], 8);
    assert_eq!(v["pid"], 0);
    assert_eq!(v["class"], Value::Null);
    assert_eq!(v["concat"], Value::Null);
    assert_eq!(v["udh"], Value::Null);
    assert_eq!(v["text"], "тест");
    assert!(v.get("recipient").is_none() && v.get("data").is_none());
}

#[test]
fn decode_multipart_deliver_with_udh() {
    // pdu_udhi of ModemManager's test-sms-part-3gpp.c (16-bit reference).
    let v = json(&[
        "pdu",
        "decode",
        "07911356131313F64004850120390011609232239180A006080400100201D7327BFD6EB340E2321BF46E83EA7790F59D1E97DBE1341B442F83C465763D3DA797E56537C81D0ECB41AB59CC1693C16031D96C064241E5656838AF03A96230982A269BCD462917C8FA4E8FCBED709A0D7ABBE9F6B0FB5C7683D27350984D4FABC9A0B33C4C4FCF5D20EBFB2D079DCB62793DBD06D9C36E50FB2D4E97D9A0B49B5E96BBCB",
    ]);
    assert_eq!(
        v["concat"],
        serde_json::json!({"reference": 16, "total": 2, "sequence": 1})
    );
    assert_eq!(
        v["udh"],
        serde_json::json!([{"iei": 8, "data": "00100201"}])
    );
    assert_eq!(v["sender"], "1002");
    assert_eq!(v["address_type"], "unknown");
    assert_eq!(v["pid"], 0x39);
}

#[test]
fn decode_status_report() {
    // pdu_not_stored of ModemManager's test-sms-part-3gpp.c.
    let v = json(&[
        "pdu",
        "decode",
        "07914356060013F1065A098136397339F7219011700463802190117004638030",
    ]);
    assert_eq!(v["type"], "status_report");
    assert_eq!(v["recipient"], "639337937");
    assert_eq!(v["message_reference"], 0x5A);
    assert_eq!(v["status"], 0x30);
    assert_eq!(v["status_class"], "pending");
    assert_eq!(v["discharge_time"], "2012-09-11T07:40:36+02:00");
}

#[test]
fn encode_then_decode_without_smsc() {
    let v = json(&[
        "pdu",
        "encode",
        "--to",
        "+15555551234",
        "--text",
        "Hi 😀",
        "--status-report",
        "--validity",
        "5m",
        "--class",
        "1",
        "--message-reference",
        "7",
    ]);
    assert_eq!(v["alphabet"], "ucs2");
    assert_eq!(v["parts"], 1);
    let segment = &v["segments"][0];
    let hex = segment["pdu"].as_str().unwrap();
    assert!(hex.starts_with("00"), "empty SMSC field");
    assert_eq!(hex, hex.to_uppercase());
    assert_eq!(
        segment["length"].as_u64().unwrap() as usize,
        hex.len() / 2 - 1
    );
    let d = json(&["pdu", "decode", "--no-smsc", &hex[2..]]);
    assert_eq!(d["type"], "submit");
    assert_eq!(d["recipient"], "+15555551234");
    assert_eq!(d["text"], "Hi 😀");
    assert_eq!(d["status_report_requested"], true);
    assert_eq!(d["validity"], 300);
    assert_eq!(d["class"], 1);
    assert_eq!(d["message_reference"], 7);
    assert!(d.get("smsc").is_some_and(Value::is_null));
}

#[test]
fn encode_multipart_with_smsc_and_no_validity() {
    let text = "x".repeat(200);
    let v = json(&[
        "pdu",
        "encode",
        "--to",
        "+4915112345678",
        "--text",
        &text,
        "--smsc",
        "+4917200000",
        "--validity",
        "none",
        "--reference",
        "300",
    ]);
    assert_eq!(v["alphabet"], "gsm7");
    assert_eq!(v["parts"], 2);
    for (i, segment) in v["segments"].as_array().unwrap().iter().enumerate() {
        let d = json(&["pdu", "decode", segment["pdu"].as_str().unwrap()]);
        assert_eq!(d["smsc"], "+4917200000");
        assert_eq!(d["validity"], Value::Null);
        assert_eq!(d["concat"]["reference"], 300);
        assert_eq!(d["concat"]["sequence"], i + 1);
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let eleven_parts = "a".repeat(153 * 10 + 1);
    let cases: &[&[&str]] = &[
        &["pdu", "decode", "0G"],
        &["pdu", "decode", "ABC"],
        &["pdu", "decode", ""],
        &[
            "pdu",
            "decode",
            "07912143658709F1040B918100551512F20000111010214365000BE8329BFD4697D9EC37",
        ],
        &["pdu", "encode", "--to", "+1555abc", "--text", "hi"],
        &[
            "pdu",
            "encode",
            "--to",
            "+15551234567",
            "--text",
            &eleven_parts,
        ],
        &[
            "pdu",
            "encode",
            "--to",
            "+15551234567",
            "--text",
            "hi",
            "--validity",
            "3y",
        ],
        &[
            "pdu",
            "encode",
            "--to",
            "+15551234567",
            "--text",
            "ж",
            "--alphabet",
            "gsm7",
        ],
        &[
            "pdu",
            "encode",
            "--to",
            "+15551234567",
            "--text",
            "hi",
            "--class",
            "4",
        ],
        &[
            "pdu",
            "encode",
            "--to",
            "+15551234567",
            "--text",
            "hi",
            "--smsc",
            "nope",
        ],
    ];
    for args in cases {
        let out = smsgate(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{args:?}: {stderr}"
        );
        // clap's own usage errors add a usage hint; ours are exactly one line.
        if !stderr.starts_with("error:") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        }
    }
    let too_long = smsgate(&[
        "pdu",
        "encode",
        "--to",
        "+15551234567",
        "--text",
        &eleven_parts,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&too_long.stderr).trim(),
        "smsgate: text needs 11 parts, over the limit of 10"
    );
}
