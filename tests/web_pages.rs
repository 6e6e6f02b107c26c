//! The Contacts, Campaigns and Modems pages through `Router::oneshot`: the
//! gateway's whole router (API and pages) over the shared API rig
//! (`tests/common/rig.rs`: a real store, fake modem statuses), signed in as
//! a person, with real data behind every page.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use tower::ServiceExt;

use common::rig::Rig;
use common::web::{form, Page};
use smsgate::conversation::campaigns::CampaignTask;
use smsgate::conversation::ThreadState;
use smsgate::modem::pool::DailyCounts;
use smsgate::modem::status::ModemState;
use smsgate::store::users::{hash_password, Role, UserRecord};
use smsgate::store::{ConsentChange, ConsentStatus, ContactProfile, InboundPart};
use smsgate::web::{self, WebConfig, WebState};
use smsgate::webhook::clock::Clock;

const PASSWORD: &str = "correct horse battery";
const HOST: &str = "gw.lan:8080";

/// Sessions read this clock; it stands still (no test here waits).
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The pages over the API rig.
struct Web {
    api: Rig,
    app: Router,
}

const BOUNDARY: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

/// The import form as a browser sends it: the CSRF field, then the file.
fn import_body(csrf: Option<&str>, filename: &str, csv: &str) -> String {
    let mut out = String::new();
    if let Some(csrf) = csrf {
        out.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
        ));
    }
    out.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{BOUNDARY}--\r\n"
    ));
    out
}

impl Web {
    fn new() -> Web {
        Web::with(|_| {})
    }

    /// A gateway whose API rig `setup` adds modems to.
    fn with(setup: impl FnOnce(&mut Rig)) -> Web {
        let mut api = Rig::new("web-pages", &smsgate::config::Config::default(), Vec::new());
        setup(&mut api);
        let clock = Arc::new(FixedClock(
            Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap(),
        ));
        let state = WebState::new(api.state.clone(), WebConfig::default(), clock);
        let app = web::app(api.state.clone(), state);
        Web { api, app }
    }

    async fn add_user(&self, name: &str, role: Role) {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let user = UserRecord {
            name: name.into(),
            role,
            team: None,
            password: hash_password(PASSWORD).unwrap(),
            created_at: at,
            updated_at: at,
        };
        assert!(self.api.store.create_user(&user).await.unwrap());
    }

