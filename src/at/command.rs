//! Typed AT commands: each knows how to write itself, how long the modem may
//! take (a constant on the type, as in atat), and how to parse its response.
//!
//! Timeouts come from the "maximum response time" columns of the SIMCom SIM800
//! and Quectel EC25 manuals, rounded up: sending (`+CMGS`) waits for the
//! network, listing (`+CMGL`) a full SIM is slow, `+CFUN` and `+COPS` touch
//! the radio. Commands that put caller data on the line validate it in their
//! constructor, so nothing can inject a `"`, `\r` or Ctrl-Z.

use std::time::Duration;

use super::error::AtError;
use super::parse::{
    self, Domain, ListedMessage, MessageStatus, Number, Operator, PinState, Registration,
    SignalQuality, StorageUsage, StoredMessage, Ussd,
};

/// Ctrl-Z: ends the PDU after the `> ` prompt (27.005 §3.5.1).
pub const CTRL_Z: u8 = 0x1a;
/// ESC: abandons a pending `> ` prompt without sending (27.005 §3.5.1).
pub const ESC: u8 = 0x1b;

/// How long a plain query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the `> ` prompt of a two-phase command.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A command the transport can run.
pub trait AtCommand {
    /// What a successful response parses into.
    type Response;
    /// How long the modem may take to print the final result, counted from the
    /// moment the command (or its PDU) is written.
    const TIMEOUT: Duration;
    /// Appends the command line, `AT...` and the terminating `\r`.
    fn write(&self, out: &mut Vec<u8>);
    /// For two-phase commands (`AT+CMGS`), the bytes to write after the `> `
    /// prompt, Ctrl-Z included.
    fn payload(&self) -> Option<Vec<u8>> {
        None
    }
    /// Parses the information lines of a response that ended in `OK`.
    fn parse(&self, lines: &[String]) -> Result<Self::Response, AtError>;
}

/// The command line as text (no `\r`), for echo matching and error messages.
pub fn command_line<C: AtCommand>(cmd: &C) -> String {
    let mut out = Vec::new();
    cmd.write(&mut out);
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// Declares a command whose line is fixed and whose response is parsed by a
/// function of the lines.
macro_rules! fixed_command {
    ($(#[$meta:meta])* $name:ident, $line:literal, $timeout:expr, $resp:ty, $parse:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl AtCommand for $name {
            type Response = $resp;
            const TIMEOUT: Duration = $timeout;
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(concat!($line, "\r").as_bytes());
            }
            fn parse(&self, lines: &[String]) -> Result<$resp, AtError> {
                let parse: fn(&[String]) -> Result<$resp, AtError> = $parse;
                parse(lines)
            }
        }
    };
}

fn nothing(_: &[String]) -> Result<(), AtError> {
    Ok(())
}

fn one_line<'a>(lines: &'a [String], what: &'static str) -> Result<&'a str, AtError> {
    lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .ok_or_else(|| AtError::parse(what, "no information line"))
}

/// `+CGMI`-style text: the first line, without an optional `+CGMI:` prefix.
fn text_line(lines: &[String], prefix: &'static str) -> Result<String, AtError> {
    let line = one_line(lines, prefix)?;
    Ok(parse::params(line, prefix)
        .unwrap_or(line)
        .trim_matches('"')
        .to_string())
}

