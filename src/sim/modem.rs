//! The modem's firmware, minus the wire: bytes from the client in, reply bytes
//! and effects (a submitted SMS, a reboot) out. Pure and synchronous so its
//! replies are tested byte for byte; [`super::driver`] owns the pty, the clock and
//! the network around it.
//!
//! Reply framing is verbose (ATV1, V.250 §5.7.1): each information response is
//! `\r\n<text>\r\n` and the final result `\r\nOK\r\n`. SMS commands follow
//! 27.005 §3 (PDU mode), the rest 27.007.

use std::collections::VecDeque;

use super::commands::{parse_line, unquote, Command, Form};
use super::personality::Personality;
use super::storage::{MessageStat, MessageStorage, StoredMessage};
use crate::pdu::{self, hex, Tpdu};

/// Longest command line kept; a longer one is answered ERROR (real firmware has
/// a buffer of a few hundred bytes).
const MAX_LINE: usize = 1024;
/// Hex digits accepted after the `> ` prompt: an SMSC field and the longest
/// TPDU, with room to spare.
const MAX_PDU_HEX: usize = 2 * 200;
/// PIN attempts before the SIM asks for its PUK (27.007 §8.3 `+CPIN`).
const PIN_ATTEMPTS: u8 = 3;

/// What the firmware is configured with (the non-volatile part).
#[derive(Debug, Clone)]
pub struct ModemIdentity {
    pub personality: Personality,
    /// `AT+CNUM`; empty: the SIM has no MSISDN stored, as is common.
    pub own_number: String,
    /// `None`: the SIM has no PIN lock.
    pub pin: Option<String>,
    pub puk: String,
    pub imei: String,
    pub imsi: String,
    pub iccid: String,
    /// Service centre the SIM is provisioned with (`AT+CSCA?`).
    pub smsc: String,
    pub operator: String,
    /// Print a URC between a command's information lines and its final result
    /// (what the AT layer must survive); off by default, as third-party clients
    /// expect URCs only between commands.
    pub noise_in_responses: bool,
}

impl ModemIdentity {
    pub fn new(personality: Personality) -> ModemIdentity {
        ModemIdentity {
            personality,
            own_number: String::new(),
            pin: None,
            puk: "12345678".into(),
            imei: "869012045678901".into(),
            // MCC 001 / MNC 01: the ITU test network, never a real subscriber.
            imsi: "001010123456789".into(),
            iccid: "89001012012345678901".into(),
            smsc: "+15550000000".into(),
            operator: "SIMNET".into(),
            noise_in_responses: false,
        }
    }
}

/// Settings lost at reboot (27.007 §4.1: the factory defaults of `AT&F`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    echo: bool,
    cmee: u8,
    cmgf: u8,
    cscs: String,
    /// `<mode>,<mt>,<bm>,<ds>,<bfr>` (27.005 §3.4.1).
    cnmi: [u8; 5],
    /// Indices into [`Modem::storages`] of `<mem1>`, `<mem2>`, `<mem3>`.
    cpms: [usize; 3],
    creg: u8,
    cgreg: u8,
    cereg: u8,
    clip: u8,
    crc: u8,
    cvhu: u8,
    cops_format: u8,
    csms: u8,
    cfun: u8,
    csmp: String,
    /// Huawei `AT^CURC=0` silences the periodic reports.
    curc: bool,
    /// Huawei `AT^PORTSEL=<n>`: which port gets the URCs (0 the modem port,
    /// 1 the PCUI port); gammu's Huawei PostConnect sets 1. One pty here, so
    /// it is remembered and shown, nothing more.
    portsel: u8,
}

