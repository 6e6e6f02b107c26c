//! `GET /v1/metrics/summary?from=&to=&campaign=&variant=&team=`: the five
//! conversation metrics over whole UTC days, from the store's counters
//! (README.md, "Metrics").

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{NaiveDate, Utc};

use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::conversation::metrics::SummaryQuery;
use crate::wire::MetricsSummary;

/// Days in a period when neither `from` nor `to` says otherwise.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period one summary covers (two years and a leap day).
pub const MAX_DAYS: i64 = 731;
/// The longest campaign, variant or team name a filter takes.
const MAX_NAME: usize = 200;

/// `GET /v1/metrics/summary`.
pub async fn summary(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<MetricsSummary>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let query = summary_query(&pairs, Utc::now().date_naive())?;
    // A read of a few thousand counters: off the async workers.
    let summary = state
        .store
        .blocking(move |store| store.metrics_summary(&query))
        .await?;
    Ok(Json(MetricsSummary::new(
        summary,
        &state.conversation.currency,
    )))
}

/// A day: `YYYY-MM-DD`, or an RFC 3339 time (its UTC day).
fn day(key: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .or_else(|| params::time(raw).map(|t| t.date_naive()))
        .ok_or_else(|| {
            ApiError::invalid_query(format!(
                "{key} must be a date YYYY-MM-DD or an RFC 3339 time, not {raw:?}"
            ))
        })
}

/// The query string, with `today` (UTC) for the default period: the last
/// [`DEFAULT_DAYS`] days up to `to` (default today).
pub fn summary_query(
    pairs: &[(String, String)],
    today: NaiveDate,
) -> Result<SummaryQuery, ApiError> {
    let (mut from, mut to) = (None, None);
    let (mut campaign, mut variant, mut team) = (None, None, None);
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key.as_str()) {
            return Err(ApiError::invalid_query(format!("{key} is given twice")));
        }
        seen.push(key);
        let name = |value: &str| {
            if value.trim().is_empty() || value.len() > MAX_NAME {
                Err(ApiError::invalid_query(format!(
                    "{key} must be 1 to {MAX_NAME} characters (omit it for all)"
                )))
            } else {
                Ok(Some(value.to_string()))
            }
        };
        match key.as_str() {
            "from" => from = Some(day(key, value)?),
            "to" => to = Some(day(key, value)?),
            "campaign" => campaign = name(value)?,
            "variant" => variant = name(value)?,
            "team" => team = name(value)?,
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?} (from, to, campaign, variant, team)"
                )))
            }
        }
    }
    let to = to.unwrap_or(today);
    // Checked: a date near chrono's limits must not overflow.
    let from = from.unwrap_or_else(|| {
        to.checked_sub_signed(chrono::Duration::days(DEFAULT_DAYS - 1))
            .unwrap_or(NaiveDate::MIN)
    });
    if from > to {
        return Err(ApiError::invalid_query(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::invalid_query(format!(
            "a summary covers at most {MAX_DAYS} days; {from} to {to} is {}",
            (to - from).num_days() + 1
        )));
    }
    if variant.is_some() && campaign.is_none() {
        return Err(ApiError::invalid_query(
            "variant needs campaign (variants are a campaign's)",
        ));
    }
    Ok(SummaryQuery {
        from,
        to,
        campaign,
        variant,
        team,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_default_period_is_the_last_30_days() {
        let today = date("2026-03-15");
        let q = summary_query(&[], today).unwrap();
        assert_eq!((q.from, q.to), (date("2026-02-14"), today));
        assert_eq!((q.campaign, q.variant, q.team), (None, None, None));
        // With only `to`: the 30 days up to it; with only `from`: up to today.
        let q = summary_query(&pairs(&[("to", "2026-01-31")]), today).unwrap();
        assert_eq!((q.from, q.to), (date("2026-01-02"), date("2026-01-31")));
        let q = summary_query(&pairs(&[("from", "2026-03-01")]), today).unwrap();
        assert_eq!((q.from, q.to), (date("2026-03-01"), today));
    }

    #[test]
    fn dates_or_rfc_3339_times_and_filters() {
        let q = summary_query(
            &pairs(&[
                // 23:30 at -05:00 is the next UTC day; a decoded + is a space.
                ("from", "2026-01-01T23:30:00-05:00"),
                ("to", "2026-02-01T10:00:00 02:00"),
                ("campaign", "spring"),
                ("variant", "b"),
                ("team", "support"),
            ]),
            date("2026-03-15"),
        )
        .unwrap();
        assert_eq!((q.from, q.to), (date("2026-01-02"), date("2026-02-01")));
        assert_eq!(q.campaign.as_deref(), Some("spring"));
        assert_eq!(q.variant.as_deref(), Some("b"));
        assert_eq!(q.team.as_deref(), Some("support"));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let long = "x".repeat(201);
        for (bad, says) in [
            (vec![("from", "yesterday")], "from must be a date"),
            (vec![("to", "2026-02-30")], "to must be a date"),
            (
                vec![("from", "2026-03-02"), ("to", "2026-03-01")],
                "is after",
            ),
            (
                vec![("from", "2020-01-01"), ("to", "2026-01-01")],
                "at most 731 days",
            ),
            (vec![("variant", "a")], "variant needs campaign"),
            (vec![("campaign", "")], "campaign must be 1 to 200"),
            (vec![("team", long.as_str())], "team must be 1 to 200"),
            (vec![("team", "a"), ("team", "b")], "given twice"),
            (vec![("form", "2026-01-01")], "unknown query parameter"),
        ] {
            let e = summary_query(&pairs(&bad), date("2026-03-15")).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (422, "invalid_query"),
                "{bad:?}"
            );
            assert!(e.detail.contains(says), "{bad:?}: {}", e.detail);
        }
        // Dates at chrono's limits are periods like any other.
        for edge in ["-262143-01-05", "+262142-12-31"] {
            let q = summary_query(&pairs(&[("to", edge)]), date("2026-03-15")).unwrap();
            assert!(q.from <= q.to, "{edge}");
        }
        // 731 days is the most.
        assert!(summary_query(
            &pairs(&[("from", "2024-01-01"), ("to", "2025-12-31")]),
            date("2026-03-15")
        )
        .is_ok());
    }
}
