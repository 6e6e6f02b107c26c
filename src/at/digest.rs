//! Bytes -> frames: the one place where the modem's byte stream is cut into
//! command echo, `> ` prompts, URCs and complete responses.
//!
//! Shaped after atat's digester: [`Digester::digest`] looks at the front of a
//! buffer and returns `(Option<Frame>, consumed)`. Incomplete input is a normal
//! outcome (`(None, n)` with the caller keeping the unconsumed tail), never an
//! error, so feeding a stream one byte at a time yields the same frames as
//! feeding it whole. Unlike atat, the digester keeps the information lines of the
//! response in flight, so a URC that the modem slips *between* two lines of a
//! response (27.007 §5.7.1 lets the TA do that unless `+CNMI` mode 1 buffers
//! them) becomes its own frame and the response stays clean.
//!
//! Line rules (27.007 §4.1 / V.250 §5.7): lines end in `<CR>` or `<LF>`; blank
//! lines, `\r\r\n`, and leading NULs or other non-printable bytes (seen after a
//! USB hiccup) are skipped; non-UTF-8 bytes are replaced, never trusted.

use super::error::{AtError, CmeError, CmsError};
use super::urc::{urc_shape, Urc, UrcShape};

/// A line longer than this without an ending is garbage: the longest legitimate
/// line is a `+CMGL`/`+CUSD` hex line of a few hundred characters.
pub const MAX_LINE: usize = 4096;

/// A response with more lines than this is cut short and ends as garbage
/// (bounds memory if a broken modem never prints a final result).
pub const MAX_LINES: usize = 8192;

/// What the digester recognised at the front of the buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The command in flight finished: its information lines and final result.
    Response(Response),
    /// The `\r\n> ` prompt of `AT+CMGS`/`AT+CMGW` (27.005 §3.5.1): write the PDU.
    Prompt,
    /// An unsolicited result code (one line, or two for `+CMT`/`+CDS`).
    Urc(Urc),
    /// The modem echoing our command back (`ATE1` still on).
    Echo(String),
    /// A line nobody is waiting for: a late answer after a timeout, a final
    /// result with no command in flight, a line we do not know. Dropped by the
    /// transport, but a sign that a resync may be due.
    Stray(String),
    /// Garbage: this many bytes without a line ending, thrown away.
    Overflow(usize),
}

/// The final result code that closes a response (V.250 §5.7.1, 27.007 §9.2,
/// 27.005 §3.2.5), including the vendor forms seen in the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalResult {
    /// `OK`
    Ok,
    /// A bare `ERROR`.
    Error,
    /// `+CME ERROR: <err>`
    Cme(CmeError),
    /// `+CMS ERROR: <err>`
    Cms(CmsError),
    /// `NO CARRIER`, `BUSY`, `NO ANSWER`, `NO DIALTONE` (only final for a dial).
    Call(String),
    /// `COMMAND NOT SUPPORT` (Huawei, ZTE), `TOO MANY PARAMETERS` (Huawei).
    Vendor(String),
}

/// A complete response: what the command printed before its final result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Information lines in order, echo and URCs removed, line endings stripped.
    pub lines: Vec<String>,
    /// How the command ended.
    pub result: FinalResult,
}

impl Response {
    /// The information lines when the command succeeded, else the error.
    pub fn into_lines(self) -> Result<Vec<String>, AtError> {
        match self.result {
            FinalResult::Ok => Ok(self.lines),
            FinalResult::Error => Err(AtError::Error("ERROR".into())),
            FinalResult::Cme(e) => Err(AtError::Cme(e)),
            FinalResult::Cms(e) => Err(AtError::Cms(e)),
            FinalResult::Call(s) | FinalResult::Vendor(s) => Err(AtError::Error(s)),
        }
    }
}