    async fn send(&self, request: Request<Body>) -> Page {
        Page::read(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn get(&self, path: &str, cookie: &str) -> Page {
        let request = Request::builder()
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// A post from a page of this site, with `content_type`.
    async fn post_raw(&self, path: &str, cookie: &str, content_type: &str, body: String) -> Page {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, cookie)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn post(&self, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Page {
        self.post_raw(
            path,
            cookie,
            "application/x-www-form-urlencoded",
            form(pairs),
        )
        .await
    }

    async fn import(&self, cookie: &str, csrf: Option<&str>, csv: &str) -> Page {
        self.post_raw(
            "/contacts/import",
            cookie,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            import_body(csrf, "people.csv", csv),
        )
        .await
    }

    /// Sign `name` in: the cookie to send back.
    async fn sign_in(&self, name: &str) -> String {
        let page = self
            .post_raw(
                "/login",
                "",
                "application/x-www-form-urlencoded",
                form(&[("username", name), ("password", PASSWORD)]),
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    async fn profile(&self, contact: &str, name: &str, tags: &[&str]) {
        let profile = ContactProfile {
            name: Some(name.into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..ContactProfile::default()
        };
        let _ = self.api.store.set_profile(contact, &profile).await.unwrap();
    }

    /// The daemon's campaign worker, run until it has nothing left to do.
    async fn run_campaigns(&self) {
        let task = CampaignTask {
            store: self.api.store.clone(),
            policy: self.api.state.policy.clone(),
            sms: self.api.state.sms.clone(),
            wake: Arc::new(|| {}),
            // As the daemon runs it (the API stamps campaigns with the real
            // time too).
            clock: Arc::new(smsgate::webhook::clock::SystemClock),
            fleet: None,
            unpublished: Default::default(),
        };
        for _ in 0..100 {
            if !task.step().await.unwrap() {
                return;
            }
        }
        panic!("the campaign worker never finished");
    }
}

#[tokio::test]
async fn contacts_are_searched_by_name_number_and_tag_and_paged() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    g.profile("+15550100001", "Maria Lopez", &["vip", "dental"])
        .await;
    g.profile("+15550100002", "Tom Baker", &["dental"]).await;
    for i in 0..55 {
        g.profile(&format!("+1555020{i:04}"), &format!("Bulk {i}"), &["bulk"])
            .await;
    }
    let cookie = g.sign_in("ana").await;

    let all = g.get("/contacts", &cookie).await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.has("<label for=\"contact-q\">Search</label>"));
    assert!(all.has("<label for=\"contact-tag\">Tag</label>"));
    assert!(all.has("href=\"/contacts\" aria-current=\"page\""));
    // 57 contacts: a page of 50 and a link to the next.
    assert_eq!(all.body.matches("<tr><td><a href=\"/contacts/").count(), 50);
    let next = all.body.split("rel=\"next\" href=\"").nth(1).unwrap();
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let second = g.get(&next, &cookie).await;
    assert_eq!(second.status, StatusCode::OK, "{next}");
    assert_eq!(
        second.body.matches("<tr><td><a href=\"/contacts/").count(),
        7
    );

    let by_name = g.get("/contacts?q=maria&tag=", &cookie).await;
    assert!(by_name.has("<a href=\"/contacts/%2B15550100001\">Maria Lopez</a>"));
    assert!(!by_name.has("Tom Baker"));
    assert!(by_name.has("vip, dental"));
    assert!(by_name.has("Not recorded"));
    let by_number = g.get("/contacts?q=5550100002", &cookie).await;
    assert!(by_number.has("Tom Baker") && !by_number.has("Maria Lopez"));
    let by_tag = g.get("/contacts?tag=dental", &cookie).await;
    assert!(by_tag.has("Tom Baker") && by_tag.has("Maria Lopez") && !by_tag.has("Bulk"));
    let none = g.get("/contacts?q=nobody", &cookie).await;
    assert!(none.has("No contacts found."));
}

#[tokio::test]
async fn a_contact_is_edited_and_its_consent_stays_as_it_was() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    let contact = "+15550100001";
    g.profile(contact, "Maria Lopez", &["vip"]).await;
    g.api
        .store
        .change_consent(ConsentChange {
            contact: contact.into(),
            status: ConsentStatus::OptedOut,
            action: "manual_opt_out".into(),
            reason: Some("asked on the phone".into()),
            evidence: None,
            number: None,
        })
        .await
        .unwrap();
    let cookie = g.sign_in("ana").await;
    let path = "/contacts/%2B15550100001";

    let page = g.get(path, &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("<title>Maria Lopez (+15550100001) · smsgate</title>"));
    // No texts yet: no thread to link to.
    assert!(page.has("No texts with this contact yet."));
    assert!(!page.has("href=\"/threads/%2B15550100001\""));
    for label in [
        "Name",
        "External id",
        "Tags",
        "Time zone",
        "Owner team",
        "Fields",
    ] {
        assert!(page.has(&format!("\">{label}</label>")), "{label}");
    }
    assert!(page.has("<strong class=\"consent\">Opted out</strong>"));
    assert!(page.has("manual opt out by") && page.has("asked on the phone"));
    assert!(page.has(">Save contact</button>"));

    let csrf = page.csrf();
    let saved = g
        .post(
            path,
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "María López"),
                ("external_id", "crm-7"),
                ("tags", "vip, dental"),
                ("time_zone", "America/Chicago"),
                ("owner_team", "support"),
                ("fields", "plan = gold\nurl = https://x.test/?a=b"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), format!("{path}?saved=1"));
    let profile = g.api.store.profile(contact).unwrap();
    assert_eq!(profile.name.as_deref(), Some("María López"));
    assert_eq!(profile.external_id.as_deref(), Some("crm-7"));
    assert_eq!(profile.tags, ["vip", "dental"]);
    assert_eq!(profile.time_zone.as_deref(), Some("America/Chicago"));
    assert_eq!(profile.owner_team.as_deref(), Some("support"));
    assert_eq!(profile.fields["url"], "https://x.test/?a=b");
    let consent = g.api.store.consent(contact, None).unwrap();
    assert_eq!(consent.status, ConsentStatus::OptedOut);
    assert_eq!(g.api.store.ledger(contact).unwrap().len(), 1);
    let after = g.get(saved.location(), &cookie).await;
    assert!(after.has("Saved.") && after.has("value=\"crm-7\""));
    assert!(after.has("plan = gold"));
    // Once the contact has texted, the page links to the thread.
    let at = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
    g.api
        .store
        .receive(InboundPart {
            modem: "m1",
            own_number: "+15550000000",
            raw_pdu: b"hello-pdu",
            sender: contact,
            text: "Hello?",
            alphabet: "gsm7",
            network_time: at,
            concat: None,
            error: None,
        })
        .await
        .unwrap();
    g.api
        .store
        .change_thread(contact, ThreadState::Open, &[], None, at)
        .await
        .unwrap();
    let linked = g.get(path, &cookie).await;
    assert!(linked.has("<a href=\"/threads/%2B15550100001\">Open the thread with María López</a>"));

    // Refused: plain words on the page, what was typed kept, nothing saved.
    let bad = g
        .post(
            path,
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "Maria L"),
                ("time_zone", "Mars/Olympus"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.is_html(), "{}", bad.body);
    assert!(bad.has("role=\"alert\"") && bad.has("Mars/Olympus"));
    assert!(bad.has("value=\"Maria L\""));
    let fields = g
        .post(path, &cookie, &[("csrf", &csrf), ("fields", "plan gold")])
        .await;
    assert!(fields.has("Fields, line 1: write it as name = value."));
    assert_eq!(
        g.api.store.profile(contact).unwrap().name.as_deref(),
        Some("María López")
    );

    // Not a number: a page that says so.
    let not = g.get("/contacts/hello", &cookie).await;
    assert_eq!(not.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(not.is_html());
}

#[tokio::test]
async fn the_import_reports_each_bad_line_in_plain_words() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    g.profile("+15550100009", "Already Here", &[]).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/contacts", &cookie).await;
    assert!(page.has("<label for=\"csv-file\">CSV file</label>"));
    assert!(page.has("type=\"file\" name=\"file\""));
    assert!(page.has("enctype=\"multipart/form-data\""));
    assert!(page.has(">Import</button>"));
    let csrf = page.csrf();

    let csv = "number,name,tags,plan\r\n\
               +15550100001,Ana Ruiz,vip;dental,gold\r\n\
               not-a-number,Bob,,\r\n\
               +15550100002,Cy\r\n\
               +15550100009,Already Here Again,,silver\r\n\
               +15550100003,Dee,,\r\n";
    let report = g.import(&cookie, Some(&csrf), csv).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert!(report.has("2 imported, 1 updated"), "{}", report.body);
    assert!(report.has("2 lines were not imported"));
    assert!(
        report.has("<li>Line 3: Number &quot;not-a-number&quot;: phone number contains"),
        "{}",
        report.body
    );
    assert!(report.has("<li>Line 4: It has 2 fields, the header has 4.</li>"));
    let ana = g.api.store.profile("+15550100001").unwrap();
    assert_eq!(ana.tags, ["vip", "dental"]);
    assert_eq!(ana.fields["plan"], "gold");
    assert_eq!(
        g.api.store.profile("+15550100009").unwrap().name.as_deref(),
        Some("Already Here Again")
    );
    // The list under the report shows them.
    assert!(report.has("Ana Ruiz"));

    // A file the import cannot read at all: nothing imported, said plainly.
    let header = g
        .import(&cookie, Some(&csrf), "name,tags\r\nAna,vip\r\n")
        .await;
    assert_eq!(header.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(header.is_html(), "{}", header.body);
    assert!(header.has("Nothing was imported. The header row has no `number` column."));
    let empty = g
        .post_raw(
            "/contacts/import",
            &cookie,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{BOUNDARY}--\r\n"
            ),
        )
        .await;
    assert!(empty.has("Choose a CSV file to import."), "{}", empty.body);
    let garbled = g
        .post_raw(
            "/contacts/import",
            &cookie,
            "multipart/form-data; boundary=nothere",
            "number\r\n+15550100004\r\n".into(),
        )
        .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert!(garbled.has("The form could not be read"));
    assert!(g.api.store.profile("+15550100004").unwrap().name.is_none());
}

#[tokio::test]
async fn a_post_without_the_csrf_token_changes_nothing() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    g.profile("+15550100001", "Maria Lopez", &[]).await;
    let cookie = g.sign_in("ana").await;

    let edit = g
        .post(
            "/contacts/%2B15550100001",
            &cookie,
            &[("name", "Someone Else")],
        )
        .await;
    assert_eq!(edit.status, StatusCode::FORBIDDEN);
    assert!(edit.is_html());
    assert_eq!(
        g.api.store.profile("+15550100001").unwrap().name.as_deref(),
        Some("Maria Lopez")
    );
    let import = g
        .import(&cookie, None, "number,name\r\n+15550100002,Bob\r\n")
        .await;
    assert_eq!(import.status, StatusCode::FORBIDDEN);
    let import = g
        .import(
            &cookie,
            Some("wrong"),
            "number,name\r\n+15550100002,Bob\r\n",
        )
        .await;
    assert_eq!(import.status, StatusCode::FORBIDDEN);
    assert!(g.api.store.profile("+15550100002").unwrap().name.is_none());
    let create = g
        .post(
            "/campaigns",
            &cookie,
            &[
                ("name", "x"),
                ("template", "Hi"),
                ("numbers", "+15550100001"),
                ("category", "transactional"),
            ],
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let list = g.get("/campaigns", &cookie).await;
    assert!(list.has("No campaigns yet."));
}

#[tokio::test]
async fn a_campaign_is_created_runs_shows_its_variants_and_is_cancelled() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    g.profile("+15550100001", "Maria", &[]).await;
    g.profile("+15550100002", "Tom", &[]).await;
    let cookie = g.sign_in("ana").await;
    let list = g.get("/campaigns", &cookie).await;
    assert_eq!(list.status, StatusCode::OK);
    for label in [
        "Name",
        "Template",
        "Numbers",
        "Or a tag",
        "Variant 1 id",
        "Variant 1 template",
        "Variant 1 weight",
        "Variant 2 id",
        "Variant 2 template",
        "Variant 2 weight",
        "Category",
        "Flow",
        "Context",
        "Send at",
        "Time zone",
    ] {
        assert!(list.has(&format!("\">{label}</label>")), "{label}");
    }
    // The zone the send time is read in is stated: the gateway's.
    assert!(list.has("name=\"zone\" value=\"America/New_York\""));
    let csrf = list.csrf();
    let key = list.hidden("key");
    let fields = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("name", "Winter check-ups"),
        ("template", "Hi {{name}}, book your check-up."),
        (
            "numbers",
            "+15550100001\r\n+15550100002\r\n+15550100003\r\nnot-a-number",
        ),
        ("tag", ""),
        ("variant_id", "a"),
        ("variant_template", ""),
        ("variant_weight", "1"),
        ("variant_id", "b"),
        ("variant_template", "{{name}}: time for a check-up!"),
        ("variant_weight", "1"),
        ("variant_id", ""),
        ("variant_template", ""),
        ("variant_weight", ""),
        ("category", "transactional"),
        ("flow", ""),
        ("context", ""),
        ("send_at", "2030-01-15T09:30"),
        ("zone", "Europe/Berlin"),
    ];
    let created = g.post("/campaigns", &cookie, &fields).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let path = created.location().to_string();
    assert!(path.starts_with("/campaigns/cmp_"), "{path}");
    // The same form sent twice (a double click): one campaign.
    let again = g.post("/campaigns", &cookie, &fields).await;
    assert_eq!(again.location(), path);
    let id = path.trim_start_matches("/campaigns/");
    let record = g.api.store.campaign(id).unwrap().unwrap();
    assert_eq!(
        record.send_at,
        Some(Utc.with_ymd_and_hms(2030, 1, 15, 8, 30, 0).unwrap())
    );

    g.run_campaigns().await;
    let page = g.get(&path, &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("<title>Winter check-ups · smsgate</title>"));
    assert!(page.has("All accepted"));
    assert!(page.has("4 of 4 (100%)"), "{}", page.body);
    assert!(page.has("<th scope=\"row\">Accepted</th><td>2</td>"));
    assert!(page.has("Scheduled for") && page.has("2030-01-15 08:30 UTC"));
    for metric in [
        "Reply rate",
        "Conversion rate",
        "Opt-out rate",
        "Cost per outcome",
    ] {
        assert!(page.has(&format!(">{metric}</th>")), "{metric}");
    }
    // Each variant's row; their accepted counts add up to the campaign's.
    let view = g.api.store.campaign(id).unwrap().unwrap();
    let accepted: Vec<u64> = view.counts.iter().map(|c| c.accepted).collect();
    assert_eq!(accepted.iter().sum::<u64>(), 2);
    assert!(page.has("<th scope=\"col\">Variant a</th><th scope=\"col\">Variant b</th>"));
    assert!(page.has(
        "<th scope=\"row\">Text</th><td class=\"text\">Hi {{name}}, book your check-up.</td>\
         <td class=\"text\">{{name}}: time for a check-up!</td>"
    ));
    assert!(
        page.has(&format!(
            "<th scope=\"row\">Accepted</th><td>{}</td><td>{}</td>",
            accepted[0], accepted[1]
        )),
        "{}",
        page.body
    );
    assert!(page.has("— (none sent)"));
    // Refused recipients, in plain words.
    assert!(page.has("<li>not-a-number: not a phone number we can text"));
    assert!(page.has("<li>+15550100003: the text needs a value this contact lacks"));
    // The list shows it with its state and progress.
    let list = g.get("/campaigns", &cookie).await;
    assert_eq!(list.body.matches(&format!("href=\"{path}\"")).count(), 1);
    assert!(list.has("All accepted") && list.has("4 of 4 (100%)"));

    // Cancel: the scheduled messages wait, so the button is there.
    assert!(page.has(">Cancel campaign</button>"));
    let refused = g.post(&format!("{path}/cancel"), &cookie, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let cancel = g
        .post(&format!("{path}/cancel"), &cookie, &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status, StatusCode::SEE_OTHER, "{}", cancel.body);
    assert_eq!(cancel.location(), path);
    g.run_campaigns().await;
    let done = g.get(&path, &cookie).await;
    assert!(
        done.has("<dd id=\"campaign-state\">Cancelled</dd>"),
        "{}",
        done.body
    );
    assert!(done.has("<th scope=\"row\">Cancelled</th><td>2</td>"));
    assert!(!done.has(">Cancel campaign</button>"));

    let missing = g.get("/campaigns/cmp_nope", &cookie).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.is_html());
}

/// In a fleet, another gateway's campaign reads on this gateway's page
/// with the site that has it, its refused recipients named as listed
/// there, and its cancel passed on (the page's copy stays as announced).
#[tokio::test]
async fn another_gateways_campaign_names_its_site_and_passes_its_cancel_on() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    let cookie = g.sign_in("ana").await;
    let list = g.get("/campaigns", &cookie).await;
    let csrf = list.csrf();
    let key = list.hidden("key");
    let created = g
        .post(
            "/campaigns",
            &cookie,
            &[
                ("csrf", csrf.as_str()),
                ("key", key.as_str()),
                ("name", "Spring cleaning"),
                ("template", "Hi {{nickname}}, spring cleaning is on"),
                ("numbers", "+15550100001\r\n+15550100002"),
                ("tag", ""),
                ("category", "transactional"),
                ("flow", ""),
                ("context", ""),
                ("send_at", "2030-01-15T09:30"),
                ("zone", "Europe/Berlin"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    g.run_campaigns().await;
    // As the gateway of site "north" announces one of its own.
    let own = created
        .location()
        .trim_start_matches("/campaigns/")
        .to_string();
    let mut theirs = g.api.store.campaign(&own).unwrap().unwrap();
    theirs.id = g.api.store.new_campaign_id(Utc::now());
    assert!(g
        .api
        .store
        .apply_remote_campaign(theirs.clone(), "north")
        .unwrap());
    let path = format!("/campaigns/{}", theirs.id);

    let page = g.get(&path, &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.has("<dt>Site</dt><dd>north (another gateway of the fleet)</dd>"),
        "{}",
        page.body
    );
    assert!(page.has("Listed at the gateway of site north, where this campaign was created."));
    assert!(!page.has("role=\"alert\""), "{}", page.body);
    // This gateway's own names no site and lists its refused recipients.
    let mine = g.get(&format!("/campaigns/{own}"), &cookie).await;
    assert!(!mine.has("<dt>Site</dt>"));
    assert!(mine.has("<li>+15550100001: the text needs a value this contact lacks"));

    let cancel = g
        .post(&format!("{path}/cancel"), &cookie, &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status, StatusCode::SEE_OTHER, "{}", cancel.body);
    assert_eq!(cancel.location(), path);
    let passed = g
        .api
        .store
        .events_from(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == smsgate::store::FLEET_CAMPAIGN_CANCEL)
        .count();
    assert_eq!(passed, 1);
    assert_eq!(
        g.api.store.campaign(&theirs.id).unwrap().unwrap().state,
        theirs.state
    );
}

#[tokio::test]
async fn a_refused_campaign_is_explained_on_the_page_with_the_form_kept() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    let cookie = g.sign_in("ana").await;
    let csrf = g.get("/campaigns", &cookie).await.csrf();
    let no_one = g
        .post(
            "/campaigns",
            &cookie,
            &[("csrf", &csrf), ("name", "Nobody"), ("template", "Hi")],
        )
        .await;
    assert_eq!(no_one.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_one.is_html());
    assert!(no_one.has("Give the recipients: numbers (one a line) or a tag"));
    assert!(no_one.has("value=\"Nobody\""));
    let no_category = g
        .post(
            "/campaigns",
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "No category"),
                ("template", "Hi"),
                ("numbers", "+15550100001"),
                ("send_at", "2030-01-15T09:30"),
                ("zone", "Europe/Berlin"),
            ],
        )
        .await;
    assert_eq!(no_category.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_category.is_html(), "{}", no_category.body);
    assert!(
        no_category.has("role=\"alert\">Category is required"),
        "{}",
        no_category.body
    );
    assert!(no_category.has(">+15550100001</textarea>"));
    assert!(no_category.has("name=\"zone\" value=\"Europe/Berlin\""));
    let gap = g
        .post(
            "/campaigns",
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "Gap"),
                ("numbers", "+15550100001"),
                ("send_at", "2030-03-10T02:30"),
                ("zone", "America/New_York"),
            ],
        )
        .await;
    assert!(gap.has("2030-03-10 02:30 does not exist in America/New_York"));
    assert!(g.get("/campaigns", &cookie).await.has("No campaigns yet."));
}

