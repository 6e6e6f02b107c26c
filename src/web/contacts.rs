//! The contacts pages: search (`GET /v1/contacts`), a contact's profile to
//! view and edit (`PUT /v1/contacts/{number}`) beside its consent and
//! ledger (read only: editing never changes consent), and the CSV import
//! (`POST /v1/contacts/import`) with its report line by line.
//!
//! Each page calls the `/v1` handler itself, so the web and the API cannot
//! disagree on what a contact is or what a bad CSV line is. The import form
//! is `multipart/form-data` (a browser sends a file no other way); its one
//! file goes to the API's import as the `text/csv` body it takes.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{self, Nav, Shell};
use super::session::Person;
use super::thread::{consent_ledger, consent_words};
use super::{escape, thread_url, WebState};
use crate::api::contacts::{self, ContactRequest, IMPORT_BODY_LIMIT};
use crate::api::json::ApiJson;
use crate::api::ApiError;
use crate::wire::{ContactView, ImportError, ImportReport};

/// Contacts a search page shows (the next a link away).
const PAGE: usize = 50;

/// The import form's body: the file, its part's headers and the CSRF field.
const IMPORT_FORM_LIMIT: usize = IMPORT_BODY_LIMIT + 64 * 1024;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    cursor: String,
}

/// What the search page shows besides the list: an import's report, or
/// why the import was refused.
#[derive(Debug, Default)]
struct Imported {
    report: Option<ImportReport>,
    error: Option<String>,
}

fn contact_url(contact: &str) -> String {
    format!("/contacts/{}", escape(contact))
}

/// `GET /v1/contacts` with the page's query (empty boxes left out: the API
/// refuses an empty filter).
async fn search(
    state: &WebState,
    query: &SearchQuery,
) -> Result<crate::wire::Page<ContactView>, ApiError> {
    let mut pairs = vec![("limit".to_string(), PAGE.to_string())];
    for (key, value) in [
        ("q", &query.q),
        ("tag", &query.tag),
        ("cursor", &query.cursor),
    ] {
        if !value.trim().is_empty() {
            pairs.push((key.to_string(), value.trim().to_string()));
        }
    }
    contacts::list(State(state.api.clone()), Ok(Query(pairs)))
        .await
        .map(|Json(page)| page)
}

/// A refused import line in plain words (after "Line N: ").
fn line_words(e: &ImportError) -> String {
    match e.code.as_str() {
        "wrong_column_count" => format!("It has {}.", e.detail),
        "invalid_utf8" => "It is not UTF-8 text; save the file as CSV UTF-8.".into(),
        "external_id_taken" => {
            format!(
                "{} (another contact has this external id).",
                e.detail.trim_end_matches('.')
            )
        }
        _ => pages::sentence(&e.detail),
    }
}

fn import_report(imported: &Imported) -> Markup {
    html! {
        @if let Some(error) = &imported.error {
            p.error role="alert" { "Nothing was imported. " (error) }
        }
        @if let Some(report) = &imported.report {
            div.import-report role="status" {
                p { strong { (report.imported) " imported, " (report.updated) " updated" } }
                @if !report.errors.is_empty() {
                    p { (report.errors.len()) @if report.errors.len() == 1 { " line was" } @else { " lines were" } " not imported:" }
                    ul.import-errors {
                        @for e in &report.errors {
                            li { "Line " (e.line) ": " (line_words(e)) }
                        }
                    }
                }
            }
        }
    }
}

