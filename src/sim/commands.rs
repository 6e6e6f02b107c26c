//! The modem side of V.250 command lines: `AT` prefix, basic and extended
//! commands, `;` concatenation, and the four extended forms of 27.007 §4.1
//! (action `+X`, set `+X=..`, read `+X?`, test `+X=?`).
//!
//! Pure functions over one line (terminator already removed): a client's bytes
//! give a list of commands or an error, never a panic.

/// The form an extended command was written in (27.007 §4.1, V.250 §5.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `+CSQ`, `Z`, `E1` (the digits of a basic command are its argument).
    Action,
    /// `+CMGF?`.
    Read,
    /// `+CMGF=?`.
    Test,
    /// `+CMGF=0`: the raw argument text after `=`.
    Set(String),
}

/// One command of a line, its name upper-cased (`+CMGS`, `^ICCID`, `E`, `&F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub form: Form,
}

impl Command {
    /// The arguments of a set command split at commas outside quotes, each trimmed;
    /// quotes are kept so `""` and an empty argument stay apart.
    pub fn args(&self) -> Vec<String> {
        match &self.form {
            Form::Set(text) => split_args(text),
            _ => Vec::new(),
        }
    }
}

/// Why a line is not a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line does not start with `AT` (V.250 §5.2.1).
    NoPrefix,
    /// A character that starts no command.
    Syntax,
}

/// Split a line into its commands. `AT` alone gives an empty list (the line is
/// answered `OK`). Case-insensitive outside quotes; spaces outside quotes are
/// ignored (V.250 §5.2.1 lets the DCE ignore them).
pub fn parse_line(line: &[u8]) -> Result<Vec<Command>, LineError> {
    let text = normalise(line);
    let body = match text.get(..2) {
        Some("AT") => &text[2..],
        _ => return Err(LineError::NoPrefix),
    };
    let mut commands = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(';') {
            rest = r;
            continue;
        }
        let first = rest.chars().next().ok_or(LineError::Syntax)?;
        if matches!(first, '+' | '^' | '#' | '$' | '%' | '*') {
            // Extended command: a name, then `=?`, `=args`, `?` or nothing, up to
            // an unquoted `;` (27.007 §4.1, V.250 §5.4.1).
            let name_len = 1 + rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len() - 1);
            let name = rest[..name_len].to_string();
            let after = &rest[name_len..];
            let end = unquoted_semicolon(after).unwrap_or(after.len());
            let tail = &after[..end];
            let form = if tail == "=?" {
                Form::Test
            } else if tail == "?" {
                Form::Read
            } else if let Some(args) = tail.strip_prefix('=') {
                Form::Set(args.to_string())
            } else if tail.is_empty() {
                Form::Action
            } else {
                return Err(LineError::Syntax);
            };
            commands.push(Command { name, form });
            rest = &after[end..];
        } else if first == '&' || first.is_ascii_alphabetic() {
            // Basic command: letter (or `&` + letter), then optional digits, or
            // `S<n>=<v>` / `S<n>?` (V.250 §5.3).
            let letter_len = if first == '&' { 2 } else { 1 };
            let letters = rest.get(..letter_len).ok_or(LineError::Syntax)?;
            if !letters.chars().all(|c| c == '&' || c.is_ascii_alphabetic()) {
                return Err(LineError::Syntax);
            }
            let after = &rest[letter_len..];
            let digits = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let mut name = letters.to_string();
            let mut remaining = &after[digits..];
            let form = if letters == "S" {
                name.push_str(&after[..digits]);
                if let Some(r) = remaining.strip_prefix('?') {
                    remaining = r;
                    Form::Read
                } else if let Some(r) = remaining.strip_prefix('=') {
                    let v = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                    remaining = &r[v..];
                    Form::Set(r[..v].to_string())
                } else {
                    Form::Action
                }
            } else if letters == "D" {
                // ATD takes the rest of the line (V.250 §6.3.1).
                let end = unquoted_semicolon(after).unwrap_or(after.len());
                remaining = &after[end..];
                Form::Set(after[..end].to_string())
            } else if digits > 0 {
                Form::Set(after[..digits].to_string())
            } else {
                Form::Action
            };
            commands.push(Command { name, form });
            rest = remaining;
        } else {
            return Err(LineError::Syntax);
        }
    }
    Ok(commands)
}

