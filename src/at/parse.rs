//! Parsers for information lines (27.005 / 27.007 response syntax): pure
//! functions over `&str`, built from one nom tokenizer for the comma-separated
//! parameter list (27.007 §4.1: numbers bare, strings in double quotes, omitted
//! parameters empty).
//!
//! PDU-mode message lines are returned as hex and bytes, not decoded: that is
//! the `pdu` module's job. Every parser takes lines that came from outside and
//! returns a value or an [`AtError::Parse`], never panics (property-tested).

use nom::branch::alt;
use nom::bytes::complete::take_till;
use nom::character::complete::{char, space0};
use nom::combinator::{all_consuming, map};
use nom::multi::separated_list0;
use nom::sequence::{delimited, terminated};
use nom::{IResult, Parser};
use serde::Serialize;

use super::digest::strip_prefix_ignore_case;
use super::error::AtError;

/// One parameter of an information line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// `"text"`, quotes removed.
    Quoted(&'a str),
    /// A number, an unquoted token, or empty for an omitted parameter.
    Bare(&'a str),
}

impl<'a> Field<'a> {
    /// The text, quoted or not.
    pub fn text(self) -> &'a str {
        match self {
            Field::Quoted(s) | Field::Bare(s) => s,
        }
    }

    /// The text, or `None` when the parameter was omitted or empty.
    pub fn non_empty(self) -> Option<&'a str> {
        Some(self.text()).filter(|s| !s.is_empty())
    }

    /// The value as a number (quoted numbers accepted: vendors quote them).
    pub fn number<T: std::str::FromStr>(self) -> Option<T> {
        let t = self.text().trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    }
}

fn quoted(i: &str) -> IResult<&str, Field<'_>> {
    map(
        terminated(
            delimited(char('"'), take_till(|c| c == '"'), char('"')),
            space0,
        ),
        Field::Quoted,
    )
    .parse(i)
}

fn bare(i: &str) -> IResult<&str, Field<'_>> {
    map(take_till(|c| c == ',' || c == '"'), |s: &str| {
        Field::Bare(s.trim())
    })
    .parse(i)
}

/// Splits a parameter list (`3,"SM",,"+4478",145`) into fields. `None` when the
/// quoting is broken.
pub fn fields(params: &str) -> Option<Vec<Field<'_>>> {
    let parsed: IResult<&str, Vec<Field<'_>>> =
        all_consuming(separated_list0(char(','), alt((quoted, bare)))).parse(params.trim());
    parsed.ok().map(|(_, v)| v)
}

/// The parameters after `prefix` (`+CSQ:`), spaces trimmed; case-insensitive
/// because some modems answer in lower case when asked in lower case.
pub fn params<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    strip_prefix_ignore_case(line.trim(), prefix).map(str::trim)
}

fn fields_after<'a>(line: &'a str, prefix: &'static str) -> Result<Vec<Field<'a>>, AtError> {
    params(line, prefix)
        .and_then(fields)
        .ok_or_else(|| AtError::parse(prefix, line))
}

fn first_line<'a>(lines: &'a [String], prefix: &'static str) -> Result<&'a str, AtError> {
    lines
        .iter()
        .find(|l| params(l, prefix).is_some())
        .map(String::as_str)
        .ok_or_else(|| AtError::parse(prefix, format!("no {prefix} line in {lines:?}")))
}

/// Decodes a hex line (a PDU) into bytes.
pub fn hex_bytes(hex: &str) -> Result<Vec<u8>, AtError> {
    let hex = hex.trim();
    if hex.len() % 2 != 0 {
        return Err(AtError::parse("hex PDU (odd length)", hex));
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| AtError::parse("hex PDU", hex))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// SMS storage: +CMGR, +CMGL, +CMGS, +CPMS, +CMTI/+CDSI (27.005 §3)
// ---------------------------------------------------------------------------

/// `<stat>` of a stored message (27.005 §3.1, PDU-mode integer values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MessageStatus {
    /// 0 "REC UNREAD": received, not read yet.
    ReceivedUnread,
    /// 1 "REC READ"
    ReceivedRead,
    /// 2 "STO UNSENT"
    StoredUnsent,
    /// 3 "STO SENT"
    StoredSent,
    /// 4 "ALL": only as a `+CMGL` filter.
    All,
}

impl MessageStatus {
    /// The PDU-mode integer.
    pub fn code(self) -> u8 {
        match self {
            MessageStatus::ReceivedUnread => 0,
            MessageStatus::ReceivedRead => 1,
            MessageStatus::StoredUnsent => 2,
            MessageStatus::StoredSent => 3,
            MessageStatus::All => 4,
        }
    }