/// What the digester knows about the command in flight; derived from the
/// command line itself so the raw-line replay of fixtures and the typed
/// commands take exactly the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    /// What an echo of the current phase looks like: the command line, then the
    /// hex PDU after the prompt.
    echo: String,
    /// The command's own response prefix (`+CREG:` for `AT+CREG?`): lines with
    /// it answer the command even though the same prefix is a URC otherwise
    /// (atat's rule: decide by prefix, and by what is in flight).
    solicited: Option<String>,
    /// `AT+CMGS`/`AT+CMGW`/`AT+CMGC` print a `> ` prompt and wait for a PDU.
    prompt: bool,
    /// `ATD`/`ATA`: `NO CARRIER`, `BUSY`... are final results, not URCs.
    call: bool,
}

impl InFlight {
    fn new(command_line: &str) -> Self {
        let echo = command_line.trim().to_string();
        let upper = echo.to_ascii_uppercase();
        let body = upper.get(2..).unwrap_or("");
        let name: String = body
            .chars()
            .take_while(|c| !matches!(c, '=' | '?'))
            .collect();
        let solicited = match name.chars().next() {
            Some('+' | '^' | '$' | '*' | '#' | '%') => Some(format!("{name}:")),
            _ => None,
        };
        let prompt = matches!(name.as_str(), "+CMGS" | "+CMGW" | "+CMGC")
            && body.as_bytes().get(name.len()) == Some(&b'=');
        let call = upper.starts_with("ATD") || upper == "ATA";
        InFlight {
            echo,
            solicited,
            prompt,
            call,
        }
    }
}

/// Cuts a byte stream into [`Frame`]s. One per port; told by the transport
/// which command is in flight.
#[derive(Debug, Default, Clone)]
pub struct Digester {
    /// The command whose response is being collected, if any.
    in_flight: Option<InFlight>,
    /// Information lines of that response so far.
    lines: Vec<String>,
}

impl Digester {
    /// A digester with no command in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// A command line (without the `\r`) was written: collect its response.
    pub fn begin(&mut self, command_line: &str) {
        self.in_flight = Some(InFlight::new(command_line));
        self.lines.clear();
    }

    /// The PDU of a two-phase command was written: its echo is expected now,
    /// and no second prompt.
    pub fn begin_payload(&mut self, echo: &str) {
        if let Some(f) = self.in_flight.as_mut() {
            f.echo = echo.trim().to_string();
            f.prompt = false;
        }
    }

    /// Give up on the command in flight (timeout): later lines are strays.
    pub fn cancel(&mut self) {
        self.in_flight = None;
        self.lines.clear();
    }

    /// Whether a command is waiting for its final result.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Looks at the front of `buf`. Returns the frame found there, if complete,
    /// and how many bytes to drop from the front. `(None, 0)` means "need more
    /// bytes"; `(None, n > 0)` means bytes were used (blank lines, an echo-free
    /// information line) and the caller should call again.
    pub fn digest(&mut self, buf: &[u8]) -> (Option<Frame>, usize) {
        let start = skip_separators(buf, 0);
        if start == buf.len() {
            return (None, start);
        }

        // 27.005 §3.5.1: the prompt is `<CR><LF><greater_than><space>` with no
        // line ending after it.
        if buf.get(start) == Some(&b'>') && self.expects_prompt() {
            if let Some(f) = self.in_flight.as_mut() {
                f.prompt = false;
            }
            let end = if buf.get(start + 1) == Some(&b' ') {
                start + 2
            } else {
                start + 1
            };
            return (Some(Frame::Prompt), end);
        }

        let Some((line, after)) = take_line(buf, start) else {
            return self.incomplete(buf, start);
        };

        if self.is_echo(&line) {
            return (Some(Frame::Echo(line)), after);
        }

        let call = self.in_flight.as_ref().is_some_and(|f| f.call);
        if let Some(result) = final_result(&line, call) {
            return match self.in_flight.take() {
                Some(_) => {
                    let lines = std::mem::take(&mut self.lines);
                    (Some(Frame::Response(Response { lines, result })), after)
                }
                None => (Some(Frame::Stray(line)), after),
            };
        }

        if !self.is_solicited(&line) {
            match urc_shape(&line) {
                Some(UrcShape::OneLine) => {
                    return (Some(Frame::Urc(Urc::parse(&line, None))), after);
                }
                Some(UrcShape::WithPdu) => return self.two_line_urc(buf, start, line, after),
                None => {}
            }
        }

        if self.in_flight.is_some() {
            if self.lines.len() >= MAX_LINES {
                self.cancel();
                return (Some(Frame::Overflow(after)), after);
            }
            self.lines.push(line);
            (None, after)
        } else {
            (Some(Frame::Stray(line)), after)
        }
    }