fixed_command!(
    /// `AT`: is anybody there? Also the resync probe.
    At, "AT", Duration::from_secs(1), (), nothing
);
fixed_command!(
    /// `AT+CPIN?` (27.007 §8.3).
    CpinQuery, "AT+CPIN?", QUERY_TIMEOUT, PinState,
    |l| parse::cpin(one_line(l, "+CPIN")?)
);
fixed_command!(
    /// `AT+CMGF=0`: PDU mode (27.005 §3.2.3). Text mode is never selected:
    /// it is lossy and a Ctrl-Z in a body would end the command.
    Cmgf, "AT+CMGF=0", QUERY_TIMEOUT, (), nothing
);
fixed_command!(
    /// `AT+CPMS?` (27.005 §3.2.2): storages and how full they are.
    CpmsQuery, "AT+CPMS?", QUERY_TIMEOUT, Vec<StorageUsage>, parse::cpms
);
fixed_command!(
    /// `AT+CNMA` (27.005 §3.4.4): acknowledge a `+CMT`/`+CDS` (service 1).
    Cnma, "AT+CNMA", QUERY_TIMEOUT, (), nothing
);
fixed_command!(
    /// `AT+CSQ` (27.007 §8.5).
    Csq, "AT+CSQ", QUERY_TIMEOUT, SignalQuality,
    |l| parse::csq(one_line(l, "+CSQ")?)
);
fixed_command!(
    /// `AT+COPS?` (27.007 §7.3): the current operator. Slow on some modules
    /// while they scan.
    CopsQuery, "AT+COPS?", Duration::from_secs(30), Operator,
    |l| parse::cops(one_line(l, "+COPS")?)
);
fixed_command!(
    /// `AT+CGMI` (27.007 §5.1): manufacturer.
    Cgmi, "AT+CGMI", QUERY_TIMEOUT, String, |l| text_line(l, "+CGMI:")
);
fixed_command!(
    /// `AT+CGMM` (27.007 §5.2): model.
    Cgmm, "AT+CGMM", QUERY_TIMEOUT, String, |l| text_line(l, "+CGMM:")
);
fixed_command!(
    /// `AT+CGMR` (27.007 §5.3): firmware revision.
    Cgmr, "AT+CGMR", QUERY_TIMEOUT, String, |l| text_line(l, "+CGMR:")
);
fixed_command!(
    /// `AT+CGSN` (27.007 §5.4): IMEI.
    Cgsn, "AT+CGSN", QUERY_TIMEOUT, String, parse::imei
);
fixed_command!(
    /// `AT+CIMI` (27.007 §5.6): IMSI.
    Cimi, "AT+CIMI", QUERY_TIMEOUT, String, parse::imsi
);
fixed_command!(
    /// `AT+CNUM` (27.007 §7.1): the SIM's own numbers, if stored.
    Cnum, "AT+CNUM", QUERY_TIMEOUT, Vec<Number>, parse::cnum
);
fixed_command!(
    /// `AT+CSCA?` (27.005 §3.3.1): the SMS centre address.
    CscaQuery, "AT+CSCA?", QUERY_TIMEOUT, Number,
    |l| parse::csca(one_line(l, "+CSCA")?)
);

/// `ATE0`/`ATE1` (V.250 §6.2.4): command echo. The digest copes with either;
/// the engine turns it off to halve the bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo(pub bool);

impl AtCommand for Echo {
    type Response = ();
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.0 { b"ATE1\r" } else { b"ATE0\r" });
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// `AT+CMEE=<n>` (27.007 §9.1): 1 numeric errors (what the engine uses), 2
/// verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmee(pub u8);

impl AtCommand for Cmee {
    type Response = ();
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CMEE={}\r", self.0.min(2)).as_bytes());
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// `AT+CPIN="<pin>"` (27.007 §8.3): enter the SIM PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct CpinEnter {
    /// 4 to 8 digits, checked by [`CpinEnter::new`].
    pin: String,
}

impl std::fmt::Debug for CpinEnter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the PIN into logs.
        f.write_str("CpinEnter(****)")
    }
}

impl CpinEnter {
    /// Checks the PIN is 4 to 8 digits (27.007 §8.3, 3GPP TS 31.101 PIN format).
    pub fn new(pin: &str) -> Result<Self, AtError> {
        if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
            Ok(CpinEnter { pin: pin.into() })
        } else {
            Err(AtError::parse("PIN (4-8 digits)", "<redacted>"))
        }
    }
}

impl AtCommand for CpinEnter {
    type Response = ();
    // Some SIMs take several seconds to verify a PIN.
    const TIMEOUT: Duration = Duration::from_secs(10);
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CPIN=\"{}\"\r", self.pin).as_bytes());
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// A message storage (27.005 §3.2.2 `<mem>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// SIM card.
    Sim,
    /// Modem memory.
    Me,
    /// SIM and modem together ("MT").
    Mt,
    /// Status-report storage.
    Sr,
}

impl Storage {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Sim => "SM",
            Storage::Me => "ME",
            Storage::Mt => "MT",
            Storage::Sr => "SR",
        }
    }
}

/// `AT+CPMS=<mem1>,<mem2>,<mem3>` (27.005 §3.2.2): where to read, write and
/// receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpmsSet {
    /// Read and delete from.
    pub read: Storage,
    /// Write and send from.
    pub write: Storage,
    /// Store received messages in.
    pub receive: Storage,
}