fn search_page(
    person: &Person,
    query: &SearchQuery,
    found: Result<crate::wire::Page<ContactView>, ApiError>,
    imported: &Imported,
    status: StatusCode,
) -> Response {
    let csrf = person.csrf();
    let body = html! {
        (import_report(imported))
        form.search role="search" method="get" action="/contacts" {
            label for="contact-q" { "Search" }
            input #contact-q type="search" name="q" value=(query.q) aria-describedby="contact-q-hint";
            span #contact-q-hint .hint { "a name or a number" }
            label for="contact-tag" { "Tag" }
            input #contact-tag type="text" name="tag" value=(query.tag);
            button type="submit" { "Search" }
        }
        @match &found {
            Err(e) => { p.error role="alert" { (pages::plain(e)) } }
            Ok(page) => {
                @if page.items.is_empty() {
                    p.empty { "No contacts found." }
                } @else {
                    div.table-scroll {
                        table.contacts {
                            caption.visually-hidden { "Contacts" }
                            thead { tr {
                                th scope="col" { "Contact" }
                                th scope="col" { "Number" }
                                th scope="col" { "Tags" }
                                th scope="col" { "Team" }
                                th scope="col" { "Consent" }
                            } }
                            tbody {
                                @for c in &page.items {
                                    tr {
                                        td { a href=(contact_url(&c.contact)) { (c.name.as_deref().unwrap_or(&c.contact)) } }
                                        td.nowrap { (c.contact) }
                                        td { @if c.tags.is_empty() { "—" } @else { (c.tags.join(", ")) } }
                                        td { (c.owner_team.as_deref().unwrap_or("—")) }
                                        td { (consent_words(c.consent)) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = &page.next_cursor {
                    p { a rel="next" href={ "/contacts?q=" (escape(&query.q)) "&tag=" (escape(&query.tag)) "&cursor=" (escape(next)) } { "Next page" } }
                }
            }
        }
        section.import aria-labelledby="import-heading" {
            h2 #import-heading { "Import contacts" }
            form method="post" action="/contacts/import" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="csv-file" { "CSV file" }
                    input #csv-file type="file" name="file" accept=".csv,text/csv" required aria-describedby="csv-hint";
                }
                p #csv-hint .hint {
                    "A header row with a " code { "number" } " column and any of "
                    code { "name" } ", " code { "external_id" } ", " code { "tags" } " (separated by ;), "
                    code { "time_zone" } ", " code { "owner_team" } "; other columns become fields. "
                    "Good lines are kept, bad ones listed; consent is never changed."
                }
                button type="submit" { "Import" }
            }
        }
    };
    (
        status,
        Shell::signed_in("Contacts", person, Some(Nav::Contacts)).render(body),
    )
        .into_response()
}

/// `GET /contacts`.
pub async fn list(
    State(state): State<WebState>,
    person: Person,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let found = search(&state, &query).await;
    let status = match &found {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    search_page(&person, &query, found, &Imported::default(), status)
}

/// One part of a `multipart/form-data` body (RFC 7578).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: String,
    filename: Option<String>,
    data: Bytes,
}

/// The boundary a `multipart/form-data` content type names.
fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        // RFC 2046 §5.1.1: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then(|| value.to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let rest = haystack.get(from..)?;
    if needle.is_empty() || rest.len() < needle.len() {
        return None;
    }
    rest.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A `Content-Disposition: form-data; name="..."; filename="..."` header's
/// name and file name.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    let mut name = None;
    let mut filename = None;
    for param in value.split(';').skip(1) {
        let Some((key, v)) = param.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(v),
            "filename" => filename = Some(v),
            _ => {}
        }
    }
    Some((name?, filename))
}

/// The parts of a `multipart/form-data` body, or why it is not one.
fn multipart(body: &Bytes, boundary: &str) -> Result<Vec<Part>, &'static str> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body, without the CRLF before it.
    let mut at = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        find(body, delimiter.as_bytes(), 0).ok_or("no part")? + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..).ok_or("cut short")?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (RFC 2046 §5.1.1), then the CRLF.
        let line_end = find(body, b"\r\n", at).ok_or("cut short")?;
        let start = line_end + 2;
        let headers_end = find(body, b"\r\n\r\n", start).ok_or("a part has no end of headers")?;
        let headers =
            std::str::from_utf8(&body[start..headers_end]).map_err(|_| "headers not UTF-8")?;
        let data_start = headers_end + 4;
        let data_end = find(body, delimiter.as_bytes(), data_start).ok_or("a part has no end")?;
        let (name, filename) = disposition(headers).ok_or("a part has no name")?;
        parts.push(Part {
            name,
            filename,
            data: body.slice(data_start..data_end),
        });
        at = data_end + delimiter.len();
    }
}