impl Settings {
    fn factory(main_storage: usize) -> Settings {
        Settings {
            // Real modems boot with echo on (V.250 §6.2.4 default E1).
            echo: true,
            cmee: 0,
            cmgf: 0,
            cscs: "GSM".into(),
            cnmi: [2, 1, 0, 0, 0],
            cpms: [main_storage; 3],
            creg: 0,
            cgreg: 0,
            cereg: 0,
            clip: 0,
            crc: 0,
            cvhu: 0,
            cops_format: 0,
            csms: 0,
            cfun: 1,
            csmp: "17,167,0,0".into(),
            curc: true,
            portsel: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimLock {
    Ready,
    Pin { attempts: u8 },
    Puk,
}

/// What the hex after the `> ` prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PduPurpose {
    Send,
    /// `AT+CMGW`: store with this `<stat>`.
    Write(MessageStat),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Command,
    /// After `AT+CMGS=<length>` / `AT+CMGW=<length>` (27.005 §3.5.1).
    Pdu {
        purpose: PduPurpose,
        length: usize,
        hex: Vec<u8>,
    },
}

/// Something the world around the firmware must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `AT+CMGS` handed this PDU (SMSC field included) to the network.
    Submitted { pdu: Vec<u8>, message_reference: u8 },
    /// A slot was freed: inbound SMS waiting for room may come now.
    StorageFreed,
    /// The firmware restarted (`AT+CFUN=1,1`).
    Rebooted,
}

/// Why an inbound message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageFull;

/// One information response: its lines, each with its terminator.
type Block = Vec<(String, &'static [u8])>;

/// How a command ended.
enum Done {
    Ok,
    Prompt(PduPurpose, usize),
}

type Outcome = Result<Done, String>;

/// The simulated firmware.
#[derive(Debug)]
pub struct Modem {
    id: ModemIdentity,
    settings: Settings,
    lock: SimLock,
    storages: Vec<MessageStorage>,
    main_storage: usize,
    /// URCs waiting for the line to be idle.
    urcs: VecDeque<Vec<u8>>,
    line: Vec<u8>,
    line_overflow: bool,
    input: Input,
    next_reference: u8,
    /// Fault: the next sends fail with this `+CMS ERROR`.
    cms_fault: Option<(u16, u32)>,
    /// Fault: every storage reports full.
    storage_full_fault: bool,
    noise_turn: usize,
    /// Command lines and PDUs handled so far (the driver adds latency per line).
    lines_run: u64,
}

impl Modem {
    pub fn new(id: ModemIdentity) -> Modem {
        let p = id.personality;
        let mut storages = vec![MessageStorage::new(
            p.storage(),
            p.capacity(),
            p.first_index(),
        )];
        if p == Personality::Ec25 {
            storages.push(MessageStorage::new("SM", 30, 0));
        }
        if let Some(sr) = p.status_report_storage() {
            storages.push(MessageStorage::new(sr, 255, 0));
        }
        let lock = match id.pin {
            Some(_) => SimLock::Pin {
                attempts: PIN_ATTEMPTS,
            },
            None => SimLock::Ready,
        };
        Modem {
            settings: Settings::factory(0),
            lock,
            storages,
            main_storage: 0,
            urcs: VecDeque::new(),
            line: Vec::new(),
            line_overflow: false,
            input: Input::Command,
            next_reference: 1,
            cms_fault: None,
            storage_full_fault: false,
            noise_turn: 0,
            lines_run: 0,
            id,
        }
    }

    pub fn lines_run(&self) -> u64 {
        self.lines_run
    }

    pub fn personality(&self) -> Personality {
        self.id.personality
    }

    /// Feed bytes from the client; reply bytes go to `out`.
    pub fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>, effects: &mut Vec<Effect>) {
        for &b in bytes {
            if self.input == Input::Command {
                self.command_byte(b, out, effects);
            } else {
                self.pdu_byte(b, out, effects);
            }
        }
    }

    /// Whether a URC may be written now: between commands, not after a prompt
    /// and not while the client is typing a line.
    pub fn is_idle(&self) -> bool {
        self.input == Input::Command && self.line.is_empty()
    }

    /// URCs ready to go out, framed.
    pub fn take_urcs(&mut self) -> Vec<u8> {
        self.take_urc_frames().into_iter().flatten().collect()
    }

    /// The same, one framed URC each.
    pub fn take_urc_frames(&mut self) -> Vec<Vec<u8>> {
        self.urcs.drain(..).collect()
    }

    pub fn has_urcs(&self) -> bool {
        !self.urcs.is_empty()
    }

    fn push_urc(&mut self, line: &str) {
        self.urcs.push_back(format!("\r\n{line}\r\n").into_bytes());
    }

    /// The personality's next periodic report, unless silenced.
    pub fn push_noise(&mut self) {
        if let Some(line) = self.next_noise() {
            self.push_urc(&line);
        }
    }

    fn next_noise(&mut self) -> Option<String> {
        let noise = self.id.personality.noise();
        if !self.settings.curc || noise.is_empty() {
            return None;
        }
        let line = noise[self.noise_turn % noise.len()];
        self.noise_turn = self.noise_turn.wrapping_add(1);
        Some(line.to_string())
    }

    /// Restart: volatile settings back to factory, the SIM locked again, boot
    /// URCs queued. Stored messages survive (they are on the SIM or in flash).
    pub fn reboot(&mut self) {
        self.settings = Settings::factory(self.main_storage);
        self.input = Input::Command;
        self.line.clear();
        self.urcs.clear();
        if self.id.pin.is_some() && self.lock != SimLock::Puk {
            self.lock = SimLock::Pin {
                attempts: PIN_ATTEMPTS,
            };
        }
        for urc in self.id.personality.boot_urcs() {
            if *urc == "+CPIN: READY" && self.lock != SimLock::Ready {
                self.push_urc(if self.lock == SimLock::Puk {
                    "+CPIN: SIM PUK"
                } else {
                    "+CPIN: SIM PIN"
                });
                break;
            }
            self.push_urc(urc);
        }
    }

    pub fn set_cms_fault(&mut self, fault: Option<(u16, u32)>) {
        self.cms_fault = fault;
    }

    pub fn set_storage_full(&mut self, full: bool) {
        self.storage_full_fault = full;
    }

    /// What `+CPMS` reports as used in storage `i`: under the storage-full
    /// fault a message storage shows every slot taken, as a real full modem
    /// does (`AT+CPMS?` is where a technician's probe looks); "SR" is apart.
    fn shown_used(&self, i: usize) -> usize {
        let s = &self.storages[i];
        if self.storage_full_fault && s.name != "SR" {
            s.capacity
        } else {
            s.used()
        }
    }

    /// `<mem3>` and whether it has room for one more message.
    pub fn receive_storage_has_room(&self) -> bool {
        !self.storage_full_fault && !self.storages[self.settings.cpms[2]].is_full()
    }

    /// An SMS-DELIVER from the network (`pdu` with SMSC field): shown directly as
    /// `+CMT` when `AT+CNMI` `<mt>` is 2, else stored in `<mem3>` and announced as
    /// `+CMTI` when `<mt>` is 1 (27.005 §3.4.1).
    pub fn deliver(&mut self, pdu: &[u8], tpdu_length: usize) -> Result<(), StorageFull> {
        let [mode, mt, ..] = self.settings.cnmi;
        if mt == 2 || mt == 3 {
            if mode != 0 {
                let line = format!("+CMT: ,{tpdu_length}\r\n{}", hex::encode(pdu));
                self.push_urc(&line);
            }
            return Ok(());
        }
        if !self.receive_storage_has_room() {
            return Err(StorageFull);
        }
        let mem = self.settings.cpms[2];
        let storage = &mut self.storages[mem];
        let index = storage
            .store(StoredMessage {
                stat: MessageStat::ReceivedUnread,
                pdu: pdu.to_vec(),
                tpdu_length,
            })
            .ok_or(StorageFull)?;
        if mt == 1 && mode != 0 {
            let line = format!("+CMTI: \"{}\",{index}", storage.name);
            self.push_urc(&line);
        }
        Ok(())
    }

    /// An SMS-STATUS-REPORT from the network: `+CDS` when `<ds>` is 1, stored and
    /// `+CDSI` when 2 (27.005 §3.4.1). Quectel stores reports in "SR" and
    /// announces `+CDSI` whenever reports are on.
    pub fn status_report(&mut self, pdu: &[u8], tpdu_length: usize) {
        let [mode, _, _, ds, _] = self.settings.cnmi;
        if ds == 0 {
            return;
        }
        let sr = self.id.personality.status_report_storage();
        if ds == 1 && sr.is_none() {
            if mode != 0 {
                let line = format!("+CDS: {tpdu_length}\r\n{}", hex::encode(pdu));
                self.push_urc(&line);
            }
            return;
        }
        let mem = match sr.and_then(|name| self.storage_index(name)) {
            Some(i) => i,
            None => self.settings.cpms[2],
        };
        if self.storage_full_fault {
            return;
        }
        let storage = &mut self.storages[mem];
        if let Some(index) = storage.store(StoredMessage {
            stat: MessageStat::ReceivedUnread,
            pdu: pdu.to_vec(),
            tpdu_length,
        }) {
            if mode != 0 {
                let line = format!("+CDSI: \"{}\",{index}", storage.name);
                self.push_urc(&line);
            }
        }
    }

    /// The USSD network answer to `AT+CUSD=1,...`.
    fn ussd_answer(&mut self, request: &str) {
        let text = if request.contains("100") || request.contains("124") {
            "Your balance is 10.00"
        } else {
            "Unknown USSD code"
        };
        self.push_urc(&format!("+CUSD: 0,\"{text}\",15"));
    }

    fn storage_index(&self, name: &str) -> Option<usize> {
        self.storages
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
    }

    // ----- the command line -------------------------------------------------

    fn command_byte(&mut self, b: u8, out: &mut Vec<u8>, effects: &mut Vec<Effect>) {
        if self.settings.echo && b != 0x1A && b != 0x1B {
            out.push(b);
        }
        match b {
            b'\r' | b'\n' => {
                // `\r\n`, `\r` and `\n` all end a line; the empty "line" between
                // `\r` and `\n` is nothing (V.250 §5.2.1, S3).
                if !self.line.is_empty() || self.line_overflow {
                    let line = std::mem::take(&mut self.line);
                    let overflow = std::mem::replace(&mut self.line_overflow, false);
                    self.run_line(&line, overflow, out, effects);
                }
            }
            // Backspace (S5) edits the line.
            0x08 | 0x7F => {
                self.line.pop();
            }
            0x1A | 0x1B | 0x00 => {}
            _ => {
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                } else {
                    self.line_overflow = true;
                }
            }
        }
    }

