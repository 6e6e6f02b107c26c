//! The dashboard through `Router::oneshot` over the shared rig: metric
//! facts recorded in the store as the engine records them, the page's
//! numbers checked against counts made by hand here, its SVG parsed as XML
//! and its bars checked against the same counts, the filters narrowing
//! them, an empty period in words, bad filters in words. The clock is the
//! test's (the default period and the presets are counted from it).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use common::rig::{config, Rig};
use smsgate::api::{ApiToken, Scope};
use smsgate::conversation::metrics::{Counting, Fact};
use smsgate::store::users::{hash_password, Role, UserRecord};
use smsgate::store::Store;
use smsgate::web::{self, WebConfig, WebState};
use smsgate::webhook::clock::Clock;

const PASSWORD: &str = "correct horse battery";
const HOST: &str = "gw.lan:8080";
const ADMIN: &str = "dashboard-admin-token";

/// The test's "now": Thursday 5 March 2026, noon UTC.
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 5, 12, 0, 0).unwrap()
    }
}

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0).unwrap()
}

struct Gateway {
    rig: Rig,
    app: Router,
    cookie: String,
    /// The seeded campaign's id.
    campaign: String,
}

struct Page {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

impl Gateway {
    async fn start() -> Gateway {
        let rig = Rig::new(
            "web-dashboard",
            &config(
                "[conversation]\ncurrency = \"EUR\"\nreply_window = \"24h\"\n\
                 [[conversation.team]]\nid = \"support\"\nname = \"Support\"\nresponse_standard = \"10m\"\n\
                 [[conversation.team]]\nid = \"sales\"\nname = \"Sales\"\nresponse_standard = \"30m\"\n",
            ),
            vec![ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin])],
        );
        // A campaign with variants a and b, through the API.
        let created = rig
            .call(
                Method::POST,
                "/v1/campaigns",
                Some(ADMIN),
                Some(&json!({
                    "name": "Spring checkups",
                    "recipients": {"numbers": ["+4915110000001", "+4915110000002"]},
                    "variants": [
                        {"id": "a", "template": "Time for your checkup?"},
                        {"id": "b", "template": "Book your checkup today"}
                    ],
                    "category": "transactional"
                })),
                &[],
            )
            .await;
        assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text());
        let campaign = created.json()["id"].as_str().unwrap().to_string();
        let web = WebState::new(
            rig.state.clone(),
            WebConfig::default(),
            Arc::new(FixedClock),
        );
        let app = web::app(rig.state.clone(), web);
        let now = Utc::now();
        let user = UserRecord {
            name: "ana".into(),
            role: Role::Agent,
            team: None,
            password: hash_password(PASSWORD).unwrap(),
            created_at: now,
            updated_at: now,
        };
        assert!(rig.store.create_user(&user).await.unwrap());
        let mut g = Gateway {
            rig,
            app,
            cookie: String::new(),
            campaign,
        };
        let signed_in = g
            .request(
                Request::post("/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header("sec-fetch-site", "same-origin")
                    .body(Body::from(format!(
                        "username=ana&password={}",
                        PASSWORD.replace(' ', "+")
                    )))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        g
    }

    async fn request(&mut self, mut request: Request<Body>) -> Page {
        request
            .headers_mut()
            .insert(header::HOST, HOST.parse().unwrap());
        if !self.cookie.is_empty() {
            request
                .headers_mut()
                .insert(header::COOKIE, self.cookie.parse().unwrap());
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        if let Some(c) = response.headers().get(header::SET_COOKIE) {
            self.cookie = c.to_str().unwrap().split(';').next().unwrap().to_string();
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            location,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }
}

/// The facts the engine would have counted, recorded once each.
async fn record(store: &Store, facts: &[Fact]) {
    let counting = Counting::default();
    let sequenced: Vec<(u64, Fact)> = (0u64..).zip(facts.iter().cloned()).collect();
    let last = sequenced.len().saturating_sub(1) as u64;
    let counted = store.record_metrics(&sequenced, last, &counting).unwrap();
    assert_eq!(counted, facts.len());
}

fn sent(
    contact: &str,
    when: DateTime<Utc>,
    id: &str,
    dims: (&str, &str, &str),
    parts: u32,
) -> Fact {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Fact::Sent {
        contact: contact.into(),
        at: when,
        message_id: id.into(),
        campaign: some(dims.0),
        variant: some(dims.1),
        team: some(dims.2),
        parts,
        // The modem's cost_per_part: 0.05.
        cost: Some(f64::from(parts) * 0.05),
    }
}

fn inbound(contact: &str, when: DateTime<Utc>, opt_out: bool) -> Fact {
    Fact::Inbound {
        contact: contact.into(),
        at: when,
        opt_out,
    }
}

const A: &str = "+4915110000001";
const B: &str = "+4915110000002";
const C: &str = "+4915110000003";
const D: &str = "+4915110000004";
const E: &str = "+4915110000005";
const F: &str = "+4915110000006";

/// Six contacts over 2 to 4 March 2026 (see each line). By hand, all of
/// them: 6 texted; A, D, E, F replied (B after the window, C's STOP is
/// not a reply): 4; C opted out: 1; D converted: 1; parts 1+2+1+1+1+1+1 =
/// 8 at 0.05 = EUR 0.40. First responses: D 60 s by a person, E 1,200 s by
/// automation. Per day (a reply counts on its outbound's day): replies 2
/// (A, F), 1 (D), 1 (E); opt-outs 1 (C), 0, 0.
async fn seed(g: &Gateway) {
    let cmp = g.campaign.as_str();
    record(
        &g.rig.store,
        &[
            // A (campaign a, support) replies twice on the 2nd.
            sent(A, at(2, 9, 0), "m1", (cmp, "a", "support"), 1),
            inbound(A, at(2, 9, 10), false),
            inbound(A, at(2, 15, 0), false),
            // B (b, two parts) replies 25 hours later: after the window.
            sent(B, at(2, 9, 0), "m2", (cmp, "b", "support"), 2),
            inbound(B, at(3, 10, 0), false),
            // C (a) texts STOP.
            sent(C, at(2, 9, 0), "m3", (cmp, "a", "support"), 1),
            inbound(C, at(2, 9, 1), true),
            // D (b): texted on the 2nd and the 3rd, replies on the 3rd (24.5
            // hours after the first: only the 3rd's counts), a person
            // answers in a minute, and D books.
            sent(D, at(2, 9, 0), "m4", (cmp, "b", "support"), 1),
            sent(D, at(3, 9, 0), "m5", (cmp, "b", "support"), 1),
            inbound(D, at(3, 9, 30), false),
            Fact::FirstResponse {
                contact: D.into(),
                at: at(3, 9, 31),
                team: Some("support".into()),
                waited_from: Some(at(3, 9, 30)),
                business_seconds: 60,
                // A person answered: their clock ends too.
                person_waited_from: Some(at(3, 9, 30)),
                person_business_seconds: 60,
            },
            Fact::Outcome {
                contact: D.into(),
                at: at(3, 9, 32),
                name: "appointment_booked".into(),
                campaign: Some(cmp.into()),
                variant: Some("b".into()),
                team: Some("support".into()),
                message_id: Some("m5".into()),
            },
            // E (sales, no campaign) on the 4th; automation answers in 20 min.
            sent(E, at(4, 9, 0), "m6", ("", "", "sales"), 1),
            inbound(E, at(4, 9, 5), false),
            Fact::FirstResponse {
                contact: E.into(),
                at: at(4, 9, 25),
                team: Some("sales".into()),
                waited_from: Some(at(4, 9, 5)),
                business_seconds: 1200,
                // Automation answered: a person's clock runs on.
                person_waited_from: None,
                person_business_seconds: 0,
            },
            // F (support, no campaign) replies on the 2nd.
            sent(F, at(2, 9, 0), "m7", ("", "", "support"), 1),
            inbound(F, at(2, 12, 0), false),
        ],
    )
    .await;
}

/// The text of the metric card headed `name`, tags removed.
fn card(body: &str, name: &str) -> String {
    let heading = format!(">{name}</h2>");
    let start = body
        .find(&heading)
        .unwrap_or_else(|| panic!("no {name} card"));
    let end = body[start..].find("</section>").unwrap() + start;
    text(&body[start + heading.len()..end])
}

/// Markup without its tags, whitespace collapsed.
fn text(markup: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in markup.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#39;", "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

const NAMES: [&str; 5] = [
    "Reply rate",
    "Time to first response",
    "Conversion rate",
    "Opt-out rate",
    "Cost per outcome",
];

#[tokio::test]
async fn the_five_metrics_show_the_hand_counted_numbers() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    let page = g.get("/dashboard?from=2026-03-02&to=2026-03-04").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for name in NAMES {
        assert!(page.body.contains(&format!(">{name}</h2>")), "{name}");
    }
    let b = &page.body;
    assert_eq!(
        card(b, "Reply rate"),
        "66.7% 4 replied of 6 contacts texted"
    );
    assert_eq!(
        card(b, "Conversion rate"),
        "16.7% 1 converted of 6 contacts texted"
    );
    assert_eq!(
        card(b, "Opt-out rate"),
        "16.7% 1 opted out of 6 contacts texted"
    );
    assert_eq!(
        card(b, "Cost per outcome"),
        "EUR 0.40 EUR 0.40 for 8 parts sent, over 1 conversion"
    );
    // Waits of 60 s (D, a person) and 1,200 s (E, automation): the median
    // is D's; the 90th percentile E's, in its histogram bucket (1,208 s).
    let ttfr = card(b, "Time to first response");
    assert!(ttfr.starts_with("1 min median"), "{ttfr}");
    for row in [
        "Overall 1 min 20.1 min 2",
        "In business hours 1 min 20.1 min 2",
        "A person's first reply 1 min 1 min 1",
        "A person's, in business hours 1 min 1 min 1",
    ] {
        assert!(ttfr.contains(row), "{row} in {ttfr}");
    }
    assert!(
        text(b).contains("2 March 2026 to 4 March 2026 (3 days, UTC); all teams; all campaigns.")
    );
}

#[tokio::test]
async fn filters_narrow_the_numbers() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    // Support only: E (sales) leaves; A, D and F replied of five.
    let page = g
        .get("/dashboard?from=2026-03-02&to=2026-03-04&team=support&campaign=")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        card(&page.body, "Reply rate"),
        "60% 3 replied of 5 contacts texted"
    );
    let ttfr = card(&page.body, "Time to first response");
    assert!(ttfr.contains("Overall 1 min 1 min 1"), "{ttfr}");
    assert!(page
        .body
        .contains("<option value=\"support\" selected>Support</option>"));
    // The campaign: A B C D; A and D replied, D converted; its variants
    // are offered, and response times say why they are not counted here.
    let cmp = g.campaign.clone();
    let page = g
        .get(&format!(
            "/dashboard?from=2026-03-02&to=2026-03-04&campaign={cmp}"
        ))
        .await;
    assert_eq!(
        card(&page.body, "Reply rate"),
        "50% 2 replied of 4 contacts texted"
    );
    assert_eq!(
        card(&page.body, "Conversion rate"),
        "25% 1 converted of 4 contacts texted"
    );
    assert!(card(&page.body, "Time to first response").contains("Not counted by campaign"));
    assert!(page.body.contains("<label for=\"variant\">Variant</label>"));
    assert!(text(&page.body).contains("campaign Spring checkups."));
    // Variant b: B and D, D replied and converted.
    let page = g
        .get(&format!(
            "/dashboard?from=2026-03-02&to=2026-03-04&campaign={cmp}&variant=b"
        ))
        .await;
    assert_eq!(
        card(&page.body, "Reply rate"),
        "50% 1 replied of 2 contacts texted"
    );
    assert_eq!(
        card(&page.body, "Conversion rate"),
        "50% 1 converted of 2 contacts texted"
    );
    assert!(page
        .body
        .contains("<option value=\"b\" selected>b</option>"));
    // A variant left in the form after the campaign went back to "All" is
    // dropped, not refused: all six again.
    let page = g
        .get("/dashboard?from=2026-03-02&to=2026-03-04&campaign=&variant=b")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        card(&page.body, "Reply rate"),
        "66.7% 4 replied of 6 contacts texted"
    );
    // One day, the 3rd: its one outbound went to D, who replied.
    let page = g.get("/dashboard?from=2026-03-03&to=2026-03-03").await;
    assert_eq!(
        card(&page.body, "Reply rate"),
        "100% 1 replied of 1 contact texted"
    );
}

