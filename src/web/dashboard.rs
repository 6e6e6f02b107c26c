//! The dashboard: the five metrics for a period, team and campaign, each
//! with its counts, and three charts with their numbers in tables.
//!
//! The numbers are `GET /v1/metrics/summary`'s: the query string is read
//! by its own parser ([`summary_query`]: the same periods, limits and
//! refusals) and answered by the same store read
//! ([`crate::store::Store::metrics_summary`]), never counted again here.
//! The per-day chart asks for the summary of each day (of each week, past
//! [`DAILY_UP_TO`] days), the conversion chart for the summary of each of
//! the campaign's variants.
//!
//! Time to first response is drawn twice: its median and 90th percentile
//! (overall, in business hours, and the same for a person's first reply)
//! against the teams' response standards, and the distribution of the
//! waits in business hours (the store's histogram, read by
//! [`crate::store::Store::business_response_waits`]) in ranges, those
//! within the response standard apart from those over it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Duration, NaiveDate};
use maud::{html, Markup, PreEscaped};

use super::chart::{self, BarChart, Category, Reference, Series, Unit};
use super::pages::{self, Nav, Shell};
use super::session::Person;
use super::{escape, WebState};
use crate::api::summary::summary_query;
use crate::api::ApiError;
use crate::conversation::metrics::{Distribution, Histogram, Rate, Summary, SummaryQuery};
use crate::store::{CampaignRecord, Store, StoreError};

/// Periods up to this many days are charted per day; longer ones per week
/// (a bar a day would be thinner than a pixel on a phone).
pub const DAILY_UP_TO: i64 = 92;
/// Campaigns the filter offers (the newest).
const CAMPAIGNS_LISTED: usize = 100;

/// A bar of the per-day chart: its days and the contacts counted.
struct Bin {
    from: NaiveDate,
    to: NaiveDate,
    replied: u64,
    opted_out: u64,
}

/// What the page shows, read in one go off the async workers.
struct Figures {
    summary: Summary,
    bins: Vec<Bin>,
    /// The first responses' waits in business hours, bucket by bucket.
    waits: Histogram,
    /// The chosen campaign's variants and their conversion.
    variants: Vec<(String, Rate)>,
}

/// The summary of `query`, of each of its days (or weeks), and of each of
/// `variants` of its campaign.
fn figures(
    store: &Store,
    query: &SummaryQuery,
    variants: &[String],
) -> Result<Figures, StoreError> {
    let summary = store.metrics_summary(query)?;
    let step = if (query.to - query.from).num_days() < DAILY_UP_TO {
        1
    } else {
        7
    };
    let mut bins = Vec::new();
    let mut from = query.from;
    while from <= query.to {
        let to = from
            .checked_add_signed(Duration::days(step - 1))
            .map_or(query.to, |d| d.min(query.to));
        let part = store.metrics_summary(&SummaryQuery {
            from,
            to,
            ..query.clone()
        })?;
        bins.push(Bin {
            from,
            to,
            replied: part.reply_rate.numerator,
            opted_out: part.opt_out_rate.numerator,
        });
        match to.succ_opt() {
            Some(next) => from = next,
            None => break,
        }
    }
    let mut by_variant = Vec::new();
    for variant in variants {
        let part = store.metrics_summary(&SummaryQuery {
            variant: Some(variant.clone()),
            ..query.clone()
        })?;
        by_variant.push((variant.clone(), part.conversion_rate));
    }
    Ok(Figures {
        waits: store.business_response_waits(query)?,
        summary,
        bins,
        variants: by_variant,
    })
}