    fn pdu_byte(&mut self, b: u8, out: &mut Vec<u8>, effects: &mut Vec<Effect>) {
        let echo = self.settings.echo;
        let Input::Pdu {
            purpose,
            length,
            hex,
        } = &mut self.input
        else {
            return;
        };
        match b {
            0x1A => {
                let (purpose, length, text) = (*purpose, *length, std::mem::take(hex));
                self.input = Input::Command;
                self.lines_run += 1;
                let result = self.pdu_entered(purpose, length, &text, effects);
                self.write_final(result, out);
            }
            0x1B => {
                // ESC cancels the send (27.005 §3.5.1); firmware answers OK.
                self.input = Input::Command;
                out.extend_from_slice(b"\r\nOK\r\n");
            }
            b'\r' | b'\n' | b' ' => {
                if echo {
                    out.push(b);
                }
            }
            _ => {
                if echo {
                    out.push(b);
                }
                if hex.len() <= MAX_PDU_HEX {
                    hex.push(b);
                }
            }
        }
    }

    fn write_final(&mut self, result: Result<Vec<Block>, String>, out: &mut Vec<u8>) {
        match result {
            Ok(blocks) => {
                self.write_blocks(&blocks, out);
                out.extend_from_slice(b"\r\nOK\r\n");
            }
            Err(line) => {
                out.extend_from_slice(format!("\r\n{line}\r\n").as_bytes());
            }
        }
    }

    fn write_blocks(&mut self, blocks: &[Block], out: &mut Vec<u8>) {
        let mut noise_done = false;
        for block in blocks {
            out.extend_from_slice(b"\r\n");
            for (line, eol) in block {
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(eol);
            }
            // The AT layer's torture option: URCs land inside the response,
            // between the information text and the final result.
            if self.id.noise_in_responses && !noise_done {
                noise_done = true;
                if let Some(noise) = self.next_noise() {
                    self.push_urc(&noise);
                }
                let urcs = self.take_urcs();
                out.extend_from_slice(&urcs);
            }
        }
    }

    fn run_line(
        &mut self,
        line: &[u8],
        overflow: bool,
        out: &mut Vec<u8>,
        effects: &mut Vec<Effect>,
    ) {
        self.lines_run += 1;
        if overflow {
            out.extend_from_slice(b"\r\nERROR\r\n");
            return;
        }
        let commands = match parse_line(line) {
            Ok(commands) => commands,
            // Firmware ignores what does not start with AT (V.250 §5.2.1) ...
            Err(super::commands::LineError::NoPrefix) => return,
            // ... and answers ERROR to a line it cannot parse.
            Err(super::commands::LineError::Syntax) => {
                out.extend_from_slice(b"\r\nERROR\r\n");
                return;
            }
        };
        let mut blocks = Vec::new();
        let mut result = Ok(Done::Ok);
        for command in &commands {
            result = self.execute(command, &mut blocks, effects);
            // 27.007 §4.1 / 27.005 §3.2.5: an error ends the line, and a prompt
            // takes over the input.
            if !matches!(result, Ok(Done::Ok)) {
                break;
            }
        }
        match result {
            Ok(Done::Ok) => self.write_final(Ok(blocks), out),
            Ok(Done::Prompt(purpose, length)) => {
                self.write_blocks(&blocks, out);
                out.extend_from_slice(b"\r\n> ");
                self.input = Input::Pdu {
                    purpose,
                    length,
                    hex: Vec::new(),
                };
            }
            Err(line) => {
                self.write_blocks(&blocks, out);
                self.write_final(Err(line), out);
            }
        }
        if effects.contains(&Effect::Rebooted) {
            self.reboot();
        }
    }