#[tokio::test]
async fn an_empty_period_says_no_data_and_draws_nothing() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    let page = g.get("/dashboard?from=2026-01-01&to=2026-01-31").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for name in ["Reply rate", "Conversion rate", "Opt-out rate"] {
        assert_eq!(
            card(&page.body, name),
            "no data No texts were sent in this period.",
            "{name}"
        );
    }
    assert_eq!(
        card(&page.body, "Cost per outcome"),
        "no data EUR 0.00 for 0 parts sent, no conversions"
    );
    assert_eq!(
        card(&page.body, "Time to first response"),
        "no data No first responses in this period."
    );
    assert!(!page.body.contains("<svg"));
    assert!(page
        .body
        .contains("No replies or opt-outs in this period: no data."));
    assert!(page
        .body
        .contains("Choose a campaign above to compare its variants."));
}

#[tokio::test]
async fn the_default_period_and_the_presets_count_from_the_clock() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    // No dates: the last 30 days up to today (5 March), as the API's.
    let page = g.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"from\" value=\"2026-02-04\""));
    assert!(page.body.contains("name=\"to\" value=\"2026-03-05\""));
    assert_eq!(
        card(&page.body, "Reply rate"),
        "66.7% 4 replied of 6 contacts texted"
    );
    // That is the "Last 30 days" preset; the presets keep the team.
    assert!(page
        .body
        .contains("<a href=\"/dashboard?from=2026-02-04&amp;to=2026-03-05\" aria-current=\"true\">Last 30 days</a>"));
    let page = g.get("/dashboard?team=sales").await;
    for (label, from) in [("Last 7 days", "2026-02-27"), ("This month", "2026-03-01")] {
        let link = format!(
            "<a href=\"/dashboard?from={from}&amp;to=2026-03-05&amp;team=sales\">{label}</a>"
        );
        assert!(page.body.contains(&link), "{link}");
    }
    // Signed out: the sign-in page, and back here after.
    g.cookie.clear();
    let out = g.get("/dashboard").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/login?next=%2Fdashboard"));
}

