//! The TwiML an app answers an incoming message with: only
//! `<Response><Message>text</Message></Response>` (one reply) and an empty
//! `<Response/>` (none) are meaningful to an SMS gateway. A small strict
//! reader, not an XML library: anything else is an error the caller logs.

/// What an answer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Twiml {
    /// `<Response/>`, `<Response></Response>`, or an empty body.
    Nothing,
    /// The text of the (first) `<Message>`.
    Reply(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not TwiML the gateway understands: {0}")]
pub struct TwimlError(pub &'static str);

/// Read an answer's body.
pub fn parse(body: &str) -> Result<Twiml, TwimlError> {
    let mut rest = body.trim();
    if rest.is_empty() {
        return Ok(Twiml::Nothing);
    }
    // The XML declaration, if any.
    if let Some(after) = rest.strip_prefix("<?xml") {
        let end = after.find("?>").ok_or(TwimlError("unclosed <?xml"))?;
        rest = after[end + 2..].trim_start();
    }
    let rest = rest.trim_end();
    if is_empty_element(rest, "Response") {
        return Ok(Twiml::Nothing);
    }
    let inner = rest
        .strip_prefix("<Response>")
        .and_then(|r| r.strip_suffix("</Response>"))
        .ok_or(TwimlError("no <Response> element"))?
        .trim();
    if inner.is_empty() {
        return Ok(Twiml::Nothing);
    }
    // <Message> may carry attributes (to, from, action): read past them.
    let open = inner.strip_prefix("<Message").ok_or(TwimlError(
        "<Response> holds something other than <Message>",
    ))?;
    if open.starts_with("/>") || is_self_closed(open) {
        return Ok(Twiml::Nothing);
    }
    let gt = open.find('>').ok_or(TwimlError("unclosed <Message>"))?;
    let attrs = &open[..gt];
    if !(attrs.is_empty() || attrs.starts_with(char::is_whitespace)) {
        return Err(TwimlError(
            "<Response> holds something other than <Message>",
        ));
    }
    let content = &open[gt + 1..];
    let end = content
        .find("</Message>")
        .ok_or(TwimlError("unclosed <Message>"))?;
    let text = &content[..end];
    // <Message><Body>text</Body></Message> is the verbose form.
    let text = match text.trim().strip_prefix("<Body>") {
        Some(b) => b
            .strip_suffix("</Body>")
            .ok_or(TwimlError("unclosed <Body>"))?,
        None => text,
    };
    if text.contains('<') {
        return Err(TwimlError(
            "<Message> holds markup (media is not supported)",
        ));
    }
    let text = unescape(text)?;
    if text.trim().is_empty() {
        return Ok(Twiml::Nothing);
    }
    Ok(Twiml::Reply(text))
}

fn is_empty_element(text: &str, name: &str) -> bool {
    text.strip_prefix('<')
        .and_then(|t| t.strip_prefix(name))
        .and_then(|t| t.strip_suffix("/>"))
        .is_some_and(|t| t.trim().is_empty())
}

fn is_self_closed(after_name: &str) -> bool {
    after_name
        .find('>')
        .is_some_and(|gt| after_name[..gt].ends_with('/'))
}

/// XML's five entities and numeric character references.
fn unescape(text: &str) -> Result<String, TwimlError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or(TwimlError("a bare & in the text"))?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or(TwimlError("an unknown entity in the text"))?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_an_app_gives() {
        let reply = |t: &str| Ok(Twiml::Reply(t.to_string()));
        // What twilio-python's MessagingResponse writes.
        assert_eq!(
            parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>See you at 10 &amp; bring ID</Message></Response>"),
            reply("See you at 10 & bring ID")
        );
        assert_eq!(
            parse("<Response>\n  <Message to=\"+1555\">Hi &#233;&#x263A;</Message>\n</Response>\n"),
            reply("Hi é☺")
        );
        assert_eq!(
            parse("<Response><Message><Body>Verbose</Body></Message></Response>"),
            reply("Verbose")
        );
        for nothing in [
            "",
            "<Response/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />",
            "<Response></Response>",
            "<Response><Message/></Response>",
        ] {
            assert_eq!(parse(nothing), Ok(Twiml::Nothing), "{nothing}");
        }
        for bad in [
            "OK",
            "<Response><Say>Hi</Say></Response>",
            "<Response><Message>unclosed</Response>",
            "<Response><Message>a & b</Message></Response>",
            "<Response><Message>x<Media>u</Media></Message></Response>",
            "<Response><MessageX>x</MessageX></Response>",
            "{\"reply\": \"json\"}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_a_value_or_an_error(body in ".{0,200}") {
            let _ = parse(&body);
        }
    }
}
