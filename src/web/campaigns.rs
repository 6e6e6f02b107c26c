//! The campaigns pages: the list with each campaign's state and progress
//! (`GET /v1/campaigns`), a form that creates one (`POST /v1/campaigns`:
//! numbers or a tag, A/B variants, category, flow, a schedule), and a
//! campaign's page with its progress, per-variant metrics (as `GET
//! /v1/campaigns/{id}` serves them), the recipients refused with an error
//! (`GET /v1/campaigns/{id}/errors`) and its cancel button.
//!
//! The schedule is a `datetime-local` (a browser sends no zone) read in the
//! zone the form states beside it, the gateway's quiet-hours zone unless
//! the person changes it. Each create form carries a fresh Idempotency-Key,
//! so a double click makes one campaign.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{LocalResult, NaiveDateTime, SecondsFormat, TimeZone};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::pages::{self, Nav, Shell};
use super::session::Person;
use super::thread::{time, words};
use super::{escape, WebState};
use crate::api::campaigns::{
    self, CampaignRecipientsRequest, CampaignRequest, CampaignVariantRequest,
};
use crate::api::json::ApiJson;
use crate::api::ApiError;
use crate::conversation::flows::FLOWS;
use crate::wire::{self, Campaign, CampaignState};

/// Campaigns a list page shows.
const PAGE: usize = 50;
/// Refused recipients a campaign page shows (the next a link away).
const ERRORS_PAGE: usize = 100;
/// Variant rows the create form offers.
const VARIANT_ROWS: usize = 3;

const CATEGORIES: [(&str, &str); 3] = [
    ("transactional", "Transactional"),
    ("conversational", "Conversational (only contacts who wrote)"),
    (
        "marketing",
        "Marketing (needs opt-in; waits out quiet hours)",
    ),
];

fn campaign_url(id: &str) -> String {
    format!("/campaigns/{}", escape(id))
}

fn state_words(state: CampaignState) -> &'static str {
    match state {
        CampaignState::Accepting => "Sending",
        CampaignState::Accepted => "All accepted",
        CampaignState::Cancelling => "Cancelling",
        CampaignState::Cancelled => "Cancelled",
    }
}

fn category_words(c: &Campaign) -> String {
    let name = serde_json::to_value(c.category)
        .ok()
        .and_then(|v| v.as_str().map(words))
        .unwrap_or_default();
    pages::sentence(&name).trim_end_matches('.').to_string()
}

/// "3 of 4 (75%)".
fn progress_words(done: u64, total: u64) -> String {
    if total == 0 {
        return "0 of 0".into();
    }
    format!("{done} of {total} ({}%)", done.saturating_mul(100) / total)
}

/// The create form as typed (kept when it is refused).
#[derive(Debug, Default)]
struct Draft {
    name: String,
    template: String,
    numbers: String,
    tag: String,
    /// (id, template, weight) per row.
    variants: Vec<(String, String, String)>,
    category: String,
    flow: String,
    context: String,
    send_at: String,
    zone: String,
    error: Option<String>,
}