/// The import form: its CSRF field and its file.
fn import_form(headers: &HeaderMap, body: &Bytes) -> Result<(String, Part), &'static str> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary)
        .ok_or("not a form with a file")?;
    let parts = multipart(body, &boundary)?;
    let csrf = parts
        .iter()
        .find(|p| p.name == "csrf")
        .and_then(|p| std::str::from_utf8(&p.data).ok())
        .unwrap_or_default()
        .to_string();
    let file = parts
        .into_iter()
        .find(|p| p.name == "file")
        .ok_or("no file")?;
    Ok((csrf, file))
}

/// `POST /contacts/import`: the file through `POST /v1/contacts/import`,
/// then the search page with the report.
pub async fn import(
    State(state): State<WebState>,
    person: Person,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let unread = |person: &Person| {
        pages::problem_page(
            StatusCode::BAD_REQUEST,
            Some(person),
            "Form not read",
            "The form could not be read. Go back, reload the page and try again.",
        )
    };
    let body = match axum::body::to_bytes(body, IMPORT_FORM_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return pages::problem_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(&person),
                "File too large",
                &format!(
                    "An import file is at most {} MiB. Split the file and import each part.",
                    IMPORT_BODY_LIMIT / (1024 * 1024)
                ),
            )
        }
    };
    let Ok((csrf, file)) = import_form(&headers, &body) else {
        return unread(&person);
    };
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    let query = SearchQuery::default();
    let mut imported = Imported::default();
    let mut status = StatusCode::OK;
    if file.filename.as_deref().unwrap_or("").is_empty() && file.data.is_empty() {
        imported.error = Some("Choose a CSV file to import.".into());
        status = StatusCode::UNPROCESSABLE_ENTITY;
    } else {
        let mut csv = HeaderMap::new();
        csv.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        match contacts::import(State(state.api.clone()), csv, Body::from(file.data)).await {
            Ok(Json(report)) => imported.report = Some(report),
            Err(e) => {
                status = e.status;
                imported.error = Some(pages::plain(&e));
            }
        }
    }
    let found = search(&state, &query).await;
    search_page(&person, &query, found, &imported, status)
}

/// What the edit form holds (also what a refused save shows again).
#[derive(Debug, Default, Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    external_id: String,
    /// Separated by commas.
    #[serde(default)]
    tags: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    owner_team: String,
    /// One `key = value` a line.
    #[serde(default)]
    fields: String,
}