#[tokio::test]
async fn bad_filters_are_plain_words_on_the_page() {
    let mut g = Gateway::start().await;
    for (query, says) in [
        (
            "from=2026-03-05&to=2026-03-01",
            "From (2026-03-05) is after to (2026-03-01).",
        ),
        ("from=yesterday", "From must be a date YYYY-MM-DD"),
        (
            "from=2020-01-01&to=2026-01-01",
            "A summary covers at most 731 days",
        ),
        ("colour=red", "Unknown query parameter"),
    ] {
        let page = g.get(&format!("/dashboard?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(page.body.contains("role=\"alert\""), "{query}");
        assert!(page.body.contains(says), "{query}: {}", page.body);
        assert!(!page.body.contains("\"code\""), "{query}: no problem JSON");
        // The form is still there to fix it.
        assert!(
            page.body.contains("<button type=\"submit\">Show</button>"),
            "{query}"
        );
    }
}

// ---- The charts -------------------------------------------------------

/// An XML element, as far as a test needs it.
#[derive(Debug)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<El>,
    text: String,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &str, out: &mut Vec<&'a El>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.all(name, out);
        }
    }

    fn find(&self, name: &str) -> Vec<&El> {
        let mut out = Vec::new();
        self.all(name, &mut out);
        out
    }

    fn num(&self, name: &str) -> f64 {
        self.attr(name)
            .unwrap_or_else(|| panic!("{} has no {name}", self.name))
            .parse()
            .unwrap()
    }
}