/// Upper-case and drop spaces outside double quotes.
fn normalise(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.trim().chars() {
        if c == '"' {
            quoted = !quoted;
            out.push(c);
        } else if quoted {
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}

fn unquoted_semicolon(text: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Split at commas outside quotes.
pub fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => args.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    args.push(current.trim().to_string());
    args
}

/// An argument without its surrounding quotes.
pub fn unquote(arg: &str) -> &str {
    arg.strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, form: Form) -> Command {
        Command {
            name: name.into(),
            form,
        }
    }

    #[test]
    fn lines_split_into_commands() {
        let set = |s: &str| Form::Set(s.into());
        let cases: Vec<(&[u8], Vec<Command>)> = vec![
            (b"AT", vec![]),
            (b"at", vec![]),
            (b"ATZ", vec![cmd("Z", Form::Action)]),
            (b"ATE0", vec![cmd("E", set("0"))]),
            (
                b"ATE0Q0V1",
                vec![cmd("E", set("0")), cmd("Q", set("0")), cmd("V", set("1"))],
            ),
            (b"AT&F", vec![cmd("&F", Form::Action)]),
            (b"AT+CSQ", vec![cmd("+CSQ", Form::Action)]),
            (b"at+cmgf?", vec![cmd("+CMGF", Form::Read)]),
            (b"AT+CNMI=?", vec![cmd("+CNMI", Form::Test)]),
            (
                b"AT+CMEE=1;+CMGF=0",
                vec![cmd("+CMEE", set("1")), cmd("+CMGF", set("0"))],
            ),
            (
                b"  AT + CPMS = \"sm\", \"SM\" ,\"SR\" ",
                vec![cmd("+CPMS", set("\"sm\",\"SM\",\"SR\""))],
            ),
            (b"AT^ICCID?", vec![cmd("^ICCID", Form::Read)]),
            (
                b"AT+CSCA=\"+1 555;0\";E1",
                vec![cmd("+CSCA", set("\"+1 555;0\"")), cmd("E", set("1"))],
            ),
            (b"ATS0=0", vec![cmd("S0", set("0"))]),
            (b"ATS7?", vec![cmd("S7", Form::Read)]),
            (b"AT+CMGD=1,4", vec![cmd("+CMGD", set("1,4"))]),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_line(line),
                Ok(expected),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        assert_eq!(parse_line(b""), Err(LineError::NoPrefix));
        assert_eq!(parse_line(b"A"), Err(LineError::NoPrefix));
        assert_eq!(parse_line(b"hello"), Err(LineError::NoPrefix));
        assert_eq!(parse_line(b"AT+CSQx?"), Ok(vec![cmd("+CSQX", Form::Read)]));
        assert_eq!(parse_line(b"AT+CSQ!"), Err(LineError::Syntax));
        assert_eq!(parse_line(b"AT!"), Err(LineError::Syntax));
        assert_eq!(parse_line(b"AT&"), Err(LineError::Syntax));
        assert_eq!(
            parse_line(&[b'A', b'T', 0xFF, 0xC3]),
            Err(LineError::Syntax)
        );
    }

    #[test]
    fn args_split_outside_quotes() {
        assert_eq!(split_args("2,1,0,2"), ["2", "1", "0", "2"]);
        assert_eq!(split_args("\"a,b\",,3"), ["\"a,b\"", "", "3"]);
        assert_eq!(unquote("\"SM\""), "SM");
        assert_eq!(unquote("SM"), "SM");
        assert_eq!(unquote("\""), "\"");
    }
}