impl AtCommand for CpmsSet {
    type Response = Vec<StorageUsage>;
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "AT+CPMS=\"{}\",\"{}\",\"{}\"\r",
                self.read.as_str(),
                self.write.as_str(),
                self.receive.as_str()
            )
            .as_bytes(),
        );
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<StorageUsage>, AtError> {
        parse::cpms(lines)
    }
}

/// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>` (27.005 §3.4.1): how new messages
/// are announced. The engine uses `2,1,0,2,0`: `+CMTI` for SMS, `+CDSI` for
/// status reports, so nothing needs a `+CNMA` and nothing is lost if we are
/// slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cnmi {
    /// 2: buffer URCs while a command runs, flush after.
    pub mode: u8,
    /// 1: `+CMTI` (store, then indicate); 2: `+CMT` (route directly).
    pub mt: u8,
    /// Cell broadcast: 0 off.
    pub bm: u8,
    /// 1: `+CDS`; 2: `+CDSI`.
    pub ds: u8,
    /// 0: flush buffered URCs when mode 1..3 is entered.
    pub bfr: u8,
}

impl Default for Cnmi {
    fn default() -> Self {
        Cnmi {
            mode: 2,
            mt: 1,
            bm: 0,
            ds: 2,
            bfr: 0,
        }
    }
}

impl AtCommand for Cnmi {
    type Response = ();
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "AT+CNMI={},{},{},{},{}\r",
                self.mode, self.mt, self.bm, self.ds, self.bfr
            )
            .as_bytes(),
        );
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// `+CSMS: <mt>,<mo>,<bm>`: which services the modem supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSupport {
    /// Mobile terminated (receive).
    pub mt: bool,
    /// Mobile originated (send).
    pub mo: bool,
    /// Cell broadcast.
    pub bm: bool,
}

/// `AT+CSMS=<service>` (27.005 §3.2.1): 0 = phase 2, 1 = phase 2+ (needed for
/// `+CNMA` acknowledgements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csms(pub u8);

impl AtCommand for Csms {
    type Response = ServiceSupport;
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CSMS={}\r", self.0.min(1)).as_bytes());
    }
    fn parse(&self, lines: &[String]) -> Result<ServiceSupport, AtError> {
        let line = one_line(lines, "+CSMS")?;
        let f = parse::params(line, "+CSMS:")
            .and_then(parse::fields)
            .ok_or_else(|| AtError::parse("+CSMS", line))?;
        let flag = |i: usize| f.get(i).and_then(|f| f.number::<u8>()) == Some(1);
        Ok(ServiceSupport {
            mt: flag(0),
            mo: flag(1),
            bm: flag(2),
        })
    }
}

/// `AT+CMGS=<length>` then `<pdu><Ctrl-Z>` (27.005 §3.5.1, PDU mode): send.
/// Answers the TP-Message-Reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmgs {
    /// The whole PDU as uppercase hex, SMSC address first.
    pdu_hex: String,
    /// Octets after the SMSC address: what `AT+CMGS=` wants.
    tpdu_length: usize,
}

impl Cmgs {
    /// From a PDU as the codec encodes it: SMSC address field first (`00` for
    /// "use the SIM's SMSC"), then the SMS-SUBMIT TPDU.
    pub fn new(pdu: &[u8]) -> Result<Self, AtError> {
        let smsc_len = usize::from(
            *pdu.first()
                .ok_or_else(|| AtError::parse("SMS-SUBMIT PDU", "empty"))?,
        );
        let tpdu_length = pdu
            .len()
            .checked_sub(1 + smsc_len)
            .filter(|n| (1..=164).contains(n))
            .ok_or_else(|| AtError::parse("SMS-SUBMIT PDU", "SMSC length beyond PDU"))?;
        let pdu_hex = pdu.iter().map(|b| format!("{b:02X}")).collect();
        Ok(Cmgs {
            pdu_hex,
            tpdu_length,
        })
    }

    /// The hex written after the prompt (what an echo looks like).
    pub fn pdu_hex(&self) -> &str {
        &self.pdu_hex
    }

    /// The length given in the command line.
    pub fn tpdu_length(&self) -> usize {
        self.tpdu_length
    }
}

impl AtCommand for Cmgs {
    type Response = u8;
    // The modem waits for the network's RP-ACK: SIM800 documents 60 s, Quectel
    // EC25 120 s.
    const TIMEOUT: Duration = Duration::from_secs(120);
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CMGS={}\r", self.tpdu_length).as_bytes());
    }
    fn payload(&self) -> Option<Vec<u8>> {
        let mut p = self.pdu_hex.clone().into_bytes();
        p.push(CTRL_Z);
        Some(p)
    }
    fn parse(&self, lines: &[String]) -> Result<u8, AtError> {
        parse::cmgs(lines)
    }
}