/// A strict reader of the XML subset SVG uses (elements, quoted
/// attributes, text, the five entities and numeric references): it panics
/// on anything not well-formed.
fn parse_xml(xml: &str) -> El {
    fn entity(s: &str) -> usize {
        let end = s.find(';').expect("an entity ends with ;");
        let name = &s[1..end];
        assert!(
            matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit())),
            "unknown entity &{name};"
        );
        end + 1
    }
    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    let mut i = 0;
    let bytes = xml.as_bytes();
    while i < xml.len() {
        let rest = &xml[i..];
        if let Some(close) = rest.strip_prefix("</") {
            let end = close.find('>').expect("a closing tag ends");
            let name = &close[..end];
            let el = stack.pop().expect("a closing tag has its opening");
            assert_eq!(el.name, name, "tags nest");
            i += 2 + end + 1;
            match stack.last_mut() {
                Some(parent) => parent.children.push(el),
                None => {
                    assert!(root.is_none(), "one root");
                    root = Some(el);
                }
            }
        } else if rest.starts_with('<') {
            let mut j = 1;
            while j < rest.len() && (bytes[i + j].is_ascii_alphanumeric() || bytes[i + j] == b'-') {
                j += 1;
            }
            let mut el = El {
                name: rest[1..j].to_string(),
                attrs: Vec::new(),
                children: Vec::new(),
                text: String::new(),
            };
            assert!(!el.name.is_empty(), "an element has a name at {i}");
            let closed;
            loop {
                let r = &rest[j..];
                let trimmed = r.trim_start();
                j += r.len() - trimmed.len();
                if trimmed.starts_with("/>") {
                    j += 2;
                    closed = true;
                    break;
                }
                if trimmed.starts_with('>') {
                    j += 1;
                    closed = false;
                    break;
                }
                let eq = trimmed.find("=\"").expect("attributes are name=\"value\"");
                let name = &trimmed[..eq];
                assert!(
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                    "attribute name {name:?}"
                );
                let value_start = eq + 2;
                let value_len = trimmed[value_start..].find('"').expect("a value ends");
                let value = &trimmed[value_start..value_start + value_len];
                assert!(!value.contains('<'), "no < in a value");
                let mut k = 0;
                while let Some(amp) = value[k..].find('&') {
                    k += amp + entity(&value[k + amp..]);
                }
                assert!(el.attr(name).is_none(), "attribute {name} given twice");
                el.attrs.push((name.to_string(), unescape(value)));
                j += value_start + value_len + 1;
            }
            i += j;
            if closed {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            } else {
                stack.push(el);
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let t = &rest[..end];
            let mut k = 0;
            while let Some(amp) = t[k..].find('&') {
                k += amp + entity(&t[k + amp..]);
            }
            let parent = stack.last_mut().expect("text inside the root");
            parent.text.push_str(&unescape(t));
            i += end;
        }
    }
    assert!(stack.is_empty(), "every element closed");
    root.expect("a root element")
}