#[tokio::test]
async fn the_modems_page_shows_each_modems_state_and_the_technicians_check() {
    let g = Web::with(|rig| {
        rig.add_modem_with("sim800-a", |s| {
            s.state = ModemState::Ready;
            s.operator = Some("T-Mobile".into());
            s.registration = Some("home".into());
            s.signal_csq = Some(21);
            s.signal_dbm = Some(-71);
            s.own_number = Some("+15550000001".into());
            s.queue_depth = 1;
            s.counters.sent_parts = 42;
            s.counters.received = 17;
            s.identity.manufacturer = Some("SIMCOM_Ltd".into());
            s.identity.model = Some("SIMCOM_SIM800L".into());
            s.identity.imei = Some("869170031234567".into());
        });
        rig.add_modem_with("e3372-b", |s| {
            s.state = ModemState::Offline;
            s.reason = Some("port gone".into());
            s.last_error = Some("+CMS ERROR: 38 (network out of order)".into());
        });
    });
    // Today's counts (the gateway's local day; the default zone is UTC and
    // the page's clock 2026-12-04 09:00), yesterday's left out.
    let store = &g.api.store;
    let (sent, received) = (
        DailyCounts::open(store).unwrap(),
        DailyCounts::open_received(store).unwrap(),
    );
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    let yesterday = today.pred_opt().unwrap();
    sent.add("sim800-a", today, 12).unwrap();
    sent.add("sim800-a", yesterday, 30).unwrap();
    received.add("sim800-a", today, 5).unwrap();
    g.add_user("ana", Role::Agent).await;
    let cookie = g.sign_in("ana").await;
    let page = g.get("/modems", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("href=\"/modems\" aria-current=\"page\""));
    assert!(page.has("Texts waiting for a modem or their time: <strong>0</strong>"));
    let a = page.body.split("id=\"modem-sim800-a\"").nth(1).unwrap();
    let a = a.split("</section>").next().unwrap();
    for text in [
        "Ready",
        "<dt>Operator</dt><dd>T-Mobile</dd>",
        "<dt>Signal</dt><dd>excellent (CSQ 21, -71 dBm)</dd>",
        "<dt>Sending now</dt><dd>1</dd>",
        "<dt>Sent today</dt><dd>12 parts</dd>",
        "<dt>Received today</dt><dd>5</dd>",
        "<dt>Sent since start</dt><dd>42 parts</dd>",
        "<dt>Received since start</dt><dd>17</dd>",
        "<dt>Last error</dt><dd>—</dd>",
        "Technician's check",
        "OK: ready to send and receive SMS.",
        "SIMCOM_SIM800L",
        "869170031234567",
        "<dt>Registration</dt><dd>home</dd>",
    ] {
        assert!(a.contains(text), "{text} in {a}");
    }
    let b = page.body.split("id=\"modem-e3372-b\"").nth(1).unwrap();
    let b = b.split("</section>").next().unwrap();
    for text in [
        "Offline — port gone",
        "+CMS ERROR: 38 (network out of order)",
        "<dt>Signal</dt><dd>Unknown</dd>",
        "Offline: port gone.",
    ] {
        assert!(b.contains(text), "{text} in {b}");
    }
    assert!(page.has("smsgate modem probe PORT"));
}