/// `AT+CMGR=<index>` (27.005 §3.4.3): read one message. `None` if empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmgr(pub u32);

impl AtCommand for Cmgr {
    type Response = Option<StoredMessage>;
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CMGR={}\r", self.0).as_bytes());
    }
    fn parse(&self, lines: &[String]) -> Result<Option<StoredMessage>, AtError> {
        parse::cmgr(lines)
    }
}

/// `AT+CMGL=<stat>` (27.005 §3.4.2): list messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmgl(pub MessageStatus);

impl AtCommand for Cmgl {
    type Response = Vec<ListedMessage>;
    // A full SIM or a large ME store takes 10 s and more (Quectel: up to 300 s
    // for very large stores; the engine lists per storage).
    const TIMEOUT: Duration = Duration::from_secs(60);
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CMGL={}\r", self.0.code()).as_bytes());
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<ListedMessage>, AtError> {
        parse::cmgl(lines)
    }
}

/// `AT+CMGD=<index>[,<delflag>]` (27.005 §3.5.4): delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmgd {
    /// Slot to delete.
    pub index: u32,
    /// 1 read, 2 read+sent, 3 read+sent+unsent, 4 all: ignores `index`.
    pub flag: Option<u8>,
}

impl AtCommand for Cmgd {
    type Response = ();
    // Deleting everything on a full store is slow.
    const TIMEOUT: Duration = Duration::from_secs(30);
    fn write(&self, out: &mut Vec<u8>) {
        let line = match self.flag {
            Some(f) => format!("AT+CMGD={},{}\r", self.index, f.min(4)),
            None => format!("AT+CMGD={}\r", self.index),
        };
        out.extend_from_slice(line.as_bytes());
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// `AT+CREG?`, `AT+CGREG?`, `AT+CEREG?` (27.007 §7.2, §10.1.20, §10.1.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationQuery(pub Domain);

impl AtCommand for RegistrationQuery {
    type Response = Registration;
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        let line: &[u8] = match self.0 {
            Domain::Cs => b"AT+CREG?\r",
            Domain::Gprs => b"AT+CGREG?\r",
            Domain::Eps => b"AT+CEREG?\r",
        };
        out.extend_from_slice(line);
    }
    fn parse(&self, lines: &[String]) -> Result<Registration, AtError> {
        parse::registration(one_line(lines, "+CREG")?, self.0, true)
    }
}

/// How this modem family reads the ICCID (there is no 27.007 command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IccidCommand {
    /// `AT+CCID` (SIMCom).
    Ccid,
    /// `AT+ICCID` (u-blox, Sierra, ZTE).
    Iccid,
    /// `AT+QCCID` (Quectel).
    Qccid,
    /// `AT^ICCID?` (Huawei).
    Huawei,
}

impl AtCommand for IccidCommand {
    type Response = String;
    const TIMEOUT: Duration = QUERY_TIMEOUT;
    fn write(&self, out: &mut Vec<u8>) {
        let line: &[u8] = match self {
            IccidCommand::Ccid => b"AT+CCID\r",
            IccidCommand::Iccid => b"AT+ICCID\r",
            IccidCommand::Qccid => b"AT+QCCID\r",
            IccidCommand::Huawei => b"AT^ICCID?\r",
        };
        out.extend_from_slice(line);
    }
    fn parse(&self, lines: &[String]) -> Result<String, AtError> {
        parse::iccid(lines)
    }
}

/// `AT+CFUN=<fun>[,<rst>]` (27.007 §8.2): 1 full, 0/4 radio off; `reset`
/// reboots the modem (a `RDY`/`^SYSSTART` URC follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cfun {
    /// Functionality level.
    pub fun: u8,
    /// Reset before setting it.
    pub reset: bool,
}

impl AtCommand for Cfun {
    type Response = ();
    // The radio powers up or down; SIM800 documents 10 s, EC25 15 s, and a
    // reset may take longer before the OK.
    const TIMEOUT: Duration = Duration::from_secs(30);
    fn write(&self, out: &mut Vec<u8>) {
        let line = if self.reset {
            format!("AT+CFUN={},1\r", self.fun)
        } else {
            format!("AT+CFUN={}\r", self.fun)
        };
        out.extend_from_slice(line.as_bytes());
    }
    fn parse(&self, _: &[String]) -> Result<(), AtError> {
        Ok(())
    }
}