    /// From the integer (PDU mode) or the text-mode string some modems print
    /// even in PDU mode.
    pub fn parse(f: Field<'_>) -> Option<Self> {
        Some(match f.text().trim().to_ascii_uppercase().as_str() {
            "0" | "REC UNREAD" => MessageStatus::ReceivedUnread,
            "1" | "REC READ" => MessageStatus::ReceivedRead,
            "2" | "STO UNSENT" => MessageStatus::StoredUnsent,
            "3" | "STO SENT" => MessageStatus::StoredSent,
            "4" | "ALL" => MessageStatus::All,
            _ => return None,
        })
    }
}

/// `+CMGR: <stat>,[<alpha>],<length>` + the PDU line (27.005 §3.4.3, PDU mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    /// Read/unread/sent; `None` when the modem left `<stat>` out.
    pub status: Option<MessageStatus>,
    /// Phonebook name of the sender, if the modem looked it up.
    pub alpha: Option<String>,
    /// TPDU length in octets (excludes the SMSC address): lets the codec check
    /// the PDU is complete.
    pub length: u16,
    /// The PDU exactly as printed (SMSC address first), hex.
    pub pdu: String,
}

impl StoredMessage {
    /// The PDU as bytes (fails on broken hex).
    pub fn pdu_bytes(&self) -> Result<Vec<u8>, AtError> {
        hex_bytes(&self.pdu)
    }

    /// The PDU bytes, checked against `<length>` (27.005 §3.1: the TPDU length,
    /// i.e. the PDU minus its SMSC address field). A mismatch means a line cut
    /// short by the modem or the serial link; the codec would fail later with
    /// a less useful message.
    pub fn verified_pdu(&self) -> Result<Vec<u8>, AtError> {
        let bytes = self.pdu_bytes()?;
        let smsc = bytes.first().map_or(0, |n| usize::from(*n));
        let expected = 1 + smsc + usize::from(self.length);
        if bytes.len() == expected {
            Ok(bytes)
        } else {
            Err(AtError::parse(
                "PDU length",
                format!(
                    "header says {} TPDU octets, line holds {} octets after a {}-octet SMSC field",
                    self.length,
                    bytes.len().saturating_sub(1 + smsc),
                    smsc
                ),
            ))
        }
    }
}

/// A `+CMGL` entry: the same as `+CMGR` plus the storage index (27.005 §3.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedMessage {
    /// Index in the storage, for `AT+CMGR`/`AT+CMGD`.
    pub index: u32,
    /// Status, alpha, length and PDU.
    pub message: StoredMessage,
}

/// Header fields `<stat>,[<alpha>],<length>` (27.005 §3.4.3). Real modems
/// also print `<stat>,<length>` (no alpha field), `<length>` alone, an empty
/// `<stat>`, and `<index>,<stat>,[<alpha>],<length>` (the `+CMGL` shape): all
/// seen in gammu's captures, all accepted.
type Header = (Option<MessageStatus>, Option<String>, u16);

fn stored_header(f: &[Field<'_>], line: &str) -> Result<Header, AtError> {
    let bad = || AtError::parse("+CMGR/+CMGL header", line);
    let (stat, alpha, length) = match f {
        [length] => (None, None, *length),
        [stat, length] => (Some(*stat), None, *length),
        [stat, alpha, length] => (Some(*stat), alpha.non_empty(), *length),
        [_index, stat, alpha, length] => (Some(*stat), alpha.non_empty(), *length),
        _ => return Err(bad()),
    };
    let status = match stat.filter(|s| !s.text().trim().is_empty()) {
        None => None,
        Some(s) => Some(MessageStatus::parse(s).ok_or_else(bad)?),
    };
    Ok((
        status,
        alpha.map(str::to_string),
        length.number().ok_or_else(bad)?,
    ))
}

fn pdu_line(lines: &[String], after: usize, what: &'static str) -> Result<String, AtError> {
    let pdu = lines
        .get(after + 1)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| AtError::parse(what, "PDU line missing"))?;
    Ok(pdu.to_string())
}

/// `AT+CMGR=<index>` in PDU mode. `Ok(None)` when the slot is empty (many
/// modems answer a bare `OK`; some print `+CMGR: 0,,0` and an empty line).
pub fn cmgr(lines: &[String]) -> Result<Option<StoredMessage>, AtError> {
    let Some(at) = lines.iter().position(|l| params(l, "+CMGR:").is_some()) else {
        return Ok(None);
    };
    let header = lines.get(at).map(String::as_str).unwrap_or("");
    let f = fields_after(header, "+CMGR:")?;
    let (status, alpha, length) = stored_header(&f, header)?;
    if length == 0 && lines.get(at + 1).is_none_or_empty() {
        return Ok(None);
    }
    let pdu = pdu_line(lines, at, "+CMGR")?;
    Ok(Some(StoredMessage {
        status,
        alpha,
        length,
        pdu,
    }))
}