    /// `+CMT: [<alpha>],<length>` and `+CDS: <length>` (27.005 §3.4.1, PDU
    /// mode) carry the PDU on the next line: emit both together or nothing.
    fn two_line_urc(
        &mut self,
        buf: &[u8],
        start: usize,
        header: String,
        after: usize,
    ) -> (Option<Frame>, usize) {
        let pdu_start = skip_separators(buf, after);
        let Some((pdu, end)) = take_line(buf, pdu_start) else {
            if buf.len().saturating_sub(pdu_start) > MAX_LINE {
                return (Some(Frame::Urc(Urc::parse(&header, None))), after);
            }
            // Leave the header in the buffer until its PDU line is complete.
            return (None, start);
        };
        // A modem that lost the PDU line goes on with a result or another URC:
        // do not swallow it as a PDU.
        let looks_like_pdu = !pdu.starts_with('+')
            && !pdu.starts_with('^')
            && final_result(&pdu, true).is_none()
            && urc_shape(&pdu).is_none();
        if looks_like_pdu {
            (Some(Frame::Urc(Urc::parse(&header, Some(&pdu)))), end)
        } else {
            (Some(Frame::Urc(Urc::parse(&header, None))), after)
        }
    }

    fn incomplete(&mut self, buf: &[u8], start: usize) -> (Option<Frame>, usize) {
        if buf.len().saturating_sub(start) > MAX_LINE {
            // A line that never ends: throw it away, and the partial response
            // with it (it cannot be trusted any more).
            if self.in_flight.is_some() {
                self.lines.clear();
            }
            (Some(Frame::Overflow(buf.len())), buf.len())
        } else {
            (None, start)
        }
    }

    fn expects_prompt(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.prompt)
    }

    fn is_echo(&self, line: &str) -> bool {
        match &self.in_flight {
            Some(f) => {
                line.eq_ignore_ascii_case(&f.echo)
                    || (self.lines.is_empty() && looks_like_command(line))
            }
            // A late echo of a command we already gave up on.
            None => looks_like_command(line),
        }
    }

    fn is_solicited(&self, line: &str) -> bool {
        self.in_flight
            .as_ref()
            .and_then(|f| f.solicited.as_deref())
            .is_some_and(|p| starts_with_ignore_case(line, p))
    }
}

/// `AT`, `ATE0`, `AT+CMGR=1`, `at^curc=0`... (V.250 §5.2.1). Words that merely
/// begin with the letters "AT" (`ATTACHED`) are not commands.
fn looks_like_command(line: &str) -> bool {
    let b = line.as_bytes();
    if !b.get(..2).is_some_and(|at| at.eq_ignore_ascii_case(b"AT")) {
        return false;
    }
    match (b.get(2), b.get(3)) {
        (None, _) => true,
        (Some(c), _) if !c.is_ascii_alphabetic() => true,
        (Some(_), next) => next.is_none_or(|n| !n.is_ascii_alphabetic()),
    }
}