#[tokio::test]
async fn an_agent_asking_for_an_admin_page_gets_a_plain_403_page() {
    let g = Web::new();
    g.add_user("ana", Role::Agent).await;
    g.add_user("root", Role::Admin).await;
    let agent = g.sign_in("ana").await;
    let page = g.get("/users", &agent).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.is_html());
    assert!(page.has("<h1>For administrators only</h1>"));
    assert!(page.has("You are signed in as ana (an agent)"));
    let admin = g.sign_in("root").await;
    assert_eq!(g.get("/users", &admin).await.status, StatusCode::OK);
    // The pages of this issue are for agents too.
    for path in ["/contacts", "/campaigns", "/modems"] {
        assert_eq!(g.get(path, &agent).await.status, StatusCode::OK, "{path}");
    }
}

/// The Modems page shows the last probe the gateway ran and its "Run
/// probe" form, which runs it over the modem actor's own connection (a real
/// actor on the simulator, on the rig's store and dispatcher) and comes
/// back to the page; without the session's CSRF token it is refused and
/// nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_probe_form_probes_the_modem_and_the_page_shows_the_result() {
    use smsgate::modem::probe::ProbeResults;
    use smsgate::modem::{spawn_modem, EngineSettings};
    use smsgate::sim::{Personality, SimConfig, Simulator};

    let mut c = SimConfig::new(Personality::Sim800);
    c.link =
        Some(std::env::temp_dir().join(format!("smsgate-web-probe-{}.tty", std::process::id())));
    c.noise_interval = Some(std::time::Duration::ZERO);
    c.imei = Some("869170031234567".into());
    let sim = Simulator::start(c).unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut actor = None;
    let g = Web::with(|rig| {
        actor = Some(spawn_modem(
            common::engine_rig::modem("m1", &sim),
            Arc::new(EngineSettings::default()),
            rig.store.clone(),
            rig.state.dispatcher.clone(),
            stop_rx,
        ));
    });
    let (handle, mut status) = actor.unwrap();
    tokio::time::timeout(
        common::engine_rig::WAIT,
        status.wait_for(|s| s.state == ModemState::Ready),
    )
    .await
    .unwrap()
    .unwrap();
    g.add_user("ana", Role::Agent).await;
    let cookie = g.sign_in("ana").await;

    let page = g.get("/modems", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Not probed by the gateway yet."), "{}", page.body);
    assert!(page.has("action=\"/modems/m1/probe\""));
    assert!(page.has("Run probe"));
    // The diagnosis the daemon makes of itself stays.
    assert!(page.has("OK: ready to send and receive SMS."));

    let refused = g.post("/modems/m1/probe", &cookie, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.has("Form refused"));
    let wrong = g
        .post("/modems/m1/probe", &cookie, &[("csrf", "not-the-token")])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let results = ProbeResults::open(&g.api.store).unwrap();
    assert!(results.get("m1").unwrap().is_none(), "refused, yet probed");

    let ran = g
        .post("/modems/m1/probe", &cookie, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(ran.status, StatusCode::SEE_OTHER, "{}", ran.body);
    assert_eq!(ran.location(), "/modems#modem-m1");
    assert!(results.get("m1").unwrap().is_some());

    let page = g.get("/modems", &cookie).await;
    let card = page.body.split("id=\"probe-m1\"").nth(1).unwrap();
    let card = card.split("</section>").next().unwrap();
    for text in [
        "Last run ",
        "OK: ready to send and receive SMS.",
        "<th scope=\"row\">SIM</th>",
        "<th scope=\"row\">registration</th>",
        "<th scope=\"row\">CNMI</th>",
        "IMEI 869170031234567",
        "<span class=\"badge ok\">OK</span>",
    ] {
        assert!(card.contains(text), "{text} in {card}");
    }
    assert!(!card.contains("Failed"), "{card}");
    assert!(!card.contains("Not probed"), "{card}");

    // An unknown modem: a plain 404 page.
    let unknown = g
        .post("/modems/nope/probe", &cookie, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.is_html());

    let _ = stop.send(true);
    tokio::time::timeout(common::engine_rig::WAIT, handle)
        .await
        .unwrap()
        .unwrap();
    sim.shutdown().await;
}

/// Rules saved at another gateway of a fleet (applied here from the
/// fleet's rules bucket): the page names the site they were saved at and
/// says that a change here applies at every gateway.
#[tokio::test]
async fn rules_saved_at_another_gateway_name_its_site() {
    let g = with_tokens();
    g.add_user("root", Role::Admin).await;
    let admin = g.sign_in("root").await;
    let page = g.get("/rules", &admin).await;
    assert!(!page.has("part of a fleet"));
    let change = smsgate::conversation::rulebook::RulesChange {
        at: Utc::now(),
        site: Some("north".into()),
        rules: Some(vec![serde_json::json!({
            "name": "north-hours",
            "when": {"keywords": ["hours"]},
            "then": {"reply": "We open 9 to 5"}
        })]),
    };
    assert!(g.api.state.rules.apply_shared(change).await.unwrap());
    let page = g.get("/rules", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.has("saved at the gateway of site <strong>north</strong>"),
        "{}",
        page.body
    );
    assert!(page.has("part of a fleet"));
    assert!(page.has("<td>north-hours</td>"));
    assert!(page.has("Revert to the config"));
}

const ADMIN_TOKEN: &str = "rules-admin-token";
const SEND_TOKEN: &str = "rules-send-token";

/// A gateway whose API also takes an admin token and a send-and-read one.
fn with_tokens() -> Web {
    use smsgate::api::{ApiToken, Scope};
    Web::with(|rig| {
        rig.state.tokens = Arc::new(vec![
            ApiToken::from_secret("ops", ADMIN_TOKEN, vec![Scope::Admin]),
            ApiToken::from_secret("crm", SEND_TOKEN, vec![Scope::Send, Scope::Read]),
        ]);
    })
}

const BILLING_RULE: &str = "[[rule]]\nname = \"billing-words\"\nwhen = { keywords = [\"invoice\", \"bill\"] }\nthen = { route = \"billing\", tag = \"billing\" }\n";

#[tokio::test]
async fn an_admin_saves_rules_on_the_page_and_the_api_serves_them() {
    let g = with_tokens();
    g.add_user("root", Role::Admin).await;
    let admin = g.sign_in("root").await;
    let page = g.get("/rules", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("come from the config file"));
    assert!(page.has("href=\"/rules\" aria-current=\"page\""));
    assert!(!page.has("Revert to the config"));

    let saved = g
        .post(
            "/rules",
            &admin,
            &[("csrf", &page.csrf()), ("rules", BILLING_RULE)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), "/rules");
    let page = g.get("/rules", &admin).await;
    assert!(page.has("were saved here"));
    assert!(page.has("<td>billing-words</td>"));
    assert!(page.has("keywords: &quot;invoice&quot;, &quot;bill&quot;"));
    assert!(page.has("route: &quot;billing&quot;"));
    assert!(page.has("Revert to the config"));

    let api = g
        .api
        .call(Method::GET, "/v1/rules", Some(ADMIN_TOKEN), None, &[])
        .await;
    assert_eq!(api.status, StatusCode::OK);
    let body = api.json();
    assert_eq!(body["source"], "store");
    assert_eq!(body["rules"][0]["name"], "billing-words");
    assert_eq!(
        body["rules"][0]["when"]["keywords"],
        serde_json::json!(["invoice", "bill"])
    );
    // What GET answers, PUT takes back as it is.
    let again = g
        .api
        .call(
            Method::PUT,
            "/v1/rules",
            Some(ADMIN_TOKEN),
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json(), body);

    let reverted = g
        .post("/rules/revert", &admin, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(reverted.status, StatusCode::SEE_OTHER, "{}", reverted.body);
    let page = g.get("/rules", &admin).await;
    assert!(page.has("come from the config file"));
    assert!(page.has("No rules."));
}

#[tokio::test]
async fn agents_get_403_on_the_rules_page_and_api_and_posts_need_the_csrf_token() {
    let g = with_tokens();
    g.add_user("ana", Role::Agent).await;
    g.add_user("root", Role::Admin).await;
    let agent = g.sign_in("ana").await;
    let page = g.get("/rules", &agent).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.has("<h1>For administrators only</h1>"));
    let inbox = g.get("/inbox", &agent).await;
    assert!(!inbox.has("href=\"/rules\""));
    let posted = g
        .post(
            "/rules",
            &agent,
            &[("csrf", &inbox.csrf()), ("rules", BILLING_RULE)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = serde_json::json!({"rules": []});
        let api = g
            .api
            .call(
                method.clone(),
                "/v1/rules",
                Some(SEND_TOKEN),
                Some(&body),
                &[],
            )
            .await;
        assert_eq!(api.status, StatusCode::FORBIDDEN, "{method}");
    }

    let admin = g.sign_in("root").await;
    assert!(g.get("/inbox", &admin).await.has("href=\"/rules\""));
    let no_token = g.post("/rules", &admin, &[("rules", BILLING_RULE)]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let wrong = g
        .post(
            "/rules",
            &admin,
            &[("csrf", "wrong"), ("rules", BILLING_RULE)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let revert = g.post("/rules/revert", &admin, &[]).await;
    assert_eq!(revert.status, StatusCode::FORBIDDEN);
    assert_eq!(g.api.state.rules.in_effect().rules.len(), 0);
    assert!(g
        .get("/rules", &admin)
        .await
        .has("come from the config file"));
}

#[tokio::test]
async fn refused_rules_are_explained_beside_the_form_with_the_text_kept_and_nothing_changes() {
    let g = with_tokens();
    g.add_user("root", Role::Admin).await;
    let admin = g.sign_in("root").await;
    let page = g.get("/rules", &admin).await;
    let text = "[[rule]]\nname = \"odd\"\nwhen = { regex = \"(unclosed\" }\nthen = { tag = \"x\" }\n\n[[rule]]\nname = \"late\"\nwhen = { flow_state = \"nosuchflow\" }\nthen = { close = true }\n";
    let refused = g
        .post("/rules", &admin, &[("csrf", &page.csrf()), ("rules", text)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.is_html());
    assert!(refused.has("Nothing was saved"));
    assert!(
        refused.has("<code>rule[0].when.regex</code>"),
        "{}",
        refused.body
    );
    assert!(refused.has("<code>rule[1].when.flow_state</code>"));
    // The text as typed, to fix.
    assert!(refused.has("name = &quot;late&quot;"));
    assert!(refused.has("nosuchflow"));
    assert_eq!(
        g.api.state.rules.in_effect().source,
        smsgate::conversation::rulebook::RulesSource::Config
    );

    // The API refuses the same way, every problem by key.
    let body = serde_json::json!({"rules": [
        {"when": {"keywords": ["ok"]}, "then": {"tag": "fine"}},
        {"when": {"regex": "("}, "then": {"tag": "x"}},
        {"when": {"keywords": ["hi"]}, "then": {}},
    ]});
    let api = g
        .api
        .call(
            Method::PUT,
            "/v1/rules",
            Some(ADMIN_TOKEN),
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(
        api.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        api.text()
    );
    assert_eq!(
        api.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let problem = api.json();
    assert_eq!(problem["code"], "invalid_rules");
    let keys: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["rule[1].when.regex", "rule[2].then"], "{problem}");
    let now = g
        .api
        .call(Method::GET, "/v1/rules", Some(ADMIN_TOKEN), None, &[])
        .await
        .json();
    assert_eq!(now["source"], "config");
    assert_eq!(now["rules"], serde_json::json!([]));
}

/// With tokens, and two modems.
fn with_modems() -> Web {
    use smsgate::api::{ApiToken, Scope};
    Web::with(|rig| {
        rig.state.tokens = Arc::new(vec![
            ApiToken::from_secret("ops", ADMIN_TOKEN, vec![Scope::Admin]),
            ApiToken::from_secret("crm", SEND_TOKEN, vec![Scope::Send, Scope::Read]),
        ]);
        rig.add_modem("m1", ModemState::Ready, "+15550900001");
        rig.add_modem("m2", ModemState::Ready, "+15550900002");
    })
}

#[tokio::test]
async fn an_admin_changes_a_modems_settings_on_the_page_and_through_the_api() {
    let g = with_modems();
    g.add_user("root", Role::Admin).await;
    let admin = g.sign_in("root").await;
    let page = g.get("/settings/modems", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("href=\"/settings/modems\" aria-current=\"page\""));
    assert!(page.has("action=\"/settings/modems/m1\""));
    assert!(page.has("action=\"/settings/modems/m2\""));

    let saved = g
        .post(
            "/settings/modems/m1",
            &admin,
            &[
                ("csrf", &page.csrf()),
                ("daily_limit", "250"),
                ("sends_per_minute", ""),
                ("rest_after_failures", "4"),
                ("paused", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(g.api.state.dispatcher.is_paused("m1"));
    assert!(!g.api.state.dispatcher.is_paused("m2"));
    let page = g.get("/settings/modems", &admin).await;
    assert!(page.has("name=\"daily_limit\" value=\"250\""));
    // The Modems page says which modem is out of the pool.
    let modems = g.get("/modems", &admin).await;
    let card = |id: &str| {
        modems
            .body
            .split(&format!("id=\"modem-{id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        card("m1").contains("Paused by an administrator"),
        "{}",
        modems.body
    );
    assert!(!card("m2").contains("Paused by an administrator"));

    let api = g
        .api
        .call(
            Method::GET,
            "/v1/modems/m1/settings",
            Some(ADMIN_TOKEN),
            None,
            &[],
        )
        .await;
    assert_eq!(api.status, StatusCode::OK);
    let body = api.json();
    assert_eq!(body["paused"], true);
    assert_eq!(body["daily_limit"], 250);
    assert_eq!(body["rest_after_failures"], 4);
    assert_eq!(body["sends_per_minute"], serde_json::Value::Null);
    // Partial: only what is given changes; null is the config's value again.
    let put = g
        .api
        .call(
            Method::PUT,
            "/v1/modems/m1/settings",
            Some(ADMIN_TOKEN),
            Some(&serde_json::json!({"paused": false, "daily_limit": null})),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let body = put.json();
    assert_eq!(body["paused"], false);
    assert_eq!(body["daily_limit"], serde_json::Value::Null);
    assert_eq!(body["rest_after_failures"], 4);
    assert!(!g.api.state.dispatcher.is_paused("m1"));

    let unknown = g
        .api
        .call(
            Method::PUT,
            "/v1/modems/nope/settings",
            Some(ADMIN_TOKEN),
            Some(&serde_json::json!({"paused": true})),
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for bad in [
        serde_json::json!({"daily_limit": 0}),
        serde_json::json!({"daily_limit": -3}),
        serde_json::json!({"sends_per_minute": "many"}),
        serde_json::json!({"paused": "yes"}),
        serde_json::json!({"colour": 1}),
    ] {
        let refused = g
            .api
            .call(
                Method::PUT,
                "/v1/modems/m2/settings",
                Some(ADMIN_TOKEN),
                Some(&bad),
                &[],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let field = bad.as_object().unwrap().keys().next().unwrap().clone();
        assert!(
            refused.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with(&field),
            "{}",
            refused.text()
        );
    }
    assert_eq!(
        g.api.state.dispatcher.overrides("m2"),
        smsgate::modem::overrides::Overrides::default()
    );
}

#[tokio::test]
async fn modem_settings_are_for_admins_need_the_csrf_token_and_explain_a_bad_value() {
    let g = with_modems();
    g.add_user("ana", Role::Agent).await;
    g.add_user("root", Role::Admin).await;
    let agent = g.sign_in("ana").await;
    let page = g.get("/settings/modems", &agent).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.has("<h1>For administrators only</h1>"));
    let inbox = g.get("/inbox", &agent).await;
    assert!(!inbox.has("href=\"/settings/modems\""));
    let posted = g
        .post(
            "/settings/modems/m1",
            &agent,
            &[("csrf", &inbox.csrf()), ("paused", "on")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    for method in [Method::GET, Method::PUT] {
        let api = g
            .api
            .call(
                method.clone(),
                "/v1/modems/m1/settings",
                Some(SEND_TOKEN),
                Some(&serde_json::json!({"paused": true})),
                &[],
            )
            .await;
        assert_eq!(api.status, StatusCode::FORBIDDEN, "{method}");
    }

    let admin = g.sign_in("root").await;
    let page = g.get("/settings/modems", &admin).await;
    assert!(g
        .get("/inbox", &admin)
        .await
        .has("href=\"/settings/modems\""));
    let no_token = g
        .post("/settings/modems/m1", &admin, &[("paused", "on")])
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(!g.api.state.dispatcher.is_paused("m1"));

    let refused = g
        .post(
            "/settings/modems/m1",
            &admin,
            &[
                ("csrf", &page.csrf()),
                ("daily_limit", "lots"),
                ("sends_per_minute", "12"),
                ("paused", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.is_html());
    assert!(
        refused.has("Daily_limit: must be a whole number"),
        "{}",
        refused.body
    );
    assert!(refused.has("name=\"daily_limit\" value=\"lots\""));
    assert!(refused.has("name=\"sends_per_minute\" value=\"12\""));
    assert_eq!(
        g.api.state.dispatcher.overrides("m1"),
        smsgate::modem::overrides::Overrides::default()
    );
}