/// `AT+CUSD=1,"<str>",15` (27.007 §7.15): a USSD request such as `*100#`.
/// Most modems answer `OK` and deliver the `+CUSD` later as a URC; some print
/// it before the `OK`, in which case it is returned here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cusd {
    /// Only `0-9 * # +`, checked by [`Cusd::new`].
    request: String,
}

impl Cusd {
    /// Checks the request is a dial-pad string.
    pub fn new(request: &str) -> Result<Self, AtError> {
        let ok = !request.is_empty()
            && request.len() <= 160
            && request
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+'));
        if ok {
            Ok(Cusd {
                request: request.into(),
            })
        } else {
            Err(AtError::parse("USSD request", request))
        }
    }
}

impl AtCommand for Cusd {
    type Response = Option<Ussd>;
    // The network answers USSD in seconds; the OK itself can wait for it.
    const TIMEOUT: Duration = Duration::from_secs(30);
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("AT+CUSD=1,\"{}\",15\r", self.request).as_bytes());
    }
    fn parse(&self, lines: &[String]) -> Result<Option<Ussd>, AtError> {
        lines
            .iter()
            .find(|l| parse::params(l, "+CUSD:").is_some())
            .map(|l| parse::cusd(l))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<C: AtCommand>(c: &C) -> String {
        command_line(c)
    }

    #[test]
    fn command_lines() {
        assert_eq!(line(&At), "AT");
        assert_eq!(line(&Echo(false)), "ATE0");
        assert_eq!(line(&Cmee(1)), "AT+CMEE=1");
        assert_eq!(line(&Cnmi::default()), "AT+CNMI=2,1,0,2,0");
        assert_eq!(line(&Cmgl(MessageStatus::All)), "AT+CMGL=4");
        assert_eq!(
            line(&Cmgd {
                index: 3,
                flag: None
            }),
            "AT+CMGD=3"
        );
        assert_eq!(
            line(&CpmsSet {
                read: Storage::Sim,
                write: Storage::Sim,
                receive: Storage::Me
            }),
            "AT+CPMS=\"SM\",\"SM\",\"ME\""
        );
        assert_eq!(line(&RegistrationQuery(Domain::Eps)), "AT+CEREG?");
        assert_eq!(line(&IccidCommand::Qccid), "AT+QCCID");
        assert_eq!(
            line(&Cfun {
                fun: 1,
                reset: true
            }),
            "AT+CFUN=1,1"
        );
        assert_eq!(line(&Cusd::new("*100#").unwrap()), "AT+CUSD=1,\"*100#\",15");
    }

    #[test]
    fn cmgs_lengths_and_payload() {
        // SMSC "00" (use the SIM's) + a 13-octet TPDU.
        let pdu = [
            0x00, 0x01, 0x00, 0x0b, 0x91, 0x51, 0x55, 0x21, 0x43, 0x65, 0xf7, 0x00, 0x00, 0x00,
        ];
        let c = Cmgs::new(&pdu).unwrap();
        assert_eq!(c.tpdu_length(), 13);
        assert_eq!(line(&c), "AT+CMGS=13");
        let p = c.payload().unwrap();
        assert_eq!(p.last(), Some(&CTRL_Z));
        assert_eq!(&p[..4], b"0001");
        assert!(Cmgs::new(&[]).is_err());
        assert!(Cmgs::new(&[0x07, 0x91]).is_err());
    }

    #[test]
    fn injection_is_refused() {
        assert!(CpinEnter::new("12\"34").is_err());
        assert!(CpinEnter::new("1234").is_ok());
        assert!(Cusd::new("*100#\r\x1a").is_err());
        assert_eq!(
            format!("{:?}", CpinEnter::new("1234").unwrap()),
            "CpinEnter(****)"
        );
    }

    #[test]
    fn parses() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Cgmi.parse(&l(&["SIMCOM_Ltd"])).unwrap(), "SIMCOM_Ltd");
        assert_eq!(Cgmm.parse(&l(&["+CGMM: \"EC25\""])).unwrap(), "EC25");
        let s = Csms(1).parse(&l(&["+CSMS: 1,1,1"])).unwrap();
        assert!(s.mt && s.mo && s.bm);
        assert_eq!(Cusd::new("*100#").unwrap().parse(&[]).unwrap(), None);
    }
}