/// Recognises a final result code. Call results only end a dial: otherwise
/// they are URCs (a call dropped while we were doing something else).
pub(crate) fn final_result(line: &str, call: bool) -> Option<FinalResult> {
    let upper = line.to_ascii_uppercase();
    match upper.as_str() {
        "OK" => return Some(FinalResult::Ok),
        "ERROR" => return Some(FinalResult::Error),
        "COMMAND NOT SUPPORT" | "TOO MANY PARAMETERS" => {
            return Some(FinalResult::Vendor(line.to_string()))
        }
        "NO CARRIER" | "BUSY" | "NO ANSWER" | "NO DIALTONE" if call => {
            return Some(FinalResult::Call(line.to_string()))
        }
        _ => {}
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CME ERROR") {
        let arg = rest.trim_start().strip_prefix(':').unwrap_or(rest);
        return Some(FinalResult::Cme(CmeError::parse(arg)));
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CMS ERROR") {
        let arg = rest.trim_start().strip_prefix(':').unwrap_or(rest);
        return Some(FinalResult::Cms(CmsError::parse(arg)));
    }
    None
}

pub(crate) fn starts_with_ignore_case(line: &str, prefix: &str) -> bool {
    strip_prefix_ignore_case(line, prefix).is_some()
}

pub(crate) fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        line.get(prefix.len()..)
    } else {
        None
    }
}

/// Skips line endings, blanks and non-printable bytes at the start of a line.
fn skip_separators(buf: &[u8], from: usize) -> usize {
    let rest = buf.get(from..).unwrap_or(&[]);
    from + rest
        .iter()
        .take_while(|b| !(0x21..=0x7e).contains(*b))
        .count()
}

