//! The modems page: what `GET /v1/modems` serves about each modem (state
//! and why, operator, signal, what it is sending, its counters, its last
//! error) and the technician's check as the daemon sees it (identity,
//! registration, signal, a diagnosis in plain words), with the outbox's
//! depth (`smsgate_outbox_messages` of `/metrics`).
//!
//! The API has no probe to run: `smsgate modem probe PORT` opens the serial
//! port itself, and the running daemon holds it, so the page says how to
//! run it rather than offering a button. Nothing here changes a modem (the
//! API has no modem settings to change at runtime), so the page is for
//! agents and admins alike.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};

use super::pages::{Nav, Shell};
use super::session::Person;
use super::thread::time;
use super::WebState;
use crate::api::modems;
use crate::modem::pool::{local_day, DailyCounts};
use crate::wire::{ModemState, ModemStatus};

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

fn modem_card(m: &ModemStatus, today: &Today) -> Markup {
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
        }
    }
}

/// `GET /modems`.
pub async fn page(State(state): State<WebState>, person: Person) -> Response {
    let Json(list) = modems::list(State(state.api.clone())).await;
    let waiting = state.api.store.outbox_len();
    let today = Today::of(&state);
    let body = html! {
        p #outbox {
            "Texts waiting for a modem or their time: " strong { (waiting) } "."
        }
        @if list.items.is_empty() {
            p.empty { "No modem is configured. Add one under [[modem]] in the gateway's config." }
        }
        div.modems {
            @for m in &list.items { (modem_card(m, &today)) }
        }
        section.probe-help aria-labelledby="probe-heading" {
            h2 #probe-heading { "The full probe" }
            p {
                "The SIM, SMS storage, PDU mode and message routing are checked by "
                code { "smsgate modem probe PORT" } " on the gateway machine. It needs the port "
                "to itself: stop the gateway first (the running gateway holds its modems' ports), "
                "or probe a modem the config does not use. " code { "smsgate modem list" }
                " finds and probes every serial port."
            }
        }
    };
    Shell::signed_in("Modems", &person, Some(Nav::Modems))
        .render(body)
        .into_response()
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
}
