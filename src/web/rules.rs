//! The rules page (admins only): the routing rules in effect, in order, and
//! a form holding them as TOML `[[rule]]` tables, the way
//! `[[conversation.rule]]` is written in the config file. Saving goes
//! through the same book as `PUT /v1/rules` (checked as config load checks,
//! stored, in effect for the next text); "revert" is `DELETE /v1/rules`.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::pages::{self, Nav, Shell};
use super::session::{require_admin, CsrfForm, Person};
use super::WebState;
use crate::api::ApiError;
use crate::config::Problem;
use crate::conversation::rulebook::{to_toml, RulesError, RulesSource};

/// What the form keeps when it is refused: the text as typed, and why.
#[derive(Debug, Default)]
struct Draft {
    text: Option<String>,
    problems: Vec<Problem>,
}

/// A rule's `when` or `then` in one line: `keywords: "a", "b"; close: true`.
fn line(part: &Value) -> String {
    let Value::Object(fields) = part else {
        return String::new();
    };
    fields
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Array(items) => items
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            format!("{key}: {value}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn render(state: &WebState, person: &Person, draft: Draft, status: StatusCode) -> Response {
    let now = state.api.rules.in_effect();
    let text = draft.text.unwrap_or_else(|| to_toml(&now.rules));
    let csrf = person.csrf();
    let rows: Vec<Value> = now.rules.iter().map(|r| r.to_json()).collect();
    // In a fleet the last change may have been made at another gateway.
    let changed_at_site = match state.api.rules.last_change() {
        Ok(change) => change.and_then(|c| c.site),
        Err(e) => {
            tracing::warn!(error = %e, "the rules' last change is unreadable");
            None
        }
    };
    let in_fleet = state.api.fleet.is_some() || changed_at_site.is_some();
    let body = html! {
        @match (now.source, &changed_at_site) {
            (RulesSource::Config, _) => p { "These rules come from the config file (" code { "[[conversation.rule]]" } "). Saving a list here replaces them until you revert." }
            (RulesSource::Store, Some(site)) => p { "These rules were saved at the gateway of site " strong { (site) } " and replace the config file's rules." }
            (RulesSource::Store, None) => p { "These rules were saved here and replace the config file's rules." }
        }
        @if in_fleet {
            p.hint { "This gateway is part of a fleet: rules saved or reverted here apply at every gateway of the fleet." }
        }
        @if state.api.conversation.default_rules {
            p.hint { "After them, the shipped rules apply (" code { "default_rules" } " in the config file)." }
        }
        table.rules {
            caption { "Rules in effect, tried in order; the first that holds decides" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Name" } th scope="col" { "When" } th scope="col" { "Then" } } }
            tbody {
                @for (i, rule) in rows.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { (rule["name"].as_str().map_or_else(|| format!("rule[{i}]"), str::to_string)) }
                        td { (line(&rule["when"])) }
                        td { (line(&rule["then"])) }
                    }
                }
                @if rows.is_empty() {
                    tr { td colspan="4" { "No rules." } }
                }
            }
        }
        section aria-labelledby="edit-heading" {
            h2 #edit-heading { "Edit the rules" }
            @if !draft.problems.is_empty() {
                div.error role="alert" {
                    p { "Nothing was saved. Fix these and save again:" }
                    ul {
                        @for p in &draft.problems {
                            li { code { (p.key) } ": " (p.message) }
                        }
                    }
                }
            }
            form.rules method="post" action="/rules" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="rules-text" { "Rules, as " code { "[[rule]]" } " tables (TOML)" }
                    textarea #rules-text name="rules" rows="20" cols="80" spellcheck="false" aria-describedby="rules-hint" { (text) }
                    span #rules-hint .hint { "Each rule: name, when (keywords, regex, flow_state, thread_state, contact_tag, business_hours), then (reply, route, assign, priority, outcome, tag, close). An empty list means no configured rules." }
                }
                p { button type="submit" { "Save rules" } }
            }
            @if now.source == RulesSource::Store {
                form method="post" action="/rules/revert" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Revert to the config file's rules" }
                }
            }
        }
    };
    (
        status,
        Shell::signed_in("Rules", person, Some(Nav::Rules)).render(body),
    )
        .into_response()
}

/// `GET /rules`.
pub async fn page(State(state): State<WebState>, person: Person) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    render(&state, &person, Draft::default(), StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct RulesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rules: String,
}

/// `POST /rules`.
pub async fn save(
    State(state): State<WebState>,
    person: Person,
    form: Result<Form<RulesForm>, FormRejection>,
) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    let form = match pages::read_form(&person, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    match state.api.rules.set_toml(&form.rules).await {
        Ok(_) => Redirect::to("/rules").into_response(),
        Err(RulesError::Invalid(problems)) => {
            let draft = Draft {
                text: Some(form.rules),
                problems,
            };
            render(&state, &person, draft, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(RulesError::Store(e)) => pages::api_error_page(&person, &ApiError::from(e)),
    }
}

/// `POST /rules/revert`.
pub async fn revert(
    State(state): State<WebState>,
    person: Person,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    match state.api.rules.revert().await {
        Ok(_) => Redirect::to("/rules").into_response(),
        Err(e) => pages::api_error_page(&person, &ApiError::from(e)),
    }
}