/// The line starting at `start`, cleaned, and the index just past its ending.
fn take_line(buf: &[u8], start: usize) -> Option<(String, usize)> {
    let rest = buf.get(start..)?;
    let len = rest.iter().position(|b| *b == b'\r' || *b == b'\n')?;
    let raw = rest.get(..len)?;
    let text = String::from_utf8_lossy(raw);
    // Trailing blanks and control bytes (a Ctrl-Z echoed after a PDU).
    let text = text.trim_end_matches(|c: char| c.is_whitespace() || c.is_control());
    Some((text.to_string(), start + len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::urc::Urc;

    /// Feeds `input` in chunks of `chunk` bytes, collecting every frame.
    fn run(command: Option<&str>, input: &[u8], chunk: usize) -> Vec<Frame> {
        let mut d = Digester::new();
        if let Some(c) = command {
            d.begin(c);
        }
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let (frame, used) = d.digest(&buf);
                buf.drain(..used);
                match frame {
                    Some(f) => frames.push(f),
                    None if used == 0 => break,
                    None => {}
                }
            }
        }
        frames
    }

    fn ok(lines: &[&str]) -> Frame {
        Frame::Response(Response {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            result: FinalResult::Ok,
        })
    }

    fn urc(line: &str, pdu: Option<&str>) -> Frame {
        Frame::Urc(Urc::parse(line, pdu))
    }

    struct Case {
        name: &'static str,
        command: Option<&'static str>,
        input: &'static [u8],
        expect: Vec<Frame>,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "plain OK",
                command: Some("AT"),
                input: b"\r\nOK\r\n",
                expect: vec![ok(&[])],
            },
            Case {
                name: "echo then info then OK",
                command: Some("AT+CSQ"),
                input: b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n",
                expect: vec![Frame::Echo("AT+CSQ".into()), ok(&["+CSQ: 17,99"])],
            },
            Case {
                name: "double CR endings and blank lines",
                command: Some("AT+CGMI"),
                input: b"\r\r\n\r\r\nSIMCOM_Ltd\r\r\n\r\r\nOK\r\r\n",
                expect: vec![ok(&["SIMCOM_Ltd"])],
            },
            Case {
                name: "leading garbage and NULs after a USB hiccup",
                command: Some("AT"),
                input: b"\x00\x00\xff\xfe\x80\r\nOK\r\n",
                expect: vec![ok(&[])],
            },
            Case {
                name: "bare ERROR",
                command: Some("AT+FOO"),
                input: b"\r\nERROR\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Error,
                })],
            },
            Case {
                name: "CMS error numeric",
                command: Some("AT+CMGS=20"),
                input: b"\r\n+CMS ERROR: 332\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Cms(CmsError::NetworkTimeout),
                })],
            },
            Case {
                name: "CME error verbose",
                command: Some("AT+CPIN?"),
                input: b"\r\n+CME ERROR: SIM not inserted\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Cme(CmeError::SimNotInserted),
                })],
            },
            Case {
                name: "Huawei vendor final results",
                command: Some("AT^FOO"),
                input: b"\r\nCOMMAND NOT SUPPORT\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Vendor("COMMAND NOT SUPPORT".into()),
                })],
            },
            Case {
                name: "too many parameters",
                command: Some("AT+CMGD=1,2,3"),
                input: b"\r\nTOO MANY PARAMETERS\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Vendor("TOO MANY PARAMETERS".into()),
                })],
            },
            Case {
                name: "NO CARRIER ends a dial",
                command: Some("ATD+15551234567;"),
                input: b"\r\nNO CARRIER\r\n",
                expect: vec![Frame::Response(Response {
                    lines: vec![],
                    result: FinalResult::Call("NO CARRIER".into()),
                })],
            },
            Case {
                name: "NO CARRIER is a URC otherwise",
                command: None,
                input: b"\r\nNO CARRIER\r\n",
                expect: vec![urc("NO CARRIER", None)],
            },
            Case {
                name: "CMGS prompt without line ending",
                command: Some("AT+CMGS=18"),
                input: b"AT+CMGS=18\r\r\n> ",
                expect: vec![Frame::Echo("AT+CMGS=18".into()), Frame::Prompt],
            },
            Case {
                name: "URC in the middle of a CMGL response",
                command: Some("AT+CMGL=4"),
                input: b"\r\n+CMGL: 1,1,,22\r\n0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B\r\n+CMTI: \"SM\",2\r\n+CMGL: 2,0,,20\r\n07914487200030230\r\n\r\nOK\r\n",
                expect: vec![
                    urc("+CMTI: \"SM\",2", None),
                    ok(&[
                        "+CMGL: 1,1,,22",
                        "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
                        "+CMGL: 2,0,,20",
                        "07914487200030230",
                    ]),
                ],
            },
            Case {
                name: "two-line +CMT taken together",
                command: None,
                input: b"\r\n+CMT: ,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n",
                expect: vec![urc(
                    "+CMT: ,24",
                    Some("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"),
                )],
            },
            Case {
                name: "two-line +CDS during a command",
                command: Some("AT+CSQ"),
                input: b"\r\n+CDS: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r\n\r\n+CSQ: 20,0\r\n\r\nOK\r\n",
                expect: vec![
                    urc(
                        "+CDS: 25",
                        Some("0006D60B911326880736F4111011719551401110117195714000"),
                    ),
                    ok(&["+CSQ: 20,0"]),
                ],
            },
            Case {
                name: "+CREG answers AT+CREG? but is a URC otherwise",
                command: Some("AT+CREG?"),
                input: b"\r\n+CREG: 2,1,\"1A2B\",\"00C3\"\r\n\r\nOK\r\n\r\n+CREG: 5,\"1A2B\",\"00C4\"\r\n",
                expect: vec![
                    ok(&["+CREG: 2,1,\"1A2B\",\"00C3\""]),
                    urc("+CREG: 5,\"1A2B\",\"00C4\"", None),
                ],
            },
            Case {
                name: "+CUSD after OK is a URC",
                command: Some("AT+CUSD=1,\"*100#\",15"),
                input: b"\r\nOK\r\n\r\n+CUSD: 0,\"Balance 5.00\",15\r\n",
                expect: vec![ok(&[]), urc("+CUSD: 0,\"Balance 5.00\",15", None)],
            },
            Case {
                name: "SIM800 boot noise with no command",
                command: None,
                input: b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n",
                expect: vec![
                    urc("RDY", None),
                    urc("+CFUN: 1", None),
                    urc("+CPIN: READY", None),
                    urc("Call Ready", None),
                    urc("SMS Ready", None),
                ],
            },
            Case {
                name: "Huawei noise inside a response",
                command: Some("AT+CPMS?"),
                input: b"\r\n^RSSI: 17\r\n+CPMS: \"SM\",1,30,\"SM\",1,30,\"SM\",1,30\r\n^BOOT:21112212,0,0,0,77\r\n\r\nOK\r\n",
                expect: vec![
                    urc("^RSSI: 17", None),
                    urc("^BOOT:21112212,0,0,0,77", None),
                    ok(&["+CPMS: \"SM\",1,30,\"SM\",1,30,\"SM\",1,30"]),
                ],
            },
            Case {
                name: "late OK with nothing in flight is stray",
                command: None,
                input: b"\r\nOK\r\n",
                expect: vec![Frame::Stray("OK".into())],
            },
            Case {
                name: "CMGS payload echo and result",
                command: Some("AT+CMGS=13"),
                input: b"\r\n> ",
                expect: vec![Frame::Prompt],
            },
        ]
    }

    #[test]
    fn table() {
        for case in cases() {
            assert_eq!(
                run(case.command, case.input, usize::MAX),
                case.expect,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn table_fed_one_byte_at_a_time() {
        for case in cases() {
            assert_eq!(
                run(case.command, case.input, 1),
                case.expect,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn cmgs_two_phases() {
        let mut d = Digester::new();
        d.begin("AT+CMGS=13");
        let (f, n) = d.digest(b"AT+CMGS=13\r\r\n> ");
        assert_eq!(f, Some(Frame::Echo("AT+CMGS=13".into())));
        let rest = &b"AT+CMGS=13\r\r\n> "[n..];
        let (f, _) = d.digest(rest);
        assert_eq!(f, Some(Frame::Prompt));
        d.begin_payload("0001000B915155214365F7000001C8");
        let input = b"0001000B915155214365F7000001C8\x1a\r\n+CMGS: 42\r\n\r\nOK\r\n";
        let mut buf = input.to_vec();
        let mut frames = vec![];
        loop {
            let (f, n) = d.digest(&buf);
            buf.drain(..n);
            match f {
                Some(f) => frames.push(f),
                None if n == 0 => break,
                None => {}
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Echo("0001000B915155214365F7000001C8".into()),
                ok(&["+CMGS: 42"])
            ]
        );
    }

    #[test]
    fn incomplete_is_not_an_error() {
        let mut d = Digester::new();
        d.begin("AT");
        assert_eq!(d.digest(b"O"), (None, 0));
        assert_eq!(d.digest(b"\r\nO"), (None, 2));
        // A +CMT header without its PDU line is held back whole.
        let mut d = Digester::new();
        assert_eq!(d.digest(b"+CMT: ,24\r\n0791"), (None, 0));
    }

    #[test]
    fn endless_line_is_thrown_away() {
        let mut d = Digester::new();
        let junk = vec![b'A'; MAX_LINE + 10];
        assert_eq!(
            d.digest(&junk),
            (Some(Frame::Overflow(junk.len())), junk.len())
        );
    }

    #[test]
    fn cmt_header_without_pdu_does_not_swallow_next_line() {
        let frames = run(None, b"+CMT: ,24\r\n+CMTI: \"SM\",1\r\n", usize::MAX);
        assert_eq!(
            frames,
            vec![urc("+CMT: ,24", None), urc("+CMTI: \"SM\",1", None)]
        );
    }

    #[test]
    fn command_recognition() {
        assert!(looks_like_command("AT"));
        assert!(looks_like_command("ATE0"));
        assert!(looks_like_command("at+cmgr=1"));
        assert!(!looks_like_command("ATTACHED"));
    }
}