/// The form's values: blank ones dropped (a select's "All"), a variant
/// dropped when no campaign is chosen or the campaign has no such variant
/// (the form keeps a variant after its campaign was changed).
fn filters(
    pairs: Vec<(String, String)>,
    campaign: Option<&CampaignRecord>,
) -> Vec<(String, String)> {
    let has_campaign = pairs
        .iter()
        .any(|(k, v)| k == "campaign" && !v.trim().is_empty());
    pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .filter(|(k, v)| {
            k != "variant"
                || (has_campaign && campaign.is_none_or(|c| c.variants.iter().any(|x| &x.id == v)))
        })
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `GET /dashboard?from=&to=&team=&campaign=&variant=`.
pub async fn page(
    State(state): State<WebState>,
    person: Person,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let today = state.clock.now().date_naive();
    let raw = match query {
        Ok(Query(pairs)) => pairs,
        Err(e) => {
            let error = ApiError::invalid_query(e.body_text());
            return render(&state, &person, &[], today, Err(error), Vec::new());
        }
    };
    let store = state.api.store.clone();
    let listed = match store.campaigns(None, CAMPAIGNS_LISTED) {
        Ok(page) => page.items,
        Err(e) => return pages::store_error(e),
    };
    let chosen = match value(&raw, "campaign")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(id) => match listed.iter().find(|c| c.id == id) {
            Some(c) => Some(c.clone()),
            None => match store.campaign(id) {
                Ok(found) => found,
                Err(e) => return pages::store_error(e),
            },
        },
        None => None,
    };
    let pairs = filters(raw, chosen.as_ref());
    let query = match summary_query(&pairs, today) {
        Ok(q) => q,
        Err(e) => return render(&state, &person, &pairs, today, Err(e), listed),
    };
    let variants: Vec<String> = match (&query.campaign, &chosen) {
        (Some(_), Some(c)) => c.variants.iter().map(|v| v.id.clone()).collect(),
        _ => Vec::new(),
    };
    let read = {
        let query = query.clone();
        store
            .blocking(move |store| figures(&store, &query, &variants))
            .await
    };
    let shown = match read {
        Ok(f) => Ok((query, f, chosen)),
        Err(e) => Err(ApiError::from(e)),
    };
    render(&state, &person, &pairs, today, shown, listed)
}

type Shown = Result<(SummaryQuery, Figures, Option<CampaignRecord>), ApiError>;

fn render(
    state: &WebState,
    person: &Person,
    pairs: &[(String, String)],
    today: NaiveDate,
    shown: Shown,
    campaigns: Vec<CampaignRecord>,
) -> Response {
    let status = match &shown {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    let currency = state.api.conversation.currency.clone();
    let body = html! {
        (filter_form(state, pairs, today, &shown, &campaigns))
        @match &shown {
            Err(e) => p.error role="alert" { (pages::plain(e)) },
            Ok((query, figures, campaign)) => {
                (period_line(query, campaign.as_ref(), state))
                (metrics(&figures.summary, &currency))
                div.charts {
                    (per_day(&figures.bins))
                    (response_chart(state, query, &figures.summary))
                    (distribution_chart(state, query, &figures.waits))
                    (variant_chart(query, campaign.as_ref(), &figures.variants))
                }
            }
        }
    };
    (
        status,
        Shell::signed_in("Dashboard", person, Some(Nav::Dashboard)).render(body),
    )
        .into_response()
}

/// The filters: a GET form (works without a script) and the period presets
/// as links that keep the other filters.
fn filter_form(
    state: &WebState,
    pairs: &[(String, String)],
    today: NaiveDate,
    shown: &Shown,
    campaigns: &[CampaignRecord],
) -> Markup {
    // The dates shown: the period answered, else what was typed.
    let (from, to) = match shown {
        Ok((q, _, _)) => (q.from.to_string(), q.to.to_string()),
        Err(_) => (
            value(pairs, "from").unwrap_or_default().to_string(),
            value(pairs, "to").unwrap_or_default().to_string(),
        ),
    };
    let team = value(pairs, "team");
    let campaign = value(pairs, "campaign");
    let variant = value(pairs, "variant");
    let chosen = match shown {
        Ok((_, _, c)) => c.as_ref(),
        Err(_) => None,
    };
    let others: String = pairs
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "team" | "campaign" | "variant"))
        .map(|(k, v)| format!("&{k}={}", escape(v)))
        .collect();
    let month_start = today.with_day(1).unwrap_or(today);
    let presets = [
        ("Last 7 days", today - Duration::days(6)),
        ("Last 30 days", today - Duration::days(29)),
        ("This month", month_start),
    ];
    html! {
        form.dashboard-filters method="get" action="/dashboard" {
            div.field {
                label for="from" { "From" }
                input #from type="date" name="from" value=(from);
            }
            div.field {
                label for="to" { "To" }
                input #to type="date" name="to" value=(to);
            }
            div.field {
                label for="team" { "Team" }
                select #team name="team" {
                    option value="" { "All teams" }
                    @for t in &state.api.conversation.team {
                        option value=(t.id) selected[team == Some(t.id.as_str())] { (t.name) }
                    }
                    @if let Some(t) = team.filter(|t| !state.api.conversation.team.iter().any(|x| x.id == *t)) {
                        option value=(t) selected { (t) }
                    }
                }
            }
            div.field {
                label for="campaign" { "Campaign" }
                select #campaign name="campaign" {
                    option value="" { "All campaigns" }
                    @for c in campaigns {
                        option value=(c.id) selected[campaign == Some(c.id.as_str())] { (c.name) }
                    }
                    @if let Some(c) = campaign.filter(|c| !campaigns.iter().any(|x| x.id == *c)) {
                        option value=(c) selected { (chosen.map_or(c, |r| r.name.as_str())) }
                    }
                }
            }
            @if let Some(record) = chosen {
                div.field {
                    label for="variant" { "Variant" }
                    select #variant name="variant" {
                        option value="" { "All variants" }
                        @for v in &record.variants {
                            option value=(v.id) selected[variant == Some(v.id.as_str())] { (v.id) }
                        }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        nav.presets aria-label="Period" {
            ul {
                @for (label, start) in presets {
                    @let current = from == start.to_string() && to == today.to_string();
                    li {
                        a href={ "/dashboard?from=" (start) "&to=" (today) (others) }
                            aria-current=[current.then_some("true")] { (label) }
                    }
                }
            }
        }
    }
}

