//! `smsgate pdu decode|encode`: a JSON contract other tools call.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use super::UsageError;
use crate::pdu::{
    self, Address, AlphabetChoice, Body, LanguageTables, Pdu, SubmitOptions, Tpdu, UserData,
    ValidityPeriod,
};

#[derive(Debug, Subcommand)]
pub enum PduCommand {
    /// Decode one PDU (hex) and print it as a JSON object.
    Decode {
        /// The PDU in hex, either case; by default it starts with the SMSC field.
        hex: String,
        /// The hex is a bare TPDU, without the SMSC field.
        #[arg(long)]
        no_smsc: bool,
    },
    /// Encode a text as SMS-SUBMIT PDUs ready for AT+CMGS in PDU mode.
    Encode(EncodeArgs),
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Recipient: +E.164, or digits as dialled.
    #[arg(long)]
    to: String,
    /// The message text (UTF-8).
    #[arg(long)]
    text: String,
    /// SMSC number to put in the PDU (default: none, the modem's own).
    #[arg(long)]
    smsc: Option<String>,
    /// Ask for a status report (TP-SRR).
    #[arg(long)]
    status_report: bool,
    /// Validity period: "none" or a duration such as 5m, 24h, 7d, 2w.
    #[arg(long, default_value = "24h")]
    validity: String,
    /// Message class 0-3.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
    class: Option<u8>,
    #[arg(long, value_enum, default_value_t = AlphabetArg::Auto)]
    alphabet: AlphabetArg,
    /// Concatenation reference (over 255 uses the 16-bit element).
    #[arg(long, default_value_t = 0)]
    reference: u16,
    /// TP-MR of the first part.
    #[arg(long, default_value_t = 0)]
    message_reference: u8,
    /// Refuse texts that need more parts than this.
    #[arg(long, default_value_t = pdu::DEFAULT_MAX_PARTS)]
    max_parts: usize,
    /// National language single shift table (23.038 §6.2.1.2.4: 1 Turkish,
    /// 2 Spanish, 3 Portuguese, ...).
    #[arg(long, default_value_t = 0)]
    single_shift: u8,
    /// National language locking shift table (1 Turkish, 3 Portuguese, ...).
    #[arg(long, default_value_t = 0)]
    locking_shift: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlphabetArg {
    Auto,
    Gsm7,
    Ucs2,
}

pub fn run(command: PduCommand) -> Result<(), UsageError> {
    let value = match command {
        PduCommand::Decode { hex, no_smsc } => decoded_json(&pdu::decode_hex(&hex, !no_smsc)?),
        PduCommand::Encode(args) => encode(args)?,
    };
    println!("{value}");
    Ok(())
}

/// "none", or a number and a unit: s, m, h, d, w.
pub fn parse_validity(text: &str) -> Result<Option<ValidityPeriod>, UsageError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        UsageError(format!(
            "invalid validity {text:?}: use none or e.g. 5m, 24h, 7d, 2w"
        ))
    };
    let seconds = crate::duration::parse(text).ok_or_else(bad)?.as_secs();
    if seconds == 0 || seconds > pdu::relative_seconds(255) {
        return Err(UsageError(format!(
            "invalid validity {text:?}: a relative period is 5 minutes to 63 weeks"
        )));
    }
    Ok(Some(ValidityPeriod::relative_at_least(seconds)))
}

fn encode(args: EncodeArgs) -> Result<Value, UsageError> {
    let to = Address::parse_number(&args.to)?;
    let smsc = args
        .smsc
        .as_deref()
        .map(Address::parse_number)
        .transpose()?;
    let options = SubmitOptions {
        smsc,
        status_report: args.status_report,
        validity: parse_validity(&args.validity)?,
        class: args.class,
        alphabet: match args.alphabet {
            AlphabetArg::Auto => AlphabetChoice::Auto,
            AlphabetArg::Gsm7 => AlphabetChoice::Gsm7,
            AlphabetArg::Ucs2 => AlphabetChoice::Ucs2,
        },
        tables: LanguageTables {
            locking: args.locking_shift,
            single: args.single_shift,
        },
        reference: args.reference,
        message_reference: args.message_reference,
        max_parts: args.max_parts,
    };
    let message = pdu::encode_submit(&to, &args.text, &options)?;
    let segments: Vec<Value> = message
        .parts
        .iter()
        .map(|p| json!({"pdu": pdu::hex::encode(&p.pdu), "length": p.tpdu_length}))
        .collect();
    Ok(json!({
        "alphabet": message.alphabet.as_str(),
        "parts": segments.len(),
        "segments": segments,
    }))
}

