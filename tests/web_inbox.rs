//! The web inbox through `Router::oneshot`: the API's router merged with the
//! pages, a real store in a temporary directory, and a clock the tests move
//! (session expiry and sign-in backoff without sleeping).

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

use common::rig::Rig as ApiRig;
use common::web::{field, form, Page, TestClock};

use smsgate::conversation::{Priority, ThreadState};
use smsgate::store::users::{hash_password, Role, UserRecord};
use smsgate::store::{
    ContactProfile, Direction, InboundPart, MessageFilter, ReceiveOutcome, Store, ThreadChange,
};
use smsgate::web::{self, WebConfig, WebState};
use smsgate::webhook::clock::Clock;

const PASSWORD: &str = "correct horse battery";
const HOST: &str = "gw.lan:8080";

/// The gateway's routes (API and pages) over the shared API rig
/// (`tests/common/rig.rs`: a store in a temporary directory, removed on
/// drop), with a clock the tests move.
struct Rig {
    app: Router,
    store: Store,
    clock: Arc<TestClock>,
    /// The API's state; owns the store's directory.
    api: ApiRig,
}

fn rig_with(settings: WebConfig) -> Rig {
    // Two teams, as a deployment that routes has (the thread page offers
    // them).
    let config = common::rig::config(
        r#"
[[conversation.team]]
id = "support"
name = "Customer support"
response_standard = "10m"
business_hours = "24/7"
time_zone = "UTC"

[[conversation.team]]
id = "billing"
name = "Billing"
response_standard = "1h"
business_hours = "24/7"
time_zone = "UTC"
"#,
    );
    let api = ApiRig::new("web-test", &config, Vec::new());
    // STOP opts out in the receiving transaction, as in the daemon.
    api.store
        .set_reactor(api.state.policy.reactor(), api.state.policy.per_number());
    let clock = Arc::new(TestClock::at(Utc::now()));
    let web = WebState::new(api.state.clone(), settings, clock.clone());
    let app = web::app(api.state.clone(), web);
    Rig {
        app,
        store: api.store.clone(),
        clock,
        api,
    }
}

fn rig() -> Rig {
    rig_with(WebConfig::default())
}

impl Rig {
    async fn add_user(&self, name: &str, role: Role, team: Option<&str>) {
        let now = Utc::now();
        let user = UserRecord {
            name: name.into(),
            role,
            team: team.map(str::to_string),
            password: hash_password(PASSWORD).unwrap(),
            created_at: now,
            updated_at: now,
        };
        assert!(self.store.create_user(&user).await.unwrap());
    }

    /// What the daemon's conversation engine does after an action: apply
    /// the events written so far (a reply's `message.accepted` ends the wait).
    async fn engine_catch_up(&self) {
        let state = &self.api.state;
        smsgate::conversation::engine::Engine::new(
            self.store.clone(),
            state.policy.clone(),
            None,
            state.sms.clone(),
        )
        .catch_up()
        .await
        .unwrap();
    }