impl ContactForm {
    fn of(view: &ContactView) -> ContactForm {
        ContactForm {
            csrf: String::new(),
            name: view.name.clone().unwrap_or_default(),
            external_id: view.external_id.clone().unwrap_or_default(),
            tags: view.tags.join(", "),
            time_zone: view.time_zone.clone().unwrap_or_default(),
            owner_team: view.owner_team.clone().unwrap_or_default(),
            fields: view
                .fields
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The whole profile `PUT /v1/contacts/{number}` takes (an empty box
    /// clears its value), or what is wrong with the fields box.
    fn request(&self) -> Result<ContactRequest, String> {
        let text = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let mut fields = BTreeMap::new();
        for (i, line) in self.fields.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("Fields, line {}: write it as name = value.", i + 1));
            };
            fields.insert(key.trim().to_string(), value.trim().to_string());
        }
        let tags: Vec<String> = self
            .tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        Ok(ContactRequest {
            time_zone: text(&self.time_zone),
            name: text(&self.name),
            external_id: text(&self.external_id),
            tags: Some(tags),
            owner_team: text(&self.owner_team),
            fields: Some(fields),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// The contact's page with `form` in the edit form.
async fn contact_page(
    state: &WebState,
    person: &Person,
    raw: String,
    form: Option<ContactForm>,
    notice: Option<Result<&str, String>>,
    status: StatusCode,
) -> Response {
    let view = match contacts::get_contact(State(state.api.clone()), Ok(Path(raw.clone()))).await {
        Ok(Json(view)) => view,
        Err(e) => return pages::api_error_page(person, &e),
    };
    let consent = match contacts::get_consent(State(state.api.clone()), Ok(Path(raw))).await {
        Ok(Json(c)) => c,
        Err(e) => return pages::api_error_page(person, &e),
    };
    let has_thread = matches!(state.api.store.thread_record(&view.contact), Ok(Some(_)));
    let form = form.unwrap_or_else(|| ContactForm::of(&view));
    let contact = &view.contact;
    let title = match &view.name {
        Some(name) => format!("{name} ({contact})"),
        None => contact.clone(),
    };
    let body = html! {
        p {
            @if has_thread {
                a href=(thread_url(contact)) { "Open the thread with " (view.name.as_deref().unwrap_or(contact)) }
            } @else {
                "No texts with this contact yet."
            }
            " · " a href="/contacts" { "All contacts" }
        }
        div.contact-layout {
            section.contact-edit aria-labelledby="profile-heading" {
                h2 #profile-heading { "Profile" }
                @match &notice {
                    Some(Ok(text)) => { p.notice role="status" { (text) } }
                    Some(Err(text)) => { p.error role="alert" { (text) } }
                    None => {}
                }
                form.stacked method="post" action=(contact_url(contact)) {
                    input type="hidden" name="csrf" value=(person.csrf());
                    p { "Number: " strong { (contact) } }
                    p {
                        label for="c-name" { "Name" }
                        input #c-name type="text" name="name" value=(form.name) maxlength="200" autocomplete="off";
                    }
                    p {
                        label for="c-external" { "External id" }
                        input #c-external type="text" name="external_id" value=(form.external_id) maxlength="200" autocomplete="off";
                    }
                    p {
                        label for="c-tags" { "Tags" }
                        input #c-tags type="text" name="tags" value=(form.tags) aria-describedby="c-tags-hint" autocomplete="off";
                        span #c-tags-hint .hint { "separated by commas" }
                    }
                    p {
                        label for="c-zone" { "Time zone" }
                        input #c-zone type="text" name="time_zone" value=(form.time_zone) aria-describedby="c-zone-hint" autocomplete="off";
                        span #c-zone-hint .hint { "e.g. America/Chicago; empty: the gateway's" }
                    }
                    p {
                        label for="c-team" { "Owner team" }
                        input #c-team type="text" name="owner_team" value=(form.owner_team) autocomplete="off";
                    }
                    p {
                        label for="c-fields" { "Fields" }
                        textarea #c-fields name="fields" rows="4" aria-describedby="c-fields-hint" { (form.fields) }
                        span #c-fields-hint .hint { "one a line, as name = value; templates read them as {{name}}" }
                    }
                    button type="submit" { "Save contact" }
                }
            }
            section.contact-consent aria-labelledby="consent-heading" {
                h2 #consent-heading { "Consent" }
                p { "Consent: " strong.consent { (consent_words(consent.status)) } }
                p.hint { "Consent changes only by the contact's own texts (STOP, START) or through the API with evidence; saving the profile never changes it." }
                (consent_ledger(&consent))
            }
        }
    };
    (
        status,
        Shell::signed_in(&title, person, Some(Nav::Contacts)).render(body),
    )
        .into_response()
}

/// `GET /contacts/{number}`.
pub async fn page(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ContactQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Path(raw)) = path else {
        return pages::api_error_page(&person, &ApiError::not_found("no such contact"));
    };
    let saved = query.is_ok_and(|Query(q)| q.saved.is_some());
    let notice = saved.then_some(Ok("Saved."));
    contact_page(&state, &person, raw, None, notice, StatusCode::OK).await
}

/// `POST /contacts/{number}`: the profile through `PUT /v1/contacts/{number}`.
pub async fn save(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<ContactForm>, FormRejection>,
) -> Response {
    let Ok(Path(raw)) = path else {
        return pages::api_error_page(&person, &ApiError::not_found("no such contact"));
    };
    let form = match pages::read_form(&person, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let request = match form.request() {
        Ok(request) => request,
        Err(text) => {
            return contact_page(
                &state,
                &person,
                raw,
                Some(form),
                Some(Err(text)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    match contacts::put_contact(
        State(state.api.clone()),
        Ok(Path(raw.clone())),
        ApiJson(request),
    )
    .await
    {
        Ok(Json(view)) => {
            Redirect::to(&format!("{}?saved=1", contact_url(&view.contact))).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => pages::api_error_page(&person, &e),
        Err(e) => {
            let text = pages::plain(&e);
            contact_page(&state, &person, raw, Some(form), Some(Err(text)), e.status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])], boundary: &str) -> Bytes {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/csv\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Bytes::from(out)
    }

    #[test]
    fn a_browsers_form_gives_its_fields_and_file() {
        let b = "----WebKitFormBoundaryAbC123";
        let csv = b"number,name\r\n+15550100001,Ana\r\n";
        let data = body(
            &[("csrf", None, b"tok"), ("file", Some("people.csv"), csv)],
            b,
        );
        let parts = multipart(&data, b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), &parts[0].data[..]),
            ("csrf", &b"tok"[..])
        );
        assert_eq!(parts[1].filename.as_deref(), Some("people.csv"));
        assert_eq!(&parts[1].data[..], &csv[..]);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary=\"{b}\"")).as_deref(),
            Some(b)
        );
        assert_eq!(boundary("text/csv"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn a_cut_or_foreign_body_is_an_error() {
        let b = "xyz";
        let data = body(&[("file", Some("a.csv"), b"number\r\n1\r\n")], b);
        for cut in [10, 40, data.len() - 9] {
            assert!(multipart(&data.slice(..cut), b).is_err(), "cut at {cut}");
        }
        assert!(multipart(&Bytes::from_static(b"number,name\n"), b).is_err());
    }

    #[test]
    fn the_fields_box_becomes_the_profiles_fields() {
        let form = ContactForm {
            tags: " vip, dental ,,".into(),
            fields: "plan = gold\n\nurl = https://x.test/?a=b\n".into(),
            ..ContactForm::default()
        };
        let request = form.request().unwrap();
        assert_eq!(request.tags, Some(vec!["vip".into(), "dental".into()]));
        let fields = request.fields.unwrap();
        assert_eq!(fields["plan"], "gold");
        assert_eq!(fields["url"], "https://x.test/?a=b");
        assert_eq!(request.name, None);
        let bad = ContactForm {
            fields: "plan = gold\njust words".into(),
            ..ContactForm::default()
        };
        assert_eq!(
            bad.request().unwrap_err(),
            "Fields, line 2: write it as name = value."
        );
    }

    proptest! {
        /// Any body: parts or an error, never a panic.
        #[test]
        fn any_body_is_parts_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = multipart(&Bytes::from(bytes), "b");
        }

        /// Any body made of a real form's pieces, cut anywhere.
        #[test]
        fn a_form_cut_anywhere_is_parts_or_an_error(data in proptest::collection::vec(any::<u8>(), 0..100), cut in 0usize..400) {
            let full = body(&[("csrf", None, b"t"), ("file", Some("f.csv"), &data)], "bnd");
            let cut = cut.min(full.len());
            let _ = multipart(&full.slice(..cut), "bnd");
            let parts = multipart(&full, "bnd");
            // Data that holds the delimiter itself would end the part early.
            if !data.windows(5).any(|w| w == b"\r\n--b") {
                let parts = parts.unwrap();
                prop_assert_eq!(&parts[1].data[..], &data[..]);
            }
        }
    }
}