/// The page's charts, parsed.
fn charts(body: &str) -> Vec<El> {
    body.match_indices("<svg")
        .map(|(start, _)| {
            let end = body[start..].find("</svg>").unwrap() + start + "</svg>".len();
            parse_xml(&body[start..end])
        })
        .collect()
}

/// The bars of `series` in `chart`: (value, height).
fn bars(chart: &El, series: &str) -> Vec<(f64, f64)> {
    let group = chart
        .find("g")
        .into_iter()
        .find(|g| g.attr("data-series") == Some(series))
        .unwrap_or_else(|| panic!("no series {series}"));
    group
        .find("rect")
        .iter()
        .map(|r| (r.num("data-value"), r.num("height")))
        .collect()
}

/// Heights proportional to the values, on an axis whose top covers them.
fn assert_scaled(chart: &El, bars: &[(f64, f64)]) {
    let ticks: Vec<f64> = chart
        .find("line")
        .iter()
        .filter_map(|l| l.attr("y1").map(|y| y.parse::<f64>().unwrap()))
        .collect();
    let (top, bottom) = ticks
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(*y), hi.max(*y)));
    let plot = bottom - top;
    let max = bars.iter().map(|b| b.0).fold(0.0, f64::max);
    let (v0, h0) = bars.iter().copied().find(|b| b.0 == max).unwrap();
    assert!(h0 <= plot + 0.05, "the largest bar fits the axis");
    for (v, h) in bars {
        assert!(
            (h - v / v0 * h0).abs() <= 0.15,
            "bar of {v}: {h} against {v0}: {h0}"
        );
    }
}

