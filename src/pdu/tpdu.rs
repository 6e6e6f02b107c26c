//! The three TPDUs smsgate reads and writes (23.040 §9.2.2): SMS-DELIVER,
//! SMS-SUBMIT and SMS-STATUS-REPORT, each with its decoder and encoder.

use chrono::{DateTime, FixedOffset};

use super::address::Address;
use super::dcs::DataCoding;
use super::error::{Reader, Result};
use super::status::Status;
use super::timestamp;
use super::user_data::UserData;
use super::validity::{ValidityPeriod, VPF_ABSOLUTE, VPF_ENHANCED, VPF_NONE, VPF_RELATIVE};

// First-octet bits shared by the TPDUs (23.040 §9.2.3).
pub(crate) const MTI_MASK: u8 = 0x03;
const BIT_MMS_OR_RD: u8 = 0x04;
const BIT_LP: u8 = 0x08;
const BIT_SRI_SRR_SRQ: u8 = 0x20;
const BIT_UDHI: u8 = 0x40;
const BIT_RP: u8 = 0x80;

/// TP-MTI values as seen by a mobile station (§9.2.3.1).
pub const MTI_DELIVER: u8 = 0b00;
pub const MTI_SUBMIT: u8 = 0b01;
pub const MTI_STATUS_REPORT: u8 = 0b10;

/// An SMS-DELIVER: a message from the network to us (§9.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsDeliver {
    /// TP-MMS: the service centre has more messages waiting for us.
    pub more_messages: bool,
    /// TP-LP: loop prevention (the message was forwarded).
    pub loop_prevention: bool,
    /// TP-RP: a reply path is set.
    pub reply_path: bool,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// TP-OA.
    pub originator: Address,
    /// TP-PID.
    pub pid: u8,
    pub dcs: DataCoding,
    /// TP-SCTS: when the service centre received it.
    pub service_centre_time: DateTime<FixedOffset>,
    pub user_data: UserData,
}

/// An SMS-SUBMIT: a message from us to the network (§9.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSubmit {
    /// TP-RD: reject a duplicate of a message still held by the centre.
    pub reject_duplicates: bool,
    pub reply_path: bool,
    /// TP-SRR.
    pub status_report_request: bool,
    /// TP-MR (the modem usually assigns its own and reports it in `+CMGS`).
    pub message_reference: u8,
    /// TP-DA.
    pub destination: Address,
    pub pid: u8,
    pub dcs: DataCoding,
    /// TP-VP; `None` is TP-VPF 00 (the centre's default).
    pub validity: Option<ValidityPeriod>,
    pub user_data: UserData,
}

/// An SMS-STATUS-REPORT: the fate of a message we submitted (§9.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsStatusReport {
    pub more_messages: bool,
    pub loop_prevention: bool,
    /// TP-SRQ: this reports on an SMS-COMMAND rather than an SMS-SUBMIT.
    pub qualifier_command: bool,
    /// TP-MR of the submitted message this reports on.
    pub message_reference: u8,
    /// TP-RA: the recipient of that message.
    pub recipient: Address,
    /// TP-SCTS of the submitted message.
    pub service_centre_time: DateTime<FixedOffset>,
    /// TP-DT: when the status below was reached.
    pub discharge_time: DateTime<FixedOffset>,
    pub status: Status,
    /// TP-PID, when TP-PI says it is present.
    pub pid: Option<u8>,
    /// TP-DCS, when TP-PI says it is present.
    pub dcs: Option<DataCoding>,
    /// TP-UD, when TP-PI says it is present.
    pub user_data: Option<UserData>,
}

fn bit(octet: u8, mask: u8) -> bool {
    octet & mask != 0
}

impl SmsDeliver {
    pub(crate) fn decode(first: u8, r: &mut Reader<'_>) -> Result<SmsDeliver> {
        let originator = Address::decode(r, "TP-OA")?;
        let pid = r.u8("TP-PID")?;
        let dcs = DataCoding::from_octet(r.u8("TP-DCS")?);
        let service_centre_time = timestamp::decode(r, "TP-SCTS")?;
        let user_data = UserData::decode(r, bit(first, BIT_UDHI), &dcs)?;
        Ok(SmsDeliver {
            // TP-MMS is 0 when more messages are waiting (§9.2.3.2).
            more_messages: !bit(first, BIT_MMS_OR_RD),
            loop_prevention: bit(first, BIT_LP),
            reply_path: bit(first, BIT_RP),
            status_report_indication: bit(first, BIT_SRI_SRR_SRQ),
            originator,
            pid,
            dcs,
            service_centre_time,
            user_data,
        })
    }

    /// The TPDU's octets (no SMSC field).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut first = MTI_DELIVER;
        if !self.more_messages {
            first |= BIT_MMS_OR_RD;
        }
        if self.loop_prevention {
            first |= BIT_LP;
        }
        if self.status_report_indication {
            first |= BIT_SRI_SRR_SRQ;
        }
        if self.user_data.header.is_some() {
            first |= BIT_UDHI;
        }
        if self.reply_path {
            first |= BIT_RP;
        }
        out.push(first);
        self.originator.encode(out)?;
        out.push(self.pid);
        out.push(self.dcs.raw);
        timestamp::encode(&self.service_centre_time, out);
        self.user_data.encode_for(&self.dcs, out)
    }
}

