//! `GET /metrics`: Prometheus text format (0.0.4). Per modem: state, signal,
//! registration, queue depth, counters and the AT command latency histogram;
//! the outbox and the store's size. No token, like /healthz (bind the API to
//! loopback or a trusted LAN).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use crate::modem::{ModemState, ModemStatus};

/// Extra families other parts of the daemon contribute (webhooks).
pub type ExtraMetrics = std::sync::Arc<dyn Fn(&mut String) + Send + Sync>;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render the modem families for `modems`.
pub fn render_modems(out: &mut String, modems: &[ModemStatus]) {
    family(
        out,
        "smsgate_modem_up",
        "gauge",
        "1 when the modem is ready (registered and taking work).",
    );
    for m in modems {
        let _ = writeln!(
            out,
            "smsgate_modem_up{{modem=\"{}\"}} {}",
            label(&m.id),
            u8::from(m.state == ModemState::Ready)
        );
    }
    family(
        out,
        "smsgate_modem_state",
        "gauge",
        "The modem's state: 1 for the current one.",
    );
    for m in modems {
        for state in [
            ModemState::Initializing,
            ModemState::Ready,
            ModemState::Degraded,
            ModemState::Offline,
        ] {
            let _ = writeln!(
                out,
                "smsgate_modem_state{{modem=\"{}\",state=\"{}\"}} {}",
                label(&m.id),
                state.as_str(),
                u8::from(m.state == state)
            );
        }
    }
    family(
        out,
        "smsgate_modem_registered",
        "gauge",
        "1 when registered on a network (home or roaming).",
    );
    for m in modems {
        let registered = m
            .registration
            .as_deref()
            .is_some_and(|r| r.starts_with("home") || r.starts_with("roaming"));
        let _ = writeln!(
            out,
            "smsgate_modem_registered{{modem=\"{}\"}} {}",
            label(&m.id),
            u8::from(registered)
        );
    }
    family(
        out,
        "smsgate_modem_signal_dbm",
        "gauge",
        "Received signal strength (from AT+CSQ).",
    );
    for m in modems {
        if let Some(dbm) = m.signal_dbm {
            let _ = writeln!(
                out,
                "smsgate_modem_signal_dbm{{modem=\"{}\"}} {dbm}",
                label(&m.id)
            );
        }
    }
    family(
        out,
        "smsgate_modem_signal_csq",
        "gauge",
        "AT+CSQ rssi (0-31, 99 unknown).",
    );
    for m in modems {
        if let Some(csq) = m.signal_csq {
            let _ = writeln!(
                out,
                "smsgate_modem_signal_csq{{modem=\"{}\"}} {csq}",
                label(&m.id)
            );
        }
    }
    family(
        out,
        "smsgate_modem_queue_depth",
        "gauge",
        "Messages the modem is sending now.",
    );
    for m in modems {
        let _ = writeln!(
            out,
            "smsgate_modem_queue_depth{{modem=\"{}\"}} {}",
            label(&m.id),
            m.queue_depth
        );
    }
    type Counter = (&'static str, &'static str, fn(&ModemStatus) -> u64);
    let counters: [Counter; 6] = [
        (
            "smsgate_modem_sent_parts_total",
            "SMS parts accepted by the network (+CMGS).",
            |m| m.counters.sent_parts,
        ),
        (
            "smsgate_modem_received_total",
            "Complete inbound messages stored.",
            |m| m.counters.received,
        ),
        (
            "smsgate_modem_failed_total",
            "Messages that failed for good on this modem.",
            |m| m.counters.failed,
        ),
        (
            "smsgate_modem_status_reports_total",
            "Status reports read.",
            |m| m.counters.status_reports,
        ),
        (
            "smsgate_modem_timeouts_total",
            "AT commands that timed out.",
            |m| m.counters.timeouts,
        ),
        (
            "smsgate_modem_reconnects_total",
            "Times the port was reopened.",
            |m| m.counters.reconnects,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        for m in modems {
            let _ = writeln!(out, "{name}{{modem=\"{}\"}} {}", label(&m.id), value(m));
        }
    }
    family(
        out,
        "smsgate_at_command_duration_seconds",
        "histogram",
        "AT command round trips.",
    );
    for m in modems {
        let h = &m.counters.at_latency;
        let id = label(&m.id);
        let mut cumulative = 0;
        for (bound, count) in h.bounds_ms.iter().zip(&h.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "smsgate_at_command_duration_seconds_bucket{{modem=\"{id}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "smsgate_at_command_duration_seconds_bucket{{modem=\"{id}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "smsgate_at_command_duration_seconds_sum{{modem=\"{id}\"}} {}",
            h.sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "smsgate_at_command_duration_seconds_count{{modem=\"{id}\"}} {}",
            h.count
        );
    }
}

/// `GET /metrics`.
pub async fn serve(State(state): State<ApiState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    render_modems(&mut out, &state.dispatcher.statuses());
    family(
        &mut out,
        "smsgate_outbox_messages",
        "gauge",
        "Outbound messages waiting (queued, scheduled, deferred), as counted within the last second.",
    );
    let _ = writeln!(
        out,
        "smsgate_outbox_messages {}",
        state.store.outbox_gauge()
    );
    family(
        &mut out,
        "smsgate_store_size_bytes",
        "gauge",
        "Bytes the database takes on disk.",
    );
    let _ = writeln!(
        out,
        "smsgate_store_size_bytes {}",
        state.store.size_on_disk()
    );
    family(
        &mut out,
        "smsgate_housekeeping_errors_total",
        "counter",
        "Housekeeping steps (expiry, archive, retention, compaction, pruning) that failed since start; each is logged at error.",
    );
    let _ = writeln!(
        out,
        "smsgate_housekeeping_errors_total {}",
        state.store.housekeeping_errors()
    );
    if let Some((used, free)) = crate::memory::heap_bytes() {
        family(
            &mut out,
            "smsgate_heap_bytes",
            "gauge",
            "The allocator's heap: in use by the daemon, and freed but still held (housekeeping gives it back above 8 MiB).",
        );
        let _ = writeln!(out, "smsgate_heap_bytes{{kind=\"in_use\"}} {used}");
        let _ = writeln!(out, "smsgate_heap_bytes{{kind=\"free\"}} {free}");
    }
    if let Some(fleet) = state.policy.freshness() {
        family(
            &mut out,
            "smsgate_fleet_connected",
            "gauge",
            "1 while this gateway holds a connection to a NATS server of its fleet.",
        );
        let _ = writeln!(
            out,
            "smsgate_fleet_connected {}",
            u8::from(fleet.connected())
        );
        let now = chrono::Utc::now();
        family(
            &mut out,
            "smsgate_fleet_consent_age_seconds",
            "gauge",
            "How old this gateway's replica of the fleet's consent is (-1: never synced); beyond cluster.consent_staleness sends wait.",
        );
        let age = fleet
            .age(now)
            .map_or(-1.0, |a| a.num_milliseconds() as f64 / 1e3);
        let _ = writeln!(out, "smsgate_fleet_consent_age_seconds {age:.3}");
        family(
            &mut out,
            "smsgate_fleet_consent_current",
            "gauge",
            "1 while the consent replica is within cluster.consent_staleness.",
        );
        let _ = writeln!(
            out,
            "smsgate_fleet_consent_current {}",
            u8::from(fleet.fresh(now))
        );
        if let Some(pending) = fleet.events_pending() {
            family(
                &mut out,
                "smsgate_fleet_events_pending",
                "gauge",
                "The events stream's lag: other gateways' message events not applied here yet.",
            );
            let _ = writeln!(out, "smsgate_fleet_events_pending {pending}");
        }
    }
    if let Some(extra) = &state.extra_metrics {
        extra(&mut out);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