trait OptLine {
    fn is_none_or_empty(&self) -> bool;
}

impl OptLine for Option<&String> {
    fn is_none_or_empty(&self) -> bool {
        self.is_none_or(|l| l.trim().is_empty())
    }
}

/// `AT+CMGL=<stat>` in PDU mode: `+CMGL: <index>,<stat>,[<alpha>],<length>`
/// each followed by its PDU line (27.005 §3.4.2). Lines that are neither are
/// skipped (vendor noise that the digest did not know).
pub fn cmgl(lines: &[String]) -> Result<Vec<ListedMessage>, AtError> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        if params(line, "+CMGL:").is_none() {
            i += 1;
            continue;
        }
        let f = fields_after(line, "+CMGL:")?;
        let (index, rest) = f
            .split_first()
            .ok_or_else(|| AtError::parse("+CMGL header", line.as_str()))?;
        let index = index
            .number()
            .ok_or_else(|| AtError::parse("+CMGL index", line.as_str()))?;
        let (status, alpha, length) = stored_header(rest, line)?;
        let pdu = pdu_line(lines, i, "+CMGL")?;
        out.push(ListedMessage {
            index,
            message: StoredMessage {
                status,
                alpha,
                length,
                pdu,
            },
        });
        i += 2;
    }
    Ok(out)
}

/// `+CMGS: <mr>[,<scts>|<ackpdu>]` (27.005 §3.5.1): the TP-Message-Reference
/// that a later status report (`+CDS`) will carry.
pub fn cmgs(lines: &[String]) -> Result<u8, AtError> {
    let line = first_line(lines, "+CMGS:")?;
    let f = fields_after(line, "+CMGS:")?;
    f.first()
        .and_then(|f| f.number())
        .ok_or_else(|| AtError::parse("+CMGS", line))
}

/// One message storage and how full it is (`+CPMS`, 27.005 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageUsage {
    /// `"SM"`, `"ME"`, `"MT"`...; absent in the set form, which only counts.
    pub storage: Option<String>,
    /// Messages stored.
    pub used: u32,
    /// Capacity.
    pub total: u32,
}

/// `+CPMS: <mem1>,<used1>,<total1>,<mem2>,...` (query form) or
/// `+CPMS: <used1>,<total1>,<used2>,...` (answer to the set form). Returns one
/// entry per storage (mem1 read/delete, mem2 write/send, mem3 receive).
pub fn cpms(lines: &[String]) -> Result<Vec<StorageUsage>, AtError> {
    let line = first_line(lines, "+CPMS:")?;
    let f = fields_after(line, "+CPMS:")?;
    let bad = || AtError::parse("+CPMS", line);
    let query_form = matches!(f.first(), Some(Field::Quoted(_)))
        || f.first().is_some_and(|x| x.number::<u32>().is_none());
    let mut out = Vec::new();
    if query_form {
        for chunk in f.chunks(3) {
            let [mem, used, total] = chunk else {
                return Err(bad());
            };
            out.push(StorageUsage {
                storage: Some(mem.text().to_string()),
                used: used.number().ok_or_else(bad)?,
                total: total.number().ok_or_else(bad)?,
            });
        }
    } else {
        for chunk in f.chunks(2) {
            let [used, total] = chunk else {
                return Err(bad());
            };
            out.push(StorageUsage {
                storage: None,
                used: used.number().ok_or_else(bad)?,
                total: total.number().ok_or_else(bad)?,
            });
        }
    }
    if out.is_empty() || out.len() > 3 {
        return Err(bad());
    }
    Ok(out)
}

/// `+CMTI: <mem>,<index>` (new message stored) and `+CDSI: <mem>,<index>`
/// (status report stored), 27.005 §3.4.1.
pub fn storage_index(line: &str, prefix: &'static str) -> Result<(String, u32), AtError> {
    let f = fields_after(line, prefix)?;
    match f.as_slice() {
        [mem, index, ..] => Ok((
            mem.text().to_string(),
            index.number().ok_or_else(|| AtError::parse(prefix, line))?,
        )),
        _ => Err(AtError::parse(prefix, line)),
    }
}

