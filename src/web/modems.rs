//! The modems page: what `GET /v1/modems` serves about each modem (state
//! and why, operator, signal, what it is sending, its counters, its last
//! error) and the technician's check as the daemon sees it (identity,
//! registration, signal, a diagnosis in plain words), with the outbox's
//! depth (`smsgate_outbox_messages` of `/metrics`).
//!
//! Each modem's card also shows the technician's probe (`smsgate modem
//! probe`'s checks) as the gateway last ran it over the modem's own
//! connection (`GET /v1/modems/{id}/probe`: its time, each check with what
//! it found and the CLI's hint for a failure), and a "Run probe" button
//! (`POST /v1/modems/{id}/probe`, then back to the page). A probe changes
//! nothing on the modem (the actor runs it between sends, with its own
//! settings), so the page and the button are for agents and admins alike.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};

use super::pages::{self, Nav, Shell};
use super::session::{CsrfForm, Person};
use super::thread::time;
use super::{escape, WebState};
use crate::api::{modems, ApiError};
use crate::modem::pool::{local_day, DailyCounts};
use crate::wire::{ModemProbe, ModemState, ModemStatus};

fn state_words(state: ModemState) -> &'static str {
    match state {
        ModemState::Initializing => "Starting",
        ModemState::Ready => "Ready",
        ModemState::Degraded => "Degraded",
        ModemState::Offline => "Offline",
    }
}

fn state_class(state: ModemState) -> &'static str {
    match state {
        ModemState::Ready => "ok",
        ModemState::Initializing => "starting",
        ModemState::Degraded => "warn",
        ModemState::Offline => "bad",
    }
}

/// `AT+CSQ`'s RSSI in words (27.007 §8.5: 0 is -113 dBm or less, 31 is
/// -51 dBm or more, 99 unknown), with the usual field thresholds.
fn signal_words(m: &ModemStatus) -> String {
    let Some(csq) = m.signal_csq.filter(|&c| c <= 31) else {
        return "Unknown".into();
    };
    let quality = match csq {
        0..=9 => "marginal",
        10..=14 => "OK",
        15..=19 => "good",
        _ => "excellent",
    };
    match m.signal_dbm {
        Some(dbm) => format!("{quality} (CSQ {csq}, {dbm} dBm)"),
        None => format!("{quality} (CSQ {csq})"),
    }
}

/// What is wrong, most important first, as the probe's diagnosis says it;
/// "OK: ..." when nothing is.
fn diagnosis(m: &ModemStatus) -> String {
    match m.state {
        ModemState::Ready if m.signal_csq.is_some_and(|c| c < 10) => {
            "Ready, but the signal is weak: texts may fail or wait. Move the antenna or the modem."
                .into()
        }
        ModemState::Ready => "OK: ready to send and receive SMS.".into(),
        ModemState::Initializing => "Starting: the gateway is setting the modem up.".into(),
        ModemState::Degraded => match &m.reason {
            Some(r) => format!("Degraded: {r}. Sends wait until it recovers."),
            None => "Degraded: sends wait until it recovers.".into(),
        },
        ModemState::Offline => match &m.reason {
            Some(r) => format!(
                "Offline: {r}. The gateway reopens the port by itself; check the cable and power."
            ),
            None => {
                "Offline: the gateway reopens the port by itself; check the cable and power.".into()
            }
        },
    }
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("—")
}

/// Parts sent and messages received today (the gateway's local day), per
/// modem, from the store's daily counts; None when the store cannot say.
struct Today {
    sent: Option<DailyCounts>,
    received: Option<DailyCounts>,
    day: chrono::NaiveDate,
}

impl Today {
    fn of(state: &WebState) -> Today {
        let day = local_day(state.clock.now(), state.api.policy.default_zone());
        Today {
            sent: DailyCounts::open(&state.api.store).ok(),
            received: DailyCounts::open_received(&state.api.store).ok(),
            day,
        }
    }

    fn count(counts: &Option<DailyCounts>, modem: &str, day: chrono::NaiveDate) -> String {
        match counts.as_ref().map(|c| c.get(modem, day)) {
            Some(Ok(n)) => n.to_string(),
            _ => "unknown".to_string(),
        }
    }
}

/// The page of modems, at modem `id`'s card.
fn card_url(id: &str) -> String {
    format!("/modems#modem-{}", escape(id))
}

/// The last probe the gateway ran on a modem: None when there is none;
/// an error the store gave, in words.
type LastProbe = Result<Option<ModemProbe>, String>;

