//! A reader of udev rules files (udev(7), "RULES FILES"), so the shipped
//! `udev/60-smsgate.rules` is checked by `cargo test`: `udevadm verify` needs
//! systemd 254 and Debian 12 has 252.
//!
//! The syntax, as udev(7) and systemd's `src/udev/udev-rules.c` read it:
//! one rule per line; a line ending in a backslash continues on the next;
//! lines starting with `#` (after blanks) are comments; a rule is a
//! comma-separated list of `KEY[{attr}]OP"value"` pairs with `OP` one of `==`,
//! `!=` (match) and `=`, `+=`, `-=`, `:=` (assign). A value is `"..."`, where
//! only `\"` is an escape (other backslashes are kept for the patterns), or
//! `e"..."` with C escapes. `GOTO` jumps forward to a `LABEL`.
//!
//! The reader checks what udev itself would refuse or warn about: unknown
//! keys, a match-only key with an assignment (or the reverse), a missing
//! `{attr}`, an unterminated value, a `GOTO` without a later `LABEL`. Every
//! error names its line.

use std::fmt;

/// `==`, `!=`, `=`, `+=`, `-=`, `:=` (udev(7) "Operators").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Match,
    NoMatch,
    Assign,
    Add,
    Remove,
    AssignFinal,
}

impl Operator {
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Match => "==",
            Operator::NoMatch => "!=",
            Operator::Assign => "=",
            Operator::Add => "+=",
            Operator::Remove => "-=",
            Operator::AssignFinal => ":=",
        }
    }

    pub fn is_match(self) -> bool {
        matches!(self, Operator::Match | Operator::NoMatch)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `KEY{attr}OP"value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    /// The part in braces: `ATTRS{idVendor}`, `ENV{ID_MM_DEVICE_IGNORE}`.
    pub attr: Option<String>,
    pub op: Operator,
    /// Unescaped.
    pub value: String,
}

/// One rule: its pairs and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// First line of the rule (1-based).
    pub line: usize,
    pub pairs: Vec<Pair>,
    /// The comment lines right above the rule (no blank line or rule between),
    /// without `#`: checks want each vendor rule to say what it matches.
    pub comments: Vec<String>,
}

impl Rule {
    /// The pairs with this key (and attr, when given).
    pub fn find(&self, key: &str, attr: Option<&str>) -> Vec<&Pair> {
        self.pairs
            .iter()
            .filter(|p| p.key == key && (attr.is_none() || p.attr.as_deref() == attr))
            .collect()
    }

    /// The value of the first pair with this key, attr and operator.
    pub fn value(&self, key: &str, attr: Option<&str>, op: Operator) -> Option<&str> {
        self.find(key, attr)
            .into_iter()
            .find(|p| p.op == op)
            .map(|p| p.value.as_str())
    }
}

/// A rules file that udev would not read as meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RulesError {
    pub line: usize,
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> RulesError {
    RulesError {
        line,
        message: message.into(),
    }
}

/// How a key may be used (udev(7) lists each key under "match" or
/// "assignment"; a few are both).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Match,
    Assign,
    Both,
}

/// (key, use, braces: required / optional / none).
const KEYS: &[(&str, Use, Braces)] = &[
    ("ACTION", Use::Match, Braces::No),
    ("DEVPATH", Use::Match, Braces::No),
    ("KERNEL", Use::Match, Braces::No),
    ("KERNELS", Use::Match, Braces::No),
    ("SUBSYSTEM", Use::Match, Braces::No),
    ("SUBSYSTEMS", Use::Match, Braces::No),
    ("DRIVER", Use::Match, Braces::No),
    ("DRIVERS", Use::Match, Braces::No),
    ("ATTRS", Use::Match, Braces::Yes),
    ("TAGS", Use::Match, Braces::No),
    ("TEST", Use::Match, Braces::Optional),
    ("PROGRAM", Use::Match, Braces::No),
    ("RESULT", Use::Match, Braces::No),
    ("CONST", Use::Match, Braces::Yes),
    ("NAME", Use::Both, Braces::No),
    ("SYMLINK", Use::Both, Braces::No),
    ("ENV", Use::Both, Braces::Yes),
    ("TAG", Use::Both, Braces::No),
    ("ATTR", Use::Both, Braces::Yes),
    ("SYSCTL", Use::Both, Braces::Yes),
    ("OWNER", Use::Assign, Braces::No),
    ("GROUP", Use::Assign, Braces::No),
    ("MODE", Use::Assign, Braces::No),
    ("SECLABEL", Use::Assign, Braces::Yes),
    ("RUN", Use::Assign, Braces::Optional),
    ("IMPORT", Use::Assign, Braces::Yes),
    ("OPTIONS", Use::Assign, Braces::No),
    ("LABEL", Use::Assign, Braces::No),
    ("GOTO", Use::Assign, Braces::No),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Braces {
    Yes,
    Optional,
    No,
}

/// Read a rules file.
pub fn parse(text: &str) -> Result<Vec<Rule>, RulesError> {
    let mut rules = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim().to_string());
            continue;
        }
        // Join continuation lines (udev(7): "a line can be continued by a
        // backslash at its end").
        let mut joined = String::new();
        let mut current = line.trim_end();
        let mut last = number;
        while let Some(head) = current.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            let Some((n, next)) = lines.next() else {
                return Err(error(
                    last,
                    "the last line ends with a backslash (continues into nothing)",
                ));
            };
            if next.trim_start().starts_with('#') {
                return Err(error(n, "a comment inside a continued rule"));
            }
            last = n;
            current = next.trim_end();
        }
        joined.push_str(current);
        let pairs = parse_rule(&joined, number)?;
        rules.push(Rule {
            line: number,
            pairs,
            comments: std::mem::take(&mut comments),
        });
    }
    check_gotos(&rules)?;
    Ok(rules)
}