    // ----- errors -----------------------------------------------------------

    /// `+CME ERROR` as `AT+CMEE` says (27.007 §9.1, codes §9.2.1).
    fn cme(&self, code: u16) -> String {
        match self.settings.cmee {
            0 => "ERROR".into(),
            1 => format!("+CME ERROR: {code}"),
            _ => format!("+CME ERROR: {}", cme_text(code)),
        }
    }

    /// `+CMS ERROR` (27.005 §3.2.5): the final result of a failed SMS command
    /// whatever `AT+CMEE` says; the text with `AT+CMEE=2`, as Quectel prints it.
    fn cms(&self, code: u16) -> String {
        match (self.settings.cmee, cms_text(code)) {
            (2, Some(text)) => format!("+CMS ERROR: {text}"),
            _ => format!("+CMS ERROR: {code}"),
        }
    }

    fn bad_parameter(&self) -> String {
        // 27.007 §9.2.1: 50 incorrect parameters.
        self.cme(50)
    }

    fn unknown(&self) -> String {
        self.id.personality.unknown_command().to_string()
    }

    // ----- commands ---------------------------------------------------------

    fn execute(
        &mut self,
        cmd: &Command,
        blocks: &mut Vec<Block>,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let name = cmd.name.as_str();
        let args = cmd.args();
        let p = self.id.personality;
        if let Some(error) = self.locked_out(name, &cmd.form) {
            return Err(error);
        }
        let info = |blocks: &mut Vec<Block>, line: String| blocks.push(vec![(line, b"\r\n")]);
        match (name, &cmd.form) {
            // --- V.250 basic commands ---
            ("Z", _) | ("&F", _) => {
                // Back to the profile: factory settings here (V.250 §6.1.1, §6.1.2).
                self.settings = Settings::factory(self.main_storage);
            }
            ("E", Form::Action) => self.settings.echo = false,
            ("E", Form::Set(v)) => match v.as_str() {
                "0" => self.settings.echo = false,
                "1" => self.settings.echo = true,
                _ => return Err(self.bad_parameter()),
            },
            ("Q", _) | ("V", _) | ("X", _) | ("&C", _) | ("&D", _) | ("&W", _) | ("&K", _) => {}
            ("H", _) => {}
            // 27.007 §6.5: hang up. No calls here; gammu probes its test form.
            ("+CHUP", Form::Action | Form::Test) => {}
            ("D", _) | ("A", _) => return Err("NO CARRIER".into()),
            (s, Form::Read) if s.starts_with('S') && s.len() > 1 => {
                info(blocks, "000".into());
            }
            (s, _)
                if s.starts_with('S')
                    && s.len() > 1
                    && s[1..].bytes().all(|b| b.is_ascii_digit()) => {}
            ("I", _) => blocks.push(vec![
                (p.manufacturer().to_string(), b"\r\n"),
                (p.model().to_string(), b"\r\n"),
                (format!("Revision: {}", p.revision()), b"\r\n"),
            ]),

            // --- 27.007 §5: identification ---
            ("+CGMI" | "+GMI", Form::Action) => info(blocks, p.manufacturer().into()),
            ("+CGMM" | "+GMM", Form::Action) => info(blocks, p.model().into()),
            ("+CGMR" | "+GMR", Form::Action) => info(blocks, p.revision().into()),
            ("+CGSN" | "+GSN", Form::Action) => info(blocks, self.id.imei.clone()),
            ("+CIMI", Form::Action) => info(blocks, self.id.imsi.clone()),
            ("+GCAP", Form::Action) => info(blocks, "+GCAP: +CGSM".into()),
            ("+CCID", Form::Action | Form::Read) => info(blocks, self.id.iccid.clone()),
            ("+ICCID", Form::Action | Form::Read) => {
                info(blocks, format!("+ICCID: {}", self.id.iccid))
            }
            ("+QCCID", Form::Action) if p == Personality::Ec25 => {
                info(blocks, format!("{}{}", p.iccid_prefix(), self.id.iccid))
            }
            ("^ICCID", Form::Read) if p == Personality::E3372 => {
                info(blocks, format!("{}{}", p.iccid_prefix(), self.id.iccid))
            }
            ("+CLAC", Form::Action) => {
                let mut lines: Block = Vec::new();
                for c in STANDARD_COMMANDS.iter().chain(p.vendor_commands()) {
                    lines.push((format!("AT{c}"), b"\r\n"));
                }
                blocks.push(lines);
            }

            // --- 27.007 §8: SIM and power ---
            ("+CPIN", Form::Read) => info(
                blocks,
                match self.lock {
                    SimLock::Ready => "+CPIN: READY",
                    SimLock::Pin { .. } => "+CPIN: SIM PIN",
                    SimLock::Puk => "+CPIN: SIM PUK",
                }
                .into(),
            ),
            ("+CPIN", Form::Set(_)) => return self.enter_pin(&args),
            ("+CFUN", Form::Read) => info(blocks, format!("+CFUN: {}", self.settings.cfun)),
            ("+CFUN", Form::Test) => info(blocks, "+CFUN: (0,1,4),(0,1)".into()),
            ("+CFUN", Form::Set(_)) => {
                let fun = args.first().and_then(|a| a.parse::<u8>().ok());
                let reset = args.get(1).map(String::as_str) == Some("1");
                match fun {
                    Some(f @ (0 | 1 | 4)) => {
                        self.settings.cfun = f;
                        if reset {
                            effects.push(Effect::Rebooted);
                        }
                    }
                    _ => return Err(self.bad_parameter()),
                }
            }
            ("+CMEE", Form::Read) => info(blocks, format!("+CMEE: {}", self.settings.cmee)),
            ("+CMEE", Form::Test) => info(blocks, "+CMEE: (0-2)".into()),
            ("+CMEE", Form::Set(v)) => match v.parse::<u8>() {
                Ok(n @ 0..=2) => self.settings.cmee = n,
                _ => return Err(self.bad_parameter()),
            },
            ("+CSCS", Form::Read) => info(blocks, format!("+CSCS: \"{}\"", self.settings.cscs)),
            ("+CSCS", Form::Test) => info(blocks, "+CSCS: (\"IRA\",\"GSM\",\"UCS2\")".into()),
            ("+CSCS", Form::Set(v)) => {
                let charset = unquote(v).to_ascii_uppercase();
                if !matches!(charset.as_str(), "IRA" | "GSM" | "UCS2") {
                    return Err(self.bad_parameter());
                }
                self.settings.cscs = charset;
            }

            // --- 27.007 §7: network ---
            ("+CSQ", Form::Action) => info(blocks, self.csq()),
            ("+CSQ", Form::Test) => info(blocks, "+CSQ: (0-31,99),(0-7,99)".into()),
            ("+CREG" | "+CGREG" | "+CEREG", Form::Read) => {
                let n = self.registration_setting(name);
                let stat = self.registration_stat();
                let line = match n {
                    2 => format!("{name}: 2,{stat},\"00C3\",\"0000A1B2\""),
                    _ => format!("{name}: {n},{stat}"),
                };
                info(blocks, line);
            }
            ("+CREG" | "+CGREG" | "+CEREG", Form::Test) => info(blocks, format!("{name}: (0-2)")),
            ("+CREG" | "+CGREG" | "+CEREG", Form::Set(v)) => match v.parse::<u8>() {
                Ok(n @ 0..=2) => match name {
                    "+CREG" => self.settings.creg = n,
                    "+CGREG" => self.settings.cgreg = n,
                    _ => self.settings.cereg = n,
                },
                _ => return Err(self.bad_parameter()),
            },
            ("+COPS", Form::Read) => {
                let line = if self.registration_stat() != 1 {
                    "+COPS: 0".to_string()
                } else {
                    let name = match self.settings.cops_format {
                        2 => "00101".to_string(),
                        _ => self.id.operator.clone(),
                    };
                    match p {
                        Personality::Sim800 => {
                            format!("+COPS: 0,{},\"{name}\"", self.settings.cops_format)
                        }
                        _ => format!("+COPS: 0,{},\"{name}\",7", self.settings.cops_format),
                    }
                };
                info(blocks, line);
            }
            ("+COPS", Form::Test) => info(
                blocks,
                format!(
                    "+COPS: (2,\"{0}\",\"{0}\",\"00101\",7),,(0-4),(0-2)",
                    self.id.operator
                ),
            ),
            ("+COPS", Form::Set(_)) => {
                let mode = args.first().and_then(|a| a.parse::<u8>().ok());
                match mode {
                    Some(0..=2 | 4) => {}
                    Some(3) => match args.get(1).and_then(|a| a.parse::<u8>().ok()) {
                        Some(f @ 0..=2) => self.settings.cops_format = f,
                        _ => return Err(self.bad_parameter()),
                    },
                    _ => return Err(self.bad_parameter()),
                }
            }
            ("+CGATT", Form::Read) => {
                info(blocks, format!("+CGATT: {}", self.registration_stat() & 1))
            }
            ("+CGATT", Form::Set(_)) => {}
            ("+CNUM", Form::Action) => {
                if !self.id.own_number.is_empty() {
                    let number = &self.id.own_number;
                    let toa = if number.starts_with('+') { 145 } else { 129 };
                    info(blocks, format!("+CNUM: \"\",\"{number}\",{toa}"));
                }
            }
            ("+CLIP", Form::Read) => info(blocks, format!("+CLIP: {},1", self.settings.clip)),
            ("+CLIP", Form::Test) => info(blocks, "+CLIP: (0,1)".into()),
            ("+CLIP", Form::Set(v)) => {
                self.settings.clip = flag(v).ok_or_else(|| self.bad_parameter())?
            }
            ("+CRC", Form::Read) => info(blocks, format!("+CRC: {}", self.settings.crc)),
            ("+CRC", Form::Test) => info(blocks, "+CRC: (0,1)".into()),
            ("+CRC", Form::Set(v)) => {
                self.settings.crc = flag(v).ok_or_else(|| self.bad_parameter())?
            }
            ("+CVHU", Form::Read) => info(blocks, format!("+CVHU: {}", self.settings.cvhu)),
            ("+CVHU", Form::Test) => info(blocks, "+CVHU: (0,1)".into()),
            ("+CVHU", Form::Set(v)) => {
                self.settings.cvhu = flag(v).ok_or_else(|| self.bad_parameter())?
            }
            ("+CUSD", Form::Read) => info(blocks, "+CUSD: 0".into()),
            ("+CUSD", Form::Test) => info(blocks, "+CUSD: (0-2)".into()),
            ("+CUSD", Form::Set(_)) => {
                if self.registration_stat() != 1 {
                    return Err(self.cme(30));
                }
                if args.first().map(String::as_str) == Some("1") {
                    if let Some(request) = args.get(1) {
                        let request = unquote(request).to_string();
                        self.ussd_answer(&request);
                    }
                }
            }
            ("+CCLK", Form::Read) => {
                let now = chrono::Utc::now().format("%y/%m/%d,%H:%M:%S+00");
                info(blocks, format!("+CCLK: \"{now}\""));
            }

            // --- 27.005 §3: SMS ---
            ("+CSMS", Form::Read) => info(blocks, format!("+CSMS: {},1,1,1", self.settings.csms)),
            ("+CSMS", Form::Test) => info(blocks, "+CSMS: (0,1)".into()),
            ("+CSMS", Form::Set(v)) => {
                self.settings.csms = flag(v).ok_or_else(|| self.bad_parameter())?;
                info(blocks, "+CSMS: 1,1,1".into());
            }
            ("+CMGF", Form::Read) => info(blocks, format!("+CMGF: {}", self.settings.cmgf)),
            ("+CMGF", Form::Test) => info(blocks, "+CMGF: (0,1)".into()),
            ("+CMGF", Form::Set(v)) => {
                self.settings.cmgf = flag(v).ok_or_else(|| self.bad_parameter())?
            }
            ("+CSCA", Form::Read) => {
                let toa = if self.id.smsc.starts_with('+') {
                    145
                } else {
                    129
                };
                info(blocks, format!("+CSCA: \"{}\",{toa}", self.id.smsc));
            }
            ("+CSCA", Form::Set(_)) => match args.first().map(|a| unquote(a)) {
                Some(number) if !number.is_empty() => self.id.smsc = number.to_string(),
                _ => return Err(self.bad_parameter()),
            },
            ("+CSMP", Form::Read) => info(blocks, format!("+CSMP: {}", self.settings.csmp)),
            ("+CSMP", Form::Test) => info(blocks, "+CSMP: (0-255),(0-255),(0-255),(0-255)".into()),
            ("+CSMP", Form::Set(v)) => self.settings.csmp = v.clone(),
            ("+CPMS", Form::Read) => {
                let parts: Vec<String> = self
                    .settings
                    .cpms
                    .iter()
                    .map(|&i| {
                        let s = &self.storages[i];
                        format!("\"{}\",{},{}", s.name, self.shown_used(i), s.capacity)
                    })
                    .collect();
                info(blocks, format!("+CPMS: {}", parts.join(",")));
            }
            ("+CPMS", Form::Test) => {
                let all: Vec<String> = self
                    .storages
                    .iter()
                    .map(|s| format!("\"{}\"", s.name))
                    .collect();
                let writable: Vec<String> = self
                    .storages
                    .iter()
                    .filter(|s| s.name != "SR")
                    .map(|s| format!("\"{}\"", s.name))
                    .collect();
                let (all, writable) = (all.join(","), writable.join(","));
                info(blocks, format!("+CPMS: ({all}),({writable}),({writable})"));
            }
            ("+CPMS", Form::Set(_)) => {
                if args.is_empty() || args.len() > 3 {
                    return Err(self.bad_parameter());
                }
                let mut cpms = self.settings.cpms;
                for (slot, arg) in args.iter().enumerate() {
                    let Some(i) = self.storage_index(unquote(arg)) else {
                        // 27.005 §3.2.5: 302 operation not allowed.
                        return Err(self.cms(302));
                    };
                    // "SR" only reads and deletes: it cannot be <mem2>/<mem3>.
                    if slot > 0 && self.storages[i].name == "SR" {
                        return Err(self.cms(302));
                    }
                    cpms[slot] = i;
                }
                self.settings.cpms = cpms;
                let counts: Vec<String> = cpms
                    .iter()
                    .map(|&i| format!("{},{}", self.shown_used(i), self.storages[i].capacity))
                    .collect();
                info(blocks, format!("+CPMS: {}", counts.join(",")));
            }
            ("+CNMI", Form::Read) => {
                let c = self.settings.cnmi;
                info(
                    blocks,
                    format!("+CNMI: {},{},{},{},{}", c[0], c[1], c[2], c[3], c[4]),
                );
            }
            ("+CNMI", Form::Test) => info(blocks, "+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)".into()),
            ("+CNMI", Form::Set(_)) => {
                const MAX: [u8; 5] = [3, 3, 3, 2, 1];
                if args.len() > 5 {
                    return Err(self.bad_parameter());
                }
                let mut cnmi = self.settings.cnmi;
                for (i, arg) in args.iter().enumerate() {
                    if arg.is_empty() {
                        continue;
                    }
                    match arg.parse::<u8>() {
                        Ok(v) if v <= MAX[i] => cnmi[i] = v,
                        _ => return Err(self.bad_parameter()),
                    }
                }
                self.settings.cnmi = cnmi;
            }
            ("+CNMA", Form::Action | Form::Set(_)) => {}
            ("+CNMA", Form::Test) => info(blocks, "+CNMA: (0-2)".into()),
            ("+CMGS" | "+CMGW", Form::Test) => {}
            ("+CMGS", Form::Set(_)) => {
                if self.settings.cmgf != 0 {
                    return Err(self.cms(302));
                }
                let length = self.pdu_length(&args)?;
                return Ok(Done::Prompt(PduPurpose::Send, length));
            }
            ("+CMGW", Form::Set(_)) => {
                if self.settings.cmgf != 0 {
                    return Err(self.cms(302));
                }
                let length = self.pdu_length(&args)?;
                let stat = match args.get(1).map(String::as_str) {
                    None | Some("2") => MessageStat::StoredUnsent,
                    Some("3") => MessageStat::StoredSent,
                    Some("0") => MessageStat::ReceivedUnread,
                    Some("1") => MessageStat::ReceivedRead,
                    _ => return Err(self.bad_parameter()),
                };
                return Ok(Done::Prompt(PduPurpose::Write(stat), length));
            }
            ("+CMGR", Form::Set(v)) => {
                if self.settings.cmgf != 0 {
                    return Err(self.cms(302));
                }
                let mem = self.settings.cpms[0];
                let index = v.parse::<u16>().map_err(|_| self.bad_parameter())?;
                if !self.storages[mem].in_range(index) {
                    // 27.005 §3.2.5: 321 invalid memory index.
                    return Err(self.cms(321));
                }
                if let Some(m) = self.storages[mem].read(index) {
                    blocks.push(vec![
                        (
                            format!("+CMGR: {},,{}", m.stat.code(), m.tpdu_length),
                            b"\r\n",
                        ),
                        (hex::encode(&m.pdu), b"\r\n"),
                    ]);
                }
            }
            ("+CMGR", Form::Test) => {}
            ("+CMGL", Form::Test) => info(blocks, "+CMGL: (0-4)".into()),
            ("+CMGL", Form::Action | Form::Set(_)) => {
                if self.settings.cmgf != 0 {
                    return Err(self.cms(302));
                }
                let filter = match args.first().map(String::as_str) {
                    None => 0,
                    Some(v) => match v.parse::<u8>() {
                        Ok(n @ 0..=4) => n,
                        _ => return Err(self.bad_parameter()),
                    },
                };
                let mem = self.settings.cpms[0];
                let listed = self.storages[mem].list(filter);
                if !listed.is_empty() {
                    let mut lines: Block = Vec::new();
                    for (index, m) in &listed {
                        lines.push((
                            format!("+CMGL: {index},{},,{}", m.stat.code(), m.tpdu_length),
                            b"\r\n",
                        ));
                        lines.push((hex::encode(&m.pdu), b"\r\n"));
                    }
                    blocks.push(lines);
                    let indices: Vec<u16> = listed.iter().map(|(i, _)| *i).collect();
                    self.storages[mem].mark_read(&indices);
                }
            }
            ("+CMGD", Form::Test) => {
                let s = &self.storages[self.settings.cpms[0]];
                let used: Vec<String> = s.list(4).iter().map(|(i, _)| i.to_string()).collect();
                info(blocks, format!("+CMGD: ({}),(0-4)", used.join(",")));
            }
            ("+CMGD", Form::Set(_)) => {
                let mem = self.settings.cpms[0];
                let index = args
                    .first()
                    .and_then(|a| a.parse::<u16>().ok())
                    .ok_or_else(|| self.bad_parameter())?;
                let delflag = match args.get(1).map(String::as_str) {
                    None | Some("") => 0,
                    Some(v) => match v.parse::<u8>() {
                        Ok(n @ 0..=4) => n,
                        _ => return Err(self.bad_parameter()),
                    },
                };
                let storage = &mut self.storages[mem];
                if delflag == 0 {
                    if !storage.in_range(index) {
                        return Err(self.cms(321));
                    }
                    storage.delete(index);
                } else {
                    storage.delete_flagged(delflag);
                }
                effects.push(Effect::StorageFreed);
            }

            // --- vendor commands that change nothing here ---
            ("^CURC", Form::Set(v)) if p == Personality::E3372 => self.settings.curc = v != "0",
            ("^USSDMODE", Form::Set(_)) if p == Personality::E3372 => {}
            ("^PORTSEL", Form::Set(v)) if p == Personality::E3372 => match v.as_str() {
                "0" | "1" => self.settings.portsel = u8::from(v == "1"),
                _ => return Err(self.bad_parameter()),
            },
            ("^PORTSEL", Form::Read) if p == Personality::E3372 => {
                info(blocks, format!("^PORTSEL: {}", self.settings.portsel))
            }
            ("^PORTSEL", Form::Test) if p == Personality::E3372 => {
                info(blocks, "^PORTSEL: (0-1)".into())
            }
            ("+QINDCFG" | "+QURCCFG" | "+QCFG", Form::Set(_)) if p == Personality::Ec25 => {}
            ("+CSQN" | "+CBC", _) if p == Personality::Sim800 => {}

            // Test forms of the commands above that have no list to print.
            (
                "+CGMI" | "+CGMM" | "+CGMR" | "+CGSN" | "+CIMI" | "+CNUM" | "+CPIN" | "+CGATT"
                | "+CLAC" | "+CCID" | "+ICCID" | "+CCLK",
                Form::Test,
            ) => {}
            _ => return Err(self.unknown()),
        }
        Ok(Done::Ok)
    }