impl Draft {
    /// The form's fields (repeated names for the variant rows, in order).
    fn from_pairs(pairs: &[(String, String)]) -> (String, String, Draft) {
        let mut draft = Draft::default();
        let (mut csrf, mut key) = (String::new(), String::new());
        let (mut ids, mut templates, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in pairs {
            let v = v.clone();
            match k.as_str() {
                "csrf" => csrf = v,
                "key" => key = v,
                "name" => draft.name = v,
                "template" => draft.template = v,
                "numbers" => draft.numbers = v,
                "tag" => draft.tag = v,
                "variant_id" => ids.push(v),
                "variant_template" => templates.push(v),
                "variant_weight" => weights.push(v),
                "category" => draft.category = v,
                "flow" => draft.flow = v,
                "context" => draft.context = v,
                "send_at" => draft.send_at = v,
                "zone" => draft.zone = v,
                _ => {}
            }
        }
        let rows = ids.len().max(templates.len()).max(weights.len());
        let at = |list: &Vec<String>, i: usize| list.get(i).cloned().unwrap_or_default();
        draft.variants = (0..rows)
            .map(|i| (at(&ids, i), at(&templates, i), at(&weights, i)))
            .collect();
        (csrf, key, draft)
    }

    /// `POST /v1/campaigns`'s request, or what is wrong in plain words (the
    /// API checks the rest: names, templates, weights' range, category).
    fn request(&self, default_zone: chrono_tz::Tz) -> Result<CampaignRequest, String> {
        let text = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let numbers: Vec<String> = self
            .numbers
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let recipients = match (numbers.is_empty(), text(&self.tag)) {
            (false, None) => CampaignRecipientsRequest {
                numbers: Some(numbers),
                tag: None,
            },
            (true, Some(tag)) => CampaignRecipientsRequest {
                numbers: None,
                tag: Some(tag),
            },
            (false, Some(_)) => {
                return Err("Give the recipients as numbers or as a tag, not both.".into())
            }
            (true, None) => {
                return Err(
                    "Give the recipients: numbers (one a line) or a tag their contacts have."
                        .into(),
                )
            }
        };
        let mut variants = Vec::new();
        for (i, (id, template, weight)) in self.variants.iter().enumerate() {
            let row = i + 1;
            let (id, template, weight) = (text(id), text(template), text(weight));
            let Some(id) = id else {
                if template.is_some() || weight.is_some() {
                    return Err(format!("Variant {row}: give it an id (e.g. a or b)."));
                }
                continue;
            };
            let weight = match weight {
                None => None,
                Some(w) => Some(w.parse::<u32>().map_err(|_| {
                    format!("Variant {row}: the weight is a whole number from 1 to 1,000,000.")
                })?),
            };
            variants.push(CampaignVariantRequest {
                id,
                template,
                weight,
            });
        }
        let context = match text(&self.context) {
            None => None,
            Some(json) => match serde_json::from_str::<Value>(&json) {
                Ok(v @ Value::Object(_)) => Some(v),
                _ => {
                    return Err(
                        "The context is a JSON object, such as {\"url\": \"https://example.com/book\"}."
                            .into(),
                    )
                }
            },
        };
        let send_at = match text(&self.send_at) {
            None => None,
            Some(local) => Some(Value::String(schedule(&local, &self.zone, default_zone)?)),
        };
        Ok(CampaignRequest {
            name: self.name.trim().to_string(),
            template: text(&self.template),
            recipients: Some(recipients),
            variants: (!variants.is_empty()).then_some(variants),
            category: text(&self.category),
            flow: text(&self.flow),
            context,
            send_at,
        })
    }
}

/// A `datetime-local` value in `zone` (the gateway's when empty) as RFC 3339.
fn schedule(local: &str, zone: &str, default_zone: chrono_tz::Tz) -> Result<String, String> {
    let zone_name = zone.trim();
    let tz: chrono_tz::Tz = if zone_name.is_empty() {
        default_zone
    } else {
        zone_name.parse().map_err(|_| {
            format!(
                "The time zone {zone_name:?} is not one we know; use a name such as Europe/Berlin."
            )
        })?
    };
    let naive = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(local.trim(), f).ok())
        .ok_or_else(|| {
            "The send time is not a date and time; pick one in the field.".to_string()
        })?;
    let at = match tz.from_local_datetime(&naive) {
        LocalResult::Single(at) => at,
        // The hour the clocks go back happens twice: the first.
        LocalResult::Ambiguous(first, _) => first,
        LocalResult::None => {
            return Err(format!(
                "{} does not exist in {tz}: the clocks skip it. Pick another time.",
                naive.format("%Y-%m-%d %H:%M")
            ))
        }
    };
    Ok(at
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn create_form(person: &Person, draft: &Draft, zone: &str) -> Markup {
    let rows = draft.variants.len().max(VARIANT_ROWS);
    let row = |i: usize| draft.variants.get(i).cloned().unwrap_or_default();
    html! {
        section.new-campaign aria-labelledby="new-heading" {
            h2 #new-heading { "New campaign" }
            @if let Some(error) = &draft.error {
                p.error role="alert" #new-error { (error) }
            }
            form.stacked method="post" action="/campaigns" {
                input type="hidden" name="csrf" value=(person.csrf());
                input type="hidden" name="key" value=(crate::store::users::random_hex(16));
                p {
                    label for="cm-name" { "Name" }
                    input #cm-name type="text" name="name" value=(draft.name) required maxlength="200" autocomplete="off";
                }
                p {
                    label for="cm-template" { "Template" }
                    textarea #cm-template name="template" rows="3" aria-describedby="cm-template-hint" { (draft.template) }
                    span #cm-template-hint .hint { "the text; {{name}} and other fields are filled per contact. Variants without a template use it." }
                }
                fieldset {
                    legend { "Recipients" }
                    p {
                        label for="cm-numbers" { "Numbers" }
                        textarea #cm-numbers name="numbers" rows="4" aria-describedby="cm-numbers-hint" autocomplete="off" { (draft.numbers) }
                        span #cm-numbers-hint .hint { "one a line" }
                    }
                    p {
                        label for="cm-tag" { "Or a tag" }
                        input #cm-tag type="text" name="tag" value=(draft.tag) autocomplete="off" aria-describedby="cm-tag-hint";
                        span #cm-tag-hint .hint { "every contact with this tag" }
                    }
                }
                fieldset.variants {
                    legend { "Variants (A/B, optional)" }
                    p.hint { "Each recipient gets one variant, chosen by weight. Leave the rows empty for one text." }
                    @for i in 0..rows {
                        @let (id, template, weight) = row(i);
                        @let n = i + 1;
                        div.variant-row {
                            p {
                                label for={ "cm-v" (n) "-id" } { "Variant " (n) " id" }
                                input id={ "cm-v" (n) "-id" } type="text" name="variant_id" value=(id) size="6" maxlength="32" autocomplete="off";
                            }
                            p.grow {
                                label for={ "cm-v" (n) "-template" } { "Variant " (n) " template" }
                                input id={ "cm-v" (n) "-template" } type="text" name="variant_template" value=(template) autocomplete="off";
                            }
                            p {
                                label for={ "cm-v" (n) "-weight" } { "Variant " (n) " weight" }
                                input id={ "cm-v" (n) "-weight" } type="number" name="variant_weight" value=(weight) min="1" max="1000000" inputmode="numeric";
                            }
                        }
                    }
                }
                p {
                    label for="cm-category" { "Category" }
                    select #cm-category name="category" required {
                        option value="" selected[draft.category.is_empty()] { "Choose a category" }
                        @for (value, label) in CATEGORIES {
                            option value=(value) selected[draft.category == value] { (label) }
                        }
                    }
                }
                p {
                    label for="cm-flow" { "Flow" }
                    select #cm-flow name="flow" {
                        option value="" selected[draft.flow.is_empty()] { "None" }
                        @for (flow, _) in FLOWS {
                            option value=(flow) selected[draft.flow == flow] { (flow) }
                        }
                    }
                }
                p {
                    label for="cm-context" { "Context" }
                    textarea #cm-context name="context" rows="2" aria-describedby="cm-context-hint" autocomplete="off" { (draft.context) }
                    span #cm-context-hint .hint { "optional JSON for templates and the flow, e.g. {\"url\": \"https://example.com/book\"}" }
                }
                fieldset.schedule {
                    legend { "Schedule (optional)" }
                    p {
                        label for="cm-send-at" { "Send at" }
                        input #cm-send-at type="datetime-local" name="send_at" value=(draft.send_at) aria-describedby="cm-zone-hint";
                    }
                    p {
                        label for="cm-zone" { "Time zone" }
                        input #cm-zone type="text" name="zone" value=(zone) autocomplete="off" aria-describedby="cm-zone-hint";
                    }
                    p #cm-zone-hint .hint { "The send time is read in this time zone. Empty: send now." }
                }
                button type="submit" { "Create campaign" }
            }
        }
    }
}