/// `+CMT: [<alpha>],<length>` (PDU mode, 27.005 §3.4.1): the TPDU length.
pub fn cmt_header(line: &str) -> Result<(Option<String>, u16), AtError> {
    let f = fields_after(line, "+CMT:")?;
    match f.as_slice() {
        [alpha, length] => Ok((
            alpha.non_empty().map(str::to_string),
            length
                .number()
                .ok_or_else(|| AtError::parse("+CMT", line))?,
        )),
        [length] => Ok((
            None,
            length
                .number()
                .ok_or_else(|| AtError::parse("+CMT", line))?,
        )),
        _ => Err(AtError::parse("+CMT", line)),
    }
}

/// `+CDS: <length>` (PDU mode, 27.005 §3.4.1).
pub fn cds_header(line: &str) -> Result<u16, AtError> {
    let f = fields_after(line, "+CDS:")?;
    f.last()
        .and_then(|f| f.number())
        .filter(|_| f.len() <= 2)
        .ok_or_else(|| AtError::parse("+CDS", line))
}

// ---------------------------------------------------------------------------
// Network: +CSQ, +CREG/+CGREG/+CEREG, +COPS (27.007 §7, §8)
// ---------------------------------------------------------------------------

/// `+CSQ: <rssi>,<ber>` (27.007 §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SignalQuality {
    /// 0..31, or 99 for not known.
    pub rssi: u8,
    /// Bit error rate class 0..7, or 99 for not known.
    pub ber: u8,
}

impl SignalQuality {
    /// Received signal strength in dBm, per the 27.007 §8.5 table: 0 is -113
    /// dBm or less, 1 is -111, 2..30 step 2 dB from -109 to -53, 31 is -51 or
    /// better, 99 (or anything else) unknown.
    pub fn dbm(self) -> Option<i16> {
        match self.rssi {
            0..=31 => Some(-113 + 2 * i16::from(self.rssi)),
            _ => None,
        }
    }
}

/// `AT+CSQ`; also the Huawei `^RSSI: <rssi>` URC, which uses the same scale.
pub fn csq(line: &str) -> Result<SignalQuality, AtError> {
    let f = fields_after(line, "+CSQ:")?;
    match f.as_slice() {
        [rssi, ber] => Ok(SignalQuality {
            rssi: rssi.number().ok_or_else(|| AtError::parse("+CSQ", line))?,
            ber: ber.number().ok_or_else(|| AtError::parse("+CSQ", line))?,
        }),
        _ => Err(AtError::parse("+CSQ", line)),
    }
}

/// Which registration a `+CxREG` line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Domain {
    /// `+CREG`: circuit switched, where SMS over the CS domain lives (27.007 §7.2).
    Cs,
    /// `+CGREG`: GPRS packet domain (27.007 §10.1.20).
    Gprs,
    /// `+CEREG`: EPS / LTE (27.007 §10.1.22).
    Eps,
}

impl Domain {
    fn prefix(self) -> &'static str {
        match self {
            Domain::Cs => "+CREG:",
            Domain::Gprs => "+CGREG:",
            Domain::Eps => "+CEREG:",
        }
    }
}

/// `<stat>` of `+CREG`/`+CGREG`/`+CEREG` (27.007 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RegistrationStatus {
    /// 0: not registered, not searching.
    NotRegistered,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown (out of coverage).
    Unknown,
    /// 5: registered, roaming.
    Roaming,
    /// 6: registered for "SMS only", home (E-UTRAN).
    HomeSmsOnly,
    /// 7: registered for "SMS only", roaming.
    RoamingSmsOnly,
    /// 8: attached for emergency bearer services only.
    EmergencyOnly,
    /// Any other value (9, 10: CSFB not preferred, ...).
    Other(u8),
}

impl RegistrationStatus {
    fn from_code(n: u8) -> Self {
        match n {
            0 => Self::NotRegistered,
            1 => Self::Home,
            2 => Self::Searching,
            3 => Self::Denied,
            4 => Self::Unknown,
            5 => Self::Roaming,
            6 => Self::HomeSmsOnly,
            7 => Self::RoamingSmsOnly,
            8 => Self::EmergencyOnly,
            n => Self::Other(n),
        }
    }

    /// Whether SMS can be sent: home or roaming, including "SMS only".
    pub fn is_registered(self) -> bool {
        matches!(
            self,
            Self::Home | Self::Roaming | Self::HomeSmsOnly | Self::RoamingSmsOnly
        ) || matches!(self, Self::Other(9 | 10))
    }
}

/// A registration report, from a query response or a URC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// Which domain.
    pub domain: Domain,
    /// `<n>` (URC reporting mode), only in the query response.
    pub mode: Option<u8>,
    /// Registration state.
    pub status: RegistrationStatus,
    /// Location (or tracking) area code, hex in the line.
    pub lac: Option<u32>,
    /// Cell id, hex in the line.
    pub cell_id: Option<u32>,
    /// Access technology `<AcT>` (0 GSM, 2 UTRAN, 7 E-UTRAN, ...).
    pub act: Option<u8>,
}