impl SmsSubmit {
    pub(crate) fn decode(first: u8, r: &mut Reader<'_>) -> Result<SmsSubmit> {
        let message_reference = r.u8("TP-MR")?;
        let destination = Address::decode(r, "TP-DA")?;
        let pid = r.u8("TP-PID")?;
        let dcs = DataCoding::from_octet(r.u8("TP-DCS")?);
        let validity = match (first >> 3) & 0x03 {
            VPF_RELATIVE => Some(ValidityPeriod::Relative(r.u8("TP-VP")?)),
            VPF_ABSOLUTE => Some(ValidityPeriod::Absolute(timestamp::decode(r, "TP-VP")?)),
            VPF_ENHANCED => {
                let mut octets = [0u8; 7];
                octets.copy_from_slice(r.take(7, "TP-VP")?);
                Some(ValidityPeriod::Enhanced(octets))
            }
            _ => None,
        };
        let user_data = UserData::decode(r, bit(first, BIT_UDHI), &dcs)?;
        Ok(SmsSubmit {
            reject_duplicates: bit(first, BIT_MMS_OR_RD),
            reply_path: bit(first, BIT_RP),
            status_report_request: bit(first, BIT_SRI_SRR_SRQ),
            message_reference,
            destination,
            pid,
            dcs,
            validity,
            user_data,
        })
    }

    /// The TPDU's octets (no SMSC field): what `AT+CMGS=<length>` counts.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let vpf = self.validity.map_or(VPF_NONE, |v| v.format());
        let mut first = MTI_SUBMIT | vpf << 3;
        if self.reject_duplicates {
            first |= BIT_MMS_OR_RD;
        }
        if self.status_report_request {
            first |= BIT_SRI_SRR_SRQ;
        }
        if self.user_data.header.is_some() {
            first |= BIT_UDHI;
        }
        if self.reply_path {
            first |= BIT_RP;
        }
        out.push(first);
        out.push(self.message_reference);
        self.destination.encode(out)?;
        out.push(self.pid);
        out.push(self.dcs.raw);
        match &self.validity {
            None => {}
            Some(ValidityPeriod::Relative(v)) => out.push(*v),
            Some(ValidityPeriod::Absolute(t)) => timestamp::encode(t, out),
            Some(ValidityPeriod::Enhanced(octets)) => out.extend_from_slice(octets),
        }
        self.user_data.encode_for(&self.dcs, out)
    }
}

// TP-PI bits (§9.2.3.27).
const PI_PID: u8 = 0x01;
const PI_DCS: u8 = 0x02;
const PI_UDL: u8 = 0x04;

impl SmsStatusReport {
    pub(crate) fn decode(first: u8, r: &mut Reader<'_>) -> Result<SmsStatusReport> {
        let message_reference = r.u8("TP-MR")?;
        let recipient = Address::decode(r, "TP-RA")?;
        let service_centre_time = timestamp::decode(r, "TP-SCTS")?;
        let discharge_time = timestamp::decode(r, "TP-DT")?;
        let status = Status(r.u8("TP-ST")?);
        // TP-PI and what it announces are optional; many centres stop at TP-ST.
        // Reports stored on a SIM (EF-SMSR) are padded with FF, which is not a
        // parameter indicator; otherwise only bits 0-2 have a meaning (§9.2.3.27).
        let pi = match r.is_empty() {
            true => 0,
            false => match r.u8("TP-PI")? {
                0xFF => 0,
                pi => pi,
            },
        };
        let pid = if bit(pi, PI_PID) {
            Some(r.u8("TP-PID")?)
        } else {
            None
        };
        let dcs = if bit(pi, PI_DCS) {
            Some(DataCoding::from_octet(r.u8("TP-DCS")?))
        } else {
            None
        };
        let user_data = if bit(pi, PI_UDL) {
            let coding = dcs.unwrap_or(DataCoding::from_octet(0));
            Some(UserData::decode(r, bit(first, BIT_UDHI), &coding)?)
        } else {
            None
        };
        Ok(SmsStatusReport {
            more_messages: !bit(first, BIT_MMS_OR_RD),
            loop_prevention: bit(first, BIT_LP),
            qualifier_command: bit(first, BIT_SRI_SRR_SRQ),
            message_reference,
            recipient,
            service_centre_time,
            discharge_time,
            status,
            pid,
            dcs,
            user_data,
        })
    }

    /// The TPDU's octets (no SMSC field); the simulator hands these to modems.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut first = MTI_STATUS_REPORT;
        if !self.more_messages {
            first |= BIT_MMS_OR_RD;
        }
        if self.loop_prevention {
            first |= BIT_LP;
        }
        if self.qualifier_command {
            first |= BIT_SRI_SRR_SRQ;
        }
        if self.user_data.as_ref().is_some_and(|u| u.header.is_some()) {
            first |= BIT_UDHI;
        }
        out.push(first);
        out.push(self.message_reference);
        self.recipient.encode(out)?;
        timestamp::encode(&self.service_centre_time, out);
        timestamp::encode(&self.discharge_time, out);
        out.push(self.status.0);
        let mut pi = 0;
        if self.pid.is_some() {
            pi |= PI_PID;
        }
        if self.dcs.is_some() {
            pi |= PI_DCS;
        }
        if self.user_data.is_some() {
            pi |= PI_UDL;
        }
        if pi == 0 {
            return Ok(());
        }
        out.push(pi);
        if let Some(pid) = self.pid {
            out.push(pid);
        }
        if let Some(dcs) = self.dcs {
            out.push(dcs.raw);
        }
        if let Some(ud) = &self.user_data {
            let coding = self.dcs.unwrap_or(DataCoding::from_octet(0));
            ud.encode_for(&coding, out)?;
        }
        Ok(())
    }
}
