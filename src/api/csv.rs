//! CSV as RFC 4180 has it, both ways: a field written for the consent
//! export, and a strict reader of contact imports that reports each bad
//! record with the line it starts on and reads on after it.
//!
//! The reader is a pure function over bytes: `"`-quoted fields may hold
//! commas, doubled quotes and line breaks; records end at CRLF, LF or a lone
//! CR; a UTF-8 byte order mark (spreadsheets write one) is skipped; empty
//! lines are skipped. A quote inside an unquoted field, text after a closing
//! quote, or a quote left open are errors (RFC 4180 §2.5-2.7), as are
//! fields that are not UTF-8: that record is reported and the reader goes
//! on at the next line.

/// `text` as one CSV field, quoted when it must be.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Why a record could not be read: `invalid_quoting` or `invalid_utf8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub code: &'static str,
    pub detail: String,
}

/// One record: the line it starts on (1-based) and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub fields: Result<Vec<String>, RecordError>,
}

/// Where a reader stands, to go on later over the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pos: usize,
    /// The line `pos` is on.
    line: u64,
}

/// The records of a CSV text, in order.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The line `pos` is on.
    line: u64,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        let pos = if data.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        Reader { data, pos, line: 1 }
    }

    /// Go on over `data` (the text `at` came from) where a reader stopped.
    pub fn resume(data: &'a [u8], at: Position) -> Reader<'a> {
        Reader {
            data,
            pos: at.pos,
            line: at.line,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            pos: self.pos,
            line: self.line,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// At a line break: consume it (CRLF as one) and count the line.
    fn take_break(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
            }
            Some(b'\r') => {
                self.pos += 1;
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            _ => return false,
        }
        self.line += 1;
        true
    }

    /// Skip to just past the end of the current line (after an error).
    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' || b == b'\r' {
                self.take_break();
                return;
            }
            self.pos += 1;
        }
    }

    fn quoting(&mut self, detail: String) -> Result<Vec<Vec<u8>>, RecordError> {
        self.skip_line();
        Err(RecordError {
            code: "invalid_quoting",
            detail,
        })
    }

    /// The fields of the record at `pos` (which is not at the end), and
    /// `pos` past its line break.
    fn record(&mut self) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut fields = Vec::new();
        loop {
            let mut value = Vec::new();
            if self.peek() == Some(b'"') {
                let opened = self.line;
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => {
                            return self.quoting(format!(
                                "the quote opened on line {opened} is never closed"
                            ))
                        }
                        Some(b'"') if self.data.get(self.pos + 1) == Some(&b'"') => {
                            value.push(b'"');
                            self.pos += 2;
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\n' | b'\r') => {
                            let start = self.pos;
                            self.take_break();
                            value.extend_from_slice(&self.data[start..self.pos]);
                        }
                        Some(b) => {
                            value.push(b);
                            self.pos += 1;
                        }
                    }
                }
                match self.peek() {
                    None | Some(b',' | b'\n' | b'\r') => {}
                    Some(_) => {
                        return self.quoting(format!(
                            "field {} has text after its closing quote",
                            fields.len() + 1
                        ))
                    }
                }
            } else {
                while let Some(b) = self.peek() {
                    match b {
                        b',' | b'\n' | b'\r' => break,
                        b'"' => {
                            return self.quoting(format!(
                                "field {} has a quote but does not start with one (quote the field and double the quote)",
                                fields.len() + 1
                            ))
                        }
                        _ => {
                            value.push(b);
                            self.pos += 1;
                        }
                    }
                }
            }
            fields.push(value);
            match self.peek() {
                Some(b',') => self.pos += 1,
                None => return Ok(fields),
                Some(_) => {
                    self.take_break();
                    return Ok(fields);
                }
            }
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        while self.take_break() {}
        if self.pos >= self.data.len() {
            return None;
        }
        let line = self.line;
        let fields = self.record().and_then(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(n, bytes)| {
                    String::from_utf8(bytes).map_err(|_| RecordError {
                        code: "invalid_utf8",
                        detail: format!("field {} is not UTF-8", n + 1),
                    })
                })
                .collect()
        });
        Some(Record { line, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> Vec<(u64, Result<Vec<String>, &'static str>)> {
        Reader::new(text)
            .map(|r| (r.line, r.fields.map_err(|e| e.code)))
            .collect()
    }

    fn ok(line: u64, fields: &[&str]) -> (u64, Result<Vec<String>, &'static str>) {
        (line, Ok(fields.iter().map(|f| f.to_string()).collect()))
    }

    #[test]
    fn export_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"STOP\""), "\"say \"\"STOP\"\"\"");
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text =
            b"number,name,note\r\n+1555,\"Ruiz, Ana\",\"said \"\"hi\"\"\nthen left\"\n+1666,Bo,\n";
        assert_eq!(
            read(text),
            [
                ok(1, &["number", "name", "note"]),
                ok(2, &["+1555", "Ruiz, Ana", "said \"hi\"\nthen left"]),
                ok(4, &["+1666", "Bo", ""]),
            ]
        );
        // No final line break, empty lines skipped, a BOM skipped, a lone CR.
        assert_eq!(
            read(b"\xEF\xBB\xBFa,b\n\n\"\",x\rc,\"\""),
            [ok(1, &["a", "b"]), ok(3, &["", "x"]), ok(4, &["c", ""])]
        );
        // What `field` writes reads back.
        for text in ["plain", "a,b", "say \"STOP\"", "two\r\nlines", ""] {
            let line = format!("{},end\n", field(text));
            assert_eq!(read(line.as_bytes()), [ok(1, &[text, "end"])], "{text:?}");
        }
    }

    #[test]
    fn a_reader_goes_on_where_another_stopped() {
        let text = b"\xEF\xBB\xBFa,b\n\"x\ny\",1\nc,2\n";
        let mut first = Reader::new(text);
        assert_eq!(first.next().map(|r| r.line), Some(1));
        let rest: Vec<Record> = Reader::resume(text, first.position()).collect();
        assert_eq!(
            rest.iter().map(|r| r.line).collect::<Vec<_>>(),
            [2, 4],
            "{rest:?}"
        );
        assert_eq!(
            rest[0].fields,
            Ok(vec!["x\ny".to_string(), "1".to_string()])
        );
    }

    #[test]
    fn bad_records_are_reported_by_line_and_reading_goes_on() {
        let text = b"h1,h2\nok,1\nbad\"quote,2\n\"closed\"late,3\nfine,4\n\xff\xfe,5\n\"open,6\nnever closed\n";
        assert_eq!(
            read(text),
            [
                ok(1, &["h1", "h2"]),
                ok(2, &["ok", "1"]),
                (3, Err("invalid_quoting")),
                (4, Err("invalid_quoting")),
                ok(5, &["fine", "4"]),
                (6, Err("invalid_utf8")),
                (7, Err("invalid_quoting")),
            ]
        );
    }

    proptest::proptest! {
        /// Import bodies come from outside: records or errors, never a
        /// panic, and the reader always moves on.
        #[test]
        fn any_bytes_read_to_the_end(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'"'),
                proptest::strategy::Just(b','),
                proptest::strategy::Just(b'\n'),
                proptest::strategy::Just(b'\r'),
                proptest::num::u8::ANY,
            ],
            0..300,
        )) {
            let records: Vec<Record> = Reader::new(&bytes).collect();
            proptest::prop_assert!(records.len() <= bytes.len());
            let mut last = 0;
            for r in records {
                proptest::prop_assert!(r.line > last);
                last = r.line;
            }
        }

        /// Any fields written with `field` read back as they were.
        #[test]
        fn written_records_read_back(rows in proptest::collection::vec(
            proptest::collection::vec("[a-z,\" \r\n]{0,8}", 1..5), 1..5)) {
            let mut text = String::new();
            for row in &rows {
                let line: Vec<String> = row.iter().map(|f| field(f)).collect();
                text.push_str(&line.join(","));
                text.push_str("\r\n");
            }
            let read: Vec<Vec<String>> = Reader::new(text.as_bytes())
                .map(|r| r.fields.unwrap())
                .collect();
            // A row of one empty field is an empty line, which is skipped.
            let expected: Vec<Vec<String>> = rows
                .into_iter()
                .filter(|r| !(r.len() == 1 && r[0].is_empty()))
                .collect();
            proptest::prop_assert_eq!(read, expected);
        }
    }
}