fn long_date(d: NaiveDate) -> String {
    d.format("%-d %B %Y").to_string()
}

/// What the numbers cover, in words.
fn period_line(
    query: &SummaryQuery,
    campaign: Option<&CampaignRecord>,
    state: &WebState,
) -> Markup {
    let days = (query.to - query.from).num_days() + 1;
    let team = query.team.as_deref().map(|id| {
        state
            .api
            .conversation
            .team
            .iter()
            .find(|t| t.id == id)
            .map_or(id.to_string(), |t| t.name.clone())
    });
    let campaign_name = query
        .campaign
        .as_deref()
        .map(|id| campaign.map_or(id.to_string(), |c| c.name.clone()));
    html! {
        p.period {
            (long_date(query.from)) " to " (long_date(query.to))
            " (" (days) @if days == 1 { " day" } @else { " days" } ", UTC)"
            "; " (team.map_or("all teams".to_string(), |t| format!("team {t}")))
            "; " (campaign_name.map_or("all campaigns".to_string(), |c| format!("campaign {c}")))
            @if let Some(v) = &query.variant { ", variant " (v) }
            "."
        }
    }
}

/// A share in words: "50%", or "no data" when nothing was sent.
fn share(rate: &Rate) -> String {
    rate.value.map_or("no data".to_string(), chart::percent)
}

/// Money in the configured currency: "EUR 0.30".
fn money(amount: f64, currency: &str) -> String {
    if amount > 0.0 && amount < 0.01 {
        format!("{currency} {amount:.4}")
    } else {
        format!("{currency} {amount:.2}")
    }
}

fn seconds(s: Option<u64>) -> String {
    s.map_or("no data".to_string(), |s| chart::duration(s as f64))
}

/// The five metrics, each headed by its name, with its counts.
fn metrics(s: &Summary, currency: &str) -> Markup {
    let rate = |id: &str, name: &str, r: &Rate, counted: &str| {
        html! {
            section.metric aria-labelledby=(id) {
                h2 #(id) { (name) }
                p.value { (share(r)) }
                p.counts {
                    @if r.denominator == 0 {
                        "No texts were sent in this period."
                    } @else {
                        (r.numerator) " " (counted) " of " (r.denominator)
                        @if r.denominator == 1 { " contact texted" } @else { " contacts texted" }
                    }
                }
            }
        }
    };
    let ttfr = &s.time_to_first_response;
    let filtered_by_campaign = s.query.campaign.is_some();
    let cost = &s.cost_per_outcome;
    html! {
        div.metrics {
            (rate("m-reply", "Reply rate", &s.reply_rate, "replied"))
            section.metric.ttfr aria-labelledby="m-ttfr" {
                h2 #m-ttfr { "Time to first response" }
                p.value { (seconds(ttfr.overall.median_s)) @if ttfr.overall.median_s.is_some() { " median" } }
                @if filtered_by_campaign {
                    p.counts { "Not counted by campaign: response times are kept by team." }
                } @else if ttfr.overall.count == 0 && ttfr.person.count == 0 {
                    p.counts { "No first responses in this period." }
                } @else {
                    (response_table("Time to first response", ttfr_rows(s)))
                }
            }
            (rate("m-conversion", "Conversion rate", &s.conversion_rate, "converted"))
            (rate("m-optout", "Opt-out rate", &s.opt_out_rate, "opted out"))
            section.metric aria-labelledby="m-cost" {
                h2 #m-cost { "Cost per outcome" }
                p.value {
                    @match cost.value {
                        Some(v) => (money(v, currency)),
                        None => "no data",
                    }
                }
                p.counts {
                    (money(cost.numerator, currency)) " for " (cost.parts)
                    @if cost.parts == 1 { " part" } @else { " parts" } " sent, "
                    @match cost.denominator {
                        0 => "no conversions",
                        1 => "over 1 conversion",
                        n => { "over " (n) " conversions" },
                    }
                }
            }
        }
    }
}

