//! The shell every page shares (skip link, navigation, who is signed in,
//! sign-out), pages for errors, and the API's problems in plain words:
//! a page never shows a problem's JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::Person;
use super::{CSS_PATH, JS_PATH};
use crate::api::ApiError;
use crate::store::StoreError;

/// The navigation's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Inbox,
    Contacts,
    Campaigns,
    Dashboard,
    Modems,
    Users,
    Rules,
    ModemSettings,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Inbox, "/inbox", "Inbox"),
    (Nav::Contacts, "/contacts", "Contacts"),
    (Nav::Campaigns, "/campaigns", "Campaigns"),
    (Nav::Dashboard, "/dashboard", "Dashboard"),
    (Nav::Modems, "/modems", "Modems"),
];

/// The entries only administrators see.
const ADMIN_NAV: [(Nav, &str, &str); 3] = [
    (Nav::Users, "/users", "Users"),
    (Nav::Rules, "/rules", "Rules"),
    (Nav::ModemSettings, "/settings/modems", "Modem settings"),
];

/// A page's frame.
pub struct Shell<'a> {
    title: String,
    person: Option<&'a Person>,
    current: Option<Nav>,
}

impl<'a> Shell<'a> {
    /// A page for anyone (sign-in, errors before sign-in).
    pub fn new(title: &str) -> Shell<'a> {
        Shell {
            title: title.to_string(),
            person: None,
            current: None,
        }
    }

    /// A page for a signed-in person, `current` marked in the navigation.
    pub fn signed_in(title: &str, person: &'a Person, current: Option<Nav>) -> Shell<'a> {
        Shell {
            title: title.to_string(),
            person: Some(person),
            current,
        }
    }

    pub fn render(self, body: Markup) -> Markup {
        let current = |nav: Nav| (self.current == Some(nav)).then_some("page");
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · smsgate" }
                    link rel="stylesheet" href=(CSS_PATH);
                    script src=(JS_PATH) defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        span.brand { "smsgate" }
                        @if let Some(person) = self.person {
                            nav aria-label="Main" {
                                ul {
                                    @for (nav, href, label) in NAV {
                                        li { a href=(href) aria-current=[current(nav)] { (label) } }
                                    }
                                    @if person.is_admin() {
                                        @for (nav, href, label) in ADMIN_NAV {
                                            li { a href=(href) aria-current=[current(nav)] { (label) } }
                                        }
                                    }
                                }
                            }
                            form.signout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(person.csrf());
                                span.who { (person.name) }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main {
                        h1 { (self.title) }
                        (body)
                    }
                }
            }
        }
    }
}

/// A page that refuses a request (boxed: a response is large to carry
/// through every `Result`).
pub struct Refused(pub Box<Response>);

impl From<Response> for Refused {
    fn from(response: Response) -> Refused {
        Refused(Box::new(response))
    }
}

/// A posted form, read and checked against the person's CSRF token (`csrf`
/// picks the token out of the form): the form, or the page refusing it.
pub fn read_form<T>(
    person: &Person,
    form: Result<axum::extract::Form<T>, axum::extract::rejection::FormRejection>,
    csrf: impl Fn(&T) -> &str,
) -> Result<T, Refused> {
    let Ok(axum::extract::Form(form)) = form else {
        return Err(Refused::from(problem_page(
            StatusCode::BAD_REQUEST,
            Some(person),
            "Form not read",
            "The form could not be read. Go back, reload the page and try again.",
        )));
    };
    person.check_csrf(csrf(&form))?;
    Ok(form)
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An error page: a title and what happened, in plain words.
pub fn problem_page(
    status: StatusCode,
    person: Option<&Person>,
    title: &str,
    text: &str,
) -> Response {
    let shell = match person {
        Some(p) => Shell::signed_in(title, p, None),
        None => Shell::new(title),
    };
    let body = html! {
        p.error role="alert" { (text) }
        p { a href="/inbox" { "Back to the inbox" } }
    };
    (status, shell.render(body)).into_response()
}

/// The store failed: logged here, a page that says to try again.
pub fn store_error(e: StoreError) -> Response {
    let error = ApiError::from(e);
    problem_page(error.status, None, "Not available", &plain(&error))
}

/// `error` as a page.
pub fn api_error_page(person: &Person, error: &ApiError) -> Response {
    let title = match error.status {
        StatusCode::NOT_FOUND => "Not found",
        _ => "That did not work",
    };
    problem_page(error.status, Some(person), title, &plain(error))
}

/// An API problem as a sentence for the people at the inbox.
pub fn plain(error: &ApiError) -> String {
    match error.code {
        "recipient_opted_out" => {
            "This contact has opted out (they texted STOP), so the text was not sent.".into()
        }
        "consent_required" => {
            "This contact has not opted in to marketing texts, so the text was not sent.".into()
        }
        "body_empty" => "Write the text before sending.".into(),
        "body_too_long" => format!("The text is too long: {}.", error.detail),
        "body_unencodable" => format!("The text cannot be sent as SMS: {}.", error.detail),
        "not_conversational" => {
            "A reply can only go to a contact who has texted us; this thread has no text from them."
                .into()
        }
        "idempotency_key_reused" => {
            "This form was already sent with another text. Reload the page, then send again.".into()
        }
        "message_erased" => "This contact's messages were erased.".into(),
        "not_found" => "There is nothing here: the thread or person may have been removed.".into(),
        "store_unavailable" | "internal" | "timeout" => {
            "The gateway could not do this just now. Try again in a moment; if it keeps \
             failing, the reason is in the gateway's log."
                .into()
        }
        _ => sentence(&error.detail),
    }
}

/// `text` with a capital first letter and a full stop.
pub(super) fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return "Something went wrong.".into(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A duration in a few words: "under a minute", "12 min", "3 h 5 min", "2 d 4 h".
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => "under a minute".into(),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_sentences() {
        let e = ApiError::unprocessable("invalid_request", "text must be 1 to 4000 characters");
        assert_eq!(plain(&e), "Text must be 1 to 4000 characters.");
        let e = ApiError::conflict("recipient_opted_out", "the recipient opted out");
        assert!(plain(&e).contains("opted out"));
        assert!(!plain(&ApiError::internal("disk on fire")).contains("disk"));
    }

    #[test]
    fn spans() {
        assert_eq!(span(-5), "under a minute");
        assert_eq!(span(59), "under a minute");
        assert_eq!(span(720), "12 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(3600 * 3 + 300), "3 h 5 min");
        assert_eq!(span(86_400 * 2 + 3600 * 4), "2 d 4 h");
    }
}