async fn last_probe(state: &WebState, id: &str) -> LastProbe {
    match modems::last_probe(State(state.api.clone()), Ok(Path(id.to_string()))).await {
        Ok(Json(probe)) => Ok(Some(probe)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
        Err(e) => Err(pages::plain(&e)),
    }
}

/// The probe's result: its time, each check, the hints of failures.
fn probe_result(last: &LastProbe) -> Markup {
    html! {
            @match last {
                Ok(Some(p)) => {
                    p {
                        "Last run " (time(p.probed_at)) ": "
                        @if p.ok {
                            strong { "OK: ready to send and receive SMS." }
                        } @else {
                            strong { (p.diagnosis.len()) " problem" @if p.diagnosis.len() != 1 { "s" } " found." }
                        }
                    }
                    div.table-scroll {
                        table.counts.probe-checks {
                            thead { tr { th scope="col" { "Check" } th scope="col" { "Result" } th scope="col" { "What it found" } } }
                            tbody {
                                @for c in &p.checks {
                                    tr {
                                        th scope="row" { (c.name) }
                                        td {
                                            @if c.ok { span.badge.ok { "OK" } } @else { span.badge.bad { "Failed" } }
                                        }
                                        td {
                                            (c.detail)
                                            @for hint in &c.hints { p.hint { (hint) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Ok(None) => { p.empty { "Not probed by the gateway yet." } }
                Err(e) => { p.error role="alert" { (e) } }
            }
    }
}

/// The probe's result and the button that runs it again.
fn probe_section(m: &ModemStatus, last: &LastProbe, person: &Person) -> Markup {
    let heading = format!("probe-{}", m.id);
    html! {
        section.probe-result aria-labelledby=(heading) {
            h3 id=(heading) { "Technician's probe" }
            (probe_result(last))
            form.run-probe method="post" action={ "/modems/" (escape(&m.id)) "/probe" } {
                input type="hidden" name="csrf" value=(person.csrf());
                button type="submit" { "Run probe" }
                " "
                span.hint { "Runs between the modem's sends, over the gateway's own connection; takes a few seconds." }
            }
        }
    }
}

fn modem_card(
    m: &ModemStatus,
    paused: bool,
    today: &Today,
    last: &LastProbe,
    person: &Person,
) -> Markup {
    let heading = format!("modem-{}", m.id);
    html! {
        section.modem aria-labelledby=(heading) {
            h2 id=(heading) {
                (m.id) " "
                span class={ "badge " (state_class(m.state)) } { (state_words(m.state)) }
            }
            dl.facts {
                dt { "State" } dd { (state_words(m.state)) @if let Some(r) = &m.reason { " — " (r) } }
                dt { "Operator" } dd { (or_dash(&m.operator)) }
                dt { "Signal" } dd { (signal_words(m)) }
                dt { "In the pool" } dd {
                    @if paused { "Paused by an administrator: takes no new sends; receiving goes on." }
                    @else { "Yes" }
                }
                dt { "Sending now" } dd { (m.queue_depth) }
                dt { "Sent today" } dd { (Today::count(&today.sent, &m.id, today.day)) " parts" }
                dt { "Received today" } dd { (Today::count(&today.received, &m.id, today.day)) }
                dt { "Sent since start" } dd { (m.counters.sent_parts) " parts" }
                dt { "Received since start" } dd { (m.counters.received) }
                dt { "Failed since start" } dd { (m.counters.failed) }
                dt { "Last error" } dd { (or_dash(&m.last_error)) }
                dt { "Number" } dd { (or_dash(&m.own_number)) }
                dt { "Port" } dd { code { (m.port) } }
                dt { "Updated" } dd { (time(m.updated_at)) }
            }
            details.probe {
                summary { "Technician's check" }
                dl.facts {
                    dt { "Diagnosis" } dd.diagnosis { (diagnosis(m)) }
                    dt { "Registration" } dd { (or_dash(&m.registration)) }
                    dt { "Manufacturer" } dd { (or_dash(&m.identity.manufacturer)) }
                    dt { "Model" } dd { (or_dash(&m.identity.model)) }
                    dt { "Firmware" } dd { (or_dash(&m.identity.firmware)) }
                    dt { "IMEI" } dd { (or_dash(&m.identity.imei)) }
                    dt { "Timeouts since start" } dd { (m.counters.timeouts) }
                    dt { "Reconnects since start" } dd { (m.counters.reconnects) }
                    dt { "Status reports since start" } dd { (m.counters.status_reports) }
                }
            }
            (probe_section(m, last, person))
        }
    }
}

/// `GET /modems`.
pub async fn page(State(state): State<WebState>, person: Person) -> Response {
    let Json(list) = modems::list(State(state.api.clone())).await;
    let waiting = state.api.store.outbox_gauge();
    let today = Today::of(&state);
    let mut probes = Vec::with_capacity(list.items.len());
    for m in &list.items {
        probes.push(last_probe(&state, &m.id).await);
    }
    let body = html! {
        p #outbox {
            "Texts waiting for a modem or their time: " strong { (waiting) } "."
        }
        @if list.items.is_empty() {
            p.empty { "No modem is configured. Add one under [[modem]] in the gateway's config." }
        }
        div.modems {
            @for (m, last) in list.items.iter().zip(&probes) { (modem_card(m, state.api.dispatcher.is_paused(&m.id), &today, last, &person)) }
        }
        section.probe-help aria-labelledby="probe-heading" {
            h2 #probe-heading { "Probing a modem the gateway does not use" }
            p {
                "\"Run probe\" checks a modem of the gateway over its own connection. A modem the "
                "config does not use is checked by " code { "smsgate modem probe PORT" }
                " on the gateway machine (the same checks; it opens the port itself). "
                code { "smsgate modem list" } " finds and probes every serial port."
            }
        }
    };
    Shell::signed_in("Modems", &person, Some(Nav::Modems))
        .render(body)
        .into_response()
}

/// `POST /modems/{id}/probe`: `POST /v1/modems/{id}/probe`, then back to
/// the modem's card on the page.
pub async fn run_probe(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    let Ok(Path(id)) = path else {
        return pages::api_error_page(&person, &ApiError::not_found("no such modem"));
    };
    match modems::probe(State(state.api.clone()), Ok(Path(id.clone()))).await {
        Ok(_) => Redirect::to(&card_url(&id)).into_response(),
        Err(e) => pages::api_error_page(&person, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::status::{ModemState as Stored, ModemStatus as StoredStatus};

    fn status(state: Stored, csq: Option<u8>, reason: Option<&str>) -> ModemStatus {
        let mut s = StoredStatus::new("m1", "/dev/ttyUSB2");
        s.state = state;
        s.signal_csq = csq;
        s.signal_dbm = csq.map(|c| -113 + 2 * i16::from(c));
        s.reason = reason.map(str::to_string);
        ModemStatus::from(&s)
    }

    #[test]
    fn signal_and_diagnosis_in_words() {
        let ready = status(Stored::Ready, Some(21), None);
        assert_eq!(signal_words(&ready), "excellent (CSQ 21, -71 dBm)");
        assert_eq!(diagnosis(&ready), "OK: ready to send and receive SMS.");
        let weak = status(Stored::Ready, Some(6), None);
        assert!(diagnosis(&weak).contains("signal is weak"));
        assert_eq!(
            signal_words(&status(Stored::Ready, Some(99), None)),
            "Unknown"
        );
        let gone = status(Stored::Offline, None, Some("port gone"));
        assert!(diagnosis(&gone).starts_with("Offline: port gone."));
    }

    #[test]
    fn a_failed_check_shows_the_hint_the_cli_prints() {
        use crate::modem::probe::{ProbeCheck, ProbeReport, ProbeResult};
        let hint = "no usable signal: check the antenna and coverage".to_string();
        let report = ProbeReport {
            responding: true,
            diagnosis: vec![hint.clone()],
            checks: vec![
                ProbeCheck {
                    name: "AT".into(),
                    ok: true,
                    detail: "answered".into(),
                    hints: Vec::new(),
                },
                ProbeCheck {
                    name: "signal".into(),
                    ok: false,
                    detail: "CSQ 99 (unknown)".into(),
                    hints: vec![hint.clone()],
                },
            ],
            ..ProbeReport::default()
        };
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let probe = ModemProbe::from(&ProbeResult::new("m1", at, report));
        let html = probe_result(&Ok(Some(probe))).into_string();
        assert!(html.contains("1 problem found."), "{html}");
        assert!(html.contains("<th scope=\"row\">signal</th><td><span class=\"badge bad\">Failed</span></td><td>CSQ 99 (unknown)<p class=\"hint\">no usable signal: check the antenna and coverage</p></td>"), "{html}");
        assert!(
            html.contains("<span class=\"badge ok\">OK</span>"),
            "{html}"
        );
        let none = probe_result(&Ok(None)).into_string();
        assert!(none.contains("Not probed by the gateway yet."));
    }
}