/// Every `GOTO` needs a `LABEL` after it (udev only jumps forward).
fn check_gotos(rules: &[Rule]) -> Result<(), RulesError> {
    for (i, rule) in rules.iter().enumerate() {
        for target in rule.find("GOTO", None) {
            let found = rules[i + 1..].iter().any(|r| {
                r.find("LABEL", None)
                    .iter()
                    .any(|l| l.value == target.value)
            });
            if !found {
                return Err(error(
                    rule.line,
                    format!("GOTO=\"{}\" has no LABEL after it", target.value),
                ));
            }
        }
    }
    Ok(())
}

/// One rule's text (continuations joined) into its pairs.
fn parse_rule(text: &str, line: usize) -> Result<Vec<Pair>, RulesError> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (pair, tail) = parse_pair(rest, line)?;
        pairs.push(pair);
        let tail = tail.trim_start();
        rest = match tail.strip_prefix(',') {
            Some(after) if after.trim().is_empty() => {
                return Err(error(line, "expected a key after the last comma"))
            }
            Some(after) => after.trim_start(),
            None if tail.is_empty() => tail,
            None => {
                return Err(error(
                    line,
                    format!("expected a comma before {:?}", excerpt(tail)),
                ))
            }
        };
    }
    if pairs.is_empty() {
        return Err(error(line, "an empty rule"));
    }
    Ok(pairs)
}

fn excerpt(s: &str) -> String {
    s.chars().take(20).collect()
}

fn parse_pair(text: &str, line: usize) -> Result<(Pair, &str), RulesError> {
    let key_end = text
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let key = &text[..key_end];
    if key.is_empty() {
        return Err(error(
            line,
            format!("expected a key at {:?}", excerpt(text)),
        ));
    }
    let Some(&(_, usage, braces)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
        return Err(error(line, format!("unknown key {key}")));
    };
    let mut rest = &text[key_end..];
    let mut attr = None;
    if let Some(after) = rest.strip_prefix('{') {
        let close = after
            .find('}')
            .ok_or_else(|| error(line, format!("{key}{{ without a closing brace")))?;
        let inner = &after[..close];
        if inner.is_empty() {
            return Err(error(line, format!("{key}{{}} names nothing")));
        }
        attr = Some(inner.to_string());
        rest = &after[close + 1..];
    }
    match (braces, &attr) {
        (Braces::Yes, None) => {
            return Err(error(
                line,
                format!("{key} needs {{...}} (e.g. {key}{{name}})"),
            ))
        }
        (Braces::No, Some(a)) => {
            return Err(error(line, format!("{key} takes no {{{a}}}")));
        }
        _ => {}
    }
    let rest = rest.trim_start();
    let (op, rest) = [
        ("==", Operator::Match),
        ("!=", Operator::NoMatch),
        ("+=", Operator::Add),
        ("-=", Operator::Remove),
        (":=", Operator::AssignFinal),
        ("=", Operator::Assign),
    ]
    .iter()
    .find_map(|(s, op)| rest.strip_prefix(s).map(|r| (*op, r)))
    .ok_or_else(|| {
        error(
            line,
            format!("{key}: expected an operator (==, !=, =, +=, -=, :=)"),
        )
    })?;
    match (usage, op.is_match()) {
        (Use::Match, false) => {
            return Err(error(
                line,
                format!("{key} can only be matched (== or !=), not {op}"),
            ))
        }
        (Use::Assign, true) => {
            return Err(error(
                line,
                format!("{key} can only be assigned, not matched with {op}"),
            ))
        }
        _ => {}
    }
    let (value, rest) = parse_value(rest.trim_start(), line, key)?;
    Ok((
        Pair {
            key: key.to_string(),
            attr,
            op,
            value,
        },
        rest,
    ))
}