const RFC3339: &str = "%Y-%m-%dT%H:%M:%S%:z";

fn address_fields(out: &mut Map<String, Value>, key: &str, address: &Address) {
    out.insert(key.into(), json!(address.value));
    out.insert("address_type".into(), json!(address.ton.as_str()));
}

fn user_data_fields(out: &mut Map<String, Value>, user_data: &UserData) {
    let header = user_data.header.as_ref();
    out.insert(
        "concat".into(),
        match header.and_then(|h| h.concat()) {
            Some(c) => json!({"reference": c.reference, "total": c.total, "sequence": c.sequence}),
            None => Value::Null,
        },
    );
    out.insert(
        "udh".into(),
        match header {
            Some(h) => h
                .elements
                .iter()
                .map(|ie| json!({"iei": ie.iei, "data": pdu::hex::encode(&ie.data)}))
                .collect(),
            None => Value::Null,
        },
    );
    match &user_data.body {
        Body::Text(text) => out.insert("text".into(), json!(text)),
        Body::Data(data) => out.insert("data".into(), json!(pdu::hex::encode(data))),
    };
}

/// The JSON view of a decoded PDU (keys documented in README.md).
pub fn decoded_json(decoded: &Pdu) -> Value {
    let mut out = Map::new();
    out.insert(
        "smsc".into(),
        json!(decoded.smsc.as_ref().map(|a| &a.value)),
    );
    let coding = |out: &mut Map<String, Value>, pid: Option<u8>, dcs: Option<pdu::DataCoding>| {
        out.insert("pid".into(), json!(pid));
        out.insert("dcs".into(), json!(dcs.map(|d| d.raw)));
        out.insert("alphabet".into(), json!(dcs.map(|d| d.alphabet.as_str())));
        out.insert("class".into(), json!(dcs.and_then(|d| d.class)));
    };
    match &decoded.tpdu {
        Tpdu::Deliver(d) => {
            out.insert("type".into(), json!("deliver"));
            address_fields(&mut out, "sender", &d.originator);
            out.insert(
                "timestamp".into(),
                json!(d.service_centre_time.format(RFC3339).to_string()),
            );
            coding(&mut out, Some(d.pid), Some(d.dcs));
            out.insert(
                "status_report_requested".into(),
                json!(d.status_report_indication),
            );
            user_data_fields(&mut out, &d.user_data);
        }
        Tpdu::Submit(s) => {
            out.insert("type".into(), json!("submit"));
            address_fields(&mut out, "recipient", &s.destination);
            out.insert("message_reference".into(), json!(s.message_reference));
            coding(&mut out, Some(s.pid), Some(s.dcs));
            out.insert(
                "status_report_requested".into(),
                json!(s.status_report_request),
            );
            let validity = match s.validity {
                None => Value::Null,
                Some(ValidityPeriod::Absolute(t)) => json!(t.format(RFC3339).to_string()),
                Some(v) => json!(v.seconds()),
            };
            out.insert("validity".into(), validity);
            user_data_fields(&mut out, &s.user_data);
        }
        Tpdu::StatusReport(r) => {
            out.insert("type".into(), json!("status_report"));
            address_fields(&mut out, "recipient", &r.recipient);
            out.insert("message_reference".into(), json!(r.message_reference));
            out.insert(
                "timestamp".into(),
                json!(r.service_centre_time.format(RFC3339).to_string()),
            );
            out.insert(
                "discharge_time".into(),
                json!(r.discharge_time.format(RFC3339).to_string()),
            );
            out.insert("status".into(), json!(r.status.0));
            out.insert("status_class".into(), json!(r.status.class().as_str()));
            coding(&mut out, r.pid, r.dcs);
            if let Some(ud) = &r.user_data {
                user_data_fields(&mut out, ud);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_strings() {
        assert_eq!(parse_validity("none").unwrap(), None);
        assert_eq!(
            parse_validity("5m").unwrap(),
            Some(ValidityPeriod::Relative(0))
        );
        assert_eq!(
            parse_validity("24h").unwrap(),
            Some(ValidityPeriod::Relative(167))
        );
        assert_eq!(
            parse_validity("63w").unwrap(),
            Some(ValidityPeriod::Relative(255))
        );
        for bad in [
            "",
            "h",
            "5",
            "5y",
            "0m",
            "64w",
            "-1h",
            "99999999999999999999w",
        ] {
            assert!(parse_validity(bad).is_err(), "{bad:?}");
        }
    }
}