#[tokio::test]
async fn the_charts_are_well_formed_svg_whose_bars_match_the_data() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    let page = g.get("/dashboard?from=2026-03-02&to=2026-03-04").await;
    let svgs = charts(&page.body);
    assert_eq!(
        svgs.len(),
        3,
        "per day, response times and their distribution; no campaign chosen"
    );
    for svg in &svgs {
        assert_eq!(svg.name, "svg");
        assert_eq!(svg.attr("role"), Some("img"));
        assert_eq!(svg.attr("xmlns"), Some("http://www.w3.org/2000/svg"));
        let title = &svg.find("title")[0];
        assert!(svg
            .attr("aria-labelledby")
            .unwrap()
            .contains(title.attr("id").unwrap()));
        assert!(svg.attr("viewBox").is_some());
    }
    // (a) Replies 2, 1, 1 and opt-outs 1, 0, 0 over the three days.
    let daily = &svgs[0];
    assert_eq!(daily.find("title")[0].text, "Replies and opt-outs per day");
    let replies = bars(daily, "Replies");
    assert_eq!(
        replies.iter().map(|b| b.0).collect::<Vec<_>>(),
        [2.0, 1.0, 1.0]
    );
    let opt_outs = bars(daily, "Opt-outs");
    assert_eq!(
        opt_outs.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1.0, 0.0, 0.0]
    );
    assert_scaled(daily, &[replies.clone(), opt_outs].concat());
    // The same numbers in the table beside it.
    let table = text(
        &page.body[page
            .body
            .find("<caption class=\"visually-hidden\">Replies and opt-outs per day")
            .unwrap()..],
    );
    assert!(
        table.contains("Day Replies Opt-outs 2026-03-02 2 1 2026-03-03 1 0 2026-03-04 1 0"),
        "{table}"
    );
    // (b) Medians 60, 60, 60, 60 s; 90th percentiles 1,208, 1,208, 60, 60;
    // a line at each team's standard (10 and 30 minutes).
    let ttfr = &svgs[1];
    let medians = bars(ttfr, "Median");
    assert_eq!(medians.iter().map(|b| b.0).collect::<Vec<_>>(), [60.0; 4]);
    let p90 = bars(ttfr, "90th percentile");
    assert_eq!(
        p90.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1208.0, 1208.0, 60.0, 60.0]
    );
    assert_scaled(ttfr, &[medians, p90].concat());
    let lines: Vec<(String, String)> = ttfr
        .find("g")
        .iter()
        .filter(|g| g.attr("class") == Some("reference"))
        .map(|g| {
            (
                g.attr("data-value").unwrap().to_string(),
                g.find("text")[0].text.clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("600".to_string(), "Support: 10 min".to_string()),
            ("1800".to_string(), "Sales: 30 min".to_string())
        ]
    );
    // (b2) The waits in business hours by range (the teams' standards
    // differ: one series): D's minute in "1-5 min", E's 20 minutes in
    // "15-30 min".
    let waits = &svgs[2];
    assert_eq!(
        waits.find("title")[0].text,
        "Distribution of time to first response"
    );
    let counts = bars(waits, "Waits");
    assert_eq!(
        counts.iter().map(|b| b.0).collect::<Vec<_>>(),
        [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    assert_scaled(waits, &counts);
    // One team: its standard alone.
    let page = g
        .get("/dashboard?from=2026-03-02&to=2026-03-04&team=support")
        .await;
    assert!(charts(&page.body)[1]
        .find("text")
        .iter()
        .any(|t| t.text == "Standard 10 min"));

    // (c) The campaign's variants: a 0 of 2 (A, C), b 1 of 2 (B, D).
    let cmp = g.campaign.clone();
    let page = g
        .get(&format!(
            "/dashboard?from=2026-03-02&to=2026-03-04&campaign={cmp}"
        ))
        .await;
    let svgs = charts(&page.body);
    let variants = svgs
        .iter()
        .find(|s| s.find("title")[0].text == "Conversion by variant: Spring checkups")
        .expect("the variant chart");
    let conversion = bars(variants, "Conversion rate");
    assert_eq!(
        conversion.iter().map(|b| b.0).collect::<Vec<_>>(),
        [0.0, 0.5]
    );
    assert_scaled(variants, &conversion);
    let labels: Vec<&str> = variants
        .find("text")
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    // An axis up to 60% in steps of 20, each bar's value over it, the
    // variants along the bottom, the legend.
    assert_eq!(
        labels,
        [
            "0%",
            "20%",
            "40%",
            "60%",
            "0%",
            "50%",
            "a",
            "b",
            "Conversion rate"
        ]
    );
    let table = text(
        &page.body[page
            .body
            .find("<caption class=\"visually-hidden\">Conversion by variant")
            .unwrap()..],
    );
    assert!(table.contains("a 0% 0 2 b 50% 1 2"), "{table}");
}

#[tokio::test]
async fn a_year_is_charted_per_week() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    let page = g.get("/dashboard?from=2025-03-06&to=2026-03-05").await;
    assert_eq!(page.status, StatusCode::OK);
    let daily = &charts(&page.body)[0];
    assert_eq!(daily.find("title")[0].text, "Replies and opt-outs per week");
    // 365 days: 52 weeks and a day. The week of 26 Feb to 4 March holds
    // every reply of the seed (contacts counted once a week: 4).
    let replies = bars(daily, "Replies");
    assert_eq!(replies.len(), 53);
    assert_eq!(replies.iter().map(|b| b.0).sum::<f64>(), 4.0);
    assert_eq!(replies[51].0, 4.0);
}

/// The section headed `name`, as text (its chart's title and description,
/// and its table).
fn section(body: &str, name: &str) -> String {
    card(body, name)
}

#[tokio::test]
async fn the_distribution_of_first_responses_is_split_at_the_response_standard() {
    let mut g = Gateway::start().await;
    seed(&g).await;
    // All teams: their standards differ (10 and 30 min), so one series.
    // D waited 60 s (support), E 20 min (sales), in business hours.
    let page = g.get("/dashboard?from=2026-03-02&to=2026-03-04").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let all = section(&page.body, "Distribution of time to first response");
    assert!(
        all.contains("2 first responses, by their wait in business hours"),
        "{all}"
    );
    assert!(all.contains("1 to 5 minutes 1"), "{all}");
    assert!(all.contains("15 to 30 minutes 1"), "{all}");
    assert!(all.contains("under a minute 0"), "{all}");
    // Support: its standard (10 min) splits the ranges; D's minute is
    // within it.
    let page = g
        .get("/dashboard?from=2026-03-02&to=2026-03-04&team=support")
        .await;
    let support = section(&page.body, "Distribution of time to first response");
    assert!(
        support.contains("1 of 1 first responses came within the response standard (10 min)"),
        "{support}"
    );
    assert!(
        support.contains("Within 10 min") && support.contains("Over 10 min"),
        "{support}"
    );
    assert!(support.contains("15 to 30 minutes 0"), "{support}");
    // Sales (30 min): E's 20 minutes are within it too.
    let page = g
        .get("/dashboard?from=2026-03-02&to=2026-03-04&team=sales")
        .await;
    let sales = section(&page.body, "Distribution of time to first response");
    assert!(
        sales.contains("1 of 1 first responses came within the response standard (30 min)"),
        "{sales}"
    );
    // A campaign: response times are kept by team.
    let cmp = g.campaign.clone();
    let page = g
        .get(&format!(
            "/dashboard?from=2026-03-02&to=2026-03-04&campaign={cmp}"
        ))
        .await;
    let by_campaign = section(&page.body, "Distribution of time to first response");
    assert!(by_campaign.contains("kept by team"), "{by_campaign}");
}