    /// Commands a locked SIM refuses (27.007 §9.2.1: 11 SIM PIN required, 12 SIM
    /// PUK required; 27.005 §3.2.5: 311 / 316 for the SMS commands).
    fn locked_out(&self, name: &str, form: &Form) -> Option<String> {
        let puk = match self.lock {
            SimLock::Ready => return None,
            SimLock::Pin { .. } => false,
            SimLock::Puk => true,
        };
        if *form == Form::Test {
            return None;
        }
        match name {
            "+CMGS" | "+CMGW" | "+CMGR" | "+CMGL" | "+CMGD" | "+CPMS" | "+CSCA" | "+CNMI"
            | "+CNMA" | "+CSMS" => Some(self.cms(if puk { 316 } else { 311 })),
            "+CIMI" | "+CNUM" | "+COPS" | "+CUSD" => Some(self.cme(if puk { 12 } else { 11 })),
            _ => None,
        }
    }

    /// `AT+CPIN=<pin>` or, when the SIM asks for its PUK, `AT+CPIN=<puk>,<newpin>`
    /// (27.007 §8.3).
    fn enter_pin(&mut self, args: &[String]) -> Outcome {
        let given = args
            .first()
            .map(|a| unquote(a).to_string())
            .unwrap_or_default();
        match self.lock {
            SimLock::Ready => Ok(Done::Ok),
            SimLock::Pin { attempts } => {
                if Some(&given) == self.id.pin.as_ref() {
                    self.unlocked();
                    Ok(Done::Ok)
                } else {
                    let left = attempts.saturating_sub(1);
                    self.lock = if left == 0 {
                        SimLock::Puk
                    } else {
                        SimLock::Pin { attempts: left }
                    };
                    // 16: incorrect password.
                    Err(self.cme(16))
                }
            }
            SimLock::Puk => {
                let Some(new_pin) = args.get(1).map(|a| unquote(a).to_string()) else {
                    return Err(self.cme(12));
                };
                if given == self.id.puk && !new_pin.is_empty() {
                    self.id.pin = Some(new_pin);
                    self.unlocked();
                    Ok(Done::Ok)
                } else {
                    Err(self.cme(16))
                }
            }
        }
    }