async fn list_page(
    state: &WebState,
    person: &Person,
    cursor: Option<&str>,
    draft: &Draft,
    status: StatusCode,
) -> Response {
    let mut pairs = vec![("limit".to_string(), PAGE.to_string())];
    if let Some(c) = cursor.filter(|c| !c.is_empty()) {
        pairs.push(("cursor".into(), c.to_string()));
    }
    let default_zone = state.api.policy.default_zone();
    let zone = if draft.zone.trim().is_empty() {
        default_zone.name().to_string()
    } else {
        draft.zone.clone()
    };
    let page = campaigns::list(State(state.api.clone()), Ok(Query(pairs))).await;
    let body = html! {
        @match page {
            Ok(Json(page)) => {
                @if page.items.is_empty() {
                    p.empty { "No campaigns yet." }
                } @else {
                    div.table-scroll {
                        table.campaigns {
                            caption.visually-hidden { "Campaigns" }
                            thead { tr {
                                th scope="col" { "Campaign" }
                                th scope="col" { "State" }
                                th scope="col" { "Progress" }
                                th scope="col" { "Sent" }
                                th scope="col" { "Delivered" }
                                th scope="col" { "Created" }
                            } }
                            tbody {
                                @for c in &page.items {
                                    tr {
                                        td { a href=(campaign_url(&c.id)) { (c.name) } }
                                        td { (state_words(c.state)) }
                                        td { (progress_words(c.recipients.processed, c.recipients.total)) }
                                        td { (c.messages.sent + c.messages.delivered) }
                                        td { (c.messages.delivered) }
                                        td { (time(c.created_at)) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = &page.next_cursor {
                    p { a rel="next" href={ "/campaigns?cursor=" (escape(next)) } { "Older campaigns" } }
                }
            }
            Err(e) => { p.error role="alert" { (pages::plain(&e)) } }
        }
        (create_form(person, draft, &zone))
    };
    (
        status,
        Shell::signed_in("Campaigns", person, Some(Nav::Campaigns)).render(body),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /campaigns`.
pub async fn list(
    State(state): State<WebState>,
    person: Person,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    list_page(
        &state,
        &person,
        query.cursor.as_deref(),
        &Draft::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /campaigns`: `POST /v1/campaigns` under the form's
/// Idempotency-Key, then the campaign's page.
pub async fn create(
    State(state): State<WebState>,
    person: Person,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return pages::problem_page(
            StatusCode::BAD_REQUEST,
            Some(&person),
            "Form not read",
            "The form could not be read. Go back, reload the page and try again.",
        );
    };
    let (csrf, key, mut draft) = Draft::from_pairs(&pairs);
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    let request = match draft.request(state.api.policy.default_zone()) {
        Ok(request) => request,
        Err(text) => {
            draft.error = Some(text);
            return list_page(
                &state,
                &person,
                None,
                &draft,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let mut headers = HeaderMap::new();
    if !key.trim().is_empty() {
        if let Ok(value) = HeaderValue::from_str(&format!("web:{}", key.trim())) {
            headers.insert("idempotency-key", value);
        }
    }
    match campaigns::create(State(state.api.clone()), headers, ApiJson(request)).await {
        Ok(response) => {
            let location = response
                .headers()
                .get(axum::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.strip_prefix("/v1"))
                .unwrap_or("/campaigns")
                .to_string();
            Redirect::to(&location).into_response()
        }
        Err(e) => {
            draft.error = Some(pages::plain(&e));
            list_page(&state, &person, None, &draft, e.status).await
        }
    }
}

/// A refused recipient in plain words.
fn recipient_words(e: &wire::CampaignError) -> String {
    match e.code.as_str() {
        "invalid_number" => format!("not a phone number we can text ({})", e.detail),
        "missing_field" => format!("the text needs a value this contact lacks ({})", e.detail),
        "invalid_template" => format!("the template is not right ({})", e.detail),
        "body_too_long" => format!("the text is too long ({})", e.detail),
        "body_unencodable" => format!("the text cannot be sent as SMS ({})", e.detail),
        _ => e.detail.clone(),
    }
}

/// A metric of a variant's `metrics` (as the summary serves it) in words.
fn rate(metrics: Option<&Value>, key: &str) -> String {
    let Some(r) = metrics.and_then(|m| m.get(key)) else {
        return "—".into();
    };
    let n = r.get("numerator").and_then(Value::as_u64).unwrap_or(0);
    let d = r.get("denominator").and_then(Value::as_u64).unwrap_or(0);
    match r.get("value").and_then(Value::as_f64) {
        Some(v) => format!("{:.1}% ({n} of {d})", v * 100.0),
        None => "— (none sent)".into(),
    }
}

fn cost(metrics: Option<&Value>) -> String {
    let Some(m) = metrics else {
        return "—".into();
    };
    let currency = m.get("currency").and_then(Value::as_str).unwrap_or("");
    match m
        .get("cost_per_outcome")
        .and_then(|c| c.get("value"))
        .and_then(Value::as_f64)
    {
        Some(v) => format!("{v:.2} {currency}"),
        None => "— (no conversion yet)".into(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CampaignQuery {
    /// The refused recipients after this cursor.
    #[serde(default)]
    errors_after: Option<String>,
}

async fn campaign_page(
    state: &WebState,
    person: &Person,
    id: String,
    errors_after: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let c = match campaigns::get_one(State(state.api.clone()), Ok(Path(id.clone()))).await {
        Ok(Json(c)) => c,
        Err(e) => return pages::api_error_page(person, &e),
    };
    let mut pairs = vec![("limit".to_string(), ERRORS_PAGE.to_string())];
    if let Some(after) = errors_after.filter(|a| !a.is_empty()) {
        pairs.push(("cursor".into(), after));
    }
    let errors = campaigns::errors(State(state.api.clone()), Ok(Path(id)), Ok(Query(pairs)))
        .await
        .map(|Json(page)| page);
    let r = &c.recipients;
    let m = &c.messages;
    let skipped = [
        ("opted out (STOP)", r.skipped_opted_out),
        ("no opt-in for marketing", r.skipped_consent_required),
        (
            "never wrote to us (conversational)",
            r.skipped_not_conversational,
        ),
        ("listed twice", r.skipped_duplicate),
        ("erased", r.skipped_erased),
    ];
    let cancellable = matches!(c.state, CampaignState::Accepting | CampaignState::Accepted)
        && (r.processed < r.total || m.queued > 0);
    let body = html! {
        @if let Some(text) = &notice { p.notice role="status" { (text) } }
        p { a href="/campaigns" { "All campaigns" } }
        dl.facts {
            dt { "State" } dd #campaign-state { (state_words(c.state)) }
            dt { "Category" } dd { (category_words(&c)) }
            @if let Some(flow) = &c.flow { dt { "Flow" } dd { (flow) } }
            @if let Some(at) = c.send_at { dt { "Scheduled for" } dd { (time(at)) } }
            dt { "Created" } dd { (time(c.created_at)) }
            @if let Some(site) = &c.site { dt { "Site" } dd { (site) " (another gateway of the fleet)" } }
        }
        section aria-labelledby="progress-heading" {
            h2 #progress-heading { "Progress" }
            p {
                label for="campaign-progress" { "Recipients processed" } " "
                progress #campaign-progress value=(r.processed) max=(r.total.max(1)) { (progress_words(r.processed, r.total)) }
                " " (progress_words(r.processed, r.total))
            }
            div.table-scroll {
                table.counts {
                    caption { "Recipients" }
                    tbody {
                        tr { th scope="row" { "Accepted" } td { (r.accepted) } }
                        tr { th scope="row" { "Deferred (quiet hours, limits)" } td { (r.deferred) } }
                        @for (label, n) in skipped {
                            tr { th scope="row" { "Skipped: " (label) } td { (n) } }
                        }
                        tr { th scope="row" { "Refused with an error" } td { (r.errors) } }
                    }
                }
                table.counts {
                    caption { "Messages" }
                    tbody {
                        tr { th scope="row" { "Waiting" } td { (m.queued) } }
                        tr { th scope="row" { "Sent" } td { (m.sent) } }
                        tr { th scope="row" { "Delivered" } td { (m.delivered) } }
                        tr { th scope="row" { "Failed" } td { (m.failed) } }
                        tr { th scope="row" { "Expired" } td { (m.expired) } }
                        tr { th scope="row" { "Unknown" } td { (m.unknown) } }
                        tr { th scope="row" { "Cancelled" } td { (m.cancelled) } }
                    }
                }
            }
        }
        section aria-labelledby="variants-heading" {
            h2 #variants-heading { "Variants" }
            // A column a variant, a row a number: two or three variants fit
            // a phone's width.
            div.table-scroll {
                table.variants {
                    caption.visually-hidden { "Variants and their metrics" }
                    thead { tr {
                        td {}
                        @for v in &c.variants { th scope="col" { "Variant " (v.id) } }
                    } }
                    tbody {
                        tr { th scope="row" { "Weight" } @for v in &c.variants { td { (v.weight) } } }
                        tr { th scope="row" { "Text" } @for v in &c.variants { td.text { (v.template) } } }
                        tr { th scope="row" { "Accepted" } @for v in &c.variants { td { (v.accepted) } } }
                        tr { th scope="row" { "Delivered" } @for v in &c.variants { td { (v.messages.delivered) } } }
                        @for (label, key) in [("Reply rate", "reply_rate"), ("Conversion rate", "conversion_rate"), ("Opt-out rate", "opt_out_rate")] {
                            tr { th scope="row" { (label) } @for v in &c.variants { td { (rate(v.metrics.as_ref(), key)) } } }
                        }
                        tr { th scope="row" { "Cost per outcome" } @for v in &c.variants { td { (cost(v.metrics.as_ref())) } } }
                    }
                }
            }
        }
        section aria-labelledby="errors-heading" {
            h2 #errors-heading { "Recipients refused" }
            @if let Some(site) = &c.site {
                p { "Listed at the gateway of site " (site) ", where this campaign was created." }
            } @else {
            @match &errors {
                Ok(page) => {
                    @if page.items.is_empty() {
                        p { "None." }
                    } @else {
                        ul.recipient-errors {
                            @for e in &page.items {
                                li { (e.number) ": " (recipient_words(e)) }
                            }
                        }
                    }
                    @if let Some(next) = &page.next_cursor {
                        p { a href={ (campaign_url(&c.id)) "?errors_after=" (escape(next)) } { "More refused recipients" } }
                    }
                }
                Err(e) => { p.error role="alert" { (pages::plain(e)) } }
            }
            }
        }
        @if cancellable {
            form.cancel method="post" action={ (campaign_url(&c.id)) "/cancel" } {
                input type="hidden" name="csrf" value=(person.csrf());
                p.hint #cancel-hint { "Stops the recipients not yet accepted and cancels every message that has not reached a modem." }
                button.danger type="submit" aria-describedby="cancel-hint" { "Cancel campaign" }
            }
        }
    };
    (
        status,
        Shell::signed_in(&c.name, person, Some(Nav::Campaigns)).render(body),
    )
        .into_response()
}

/// `GET /campaigns/{id}`.
pub async fn page(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<CampaignQuery>, QueryRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return pages::api_error_page(&person, &ApiError::not_found("no such campaign"));
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    campaign_page(
        &state,
        &person,
        id,
        query.errors_after,
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /campaigns/{id}/cancel`: `POST /v1/campaigns/{id}/cancel`.
pub async fn cancel(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<super::session::CsrfForm>, FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    let Ok(Path(id)) = path else {
        return pages::api_error_page(&person, &ApiError::not_found("no such campaign"));
    };
    match campaigns::cancel(State(state.api.clone()), Ok(Path(id.clone()))).await {
        Ok(_) => Redirect::to(&campaign_url(&id)).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => pages::api_error_page(&person, &e),
        Err(e) => {
            let text = pages::plain(&e);
            campaign_page(&state, &person, id, None, Some(text), e.status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_local_time_is_read_in_the_stated_zone() {
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            schedule("2026-07-01T09:30", "Europe/Berlin", ny).unwrap(),
            "2026-07-01T07:30:00Z"
        );
        assert_eq!(
            schedule("2026-01-15T09:00", "", ny).unwrap(),
            "2026-01-15T14:00:00Z"
        );
        // 02:30 on the spring-forward night does not exist in New York.
        assert!(schedule("2026-03-08T02:30", "America/New_York", ny)
            .unwrap_err()
            .contains("does not exist"));
        assert!(schedule("2026-01-15T09:00", "Mars/Olympus", ny)
            .unwrap_err()
            .contains("not one we know"));
        assert!(schedule("tomorrow", "", ny).is_err());
    }

    #[test]
    fn the_form_becomes_the_apis_request() {
        let (csrf, key, draft) = Draft::from_pairs(&pairs(&[
            ("csrf", "t"),
            ("key", "k1"),
            ("name", "Spring"),
            ("template", "Hi {{name}}"),
            ("numbers", "+15550100001\r\n\r\n 5550100002 \r\n"),
            ("tag", ""),
            ("variant_id", "a"),
            ("variant_template", ""),
            ("variant_weight", "3"),
            ("variant_id", "b"),
            ("variant_template", "Hello {{name}}"),
            ("variant_weight", ""),
            ("variant_id", ""),
            ("variant_template", ""),
            ("variant_weight", ""),
            ("category", "marketing"),
            ("flow", ""),
            ("context", "{\"url\": \"https://x.test\"}"),
            ("send_at", ""),
            ("zone", "UTC"),
        ]));
        assert_eq!((csrf.as_str(), key.as_str()), ("t", "k1"));
        let r = draft.request(chrono_tz::UTC).unwrap();
        let numbers = r.recipients.and_then(|r| r.numbers).unwrap();
        assert_eq!(numbers, ["+15550100001", "5550100002"]);
        let variants = r.variants.unwrap();
        assert_eq!(variants.len(), 2);
        assert_eq!(
            (variants[0].id.as_str(), variants[0].weight),
            ("a", Some(3))
        );
        assert_eq!(variants[0].template, None);
        assert_eq!(variants[1].template.as_deref(), Some("Hello {{name}}"));
        assert_eq!(r.flow, None);
        assert_eq!(r.send_at, None);
        assert_eq!(r.context.unwrap()["url"], "https://x.test");
    }

    #[test]
    fn what_the_form_cannot_send_is_said_plainly() {
        let refuse = |list: &[(&str, &str)]| {
            let (_, _, draft) = Draft::from_pairs(&pairs(list));
            draft.request(chrono_tz::UTC).unwrap_err()
        };
        assert!(refuse(&[("name", "x")]).starts_with("Give the recipients"));
        assert!(refuse(&[("numbers", "+15550100001"), ("tag", "vip")]).contains("not both"));
        assert_eq!(
            refuse(&[
                ("tag", "vip"),
                ("variant_id", ""),
                ("variant_template", "Hi")
            ]),
            "Variant 1: give it an id (e.g. a or b)."
        );
        assert!(refuse(&[
            ("tag", "vip"),
            ("variant_id", "a"),
            ("variant_weight", "heavy")
        ])
        .contains("whole number"));
        assert!(refuse(&[("tag", "vip"), ("context", "[1]")]).contains("JSON object"));
    }
}