fn hex_u32(f: Field<'_>) -> Option<u32> {
    let t = f.text().trim();
    if t.is_empty() || t.len() > 8 {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

/// `+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>]]` (response to `AT+CREG?`) or
/// `+CREG: <stat>[,<lac>,<ci>[,<AcT>]]` (URC), same for `+CGREG`/`+CEREG`.
/// `solicited` says which form to expect; when the count of fields settles it
/// (1 or 3 fields: URC; 2 or 5: response) the count wins, and with 4 fields a
/// quoted second field means the URC form.
pub fn registration(line: &str, domain: Domain, solicited: bool) -> Result<Registration, AtError> {
    let prefix = domain.prefix();
    let f = fields_after(line, prefix)?;
    let bad = || AtError::parse(prefix, line);
    let response_form = match f.len() {
        1 | 3 => false,
        2 => true,
        4 => !matches!(f.get(1), Some(Field::Quoted(_))) && solicited,
        _ => true,
    };
    let (mode, rest) = if response_form {
        let (n, rest) = f.split_first().ok_or_else(bad)?;
        (Some(n.number().ok_or_else(bad)?), rest)
    } else {
        (None, f.as_slice())
    };
    let status = rest
        .first()
        .and_then(|s| s.number())
        .map(RegistrationStatus::from_code)
        .ok_or_else(bad)?;
    Ok(Registration {
        domain,
        mode,
        status,
        lac: rest.get(1).copied().and_then(hex_u32),
        cell_id: rest.get(2).copied().and_then(hex_u32),
        act: rest.get(3).and_then(|f| f.number()),
    })
}

/// `+COPS: <mode>[,<format>,<oper>[,<AcT>]]` (27.007 §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    /// 0 automatic, 1 manual, 2 deregistered, 4 manual/automatic.
    pub mode: u8,
    /// 0 long alphanumeric, 1 short, 2 numeric MCC+MNC.
    pub format: Option<u8>,
    /// The operator, in that format; absent when not registered.
    pub name: Option<String>,
    /// Access technology.
    pub act: Option<u8>,
}

/// `AT+COPS?`.
pub fn cops(line: &str) -> Result<Operator, AtError> {
    let f = fields_after(line, "+COPS:")?;
    let bad = || AtError::parse("+COPS", line);
    Ok(Operator {
        mode: f.first().and_then(|f| f.number()).ok_or_else(bad)?,
        format: f.get(1).and_then(|f| f.number()),
        name: f.get(2).and_then(|f| f.non_empty()).map(str::to_string),
        act: f.get(3).and_then(|f| f.number()),
    })
}

// ---------------------------------------------------------------------------
// SIM and identity: +CPIN, +CNUM, +CSCA, +CGSN, +CIMI, ICCID (27.007 §5, §8)
// ---------------------------------------------------------------------------

/// `+CPIN: <code>` (27.007 §8.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PinState {
    /// `READY`: no password wanted.
    Ready,
    /// `SIM PIN`
    SimPin,
    /// `SIM PUK`: three wrong PINs; only a human should go on.
    SimPuk,
    /// `PH-SIM PIN`: the modem is locked to another SIM.
    PhSimPin,
    /// `SIM PIN2`
    SimPin2,
    /// `SIM PUK2`
    SimPuk2,
    /// `NOT INSERTED` (SIMCom prints it instead of `+CME ERROR: 10`).
    NotInserted,
    /// Anything else, as printed.
    Other(String),
}

/// `AT+CPIN?`; also the unsolicited `+CPIN: READY` of a booting modem.
pub fn cpin(line: &str) -> Result<PinState, AtError> {
    let code = params(line, "+CPIN:")
        .ok_or_else(|| AtError::parse("+CPIN", line))?
        .trim_matches('"');
    Ok(match code.to_ascii_uppercase().as_str() {
        "READY" => PinState::Ready,
        "SIM PIN" => PinState::SimPin,
        "SIM PUK" => PinState::SimPuk,
        "PH-SIM PIN" => PinState::PhSimPin,
        "SIM PIN2" => PinState::SimPin2,
        "SIM PUK2" => PinState::SimPuk2,
        "NOT INSERTED" => PinState::NotInserted,
        _ => PinState::Other(code.to_string()),
    })
}

/// A phone number with its type of address (`145` international, `129`
/// national/unknown; 24.008 §10.5.4.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Number {
    /// Phonebook name, if any.
    pub alpha: Option<String>,
    /// The number as printed.
    pub number: String,
    /// Type of address octet.
    pub toa: Option<u8>,
}