/// The four measures of time to first response.
fn ttfr_rows(s: &Summary) -> [(&'static str, Distribution); 4] {
    let t = &s.time_to_first_response;
    [
        ("Overall", t.overall),
        ("In business hours", t.business_hours),
        ("A person's first reply", t.person),
        ("A person's, in business hours", t.person_business_hours),
    ]
}

fn response_table(caption: &str, rows: [(&'static str, Distribution); 4]) -> Markup {
    html! {
        div.chart-table.ttfr-table tabindex="0" role="region" aria-label={ (caption) ", the numbers" } {
            table {
                caption.visually-hidden { (caption) }
                thead { tr { th scope="col" { "Measure" } th scope="col" { "Median" } th scope="col" { abbr title="90th percentile" { "90th pct." } } th scope="col" { "Waits" } } }
                tbody {
                    @for (name, d) in rows {
                        tr { th scope="row" { (name) } td { (seconds(d.median_s)) } td { (seconds(d.p90_s)) } td { (d.count) } }
                    }
                }
            }
        }
    }
}

/// A chart and its table in a figure; "no data" in words when it has none.
fn figure(id: &str, heading: &str, chart: Option<&BarChart>, table: Markup, empty: &str) -> Markup {
    html! {
        section.chart-box aria-labelledby=(id) {
            h2 #(id) { (heading) }
            @match chart {
                Some(c) => {
                    figure {
                        (PreEscaped(c.svg()))
                        (table)
                    }
                }
                None => p.empty { (empty) },
            }
        }
    }
}

/// (a) Replies and opt-outs per day (or week).
fn per_day(bins: &[Bin]) -> Markup {
    let daily = bins.iter().all(|b| b.from == b.to);
    let (heading, unit) = if daily {
        ("Replies and opt-outs per day", "Day")
    } else {
        ("Replies and opt-outs per week", "Week from")
    };
    let any = bins.iter().any(|b| b.replied > 0 || b.opted_out > 0);
    let chart = any.then(|| BarChart {
        id: "chart-daily".into(),
        title: heading.into(),
        description: format!(
            "Contacts who replied to, or opted out after, the texts of each {}: {} bars.",
            if daily { "day" } else { "week" },
            bins.len()
        ),
        categories: bins
            .iter()
            .map(|b| Category {
                axis: b.from.format("%b %-d").to_string(),
                full: if daily {
                    long_date(b.from)
                } else {
                    format!("{} to {}", long_date(b.from), long_date(b.to))
                },
            })
            .collect(),
        series: vec![
            Series {
                name: "Replies".into(),
                values: bins.iter().map(|b| Some(b.replied as f64)).collect(),
            },
            Series {
                name: "Opt-outs".into(),
                values: bins.iter().map(|b| Some(b.opted_out as f64)).collect(),
            },
        ],
        unit: Unit::Count,
        references: Vec::new(),
    });
    let table = html! {
        div.chart-table tabindex="0" role="region" aria-label={ (heading) ", the numbers" } {
            table {
                caption.visually-hidden { (heading) }
                thead { tr { th scope="col" { (unit) } th scope="col" { "Replies" } th scope="col" { "Opt-outs" } } }
                tbody {
                    @for b in bins {
                        tr { th scope="row" { (b.from) } td { (b.replied) } td { (b.opted_out) } }
                    }
                }
            }
        }
    };
    figure(
        "chart-daily-h",
        heading,
        chart.as_ref(),
        table,
        "No replies or opt-outs in this period: no data.",
    )
}

/// The response standards the chart draws: the chosen team's, else each
/// configured one (teams with the same standard share a line).
fn standards(state: &WebState, team: Option<&str>) -> Vec<Reference> {
    let mut by_value: Vec<(u64, Vec<String>)> = Vec::new();
    for t in &state.api.conversation.team {
        if team.is_some_and(|id| id != t.id) {
            continue;
        }
        let s = t.response_standard.as_secs();
        match by_value.iter_mut().find(|(v, _)| *v == s) {
            Some((_, names)) => names.push(t.name.clone()),
            None => by_value.push((s, vec![t.name.clone()])),
        }
    }
    let one = by_value.len() == 1;
    by_value
        .into_iter()
        .map(|(s, names)| Reference {
            value: s as f64,
            label: if one {
                format!("Standard {}", chart::duration(s as f64))
            } else {
                format!("{}: {}", names.join(", "), chart::duration(s as f64))
            },
        })
        .collect()
}

/// (b) Time to first response against the response standard.
fn response_chart(state: &WebState, query: &SummaryQuery, s: &Summary) -> Markup {
    let heading = "Time to first response against the standard";
    let rows = ttfr_rows(s);
    let references = standards(state, query.team.as_deref());
    let any = rows.iter().any(|(_, d)| d.count > 0);
    let chart = any.then(|| BarChart {
        id: "chart-ttfr".into(),
        title: heading.into(),
        description: format!(
            "Median and 90th percentile of the time to first response, overall and in \
             business hours, and the same for a person's first reply; {}.",
            if references.is_empty() {
                "no team has a response standard".to_string()
            } else {
                format!(
                    "the dashed line is the response standard ({})",
                    references
                        .iter()
                        .map(|r| r.label.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
        categories: vec![
            cat("Overall", "Overall"),
            cat("Business", "In business hours"),
            cat("Person", "A person's first reply"),
            cat("Person, bus.", "A person's, in business hours"),
        ],
        series: vec![
            Series {
                name: "Median".into(),
                values: rows
                    .iter()
                    .map(|(_, d)| d.median_s.map(|v| v as f64))
                    .collect(),
            },
            Series {
                name: "90th percentile".into(),
                values: rows
                    .iter()
                    .map(|(_, d)| d.p90_s.map(|v| v as f64))
                    .collect(),
            },
        ],
        unit: Unit::Seconds,
        references,
    });
    let empty = if query.campaign.is_some() {
        "Response times are kept by team, not by campaign: choose all campaigns to see them."
    } else {
        "No first responses in this period: no data."
    };
    figure(
        "chart-ttfr-h",
        heading,
        chart.as_ref(),
        response_table(heading, rows),
        empty,
    )
}

/// The ranges the distribution chart counts waits in: upper bounds in
/// seconds (the last is open), with their labels.
const WAIT_RANGES: [(u64, &str, &str); 8] = [
    (60, "<1 min", "under a minute"),
    (300, "1-5 min", "1 to 5 minutes"),
    (600, "5-10 min", "5 to 10 minutes"),
    (900, "10-15 min", "10 to 15 minutes"),
    (1800, "15-30 min", "15 to 30 minutes"),
    (3600, "30-60 min", "30 to 60 minutes"),
    (4 * 3600, "1-4 h", "1 to 4 hours"),
    (u64::MAX, ">4 h", "over 4 hours"),
];

/// How many waits fall in each of [`WAIT_RANGES`] (a bucket counts in the
/// range its middle falls in).
fn wait_counts(waits: &Histogram) -> [u64; WAIT_RANGES.len()] {
    let mut counts = [0u64; WAIT_RANGES.len()];
    for (&bucket, &n) in &waits.0 {
        let seconds = Histogram::value(bucket);
        let range = WAIT_RANGES
            .iter()
            .position(|(upper, _, _)| seconds < *upper)
            .unwrap_or(WAIT_RANGES.len() - 1);
        counts[range] += n;
    }
    counts
}

/// (b2) The distribution of the time to first response (in business
/// hours) against the response standard: the ranges within it in one
/// colour, those over it in another, when one standard applies (the chosen
/// team's, or the one all teams share).
fn distribution_chart(state: &WebState, query: &SummaryQuery, waits: &Histogram) -> Markup {
    let heading = "Distribution of time to first response";
    let counts = wait_counts(waits);
    let total: u64 = counts.iter().sum();
    let standard = match standards(state, query.team.as_deref()).as_slice() {
        [one] => Some(one.value as u64),
        _ => None,
    };
    // A range is within the standard when its upper bound is.
    let within = |i: usize| standard.is_some_and(|s| WAIT_RANGES[i].0 <= s);
    let values = |pick: &dyn Fn(usize) -> bool| -> Vec<Option<f64>> {
        (0..counts.len())
            .map(|i| pick(i).then_some(counts[i] as f64))
            .collect()
    };
    let series = match standard {
        Some(s) => vec![
            Series {
                name: format!("Within {}", chart::duration(s as f64)),
                values: values(&|i| within(i)),
            },
            Series {
                name: format!("Over {}", chart::duration(s as f64)),
                values: values(&|i| !within(i)),
            },
        ],
        None => vec![Series {
            name: "Waits".into(),
            values: values(&|_| true),
        }],
    };
    let inside: u64 = (0..counts.len())
        .filter(|i| within(*i))
        .map(|i| counts[i])
        .sum();
    let summary = match standard {
        Some(s) => format!(
            "{inside} of {total} first responses came within the response standard ({}), in business hours.",
            chart::duration(s as f64)
        ),
        None => format!(
            "{total} first responses, by their wait in business hours (the teams' response standards differ: choose a team to compare with its standard)."
        ),
    };
    let chart = (total > 0).then(|| BarChart {
        id: "chart-waits".into(),
        title: heading.into(),
        description: summary.clone(),
        categories: WAIT_RANGES
            .iter()
            .map(|(_, axis, full)| cat(axis, full))
            .collect(),
        series,
        unit: Unit::Count,
        references: Vec::new(),
    });
    let table = html! {
        div.chart-table tabindex="0" role="region" aria-label={ (heading) ", the numbers" } {
            table {
                caption { (summary) }
                thead { tr { th scope="col" { "Wait" } th scope="col" { "First responses" } } }
                tbody {
                    @for (i, (_, _, full)) in WAIT_RANGES.iter().enumerate() {
                        tr { th scope="row" { (full) } td { (counts[i]) } }
                    }
                }
            }
        }
    };
    let empty = if query.campaign.is_some() {
        "Response times are kept by team, not by campaign: choose all campaigns to see them."
    } else {
        "No first responses in this period: no data."
    };
    figure("chart-waits-h", heading, chart.as_ref(), table, empty)
}

fn cat(axis: &str, full: &str) -> Category {
    Category {
        axis: axis.into(),
        full: full.into(),
    }
}

/// (c) Conversion by variant of the chosen campaign.
fn variant_chart(
    query: &SummaryQuery,
    campaign: Option<&CampaignRecord>,
    variants: &[(String, Rate)],
) -> Markup {
    let heading = "Conversion by variant";
    let Some(campaign) = campaign.filter(|_| query.campaign.is_some()) else {
        return html! {
            section.chart-box aria-labelledby="chart-variant-h" {
                h2 #chart-variant-h { (heading) }
                p.empty { "Choose a campaign above to compare its variants." }
            }
        };
    };
    let any = variants.iter().any(|(_, r)| r.denominator > 0);
    let chart = any.then(|| BarChart {
        id: "chart-variant".into(),
        title: format!("{heading}: {}", campaign.name),
        description: format!(
            "Conversion rate of each of the {} variants of campaign {}.",
            variants.len(),
            campaign.name
        ),
        categories: variants
            .iter()
            .map(|(v, _)| cat(v, &format!("Variant {v}")))
            .collect(),
        series: vec![Series {
            name: "Conversion rate".into(),
            values: variants.iter().map(|(_, r)| r.value).collect(),
        }],
        unit: Unit::Share,
        references: Vec::new(),
    });
    let table = html! {
        div.chart-table tabindex="0" role="region" aria-label={ (heading) ", the numbers" } {
            table {
                caption.visually-hidden { (heading) }
                thead { tr { th scope="col" { "Variant" } th scope="col" { "Rate" } th scope="col" { "Converted" } th scope="col" { "Texted" } } }
                tbody {
                    @for (v, r) in variants {
                        tr { th scope="row" { (v) } td { (share(r)) } td { (r.numerator) } td { (r.denominator) } }
                    }
                }
            }
        }
    };
    figure(
        "chart-variant-h",
        heading,
        chart.as_ref(),
        table,
        "No texts of this campaign were sent in this period: no data.",
    )
}