    async fn send(&self, request: Request<Body>) -> Page {
        Page::read(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut request = Request::builder().uri(path).header(header::HOST, HOST);
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A form post as a browser on this site sends it.
    async fn post(&self, path: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> Page {
        self.post_with(path, cookie, pairs, &[("sec-fetch-site", "same-origin")])
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        pairs: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        self.send(request.body(Body::from(form(pairs))).unwrap())
            .await
    }

    /// Sign `name` in: the cookie to send back.
    async fn sign_in(&self, name: &str) -> String {
        let page = self
            .post(
                "/login",
                None,
                &[("username", name), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page.set_cookie().split(';').next().unwrap().to_string()
    }

    /// `contact` texts `text` (its thread opens, as the engine does), at `at`.
    async fn inbound(&self, contact: &str, text: &str, at: DateTime<Utc>) -> String {
        let pdu = format!("{contact}:{text}:{}", at.timestamp_micros());
        let outcome = self
            .store
            .receive(InboundPart {
                modem: "m1",
                own_number: "+15550000000",
                raw_pdu: pdu.as_bytes(),
                sender: contact,
                text,
                alphabet: "gsm7",
                network_time: at,
                concat: None,
                error: None,
            })
            .await
            .unwrap();
        let ReceiveOutcome::Complete(message, _) = outcome else {
            panic!("not complete: {outcome:?}");
        };
        self.store
            .change_thread(
                contact,
                ThreadState::Open,
                &[ThreadChange::Inbound {
                    message_id: message.id.clone(),
                    reopen: true,
                    sla_due: Some(at + Duration::minutes(10)),
                }],
                None,
                at,
            )
            .await
            .unwrap();
        message.id
    }

    async fn name(&self, contact: &str, name: &str) {
        let profile = ContactProfile {
            name: Some(name.into()),
            external_id: Some(format!("crm-{}", &contact[contact.len() - 4..])),
            tags: vec!["vip".into()],
            time_zone: Some("America/Chicago".into()),
            ..ContactProfile::default()
        };
        let _ = self.store.set_profile(contact, &profile).await.unwrap();
    }

    /// The outbound messages to `contact`.
    fn outbound(&self, contact: &str) -> Vec<smsgate::store::Message> {
        let filter = MessageFilter {
            contact: Some(contact.to_string()),
            direction: Some(Direction::Outbound),
            ..MessageFilter::default()
        };
        self.store.list(&filter, None, 100).unwrap().items
    }
}

const NAV: [&str; 5] = ["Inbox", "Contacts", "Campaigns", "Dashboard", "Modems"];

fn has_nav(page: &Page) -> bool {
    NAV.iter().all(|label| {
        page.body
            .contains(&format!("href=\"/{}\"", label.to_lowercase()))
            && page.body.contains(&format!(">{label}</a>"))
    })
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_signing_out_ends_the_session() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let home = g.get("/", None).await;
    assert_eq!(
        (home.status, home.location()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let login = g.get("/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.has("<label for=\"username\">Username</label>"));
    assert!(login.has("<label for=\"password\">Password</label>"));
    assert!(login.has(">Sign in</button>"));
    assert!(login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    let wrong = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has("Wrong username or password."));
    assert!(wrong.set_cookie().is_empty());

    let ok = g
        .post(
            "/login",
            None,
            &[
                ("username", "ana"),
                ("password", PASSWORD),
                ("next", "/threads/%2B1555"),
            ],
        )
        .await;
    assert_eq!(
        (ok.status, ok.location()),
        (StatusCode::SEE_OTHER, "/threads/%2B1555")
    );
    let set = ok.set_cookie();
    assert!(set.starts_with("smsgate_session="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let home = g.get("/", Some(&cookie)).await;
    assert_eq!(home.location(), "/inbox");
    let inbox = g.get("/inbox", Some(&cookie)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(has_nav(&inbox));
    assert!(inbox.has(">Sign out</button>"));

    let out = g
        .post("/logout", Some(&cookie), &[("csrf", &inbox.csrf())])
        .await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, "/login?signed_out=1")
    );
    assert!(out.set_cookie().contains("Max-Age=0"));
    let token = cookie.split('=').nth(1).unwrap();
    assert!(
        g.store.session(token).unwrap().is_none(),
        "ended in the store"
    );
    let after = g.get("/inbox?filter=mine", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/login?next=%2Finbox%3Ffilter%3Dmine");
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_config_says_tls_is_in_front() {
    let g = rig_with(WebConfig {
        secure_cookie: true,
        ..WebConfig::default()
    });
    g.add_user("ana", Role::Agent, None).await;
    let ok = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", PASSWORD)],
        )
        .await;
    assert!(ok.set_cookie().contains("; Secure"), "{}", ok.set_cookie());
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time_on_the_injected_clock() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let cookie = g.sign_in("ana").await;
    let token = cookie.split('=').nth(1).unwrap().to_string();
    // Used within 12 hours, twice: still signed in (each use restarts the idle time).
    for _ in 0..2 {
        g.clock.advance(Duration::hours(11) + Duration::minutes(59));
        assert_eq!(g.get("/inbox", Some(&cookie)).await.status, StatusCode::OK);
    }
    g.clock.advance(Duration::hours(12) + Duration::seconds(1));
    let expired = g.get("/inbox", Some(&cookie)).await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.location(), "/login?next=%2Finbox&expired=1");
    assert!(expired.set_cookie().contains("Max-Age=0"));
    assert!(g.store.session(&token).unwrap().is_none());
    let login = g.get(expired.location(), None).await;
    assert!(login.has("signed out after a time without activity"));
    // A post with an expired session is refused in words, not redirected away.
    let cookie = g.sign_in("ana").await;
    let inbox = g.get("/inbox", Some(&cookie)).await;
    g.clock.advance(Duration::hours(13));
    let post = g
        .post("/logout", Some(&cookie), &[("csrf", &inbox.csrf())])
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert!(post.has("signed out after a time without activity"));
}

/// Log lines written while `f` runs on this thread.
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn after_five_failed_sign_ins_a_name_waits_and_no_password_is_logged() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    g.add_user("ben", Role::Agent, None).await;
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Logs(writer.clone()))
        .with_ansi(false)
        .finish();
    let _logs = tracing::subscriber::set_default(subscriber);

    for n in 1..=4 {
        let page = g
            .post(
                "/login",
                None,
                &[
                    ("username", "ana"),
                    ("password", &format!("guess number {n}")),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.has("Wrong username or password.") && !page.has("waits"));
    }
    let fifth = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", "guess number 5")],
        )
        .await;
    assert_eq!(fifth.status, StatusCode::UNAUTHORIZED);
    assert!(fifth.has("this name waits 30 seconds"), "{}", fifth.body);
    // Even the right password waits, and is not checked.
    let waiting = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(waiting.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(waiting.has("Try again in 30 seconds."));
    assert!(waiting.set_cookie().is_empty());
    // Another name is not held up.
    g.sign_in("ben").await;

    g.clock.advance(Duration::seconds(29));
    let still = g
        .post(
            "/login",
            None,
            &[("username", "ANA"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(still.has("Try again in 1 seconds."), "{}", still.body);
    g.clock.advance(Duration::seconds(1));
    // The next failure doubles the wait.
    let sixth = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", "guess number 6")],
        )
        .await;
    assert!(sixth.has("waits 60 seconds"), "{}", sixth.body);
    g.clock.advance(Duration::seconds(60));
    g.sign_in("ana").await;
    // A success forgets the failures.
    let again = g
        .post(
            "/login",
            None,
            &[("username", "ana"), ("password", "guess number 7")],
        )
        .await;
    assert!(again.has("Wrong username or password.") && !again.has("waits"));

    let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let failures = logs
        .lines()
        .filter(|l| l.contains("web sign-in failed"))
        .count();
    assert_eq!(failures, 7, "{logs}");
    assert!(
        logs.contains("user=ana") && logs.contains("failures=5"),
        "{logs}"
    );
    assert!(logs.contains("web sign-in refused: waiting"), "{logs}");
    assert!(
        !logs.contains("guess number") && !logs.contains(PASSWORD),
        "{logs}"
    );
}

#[tokio::test]
async fn an_unknown_name_fails_like_a_wrong_password() {
    let g = rig();
    let page = g
        .post(
            "/login",
            None,
            &[("username", "nobody"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.has("Wrong username or password."));
    assert!(page.has("value=\"nobody\""), "the name typed is kept");
}

#[tokio::test]
async fn every_state_changing_form_needs_the_sessions_csrf_token() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let contact = "+15550100001";
    g.inbound(contact, "Hello?", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let thread = g.get("/threads/%2B15550100001", Some(&cookie)).await;
    assert_eq!(thread.status, StatusCode::OK, "{}", thread.body);
    let csrf = thread.csrf();
    // Another session's token is not this one's.
    let other = g.sign_in("ana").await;
    let other_csrf = g.get("/inbox", Some(&other)).await.csrf();
    assert_ne!(csrf, other_csrf);
    for bad in [None, Some(""), Some(other_csrf.as_str()), Some("0000")] {
        let mut pairs = vec![("text", "should not be kept")];
        if let Some(token) = bad {
            pairs.push(("csrf", token));
        }
        let page = g
            .post("/threads/%2B15550100001/note", Some(&cookie), &pairs)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{bad:?}");
        assert!(page.has("Form refused"), "{}", page.body);
    }
    for path in ["reply", "assign", "state", "outcome"] {
        let page = g
            .post(
                &format!("/threads/%2B15550100001/{path}"),
                Some(&cookie),
                &[
                    ("csrf", "wrong"),
                    ("body", "x"),
                    ("to", "me"),
                    ("state", "closed"),
                    ("outcome", "x"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    let logout = g.post("/logout", Some(&cookie), &[("csrf", "wrong")]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    let timeline = g.store.timeline(contact, None, 100).unwrap();
    assert!(timeline
        .items
        .iter()
        .all(|e| !matches!(e, smsgate::store::TimelineEntry::Item(_))));
    assert!(g.outbound(contact).is_empty());
    let thread = g.store.thread_record(contact).unwrap().unwrap();
    assert_eq!((thread.state, thread.assignee), (ThreadState::Open, None));

    // With the token the note is kept, signed by the person.
    let page = g
        .post(
            "/threads/%2B15550100001/note",
            Some(&cookie),
            &[("csrf", &csrf), ("text", "Called, no answer")],
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/threads/%2B15550100001")
    );
    let note = g
        .store
        .timeline(contact, None, 100)
        .unwrap()
        .items
        .into_iter()
        .find_map(|e| match e {
            smsgate::store::TimelineEntry::Item(i) => Some(i),
            _ => None,
        })
        .unwrap();
    assert_eq!(note.author.as_deref(), Some("ana"));
}

#[tokio::test]
async fn a_cross_site_post_is_refused_before_anything_reads_it() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let contact = "+15550100001";
    g.inbound(contact, "Hello?", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let csrf = g.get("/inbox", Some(&cookie)).await.csrf();
    let note = [("csrf", csrf.as_str()), ("text", "from elsewhere")];
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
    ] {
        let page = g
            .post_with(
                "/threads/%2B15550100001/note",
                Some(&cookie),
                &note,
                &headers,
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(page.has("sent from another site"), "{}", page.body);
        let login = g
            .post_with(
                "/login",
                None,
                &[("username", "ana"), ("password", PASSWORD)],
                &headers,
            )
            .await;
        assert_eq!(login.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(login.set_cookie().is_empty());
    }
    assert!(g.store.timeline(contact, None, 100).unwrap().items.len() == 1);
    // The same origin (Origin matches Host) passes.
    let page = g
        .post_with(
            "/threads/%2B15550100001/note",
            Some(&cookie),
            &note,
            &[("origin", "http://gw.lan:8080")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[tokio::test]
async fn an_agent_is_refused_the_users_page_and_an_admin_adds_people() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    g.add_user("ops", Role::Admin, None).await;
    let agent = g.sign_in("ana").await;
    let page = g.get("/users", Some(&agent)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.has("This page is for administrators. You are signed in as ana (an agent)"));
    assert!(page.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        !g.get("/inbox", Some(&agent)).await.has("href=\"/users\""),
        "no link for agents"
    );
    let csrf = g.get("/inbox", Some(&agent)).await.csrf();
    let add = g
        .post(
            "/users",
            Some(&agent),
            &[
                ("csrf", &csrf),
                ("name", "eve"),
                ("password", "0123456789ab"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(add.status, StatusCode::FORBIDDEN);
    assert!(g.store.user("eve").unwrap().is_none());
    let remove = g
        .post("/users/ops/remove", Some(&agent), &[("csrf", &csrf)])
        .await;
    assert_eq!(remove.status, StatusCode::FORBIDDEN);
    assert!(g.store.user("ops").unwrap().is_some());

    let admin = g.sign_in("ops").await;
    let page = g.get("/users", Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(has_nav(&page) && page.has(">Users</a>"));
    assert!(page.has("<td>ana</td>") && page.has("<td>agent</td>"));
    let csrf = page.csrf();
    let short = g
        .post(
            "/users",
            Some(&admin),
            &[
                ("csrf", &csrf),
                ("name", "bo"),
                ("password", "short"),
                ("role", "agent"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short.has("A password needs at least 10 characters."),
        "{}",
        short.body
    );
    assert!(!short.has("\"code\""), "no problem JSON on a page");
    assert!(short.has("value=\"bo\""), "the name typed is kept");
    let added = g
        .post(
            "/users",
            Some(&admin),
            &[
                ("csrf", &csrf),
                ("name", "bo"),
                ("password", "0123456789ab"),
                ("role", "agent"),
                ("team", "support"),
            ],
        )
        .await;
    assert_eq!(
        (added.status, added.location()),
        (StatusCode::SEE_OTHER, "/users")
    );
    assert_eq!(
        g.store.user("bo").unwrap().unwrap().team.as_deref(),
        Some("support")
    );
    let removed = g
        .post("/users/bo/remove", Some(&admin), &[("csrf", &csrf)])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(g.store.user("bo").unwrap().is_none());
}

#[tokio::test]
async fn the_inbox_lists_urgent_first_then_the_oldest_wait() {
    let g = rig();
    g.add_user("ana", Role::Agent, Some("support")).await;
    let now = Utc::now();
    let (a, b, c) = ("+15550100001", "+15550100002", "+15550100003");
    g.inbound(a, "Can I move my appointment?", now - Duration::minutes(30))
        .await;
    g.inbound(
        b,
        "I was charged twice, this is urgent",
        now - Duration::minutes(5),
    )
    .await;
    g.inbound(c, "Do you open on Saturdays?", now - Duration::minutes(60))
        .await;
    g.store
        .change_thread(
            b,
            ThreadState::Open,
            &[ThreadChange::Priority(Priority::Urgent)],
            None,
            now,
        )
        .await
        .unwrap();
    g.name(b, "Chloe Martin").await;
    let cookie = g.sign_in("ana").await;
    let inbox = g.get("/inbox", Some(&cookie)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    let at = |text: &str| {
        inbox
            .body
            .find(text)
            .unwrap_or_else(|| panic!("{text} missing"))
    };
    // Urgent first, then oldest wait: Chloe, then c (60 min), then a (30 min).
    assert!(at("Chloe Martin") < at(c) && at(c) < at(a));
    // Each row is a link whose text has the name or the number.
    assert!(inbox.has("<a class=\"who\" href=\"/threads/%2B15550100002\"><strong>Chloe Martin</strong> <span class=\"number\">+15550100002</span></a>"));
    assert!(inbox.has(
        "<a class=\"who\" href=\"/threads/%2B15550100003\"><strong>+15550100003</strong></a>"
    ));
    // The last message, the wait and the SLA.
    assert!(inbox.has("Do you open on Saturdays?"));
    assert!(inbox.has("Waiting 1 h") && inbox.has("Waiting 30 min"));
    assert!(inbox.has("SLA due now") && inbox.has("SLA due in"));
    assert!(inbox.has("<span class=\"badge urgent\">Urgent</span>"));
    for label in [
        "Mine",
        "My team",
        "Urgent",
        "Open",
        "Waiting on customer",
        "Snoozed",
        "Closed",
        "All",
    ] {
        assert!(inbox.has(&format!(">{label}</a>")), "{label}");
    }
    assert!(inbox.has("<label for=\"q\">Search</label>"));
    // The live list listens from the last event before the page was read.
    let last = g.store.last_event_id().unwrap().unwrap();
    assert!(inbox.has(&format!("data-stream=\"/inbox/events?after={last}\"")));

    let urgent = g.get("/inbox?filter=urgent", Some(&cookie)).await;
    assert!(urgent.has("Chloe Martin") && !urgent.has(a) && !urgent.has(c));
    let mine = g.get("/inbox?filter=mine", Some(&cookie)).await;
    assert!(mine.has("Nothing here."));
    // Assigned through the page, the thread is in Mine and in the team's list.
    let csrf = inbox.csrf();
    let page = g
        .post(
            "/threads/%2B15550100001/assign",
            Some(&cookie),
            &[("csrf", &csrf), ("to", "team"), ("team", "support")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = g
        .post(
            "/threads/%2B15550100001/assign",
            Some(&cookie),
            &[("csrf", &csrf), ("to", "me")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let thread = g.store.thread_record(a).unwrap().unwrap();
    assert_eq!(
        (thread.team.as_deref(), thread.assignee.as_deref()),
        (Some("support"), Some("ana"))
    );
    let mine = g.get("/inbox?filter=mine", Some(&cookie)).await;
    assert!(mine.has(a) && !mine.has(c) && !mine.has("Chloe"));
    assert!(mine.has("aria-current=\"page\">Mine</a>"));
    let team = g.get("/inbox?filter=team", Some(&cookie)).await;
    assert!(team.has(a) && !team.has(c));
    // Closed: through the page; it leaves Open and shows under Closed and All.
    let page = g
        .post(
            "/threads/%2B15550100003/state",
            Some(&cookie),
            &[("csrf", &csrf), ("state", "closed")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(!g.get("/inbox", Some(&cookie)).await.has(c));
    assert!(g.get("/inbox?filter=closed", Some(&cookie)).await.has(c));
    let all = g.get("/inbox?filter=all", Some(&cookie)).await;
    assert!(all.has(a) && all.has(c) && all.has("Chloe Martin"));
    // The list alone, for the script's refresh.
    let list = g.get("/inbox/list?filter=open", Some(&cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.starts_with("<ul class=\"threads\">") && list.has("Chloe Martin"));
    assert!(!list.has("<html"));
}

#[tokio::test]
async fn search_finds_threads_by_name_number_and_last_message() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let now = Utc::now();
    g.inbound("+15550100001", "Where is my parcel?", now).await;
    g.inbound("+15550100002", "Thanks!", now).await;
    g.name("+15550100002", "Ben Okafor").await;
    let cookie = g.sign_in("ana").await;
    for (q, want, not) in [
        ("okafor", "+15550100002", "+15550100001"),
        ("(555) 010-0001", "+15550100001", "+15550100002"),
        ("PARCEL", "+15550100001", "+15550100002"),
        ("crm-0002", "+15550100002", "+15550100001"),
    ] {
        let page = g
            .get(
                &format!("/inbox?q={}", common::web::escape(q)),
                Some(&cookie),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.has(&format!("href=\"/threads/%2B{}\"", &want[1..])),
            "{q}"
        );
        assert!(
            !page.has(&format!("href=\"/threads/%2B{}\"", &not[1..])),
            "{q}"
        );
    }
    let none = g.get("/inbox?q=zebra", Some(&cookie)).await;
    assert!(none.has("No thread matches."));
}

#[tokio::test]
async fn a_reply_through_the_page_reaches_the_outbox_signed_by_the_person() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let contact = "+15550100003";
    g.inbound(contact, "I was charged twice", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/threads/%2B15550100003", Some(&cookie)).await;
    assert!(page.has("<label for=\"reply\">Reply</label>"));
    assert!(page.has(">Send</button>"));
    let (csrf, key) = (page.csrf(), field(&page.body, "key"));
    let text = "Sorry about that. I have refunded the second charge.";
    let sent = g
        .post(
            "/threads/%2B15550100003/reply",
            Some(&cookie),
            &[("csrf", &csrf), ("key", &key), ("body", text)],
        )
        .await;
    assert_eq!(
        (sent.status, sent.location()),
        (StatusCode::SEE_OTHER, "/threads/%2B15550100003"),
        "{}",
        sent.body
    );
    let out = g.outbound(contact);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, text);
    assert_eq!(out[0].author.as_deref(), Some("ana"));
    assert_eq!(out[0].category, smsgate::store::Category::Conversational);
    assert_eq!(out[0].status, smsgate::store::MessageStatus::Queued);
    assert_eq!(g.store.outbox_len(), 1, "in the outbox");
    // The reply answered the wait (the engine applies it, as in the daemon).
    g.engine_catch_up().await;
    let thread = g.store.thread_record(contact).unwrap().unwrap();
    assert_eq!(
        (thread.state, thread.waiting_since),
        (ThreadState::WaitingOnCustomer, None)
    );
    // The same form again (a double click, a reload) sends nothing more.
    let again = g
        .post(
            "/threads/%2B15550100003/reply",
            Some(&cookie),
            &[("csrf", &csrf), ("key", &key), ("body", text)],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(g.outbound(contact).len(), 1);
    // The timeline shows it with its author and state.
    let page = g.get("/threads/%2B15550100003", Some(&cookie)).await;
    assert!(
        page.has(text)
            && page.has("<span class=\"from\">ana</span>")
            && page.has("<span class=\"status\">queued</span>")
    );
}

#[tokio::test]
async fn refusals_are_plain_words_on_the_page_with_the_text_kept() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    g.inbound("+15550100001", "Hi", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/threads/%2B15550100001", Some(&cookie)).await;
    let csrf = page.csrf();
    let empty = g
        .post(
            "/threads/%2B15550100001/reply",
            Some(&cookie),
            &[("csrf", &csrf), ("key", "k1"), ("body", "   ")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        empty.has("<p class=\"error\" role=\"alert\">Write the text before sending.</p>"),
        "{}",
        empty.body
    );
    let long = "x".repeat(2000);
    let too_long = g
        .post(
            "/threads/%2B15550100001/reply",
            Some(&cookie),
            &[("csrf", &csrf), ("key", "k2"), ("body", &long)],
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        too_long.has("The text is too long: body needs 14 SMS parts; the limit is 10."),
        "{}",
        too_long.body
    );
    assert!(too_long.has(&long), "what was typed is kept");
    let outcome = g
        .post(
            "/threads/%2B15550100001/outcome",
            Some(&cookie),
            &[("csrf", &csrf), ("outcome", "not valid!")],
        )
        .await;
    assert_eq!(outcome.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(outcome.has("Outcome must be a shipped outcome or a name of letters, digits and _."));
    let missing = g.get("/threads/%2B15559999999", Some(&cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.has("There is nothing here"));
    for page in [&empty, &too_long, &outcome, &missing] {
        assert!(
            !page.has("\"code\"") && !page.has("urn:smsgate"),
            "{}",
            page.body
        );
    }
    assert!(g.outbound("+15550100001").is_empty());
}

#[tokio::test]
async fn an_opted_out_contacts_thread_says_so_and_its_reply_box_is_off() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let contact = "+15550100004";
    g.name(contact, "Dev Patel").await;
    g.inbound(contact, "STOP", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/threads/%2B15550100004", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.has("<strong>Dev Patel has opted out.</strong>"),
        "{}",
        page.body
    );
    assert!(page.has("(they texted “stop”)"), "{}", page.body);
    assert!(
        page.has("<textarea id=\"reply\" name=\"body\" rows=\"4\" disabled"),
        "{}",
        page.body
    );
    assert!(page.has("<button type=\"submit\" disabled>Send</button>"));
    assert!(page.has("<dd class=\"consent\">Opted out</dd>"));
    // The ledger shows the opt-out.
    assert!(page.has("opt out by sms"), "{}", page.body);
    // Sent anyway (an old page): refused by the same admission as the API.
    let before = g.outbound(contact).len();
    let sent = g
        .post(
            "/threads/%2B15550100004/reply",
            Some(&cookie),
            &[
                ("csrf", &page.csrf()),
                ("key", "k"),
                ("body", "Are you sure?"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::CONFLICT);
    assert!(sent.has("This contact has opted out (they texted STOP), so the text was not sent."));
    assert_eq!(g.outbound(contact).len(), before);
}

#[tokio::test]
async fn the_thread_page_shows_the_timeline_the_contact_and_every_control() {
    let g = rig_with(WebConfig {
        template: vec![
            smsgate::web::ReplyTemplate {
                name: "Greeting".into(),
                text: "Hi {{name}}, thanks for writing.".into(),
            },
            smsgate::web::ReplyTemplate {
                name: "Plan".into(),
                text: "Your plan is {{plan}}.".into(),
            },
        ],
        ..WebConfig::default()
    });
    g.add_user("ana", Role::Agent, None).await;
    let contact = "+15550100002";
    g.name(contact, "Ben Okafor").await;
    g.inbound(contact, "R", Utc::now()).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/threads/%2B15550100002", Some(&cookie)).await;
    let csrf = page.csrf();
    g.post(
        "/threads/%2B15550100002/note",
        Some(&cookie),
        &[("csrf", &csrf), ("text", "Prefers mornings")],
    )
    .await;
    let snooze = g
        .post(
            "/threads/%2B15550100002/state",
            Some(&cookie),
            &[("csrf", &csrf), ("state", "snoozed"), ("for", "4h")],
        )
        .await;
    assert_eq!(snooze.status, StatusCode::SEE_OTHER, "{}", snooze.body);
    let thread = g.store.thread_record(contact).unwrap().unwrap();
    assert_eq!(thread.state, ThreadState::Snoozed);
    let until = thread.snoozed_until.unwrap();
    assert_eq!(
        until.timestamp(),
        (g.clock.now() + Duration::hours(4)).timestamp()
    );
    let outcome = g
        .post(
            "/threads/%2B15550100002/outcome",
            Some(&cookie),
            &[
                ("csrf", &csrf),
                ("outcome", "appointment_booked"),
                ("value", "Thu 14:00"),
            ],
        )
        .await;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER, "{}", outcome.body);
    assert_eq!(
        g.store.thread_record(contact).unwrap().unwrap().outcomes[0]
            .value
            .as_deref(),
        Some("Thu 14:00")
    );

    let page = g.get("/threads/%2B15550100002", Some(&cookie)).await;
    assert!(page.has("<h1>Ben Okafor (+15550100002)</h1>"));
    // The timeline: the message, the note in its own style, the activities.
    assert!(page.has("<li class=\"message inbound\">") && page.has("<p class=\"body\">R</p>"));
    assert!(
        page.has("<li class=\"note\"><p class=\"meta\">Note by ana"),
        "{}",
        page.body
    );
    assert!(page.has("ana recorded the outcome appointment booked (Thu 14:00)"));
    assert!(page.has("ana moved it from Open to Snoozed"));
    // The contact panel.
    for text in [
        "<dt>Name</dt><dd>Ben Okafor</dd>",
        "<dd>crm-0002</dd>",
        "<dd>vip</dd>",
        "<dd>America/Chicago</dd>",
        "<dd class=\"consent\">Not recorded</dd>",
        "Consent ledger",
    ] {
        assert!(page.has(text), "{text}");
    }
    // Every control, by its accessible name.
    for text in [
        "<label for=\"reply\">Reply</label>",
        ">Send</button>",
        "<label for=\"note\">Note</label>",
        ">Add note</button>",
        ">Assign to me</button>",
        "<label for=\"team\">Team</label>",
        ">Assign to team</button>",
        "<label for=\"snooze\">Snooze for</label>",
        ">Snooze</button>",
        ">Close</button>",
        "<label for=\"outcome\">Outcome</label>",
        "<label for=\"outcome-value\">Value</label>",
        ">Set outcome</button>",
        "<output id=\"counter\" for=\"reply\"",
    ] {
        assert!(page.has(text), "{text}");
    }
    assert!(has_nav(&page));
    // Templates: filled from the profile; one missing a value says so.
    assert!(
        page.has("data-insert=\"Hi Ben Okafor, thanks for writing.\""),
        "{}",
        page.body
    );
    assert!(page.has("Plan: no value for {{plan}}"));
    let filled = g
        .get("/threads/%2B15550100002?template=0", Some(&cookie))
        .await;
    assert!(filled.has(">Hi Ben Okafor, thanks for writing.</textarea>"));
    // Close, then the button reopens.
    g.post(
        "/threads/%2B15550100002/state",
        Some(&cookie),
        &[("csrf", &csrf), ("state", "closed")],
    )
    .await;
    assert!(g
        .get("/threads/%2B15550100002", Some(&cookie))
        .await
        .has(">Reopen</button>"));
}

#[tokio::test]
async fn every_page_has_the_navigation_and_needs_a_session() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    let cookie = g.sign_in("ana").await;
    for path in ["/contacts", "/campaigns", "/dashboard", "/modems"] {
        let page = g.get(path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(has_nav(&page), "{path}");
        assert!(
            page.has(&format!("href=\"{path}\" aria-current=\"page\"")),
            "{path}"
        );
        // Without a session, the sign-in page, and back here after.
        let out = g.get(path, None).await;
        assert_eq!(out.location(), format!("/login?next=%2F{}", &path[1..]));
    }
}

#[tokio::test]
async fn the_live_list_and_the_event_stream_need_a_session() {
    let g = rig();
    g.add_user("ana", Role::Agent, None).await;
    assert_eq!(
        g.get("/inbox/list", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        g.get("/inbox/events", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cookie = g.sign_in("ana").await;
    let request = Request::builder()
        .uri("/inbox/events")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let response = g.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    // A new inbound is on the stream (the script refreshes the list on it).
    g.inbound("+15550100009", "Is anyone there?", Utc::now())
        .await;
    let mut seen = String::new();
    while !seen.contains("event: message.received") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), body.frame())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.contains("Is anyone there?"), "{seen}");
}

#[tokio::test]
async fn a_browser_asking_for_a_missing_page_gets_a_page_and_api_clients_json() {
    let g = rig();
    let request = |path: &str, accept: &str| {
        Request::builder()
            .uri(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap()
    };
    let page = g
        .send(request("/inbox/nowhere", "text/html,application/xhtml+xml"))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.has("There is no such page here."));
    let api = g.send(request("/v1/nowhere", "text/html")).await;
    assert_eq!(
        api.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let curl = g.send(request("/inbox/nowhere", "*/*")).await;
    assert_eq!(
        curl.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn assets_are_embedded_and_the_first_page_is_small() {
    let g = rig();
    let login = g.get("/login", None).await;
    let css_path = login
        .body
        .split("href=\"")
        .find(|s| s.starts_with("/assets/"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let js_path = login
        .body
        .split("src=\"")
        .find(|s| s.starts_with("/assets/"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let css = g.get(&css_path, None).await;
    let js = g.get(&js_path, None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(js.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    // The GSM table in the script is the PDU code's.
    let (basic, extended) = smsgate::web::gsm7_table();
    let start = js.body.find("var GSM = ").unwrap() + "var GSM = ".len();
    let json: serde_json::Value = serde_json::Deserializer::from_str(&js.body[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(json["basic"], basic.as_str());
    assert_eq!(json["extended"], extended.as_str());
    assert_eq!(json["gsm7"]["part"], smsgate::web::capacities().gsm7_part);
    // The first page with everything it loads: the issue's budget is 150 KB.
    let total = login.body.len() + css.body.len() + js.body.len();
    assert!(total < 150_000, "{total} bytes");
}