impl Number {
    /// The number with a `+` when the type of address says international.
    pub fn e164(&self) -> String {
        if self.toa == Some(145) && !self.number.starts_with('+') {
            format!("+{}", self.number)
        } else {
            self.number.clone()
        }
    }
}

/// `AT+CNUM`: `+CNUM: [<alpha>],<number>,<type>[,...]`, one line per number
/// (27.007 §7.1). Often empty: many SIMs do not store their own number.
pub fn cnum(lines: &[String]) -> Result<Vec<Number>, AtError> {
    lines
        .iter()
        .filter(|l| params(l, "+CNUM:").is_some())
        .map(|line| {
            let f = fields_after(line, "+CNUM:")?;
            match f.as_slice() {
                [alpha, number, toa, ..] => Ok(Number {
                    alpha: alpha.non_empty().map(str::to_string),
                    number: number.text().to_string(),
                    toa: toa.number(),
                }),
                _ => Err(AtError::parse("+CNUM", line.as_str())),
            }
        })
        .collect()
}

/// `AT+CSCA?`: `+CSCA: <sca>,<tosca>` (27.005 §3.3.1), the SMS centre.
pub fn csca(line: &str) -> Result<Number, AtError> {
    let f = fields_after(line, "+CSCA:")?;
    let number = f
        .first()
        .map(|f| f.text().to_string())
        .ok_or_else(|| AtError::parse("+CSCA", line))?;
    Ok(Number {
        alpha: None,
        number,
        toa: f.get(1).and_then(|f| f.number()),
    })
}

fn digits_only(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The one identity line of a response, with an optional vendor prefix and
/// optional quotes removed.
fn identity<'a>(lines: &'a [String], prefixes: &[&str]) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let l = l.trim();
        let v = prefixes
            .iter()
            .find_map(|p| params(l, p))
            .unwrap_or(l)
            .trim()
            .trim_matches('"')
            .trim();
        Some(v).filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
    })
}

/// `AT+CGSN` (27.007 §5.4): a bare IMEI line, or `+CGSN: "<imei>"` on modems
/// that follow the newer syntax. 15 digits (IMEI) or 16 (IMEISV); 14 accepted
/// for modules that omit the check digit.
pub fn imei(lines: &[String]) -> Result<String, AtError> {
    identity(lines, &["+CGSN:", "+GSN:"])
        .filter(|v| digits_only(v) && (14..=17).contains(&v.len()))
        .map(str::to_string)
        .ok_or_else(|| AtError::parse("IMEI", lines.join("|")))
}

/// `AT+CIMI` (27.007 §5.6): a bare IMSI line of up to 15 digits.
pub fn imsi(lines: &[String]) -> Result<String, AtError> {
    identity(lines, &["+CIMI:"])
        .filter(|v| digits_only(v) && (6..=15).contains(&v.len()))
        .map(str::to_string)
        .ok_or_else(|| AtError::parse("IMSI", lines.join("|")))
}

/// The SIM's ICCID (ITU-T E.118) from any vendor form: `+CCID:` (SIMCom),
/// `+ICCID:`, `+QCCID:` (Quectel), `^ICCID:` (Huawei) or a bare 19/20-digit
/// line. The trailing `F` filler nibble is removed; a Huawei ICCID printed
/// with its BCD nibbles swapped (starting `98` instead of the `89` telecom
/// prefix) is swapped back, as ModemManager does.
pub fn iccid(lines: &[String]) -> Result<String, AtError> {
    let raw = identity(
        lines,
        &["+CCID:", "+ICCID:", "+QCCID:", "^ICCID:", "+CRSM:"],
    )
    .ok_or_else(|| AtError::parse("ICCID", lines.join("|")))?;
    let mut v = raw.to_ascii_uppercase();
    if v.starts_with("98") && v.len() % 2 == 0 {
        v = v
            .as_bytes()
            .chunks(2)
            .flat_map(|p| p.iter().rev().copied())
            .map(char::from)
            .collect();
    }
    let v = v.trim_end_matches('F');
    if digits_only(v) && (18..=20).contains(&v.len()) {
        Ok(v.to_string())
    } else {
        Err(AtError::parse("ICCID", raw))
    }
}

// ---------------------------------------------------------------------------
// Calls and USSD: +CLIP, +CUSD (27.007 §7.6, §7.15)
// ---------------------------------------------------------------------------

/// `+CLIP: <number>,<type>[,<subaddr>,<satype>[,<alpha>[,<CLI validity>]]]`
/// (27.007 §7.6): who is calling.
pub fn clip(line: &str) -> Result<Number, AtError> {
    let f = fields_after(line, "+CLIP:")?;
    let number = f
        .first()
        .map(|f| f.text().to_string())
        .ok_or_else(|| AtError::parse("+CLIP", line))?;
    Ok(Number {
        alpha: f.get(4).and_then(|f| f.non_empty()).map(str::to_string),
        number,
        toa: f.get(1).and_then(|f| f.number()),
    })
}

