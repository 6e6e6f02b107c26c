//! The modem settings page (admins only): per modem, its pool limits over
//! the config's values and a pause switch, one form each. Saving calls the
//! same function as `PUT /v1/modems/{id}/settings`
//! (`api::modem_settings::change`): stored, applied at once.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::pages::{self, Nav, Shell};
use super::session::{require_admin, Person};
use super::{escape, WebState};
use crate::api::modem_settings::{answer, change};
use crate::modem::overrides::LIMITS;

/// A refused form: which modem, what was typed, why.
#[derive(Debug, Default)]
struct Draft {
    modem: String,
    typed: Vec<(String, String)>,
    error: String,
}

fn label(name: &str) -> &'static str {
    match name {
        "daily_limit" => "Parts per day",
        "sends_per_minute" => "Sends per minute",
        _ => "Failed sends before a rest",
    }
}

fn render(state: &WebState, person: &Person, draft: Option<Draft>, status: StatusCode) -> Response {
    let csrf = person.csrf();
    let modems: Vec<String> = state
        .api
        .dispatcher
        .statuses()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let body = html! {
        p { "Changes apply at once and are kept across restarts. Leave a limit empty for the config file's value. A paused modem takes no new sends (its queue goes to the other modems); it still receives." }
        @if modems.is_empty() {
            p { "No modems are configured." }
        }
        @for id in &modems {
            @let now = answer(&state.api, id);
            @let draft = draft.as_ref().filter(|d| &d.modem == id);
            section.modem-settings aria-labelledby={ "m-" (id) } {
                h2 id={ "m-" (id) } { (id) }
                @if let Some(d) = draft {
                    p.error role="alert" { (d.error) }
                }
                form method="post" action={ "/settings/modems/" (escape(id)) } {
                    input type="hidden" name="csrf" value=(csrf);
                    @for name in LIMITS {
                        @let config = now["config"][name].as_u64().map_or("no limit".to_string(), |n| n.to_string());
                        @let value = match draft.and_then(|d| d.typed.iter().find(|(k, _)| k == name)) {
                            Some((_, typed)) => typed.clone(),
                            None => now["overrides"][name].as_u64().map(|n| n.to_string()).unwrap_or_default(),
                        };
                        p {
                            label for={ (id) "-" (name) } { (label(name)) }
                            input id={ (id) "-" (name) } type="text" inputmode="numeric" name=(name) value=(value);
                            span.hint { "config: " (config) }
                        }
                    }
                    p {
                        label {
                            input type="checkbox" name="paused" value="on" checked[now["paused"] == true];
                            " Paused"
                        }
                    }
                    p { button type="submit" { "Save " (id) } }
                }
            }
        }
    };
    (
        status,
        Shell::signed_in("Modem settings", person, Some(Nav::ModemSettings)).render(body),
    )
        .into_response()
}

/// `GET /settings/modems`.
pub async fn page(State(state): State<WebState>, person: Person) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    render(&state, &person, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    daily_limit: String,
    #[serde(default)]
    sends_per_minute: String,
    #[serde(default)]
    rest_after_failures: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    paused: Option<String>,
}

/// `POST /settings/modems/{id}`.
pub async fn save(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<SettingsForm>, FormRejection>,
) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    let form = match pages::read_form(&person, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let Ok(Path(id)) = path else {
        return pages::problem_page(
            StatusCode::NOT_FOUND,
            Some(&person),
            "Not found",
            "No such modem.",
        );
    };
    let typed = [
        ("daily_limit", form.daily_limit),
        ("sends_per_minute", form.sends_per_minute),
        ("rest_after_failures", form.rest_after_failures),
    ];
    let mut changes = Map::new();
    for (name, text) in &typed {
        let text = text.trim();
        // Empty: the config's value; a number as a number; anything else as
        // typed, for the API's check to name.
        let value = if text.is_empty() {
            Value::Null
        } else {
            text.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(text.to_string()))
        };
        changes.insert(name.to_string(), value);
    }
    changes.insert("paused".into(), Value::Bool(form.paused.is_some()));
    match change(&state.api, &id, &changes).await {
        Ok(_) => Redirect::to("/settings/modems").into_response(),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let draft = Draft {
                modem: id,
                typed: typed.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                error: pages::plain(&e),
            };
            render(&state, &person, Some(draft), e.status)
        }
        Err(e) => pages::api_error_page(&person, &e),
    }
}