/// `"..."` (only `\"` unescaped, as udev-rules.c does) or `e"..."` (C escapes).
fn parse_value<'a>(text: &'a str, line: usize, key: &str) -> Result<(String, &'a str), RulesError> {
    let (c_escapes, body) = if let Some(b) = text.strip_prefix("e\"") {
        (true, b)
    } else if let Some(b) = text.strip_prefix('"') {
        (false, b)
    } else {
        return Err(error(
            line,
            format!("{key}: the value must be in double quotes"),
        ));
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' => {
                let Some((_, next)) = chars.next() else {
                    break;
                };
                if !c_escapes {
                    if next != '"' {
                        value.push('\\');
                    }
                    value.push(next);
                    continue;
                }
                match next {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    'a' => value.push('\x07'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    '\'' => value.push('\''),
                    'x' => {
                        let hex: String = chars.by_ref().take(2).map(|(_, h)| h).collect();
                        let byte = u8::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 2)
                            .ok_or_else(|| error(line, format!("{key}: bad \\x escape")))?;
                        value.push(char::from(byte));
                    }
                    other => {
                        return Err(error(line, format!("{key}: unknown escape \\{other}")));
                    }
                }
            }
            c => value.push(c),
        }
    }
    Err(error(
        line,
        format!("{key}: the value has no closing quote"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_operators_and_attrs() {
        let rules = parse(
            r#"SUBSYSTEM=="tty", ATTRS{idVendor}=="2c7c",ENV{ID_MM_DEVICE_IGNORE}="1", SYMLINK+="smsgate/x-at", MODE:="0660", TAG-="old", KERNEL!="ttyS*""#,
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        let ops: Vec<_> = rules[0].pairs.iter().map(|p| p.op).collect();
        use Operator::*;
        assert_eq!(
            ops,
            [Match, Match, Assign, Add, AssignFinal, Remove, NoMatch]
        );
        assert_eq!(rules[0].pairs[1].attr.as_deref(), Some("idVendor"));
        assert_eq!(
            rules[0].value("ATTRS", Some("idVendor"), Match),
            Some("2c7c")
        );
        assert_eq!(
            rules[0].value("ENV", Some("ID_MM_DEVICE_IGNORE"), Assign),
            Some("1")
        );
        assert_eq!(rules[0].line, 1);
    }

    #[test]
    fn comments_blank_lines_and_continuations() {
        let text = "# header\n\n# Quectel EC25\n# interface 02\nSUBSYSTEM==\"tty\", \\\n  GROUP=\"dialout\", \\\n  MODE=\"0660\"\n\nKERNEL==\"ttyUSB*\", GROUP=\"x\"\n";
        let rules = parse(text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].line, 5);
        assert_eq!(rules[0].comments, ["Quectel EC25", "interface 02"]);
        assert_eq!(rules[0].pairs.len(), 3);
        assert_eq!(rules[1].line, 9);
        assert!(rules[1].comments.is_empty());
    }

    #[test]
    fn quoting_and_escapes() {
        let rules = parse(
            r#"ENV{A}="say \"hi\"", ENV{B}="a\d*", ENV{C}=e"tab\there\x41\\", ENV{D}="a,b", ENV{E}="""#,
        )
        .unwrap();
        let v: Vec<_> = rules[0].pairs.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(v, ["say \"hi\"", "a\\d*", "tab\thereA\\", "a,b", ""]);
    }

    #[test]
    fn labels_and_gotos() {
        let ok = "ACTION==\"remove\", GOTO=\"end\"\nGROUP=\"dialout\"\nLABEL=\"end\"\n";
        assert_eq!(parse(ok).unwrap().len(), 3);
        let backwards = "LABEL=\"end\"\nACTION==\"remove\", GOTO=\"end\"\n";
        assert_eq!(parse(backwards).unwrap_err().line, 2);
        let missing = "GOTO=\"nowhere\"\n";
        assert!(parse(missing).unwrap_err().message.contains("nowhere"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("GROUP=\"a\"\nFOO==\"x\"", 2, "unknown key FOO"),
            ("\n\nATTRS==\"x\"", 3, "needs {"),
            ("SUBSYSTEM{x}==\"tty\"", 1, "takes no"),
            ("SUBSYSTEM=\"tty\"", 1, "only be matched"),
            ("MODE==\"0660\"", 1, "only be assigned"),
            ("GROUP=dialout", 1, "double quotes"),
            ("GROUP=\"dialout", 1, "no closing quote"),
            ("GROUP=\"a\" MODE=\"b\"", 1, "comma"),
            ("GROUP~\"a\"", 1, "operator"),
            ("GROUP=\"a\", \\\n# note\nMODE=\"1\"", 2, "comment inside"),
            ("GROUP=\"a\", \\", 1, "backslash"),
            ("ENV{X}=e\"\\q\"", 1, "unknown escape"),
            ("ATTRS{x==\"1\"", 1, "closing brace"),
            ("GROUP=\"a\",", 1, "expected a key"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn a_trailing_comma_before_nothing_is_an_error_but_spaces_are_fine() {
        assert!(parse("  GROUP = \"a\" ,  MODE= \"b\"  ").is_ok());
    }
}
