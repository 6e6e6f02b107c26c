//! SMS PDU codec (3GPP TS 23.040 / 23.038): pure functions, no I/O.
//!
//! - [`decode`] reads what a modem prints in `+CMGR`, `+CMGL`, `+CMT` and `+CDS`:
//!   an SMSC field (unless the caller says there is none) and one of the three
//!   TPDUs a mobile station sees ([`SmsDeliver`], [`SmsSubmit`],
//!   [`SmsStatusReport`]).
//! - [`encode_submit`] splits a text into parts and writes each as an SMS-SUBMIT
//!   ready for `AT+CMGS`; [`encode_deliver`] does the same for SMS-DELIVER (the
//!   simulator's network uses it).
//!
//! Every decoder is total: broken input gives a [`PduError`] that names the
//! field and the octet, never a panic.

mod address;
mod dcs;
mod error;
pub mod gsm7;
pub mod hex;
mod national;
mod segment;
mod status;
mod timestamp;
mod tpdu;
mod udh;
mod user_data;
mod validity;

pub use address::{Address, TypeOfNumber, NPI_ISDN};
pub use dcs::{Alphabet, DataCoding};
pub use error::PduError;
pub use gsm7::LanguageTables;
pub use segment::{
    encode_deliver, encode_submit, segment, AlphabetChoice, DeliverOptions, EncodedMessage,
    EncodedPart, Segments, SubmitOptions, DEFAULT_MAX_PARTS,
};
pub use status::{Status, StatusClass};
pub use tpdu::{SmsDeliver, SmsStatusReport, SmsSubmit};
pub use udh::{Concat, InformationElement, Ports, UserDataHeader};
pub use user_data::{Body, UserData};
pub use validity::{relative_seconds, ValidityPeriod};

use error::{Reader, Result};

/// One of the TPDUs a mobile station receives or stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    Deliver(SmsDeliver),
    Submit(SmsSubmit),
    StatusReport(SmsStatusReport),
}

/// A PDU as a modem prints it: the SMSC field, then the TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// The service centre; `None` when the field is empty (`00`), holds no
    /// digit (`0181`), or is absent.
    pub smsc: Option<Address>,
    pub tpdu: Tpdu,
}

/// Decode a PDU. `with_smsc`: the octets start with the SMSC field, as in
/// `+CMGR`/`+CMGL`/`+CMT`; `false` for a bare TPDU.
pub fn decode(bytes: &[u8], with_smsc: bool) -> Result<Pdu> {
    if bytes.is_empty() {
        return Err(PduError::Empty);
    }
    let mut reader = Reader::new(bytes);
    let smsc = if with_smsc {
        Address::decode_smsc(&mut reader)?
    } else {
        None
    };
    let first = reader.u8("first octet")?;
    // 23.040 §9.2.3.1: TP-MTI as seen by a mobile station. 01 is SMS-SUBMIT when
    // the modem shows us one of our own stored messages.
    let tpdu = match first & tpdu::MTI_MASK {
        tpdu::MTI_DELIVER => Tpdu::Deliver(SmsDeliver::decode(first, &mut reader)?),
        tpdu::MTI_SUBMIT => Tpdu::Submit(SmsSubmit::decode(first, &mut reader)?),
        tpdu::MTI_STATUS_REPORT => Tpdu::StatusReport(SmsStatusReport::decode(first, &mut reader)?),
        _ => {
            return Err(PduError::Invalid {
                offset: reader.offset() - 1,
                field: "TP-MTI",
                reason: "message type 11 is reserved".into(),
            })
        }
    };
    Ok(Pdu { smsc, tpdu })
}

/// [`decode`] from hex text (either case). Surrounding whitespace and a stray
/// double quote, which some modems leave around the PDU line, are ignored.
pub fn decode_hex(text: &str, with_smsc: bool) -> Result<Pdu> {
    decode(&hex::decode(text.trim().trim_matches('"'))?, with_smsc)
}

impl Pdu {
    /// The PDU's octets: SMSC field (`00` when none), then the TPDU.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(176);
        Address::encode_smsc(self.smsc.as_ref(), &mut out)?;
        match &self.tpdu {
            Tpdu::Deliver(d) => d.encode(&mut out)?,
            Tpdu::Submit(s) => s.encode(&mut out)?,
            Tpdu::StatusReport(r) => r.encode(&mut out)?,
        }
        Ok(out)
    }

    /// The user data, where the TPDU has one.
    pub fn user_data(&self) -> Option<&UserData> {
        match &self.tpdu {
            Tpdu::Deliver(d) => Some(&d.user_data),
            Tpdu::Submit(s) => Some(&s.user_data),
            Tpdu::StatusReport(r) => r.user_data.as_ref(),
        }
    }
}
