//! Templates: `{{name}}` placeholders filled from a contact's fields and a
//! flow's or campaign's context. A placeholder with no value is an error that
//! names it, never a text sent with a blank.

/// What is wrong with a template or its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without its `}}`, or an empty or malformed name.
    #[error("template: {0}")]
    Syntax(String),
    /// Placeholders with no value, each named once, in the order they appear.
    #[error("no value for {}", .0.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(", "))]
    Missing(Vec<String>),
}

/// The placeholder names in `template`, in order, each once; or the syntax
/// error (checked when a rule or campaign is accepted, before any send).
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut names: Vec<String> = Vec::new();
    for piece in pieces(template)? {
        if let Piece::Name(name) = piece {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// `template` with every `{{name}}` replaced by `lookup(name)` (surrounding
/// spaces inside the braces are allowed: `{{ name }}`). A name with no value
/// (None or blank) is an error listing every such name.
pub fn render(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut missing: Vec<String> = Vec::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Name(name) => match lookup(name).filter(|v| !v.trim().is_empty()) {
                Some(value) => out.push_str(&value),
                None => {
                    if !missing.iter().any(|n| n == name) {
                        missing.push(name.to_string());
                    }
                }
            },
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Missing(missing))
    }
}

enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Syntax(format!(
                "`{{{{` at byte {} has no closing `}}}}`",
                template.len() - rest.len() + open
            )));
        };
        let name = after[..close].trim();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !valid {
            return Err(TemplateError::Syntax(format!(
                "`{{{{{}}}}}` is not a field name (letters, digits, `_`, `-`, `.`)",
                &after[..close]
            )));
        }
        out.push(Piece::Name(name));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "name" => Some("Ana".into()),
            "time" => Some("Tue 10:00".into()),
            "blank" => Some("  ".into()),
            _ => None,
        }
    }

    #[test]
    fn fills_every_placeholder() {
        assert_eq!(
            render("Hi {{name}}, see you {{ time }}. Reply C", values),
            Ok("Hi Ana, see you Tue 10:00. Reply C".to_string())
        );
        assert_eq!(
            render("no placeholders", values),
            Ok("no placeholders".into())
        );
    }

    #[test]
    fn a_missing_or_blank_value_is_an_error_naming_each_once() {
        let err = render("{{first}} {{blank}} {{first}} {{name}}", values).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing(vec!["first".into(), "blank".into()])
        );
        assert_eq!(err.to_string(), "no value for {{first}}, {{blank}}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(
            render("Hi {{name", values),
            Err(TemplateError::Syntax(_))
        ));
        assert!(matches!(
            render("Hi {{}}", values),
            Err(TemplateError::Syntax(_))
        ));
        assert!(matches!(
            render("Hi {{a b}}", values),
            Err(TemplateError::Syntax(_))
        ));
        assert_eq!(
            placeholders("{{a}} {{b}} {{a}}"),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
    }
}