    /// The SIM opened: the firmware reports it and what follows at boot.
    fn unlocked(&mut self) {
        self.lock = SimLock::Ready;
        let boot = self.id.personality.boot_urcs();
        let after = boot.iter().skip_while(|u| **u != "+CPIN: READY");
        for urc in after {
            self.push_urc(urc);
        }
    }

    fn pdu_length(&self, args: &[String]) -> Result<usize, String> {
        match args.first().and_then(|a| a.parse::<usize>().ok()) {
            // 23.040: a TPDU is at most 164 octets.
            Some(n @ 1..=164) => Ok(n),
            _ => Err(self.bad_parameter()),
        }
    }

    /// The hex after the prompt, once Ctrl-Z ends it.
    fn pdu_entered(
        &mut self,
        purpose: PduPurpose,
        length: usize,
        text: &[u8],
        effects: &mut Vec<Effect>,
    ) -> Result<Vec<Block>, String> {
        // 27.005 §3.2.5: 304 invalid PDU mode parameter.
        let invalid = self.cms(304);
        let text = std::str::from_utf8(text).map_err(|_| invalid.clone())?;
        let octets = hex::decode(text).map_err(|_| invalid.clone())?;
        let smsc_len = usize::from(*octets.first().ok_or_else(|| invalid.clone())?);
        // 27.005 §3.5.1: <length> counts the TPDU, not the SMSC field.
        if octets.len() != 1 + smsc_len + length {
            return Err(invalid);
        }
        let decoded = pdu::decode(&octets, true).map_err(|_| invalid.clone())?;
        match purpose {
            PduPurpose::Send => {
                if !matches!(decoded.tpdu, Tpdu::Submit(_)) {
                    return Err(invalid);
                }
                if let Some((code, count)) = self.cms_fault {
                    self.cms_fault = (count > 1).then_some((code, count - 1));
                    return Err(self.cms(code));
                }
                if self.registration_stat() != 1 {
                    // 331: no network service.
                    return Err(self.cms(331));
                }
                let reference = self.next_reference;
                self.next_reference = self.next_reference.wrapping_add(1);
                effects.push(Effect::Submitted {
                    pdu: octets,
                    message_reference: reference,
                });
                Ok(vec![vec![(format!("+CMGS: {reference}"), b"\r\n")]])
            }
            PduPurpose::Write(stat) => {
                let mem = self.settings.cpms[1];
                if self.storage_full_fault {
                    // 322: memory full.
                    return Err(self.cms(322));
                }
                let index = self.storages[mem]
                    .store(StoredMessage {
                        stat,
                        pdu: octets,
                        tpdu_length: length,
                    })
                    .ok_or_else(|| self.cms(322))?;
                Ok(vec![vec![(format!("+CMGW: {index}"), b"\r\n")]])
            }
        }
    }