/// `+CUSD: <m>[,<str>,<dcs>]` (27.007 §7.15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ussd {
    /// 0 no further action, 1 further action required, 2 terminated by
    /// network, 3 other local client responded, 4 not supported, 5 timeout.
    pub status: u8,
    /// The text, as printed (hex when the DCS is UCS2 on most modems).
    pub text: Option<String>,
    /// Cell Broadcast Data Coding Scheme (23.038 §5).
    pub dcs: Option<u8>,
}

/// Parses a `+CUSD` line (URC or information line).
pub fn cusd(line: &str) -> Result<Ussd, AtError> {
    let f = fields_after(line, "+CUSD:")?;
    Ok(Ussd {
        status: f
            .first()
            .and_then(|f| f.number())
            .ok_or_else(|| AtError::parse("+CUSD", line))?,
        text: f.get(1).map(|f| f.text().to_string()),
        dcs: f.get(2).and_then(|f| f.number()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tokenizer() {
        assert_eq!(
            fields("3,\"SM\",,\"Doe, John\",145"),
            Some(vec![
                Field::Bare("3"),
                Field::Quoted("SM"),
                Field::Bare(""),
                Field::Quoted("Doe, John"),
                Field::Bare("145"),
            ])
        );
        assert_eq!(fields("\"unterminated"), None);
        assert_eq!(fields(""), Some(vec![Field::Bare("")]));
    }

    #[test]
    fn cmgr_pdu_mode() {
        let m = cmgr(&l(&["+CMGR: 3,,29", "0791361907001003B17A0C9136"]))
            .unwrap()
            .unwrap();
        assert_eq!(m.status, Some(MessageStatus::StoredSent));
        assert_eq!(m.alpha, None);
        assert_eq!(m.length, 29);
        assert_eq!(m.pdu_bytes().unwrap()[0], 0x07);
        assert!(m.verified_pdu().is_err());
        let full = StoredMessage {
            status: Some(MessageStatus::ReceivedRead),
            alpha: None,
            length: 2,
            pdu: "00AABB".into(),
        };
        assert_eq!(full.verified_pdu().unwrap(), vec![0, 0xaa, 0xbb]);
        let m = cmgr(&l(&["+CMGR: 0,\"Alice\",22", "00"])).unwrap().unwrap();
        assert_eq!(m.alpha.as_deref(), Some("Alice"));
        assert_eq!(cmgr(&[]).unwrap(), None);
        assert_eq!(cmgr(&l(&["+CMGR: 0,,0"])).unwrap(), None);
        assert!(cmgr(&l(&["+CMGR: 1,,24"])).is_err());
        // Shapes seen in gammu's captures.
        let m = cmgr(&l(&["+CMGR: 4,1,,151", "00"])).unwrap().unwrap();
        assert_eq!(
            (m.status, m.length),
            (Some(MessageStatus::ReceivedRead), 151)
        );
        let m = cmgr(&l(&["+CMGR: ,,92", "00"])).unwrap().unwrap();
        assert_eq!((m.status, m.length), (None, 92));
        assert_eq!(cmgr(&l(&["+CMGR: 24", "00"])).unwrap().unwrap().length, 24);
        assert!(cmgr(&l(&["+CMGR: 9,,24", "00"])).is_err());
        assert!(cmgr(&l(&["+CMGR: 1,2,3,4,5", "00"])).is_err());
    }

    #[test]
    fn cmgl_several() {
        let v = cmgl(&l(&[
            "+CMGL: 1,0,,24",
            "07911326040000F0",
            "+CMGL: 4,1,\"Bob\",20",
            "0791",
        ]))
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].index, 1);
        assert_eq!(v[1].message.alpha.as_deref(), Some("Bob"));
        assert!(cmgl(&l(&["+CMGL: 1,0,,24"])).is_err());
        assert_eq!(cmgl(&[]).unwrap(), vec![]);
    }

    #[test]
    fn cmgs_reference() {
        assert_eq!(cmgs(&l(&["+CMGS: 42"])).unwrap(), 42);
        assert_eq!(cmgs(&l(&["+CMGS: 7,\"24/01/01,10:00:00+04\""])).unwrap(), 7);
        assert!(cmgs(&l(&["+CMGS: 300"])).is_err());
    }

    #[test]
    fn cpms_both_forms() {
        let q = cpms(&l(&["+CPMS: \"SM\",3,30,\"SM\",3,30,\"ME\",0,100"])).unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q[2].storage.as_deref(), Some("ME"));
        assert_eq!(q[2].total, 100);
        let s = cpms(&l(&["+CPMS: 3,30,3,30,3,30"])).unwrap();
        assert_eq!(
            s[0],
            StorageUsage {
                storage: None,
                used: 3,
                total: 30
            }
        );
        assert!(cpms(&l(&["+CPMS: 3,30,3"])).is_err());
    }

    #[test]
    fn csq_dbm_table() {
        let q = |r| SignalQuality { rssi: r, ber: 99 }.dbm();
        assert_eq!(q(0), Some(-113));
        assert_eq!(q(1), Some(-111));
        assert_eq!(q(2), Some(-109));
        assert_eq!(q(30), Some(-53));
        assert_eq!(q(31), Some(-51));
        assert_eq!(q(99), None);
        assert_eq!(
            csq("+CSQ: 17,99").unwrap(),
            SignalQuality { rssi: 17, ber: 99 }
        );
        assert!(csq("+CSQ: x,1").is_err());
    }

    #[test]
    fn registration_forms() {
        let r = registration("+CREG: 2,1,\"1A2B\",\"00C3\"", Domain::Cs, true).unwrap();
        assert_eq!(r.mode, Some(2));
        assert_eq!(r.status, RegistrationStatus::Home);
        assert_eq!(r.lac, Some(0x1a2b));
        let r = registration("+CREG: 5,\"1A2B\",\"00C3\",7", Domain::Cs, false).unwrap();
        assert_eq!(r.mode, None);
        assert_eq!(r.status, RegistrationStatus::Roaming);
        assert_eq!(r.act, Some(7));
        let r = registration("+CEREG: 0,1", Domain::Eps, true).unwrap();
        assert!(r.status.is_registered());
        let r = registration("+CGREG: 2", Domain::Gprs, false).unwrap();
        assert_eq!(r.status, RegistrationStatus::Searching);
    }

    #[test]
    fn operator_pin_numbers() {
        let o = cops("+COPS: 0,0,\"T-Mobile\",7").unwrap();
        assert_eq!(o.name.as_deref(), Some("T-Mobile"));
        assert_eq!(cops("+COPS: 0").unwrap().name, None);
        assert_eq!(cpin("+CPIN: READY").unwrap(), PinState::Ready);
        assert_eq!(cpin("+CPIN: SIM PIN").unwrap(), PinState::SimPin);
        let n = cnum(&l(&["+CNUM: \"\",\"15551234567\",145"])).unwrap();
        assert_eq!(n[0].e164(), "+15551234567");
        assert_eq!(
            csca("+CSCA: \"+447802000332\",145").unwrap().number,
            "+447802000332"
        );
    }

    #[test]
    fn identities() {
        assert_eq!(imei(&l(&["490154203237518"])).unwrap(), "490154203237518");
        assert_eq!(
            imei(&l(&["+CGSN: \"490154203237518\""])).unwrap(),
            "490154203237518"
        );
        assert_eq!(imsi(&l(&["310260123456789"])).unwrap(), "310260123456789");
        assert!(imsi(&l(&["ERROR-ish"])).is_err());
        for line in [
            "+CCID: 89014103211118510720",
            "+ICCID: 89014103211118510720",
            "+QCCID: 89014103211118510720",
            "^ICCID: 98101430121181157002",
            "89014103211118510720",
        ] {
            assert_eq!(
                iccid(&l(&[line])).unwrap(),
                "89014103211118510720",
                "{line}"
            );
        }
        assert_eq!(
            iccid(&l(&["+QCCID: 8944500102198304826F"])).unwrap(),
            "8944500102198304826"
        );
    }

    #[test]
    fn urc_lines() {
        assert_eq!(
            storage_index("+CMTI: \"SM\",3", "+CMTI:").unwrap(),
            ("SM".into(), 3)
        );
        assert_eq!(cmt_header("+CMT: ,24").unwrap(), (None, 24));
        assert_eq!(
            cmt_header("+CMT: \"Alice\",24").unwrap().0.as_deref(),
            Some("Alice")
        );
        assert_eq!(cds_header("+CDS: 25").unwrap(), 25);
        let c = clip("+CLIP: \"+15551234567\",145,\"\",0,\"Alice\",0").unwrap();
        assert_eq!(c.alpha.as_deref(), Some("Alice"));
        let u = cusd("+CUSD: 0,\"Balance 5.00\",15").unwrap();
        assert_eq!(
            (u.status, u.text.as_deref(), u.dcs),
            (0, Some("Balance 5.00"), Some(15))
        );
    }
}