    fn csq(&self) -> String {
        if self.settings.cfun == 1 {
            "+CSQ: 21,99".into()
        } else {
            "+CSQ: 99,99".into()
        }
    }

    fn registration_setting(&self, name: &str) -> u8 {
        match name {
            "+CREG" => self.settings.creg,
            "+CGREG" => self.settings.cgreg,
            _ => self.settings.cereg,
        }
    }

    /// 27.007 §7.2 `<stat>`: 1 registered (home), 0 not searching.
    fn registration_stat(&self) -> u8 {
        if self.settings.cfun == 1 && self.lock == SimLock::Ready {
            1
        } else {
            0
        }
    }

    /// Messages in a memory, for tests and the control API.
    pub fn stored(&self, memory: &str) -> Vec<(u16, StoredMessage)> {
        self.storage_index(memory)
            .map(|i| self.storages[i].list(4))
            .unwrap_or_default()
    }
}

fn flag(v: &str) -> Option<u8> {
    match v {
        "0" => Some(0),
        "1" => Some(1),
        _ => None,
    }
}

/// What `AT+CLAC` lists (27.007 §8.37), one per line as SIMCom prints them.
const STANDARD_COMMANDS: &[&str] = &[
    "&F", "E", "I", "Q", "V", "Z", "+CGMI", "+CGMM", "+CGMR", "+CGSN", "+CIMI", "+CPIN", "+CFUN",
    "+CMEE", "+CSCS", "+CSQ", "+CREG", "+CGREG", "+CEREG", "+COPS", "+CGATT", "+CNUM", "+CLIP",
    "+CRC", "+CVHU", "+CUSD", "+CLAC", "+CSMS", "+CMGF", "+CSCA", "+CSMP", "+CPMS", "+CNMI",
    "+CNMA", "+CMGS", "+CMGW", "+CMGR", "+CMGL", "+CMGD", "+CCLK", "+ICCID", "+CHUP",
];

/// Verbose `+CME ERROR` texts (27.007 §9.2.1).
fn cme_text(code: u16) -> &'static str {
    match code {
        3 => "operation not allowed",
        4 => "operation not supported",
        10 => "SIM not inserted",
        11 => "SIM PIN required",
        12 => "SIM PUK required",
        16 => "incorrect password",
        30 => "no network service",
        50 => "Incorrect parameters",
        _ => "unknown",
    }
}

/// Verbose `+CMS ERROR` texts (27.005 §3.2.5).
fn cms_text(code: u16) -> Option<&'static str> {
    Some(match code {
        302 => "operation not allowed",
        303 => "operation not supported",
        304 => "invalid PDU mode parameter",
        311 => "SIM PIN required",
        316 => "SIM PUK required",
        321 => "invalid memory index",
        322 => "memory full",
        330 => "SMSC address unknown",
        331 => "no network service",
        500 => "unknown error",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
