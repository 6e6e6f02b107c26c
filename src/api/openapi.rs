//! The OpenAPI 3.1 document served at `/v1/openapi.json`. The schemas of
//! every body are derived from the wire and request types (`utoipa`'s
//! `ToSchema`, in [`crate::wire`] and beside the handlers), so they cannot
//! drift from what is served; the operations are written here, and a test
//! checks them against [`super::ROUTES`] both ways, so a route cannot be
//! added or removed without the document following.

use axum::Json;
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::campaigns::{CampaignRecipientsRequest, CampaignRequest, CampaignVariantRequest};
use super::contacts::{ConsentRequest, ContactRequest, OptOutRequest};
use super::messages::SendRequest;
use super::problem::Problem;
use super::threads::{AssignmentRequest, NoteRequest, OutcomeRequest, ReplyRequest, StateRequest};
use super::users::{User, UserRequest, UserUpdate};
use crate::wire;

/// The schemas the operations refer to (and, through them, every type
/// they contain).
#[derive(OpenApi)]
#[openapi(components(schemas(
    Problem,
    SendRequest,
    ConsentRequest,
    OptOutRequest,
    ContactRequest,
    wire::Accepted,
    wire::Message,
    wire::MessageStatus,
    wire::ThreadSummary,
    wire::ReadMark,
    wire::ModemStatus,
    wire::ModemProbe,
    wire::Health,
    wire::Readiness,
    wire::WebhookEndpoint,
    wire::Delivery,
    wire::DeliveryStatus,
    wire::Event,
    wire::ConsentView,
    wire::ContactView,
    wire::EventContact,
    wire::ImportReport,
    wire::Erased,
    wire::MetricsSummary,
    CampaignRequest,
    CampaignRecipientsRequest,
    CampaignVariantRequest,
    wire::Campaign,
    wire::CampaignError,
    NoteRequest,
    ReplyRequest,
    AssignmentRequest,
    StateRequest,
    OutcomeRequest,
    wire::Thread,
    wire::InboxItem,
    User,
    UserRequest,
    UserUpdate,
)))]
struct Schemas;

/// `components.schemas`, derived.
fn components() -> Value {
    serde_json::to_value(Schemas::openapi())
        .map(|doc| doc["components"]["schemas"].clone())
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot render the OpenAPI schemas");
            json!({})
        })
}

pub(super) fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

pub(super) fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

pub(super) fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub(super) fn page_of(name: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": schema(name) },
            "next_cursor": { "type": ["string", "null"], "description": "Pass as cursor for the next page; null on the last." }
        }
    })
}

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name, "in": location, "required": location == "path",
        "description": description, "schema": schema
    })
}

fn paging() -> Vec<Value> {
    vec![
        param(
            "limit",
            "query",
            "Page size (default 50).",
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
        ),
        param(
            "cursor",
            "query",
            "next_cursor of the previous page.",
            json!({"type": "string"}),
        ),
    ]
}

/// Operation with the standard auth answers for a scope.
pub(super) fn secured(scope: &str, summary: &str, mut op: Value) -> Value {
    op["summary"] = json!(summary);
    op["security"] = json!([{ "bearer": [scope] }]);
    op["description"] = json!(format!(
        "{} Needs a token with the `{scope}` (or `admin`) scope.",
        op["description"].as_str().unwrap_or("")
    ));
    let has_body = op.get("requestBody").is_some();
    let responses = &mut op["responses"];
    responses["401"] = problem("No or unknown token (`unauthorized`).");
    responses["403"] = problem("The token lacks the scope (`forbidden`).");
    responses["503"] = problem(
        "The store is unavailable (`store_unavailable`), or the request took too long (`timeout`).",
    );
    if has_body {
        // What the JSON body extractor refuses, on every route with a body.
        responses["400"] = problem("Malformed JSON (`invalid_json`).");
        responses["413"] = problem("Body over 64 KiB (`payload_too_large`).");
        responses["415"] = problem("Not application/json (`unsupported_media_type`).");
        if responses.get("422").is_none() {
            responses["422"] = problem("Not the documented shape (`invalid_request`).");
        }
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut doc = base_document();
    doc["paths"]["/metrics"] = json!({
        "get": {
            "summary": "Prometheus metrics",
            "description": "Text exposition format 0.0.4: modem state, signal, registration, queue depth, counters, AT command latency histogram; outbox; store size; webhook queue and deliveries. No token.",
            "security": [],
            "responses": { "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}} }
        }
    });
    for (path, item) in contact_paths().into_iter().chain(campaign_paths()) {
        doc["paths"][path] = item;
    }
    doc["paths"]["/v1/metrics/summary"] = metrics_summary_path();
    for (name, schema) in timeline_schemas(&doc["components"]["schemas"]["Message"]) {
        doc["components"]["schemas"][name] = schema;
    }
    for (path, item) in thread_paths()
        .into_iter()
        .chain(super::users::paths())
        .chain(super::rules::paths())
        .chain(super::modem_settings::paths())
    {
        doc["paths"][path] = item;
    }
    name_operations(&mut doc);
    link_operations(&mut doc);
    doc
}

/// `operationId` of an operation: its method and path
/// (`GET /v1/messages/{id}` -> `get_v1_messages_id`).
fn operation_id(method: &str, path: &str) -> String {
    let path: String = path
        .trim_start_matches('/')
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{}_{path}", method.to_ascii_lowercase())
}

fn name_operations(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if let Some(item) = item.as_object_mut() {
            for (method, op) in item.iter_mut() {
                op["operationId"] = json!(operation_id(method, path));
            }
        }
    }
}

/// Links from answers that carry ids to the operations that take them
/// (OpenAPI 3.1 §4.8.20), so a client generator, or schemathesis' stateful
/// phase, can follow a sent message or a listed thread.
fn link_operations(doc: &mut Value) {
    let first = |field: &str| format!("$response.body#/items/0/{field}");
    let links: [(&str, &str, &str, &str, &str, &str, String); 9] = [
        (
            "POST",
            "/v1/messages",
            "202",
            "GetMessage",
            "GET",
            "/v1/messages/{id}",
            "$response.body#/id".into(),
        ),
        (
            "POST",
            "/v1/messages",
            "202",
            "CancelMessage",
            "DELETE",
            "/v1/messages/{id}",
            "$response.body#/id".into(),
        ),
        (
            "POST",
            "/v1/messages",
            "202",
            "ResendMessage",
            "POST",
            "/v1/messages/{id}/resend",
            "$response.body#/id".into(),
        ),
        (
            "GET",
            "/v1/messages",
            "200",
            "GetFirstMessage",
            "GET",
            "/v1/messages/{id}",
            first("id"),
        ),
        (
            "GET",
            "/v1/threads",
            "200",
            "OpenFirstThread",
            "GET",
            "/v1/threads/{contact}",
            first("contact"),
        ),
        (
            "GET",
            "/v1/threads",
            "200",
            "MarkFirstThreadRead",
            "POST",
            "/v1/threads/{contact}/read",
            first("contact"),
        ),
        (
            "GET",
            "/v1/modems",
            "200",
            "GetFirstModem",
            "GET",
            "/v1/modems/{id}",
            first("id"),
        ),
        (
            "GET",
            "/v1/webhooks",
            "200",
            "EnableFirstWebhook",
            "POST",
            "/v1/webhooks/{id}/enable",
            first("id"),
        ),
        (
            "GET",
            "/v1/webhooks/deliveries",
            "200",
            "RetryFirstDelivery",
            "POST",
            "/v1/webhooks/deliveries/{id}/retry",
            first("id"),
        ),
    ];
    for (method, path, status, name, to_method, to_path, value) in links {
        let parameter = if to_path.contains("{contact}") {
            "contact"
        } else {
            "id"
        };
        let response = &mut doc["paths"][path][method.to_ascii_lowercase()]["responses"][status];
        response["links"][name] = json!({
            "operationId": operation_id(to_method, to_path),
            "parameters": { parameter: value }
        });
    }
}

/// `TimelineItem` (a message with `kind`, `at` and `author`, a note, an
/// activity) and `ThreadView`, written here: the message item is the
/// derived Message schema with three fields more.
fn timeline_schemas(message: &Value) -> Vec<(&'static str, Value)> {
    let kind = |k: &str| json!({"type": "string", "enum": [k]});
    let at = json!({"type": "string", "format": "date-time"});
    let author = json!({"type": ["string", "null"], "description": "A person, `automation`, or null (the contact, an application)."});
    let mut message_item = message.clone();
    message_item["properties"]["kind"] = kind("message");
    message_item["properties"]["at"] = at.clone();
    message_item["properties"]["author"] = author.clone();
    if let Some(required) = message_item["required"].as_array_mut() {
        required.extend([json!("kind"), json!("at"), json!("author")]);
    }
    message_item["description"] =
        json!("A message of the thread (the Message schema) with its kind, time and author.");
    let note = json!({
        "type": "object",
        "description": "A note by a person: never sent.",
        "required": ["kind", "id", "at", "author", "text"],
        "properties": {"kind": kind("note"), "id": {"type": "string"}, "at": at, "author": author, "text": {"type": "string"}}
    });
    let activity = json!({
        "type": "object",
        "description": "A change to the thread: assigned, state_changed, responded, priority_changed, tagged, answered, outcome, flow_started, flow_changed, flow_left, sla_breached; detail says what.",
        "required": ["kind", "id", "at", "author", "activity", "detail"],
        "properties": {"kind": kind("activity"), "id": {"type": "string"}, "at": at, "author": author,
            "activity": {"type": "string", "examples": ["assigned", "state_changed", "outcome"]},
            "detail": {"type": "object"}}
    });
    vec![
        (
            "TimelineItem",
            json!({"oneOf": [message_item, note, activity]}),
        ),
        (
            "ThreadView",
            json!({
                "type": "object",
                "required": ["thread", "items", "next_cursor"],
                "properties": {
                    "thread": schema("Thread"),
                    "items": {"type": "array", "items": schema("TimelineItem"), "description": "The timeline, oldest first."},
                    "next_cursor": { "type": ["string", "null"], "description": "Pass as cursor for older entries; null at the start." }
                }
            }),
        ),
    ]
}

/// A thread as a team inbox: the timeline, notes, replies, assignment,
/// state, outcomes; the inbox.
fn thread_paths() -> Vec<(&'static str, Value)> {
    let contact = param(
        "contact",
        "path",
        "E.164, percent-encoded (%2B15551234567), or an alphanumeric sender.",
        json!({"type": "string"}),
    );
    let body = |name: &str| json!({"required": true, "content": {"application/json": {"schema": schema(name)}}});
    let mut timeline_params = vec![contact.clone()];
    timeline_params.extend(paging());
    let mut inbox_params = vec![
        param(
            "team",
            "query",
            "Only this team's threads.",
            json!({"type": "string"}),
        ),
        param(
            "assignee",
            "query",
            "Only this person's threads.",
            json!({"type": "string"}),
        ),
        param(
            "state",
            "query",
            "Default: open, and snoozed threads whose time has come.",
            json!({"type": "string", "enum": ["open", "waiting_on_customer", "snoozed", "closed"]}),
        ),
        param(
            "priority",
            "query",
            "Only this priority.",
            json!({"type": "string", "enum": ["normal", "urgent"]}),
        ),
    ];
    inbox_params.extend(paging());
    let changed = "`not_found`: no thread or message with the contact.";
    vec![
        (
            "/v1/threads/{contact}",
            json!({
                "get": secured("read", "A thread and its timeline (messages, notes, activities), oldest first; cursors page back in time", json!({
                    "description": "A contact with messages and no thread record yet answers a default thread.",
                    "parameters": timeline_params,
                    "responses": {
                        "200": ok("The thread and a page of its timeline.", schema("ThreadView")),
                        "404": problem("`not_found`."),
                        "422": problem("`invalid_number`, `invalid_query`.")
                    }
                }))
            }),
        ),
        (
            "/v1/threads/{contact}/notes",
            json!({
                "post": secured("send", "Add a note to a thread (never sent)", json!({
                    "parameters": [contact.clone()],
                    "requestBody": body("NoteRequest"),
                    "responses": {
                        "201": ok("The note, as a timeline item.", schema("TimelineItem")),
                        "404": problem(changed),
                        "422": problem("`invalid_number`, `invalid_request`.")
                    }
                }))
            }),
        ),
        (
            "/v1/threads/{contact}/reply",
            json!({
                "post": secured("send", "Reply in a thread: a conversational message through the same admission as POST /v1/messages; stops the wait and the SLA clock", json!({
                    "description": "An Idempotency-Key header works as on POST /v1/messages.",
                    "parameters": [contact.clone()],
                    "requestBody": body("ReplyRequest"),
                    "responses": {
                        "202": ok("Accepted: the message.", schema("Message")),
                        "404": problem(changed),
                        "409": problem("`recipient_opted_out`, `consent_required`, `message_erased`."),
                        "422": problem("`invalid_number`, `invalid_request`, `body_too_long`, `not_conversational`, `idempotency_key_reused`.")
                    }
                }))
            }),
        ),
        (
            "/v1/threads/{contact}/assignment",
            json!({
                "put": secured("send", "Assign a thread to a team and a person (null unassigns)", json!({
                    "parameters": [contact.clone()],
                    "requestBody": body("AssignmentRequest"),
                    "responses": {
                        "200": ok("The thread.", schema("Thread")),
                        "404": problem(changed),
                        "422": problem("`invalid_number`, `invalid_request`.")
                    }
                }))
            }),
        ),
        (
            "/v1/threads/{contact}/state",
            json!({
                "put": secured("send", "Open, close, snooze (until a time) or mark waiting on the customer", json!({
                    "parameters": [contact.clone()],
                    "requestBody": body("StateRequest"),
                    "responses": {
                        "200": ok("The thread.", schema("Thread")),
                        "404": problem(changed),
                        "422": problem("`invalid_state`, `invalid_until`, `invalid_number`, `invalid_request`.")
                    }
                }))
            }),
        ),
        (
            "/v1/threads/{contact}/outcomes",
            json!({
                "post": secured("send", "Record an outcome on a thread (a payment_completed closes a payment flow)", json!({
                    "parameters": [contact],
                    "requestBody": body("OutcomeRequest"),
                    "responses": {
                        "201": ok("The thread.", schema("Thread")),
                        "404": problem(changed),
                        "422": problem("`invalid_outcome`, `invalid_number`, `invalid_request`.")
                    }
                }))
            }),
        ),
        (
            "/v1/inbox",
            json!({
                "get": secured("read", "Threads waiting on us: urgent first, then oldest wait", json!({
                    "description": "Closed and waiting_on_customer threads only when asked for by state.",
                    "parameters": inbox_params,
                    "responses": {
                        "200": ok("A page.", page_of("InboxItem")),
                        "422": problem("`invalid_query`.")
                    }
                }))
            }),
        ),
    ]
}

/// Contacts and consent (issue: consent).
fn contact_paths() -> Vec<(&'static str, Value)> {
    let contact = param(
        "contact",
        "path",
        "E.164, percent-encoded (%2B15551234567).",
        json!({"type": "string"}),
    );
    let view = schema("ConsentView");
    let contact_view = schema("ContactView");
    let mut list_params = vec![
        param(
            "tag",
            "query",
            "Only contacts with this tag (exact).",
            json!({"type": "string"}),
        ),
        param(
            "q",
            "query",
            "A case-insensitive substring of the name or external id, or digits of the number.",
            json!({"type": "string"}),
        ),
        param(
            "external_id",
            "query",
            "The contact with this CRM id (alone: no other filter or cursor).",
            json!({"type": "string"}),
        ),
    ];
    list_params.extend(paging());
    let mut import = secured(
        "send",
        "Import contacts from CSV",
        json!({
            "description": "A header row, then one contact a row (RFC 4180: quoted fields may hold commas, quotes and line breaks). `number` is required; `name`, `external_id`, `tags` (separated by `;`), `time_zone`, `owner_team` set the profile; any other column is a field. A column the file has replaces that value (an empty cell clears it); one it lacks is kept. Up to 100,000 rows and 16 MiB. Bad rows are reported by the line they start on and the good ones kept; consent is never changed.",
            "requestBody": {"required": true, "content": {"text/csv": {"schema": {"type": "string"}}}},
            "responses": {
                "200": ok("What was imported, and each refused row.", schema("ImportReport")),
                "422": problem("The header row: no `number` column, a repeated column, a column name that cannot be a field key (`invalid_csv_header`); nothing was written.")
            }
        }),
    );
    // The body is CSV, with its own limits: not the JSON extractor's refusals.
    let responses = &mut import["responses"];
    if let Some(r) = responses.as_object_mut() {
        r.remove("400");
    }
    responses["413"] = problem(
        "Over 16 MiB (`payload_too_large`) or 100,000 rows (`too_many_rows`); nothing was written.",
    );
    responses["415"] = problem("Not text/csv (`unsupported_media_type`).");
    vec![
        (
            "/v1/contacts",
            json!({
                "get": secured("read", "Contacts with a profile, in number order; by tag, search, or the CRM's id", json!({
                    "description": "With `q`, at most 10,000 contacts are looked at per request: a page can be short and still have a `next_cursor`.",
                    "parameters": list_params,
                    "responses": { "200": ok("A page.", page_of("ContactView")), "422": problem("A bad parameter (`invalid_query`).") }
                }))
            }),
        ),
        ("/v1/contacts/import", json!({ "post": import })),
        (
            "/v1/contacts/{contact}",
            json!({
                "get": secured("read", "A contact's profile and consent status", json!({
                    "parameters": [contact.clone()],
                    "responses": { "200": ok("The contact.", contact_view.clone()), "422": problem("`invalid_number`.") }
                })),
                "put": secured("send", "Replace a contact's profile (name, external id, tags, owner team, fields, time zone)", json!({
                    "description": "The whole profile: a field left out or null is cleared. Consent is set apart (`/consent`).",
                    "parameters": [contact.clone()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": schema("ContactRequest")}}},
                    "responses": {
                        "200": ok("Saved.", contact_view),
                        "409": problem("Another contact has this external id (`external_id_taken`)."),
                        "422": problem("`invalid_time_zone`, `invalid_name`, `invalid_external_id`, `invalid_tags`, `invalid_owner_team`, `invalid_fields`, `invalid_number`, `invalid_request`.")
                    }
                })),
                "delete": secured("admin", "Erase a contact's messages and details; an opt-out survives as a hashed tombstone", json!({
                    "parameters": [contact.clone()],
                    "responses": { "200": ok("Erased.", schema("Erased")), "422": problem("`invalid_number`.") }
                }))
            }),
        ),
        (
            "/v1/contacts/{contact}/consent",
            json!({
                "get": secured("read", "Current consent and the full, append-only ledger", json!({
                    "parameters": [contact.clone()],
                    "responses": { "200": ok("Consent.", view.clone()), "422": problem("`invalid_number`.") }
                })),
                "put": secured("send", "Record an opt-in (evidence required) or an opt-out", json!({
                    "parameters": [contact],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": schema("ConsentRequest")}}},
                    "responses": { "200": ok("Recorded.", view.clone()), "422": problem("`evidence_required`, `invalid_status`, `invalid_captured_at`, `invalid_number`, `invalid_request`.") }
                }))
            }),
        ),
        (
            "/v1/optouts",
            json!({
                "post": secured("send", "Opt a number out by hand (a call, an email); waiting messages are cancelled", json!({
                    "requestBody": {"required": true, "content": {"application/json": {"schema": schema("OptOutRequest")}}},
                    "responses": { "200": ok("Opted out.", view), "422": problem("`invalid_number`, `invalid_request`.") }
                }))
            }),
        ),
        (
            "/v1/consent/export",
            json!({
                "get": secured("read", "The whole consent ledger as CSV", json!({
                    "responses": { "200": {"description": "CSV, one ledger entry per row.", "content": {"text/csv": {"schema": {"type": "string"}}}} }
                }))
            }),
        ),
    ]
}

/// Campaigns (issue 12, "Campaigns, one change at a time").
fn campaign_paths() -> Vec<(&'static str, Value)> {
    let id = param(
        "id",
        "path",
        "Campaign id.",
        json!({"type": "string", "example": "cmp_018f2a7c3b1d9e37a1c4"}),
    );
    let mut create = secured(
        "send",
        "Send a campaign",
        json!({
            "description": "Stored durably with its recipient list before the 202; the gateway then accepts the recipients in batches, each message through the same consent, quiet-hours and rate-limit checks as POST /v1/messages (opted-out recipients are skipped and counted; a recipient with no value for a placeholder is listed by GET /v1/campaigns/{id}/errors, never sent a blank). A restart resumes an unfinished campaign without sending anyone a second message. With an Idempotency-Key, the same key and body answer the same campaign again.",
            "parameters": [param("Idempotency-Key", "header", "Up to 255 printable ASCII characters.", json!({"type": "string"}))],
            "requestBody": { "required": true, "content": { "application/json": { "schema": schema("CampaignRequest") } } },
            "responses": {
                "202": ok("Accepted; progress at GET /v1/campaigns/{id}.", schema("Campaign")),
                "422": problem("`invalid_name`, `invalid_recipients`, `invalid_variants`, `invalid_weights`, `invalid_template`, `invalid_category`, `invalid_flow`, `invalid_flow_context`, `invalid_context`, `invalid_send_at`, `invalid_idempotency_key`, `idempotency_key_reused`, `invalid_request`.")
            }
        }),
    );
    create["responses"]["413"] = problem("Body over 4 MiB (`payload_too_large`).");
    let mut errors_params = vec![id.clone()];
    errors_params.extend(paging());
    vec![
        (
            "/v1/campaigns",
            json!({
                "post": create,
                "get": secured("read", "Campaigns, newest first", json!({
                    "parameters": paging(),
                    "responses": { "200": ok("A page.", page_of("Campaign")), "422": problem("`invalid_query`.") }
                }))
            }),
        ),
        (
            "/v1/campaigns/{id}",
            json!({
                "get": secured("read", "A campaign's progress, by variant", json!({
                    "parameters": [id.clone()],
                    "responses": { "200": ok("The campaign.", schema("Campaign")), "404": problem("`not_found`.") }
                }))
            }),
        ),
        (
            "/v1/campaigns/{id}/errors",
            json!({
                "get": secured("read", "The recipients refused with an error, in the order found", json!({
                    "parameters": errors_params,
                    "responses": {
                        "200": ok("A page.", page_of("CampaignError")),
                        "404": problem("`not_found`."),
                        "409": problem("`campaign_elsewhere`: another gateway's campaign (in a fleet); its errors are listed there."),
                        "422": problem("`invalid_query`.")
                    }
                }))
            }),
        ),
        (
            "/v1/campaigns/{id}/cancel",
            json!({
                "post": secured("send", "Cancel a campaign", json!({
                    "description": "No more recipients are accepted, and every message of the campaign that has not reached a modem is cancelled; the campaign is `cancelling` until that is done, then `cancelled`. Asking again changes nothing. In a fleet, another gateway's campaign (with `site`) is cancelled by that gateway: the request is passed on.",
                    "parameters": [id],
                    "responses": { "202": ok("Cancelling.", schema("Campaign")), "404": problem("`not_found`.") }
                }))
            }),
        ),
    ]
}

/// The conversation metrics (issue 12).
fn metrics_summary_path() -> Value {
    let name = |what: &str| {
        param(
            what,
            "query",
            &format!("Only this {what} (omit for all)."),
            json!({"type": "string", "minLength": 1, "maxLength": 200}),
        )
    };
    let day = |what: &str, default: &str| {
        param(
            what,
            "query",
            &format!("{what}: a UTC day YYYY-MM-DD (an RFC 3339 time stands for its UTC day); default {default}."),
            json!({"type": "string", "examples": ["2026-03-01"]}),
        )
    };
    json!({
        "get": secured("read", "Reply rate, time to first response, conversion rate, opt-out rate and cost per outcome", json!({
            "description": "Over whole UTC days from `from` to `to` (both included; at most 731 days), from counters kept as messages, replies and outcomes happen. Contacts count once per period. `variant` needs `campaign`. Time to first response is kept by team only. Definitions: README.md, Metrics.",
            "parameters": [
                day("from", "29 days before `to`"),
                day("to", "today"),
                name("campaign"),
                name("variant"),
                name("team")
            ],
            "responses": {
                "200": ok("The metrics.", schema("MetricsSummary")),
                "422": problem("A bad date, period or filter (`invalid_query`).")
            }
        }))
    })
}

fn base_document() -> Value {
    let id = param(
        "id",
        "path",
        "Message id.",
        json!({"type": "string", "example": "msg_018f2a7c3b1d9e37a1c4"}),
    );
    let contact = param(
        "contact",
        "path",
        "E.164, percent-encoded (%2B15551234567), or an alphanumeric sender or short code as the thread list shows it.",
        json!({"type": "string", "examples": ["+15551234567", "InfoSMS"]}),
    );
    let modem_id = param(
        "id",
        "path",
        "Modem id from the config.",
        json!({"type": "string"}),
    );
    let mut list_params = vec![
        param(
            "contact",
            "query",
            "E.164 number (percent-encode the +), or an alphanumeric sender as stored.",
            json!({"type": "string"}),
        ),
        param(
            "direction",
            "query",
            "Which way.",
            json!({"enum": ["inbound", "outbound"]}),
        ),
        param(
            "status",
            "query",
            "Message status.",
            schema("MessageStatus"),
        ),
        param(
            "since",
            "query",
            "Created at or after (RFC 3339).",
            json!({"type": "string", "format": "date-time"}),
        ),
    ];
    list_params.extend(paging());

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "smsgate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "On-premise two-way SMS gateway. Errors are RFC 9457 problem details with a stable `code`. Lists answer `{items, next_cursor}`."
        },
        "paths": {
            "/healthz": { "get": {
                "summary": "Liveness", "security": [],
                "responses": { "200": ok("The process is serving.", schema("Health")) }
            }},
            "/readyz": { "get": {
                "summary": "Readiness: at least one modem is ready", "security": [],
                "description": "No token needed: the status code and `status` say ready or not. A token with the `read` scope (sent as usual) also gets each modem's state and reason.",
                "responses": {
                    "200": ok("A modem is ready.", schema("Readiness")),
                    "503": ok("No modem is ready.", schema("Readiness"))
                }
            }},
            "/v1/openapi.json": { "get": {
                "summary": "This document", "security": [],
                "responses": { "200": ok("OpenAPI 3.1.", json!({"type": "object"})) }
            }},
            "/v1/messages": {
                "post": secured("send", "Send a message", json!({
                    "description": "Stored durably before the 202. With an Idempotency-Key, the same key and body answer the original 202 again and send nothing; the same key with another body is refused (`idempotency_key_reused`). Keys are kept 7 days.",
                    "parameters": [param("Idempotency-Key", "header", "Up to 255 printable ASCII characters.", json!({"type": "string"}))],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": schema("SendRequest") } } },
                    "responses": {
                        "202": ok("Accepted (queued, scheduled, or deferred by quiet hours or rate limits).", schema("Accepted")),
                        "409": problem("`recipient_opted_out` (the contact texted STOP), `consent_required` (marketing without opt-in evidence), `message_erased` (a replayed Idempotency-Key whose message was erased with its contact)."),
                        "422": problem("`invalid_number`, `body_empty`, `body_too_long`, `unknown_modem`, `invalid_send_at`, `invalid_validity`, `idempotency_key_reused`, `invalid_idempotency_key`, `invalid_request`, `invalid_category`, `not_conversational`.")
                    }
                })),
                "get": secured("read", "List messages, newest first", json!({
                    "description": "At most 10,000 messages are looked at per request: a page can hold fewer than `limit` items and still have a `next_cursor`; follow it until it is null.",
                    "parameters": list_params,
                    "responses": {
                        "200": ok("A page.", page_of("Message")),
                        "422": problem("A bad parameter (`invalid_query`).")
                    }
                }))
            },
            "/v1/messages/{id}": {
                "get": secured("read", "A message with its history", json!({
                    "parameters": [id.clone()],
                    "responses": { "200": ok("The message.", schema("Message")), "404": problem("`not_found`.") }
                })),
                "delete": secured("send", "Cancel a message no part of which has reached a modem", json!({
                    "parameters": [id.clone()],
                    "responses": {
                        "200": ok("Cancelled.", schema("Message")),
                        "404": problem("`not_found`."),
                        "409": problem("Already (partly) handed to a modem, or final (`not_cancellable`).")
                    }
                }))
            },
            "/v1/messages/{id}/resend": {
                "post": secured("send", "Resend a message in status unknown", json!({
                    "description": "The daemon stopped while a part was with the modem, so it may or may not have gone out; parts not known sent go back to the queue.",
                    "parameters": [id],
                    "responses": {
                        "200": ok("Queued again.", schema("Message")),
                        "404": problem("`not_found`."),
                        "409": problem("Not in unknown (`not_resendable`).")
                    }
                }))
            },
            "/v1/threads": {
                "get": secured("read", "Threads, most recent first", json!({
                    "parameters": paging(),
                    "responses": { "200": ok("A page.", page_of("ThreadSummary")), "422": problem("`invalid_query`.") }
                }))
            },
            "/v1/threads/{contact}/read": {
                "post": secured("read", "Mark a thread's inbound messages read", json!({
                    "parameters": [contact],
                    "responses": {
                        "200": ok("Marked.", schema("ReadMark")),
                        "404": problem("`not_found`."),
                        "422": problem("`invalid_number`.")
                    }
                }))
            },
            "/v1/modems": {
                "get": secured("read", "Every modem's status", json!({
                    "responses": { "200": ok("All modems (one page).", page_of("ModemStatus")) }
                }))
            },
            "/v1/modems/{id}": {
                "get": secured("read", "One modem's status", json!({
                    "parameters": [modem_id],
                    "responses": { "200": ok("The modem.", schema("ModemStatus")), "404": problem("`not_found`.") }
                }))
            },
            "/v1/modems/{id}/probe": {
                "post": secured("read", "Run the technician's probe on a modem the gateway holds", json!({
                    "description": "The modem's actor runs the checks of `smsgate modem probe` over its own connection, between its commands (sends queued meanwhile go after it; a command that times out counts as any other), keeps the result as the modem's last, and answers it. A probe not finished within 25 s is answered 503 `probe_timeout` (its result is kept when it finishes).",
                    "parameters": [modem_id],
                    "responses": {
                        "200": ok("The probe's result.", schema("ModemProbe")),
                        "404": problem("`not_found`."),
                        "409": problem("`modem_not_connected` (offline or starting: the probe needs its connection), `probe_busy`.")
                    }
                })),
                "get": secured("read", "The last probe the gateway ran on a modem", json!({
                    "parameters": [modem_id],
                    "responses": {
                        "200": ok("The last probe, with its time (kept across restarts).", schema("ModemProbe")),
                        "404": problem("`not_found`: no such modem, or never probed.")
                    }
                }))
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": components()
        },
        "security": [{ "bearer": [] }]
    });
    webhook_paths(&mut doc);
    doc
}

/// Webhooks and the event log (kept apart: one `json!` this size would
/// exceed the macro's recursion limit).
fn webhook_paths(doc: &mut Value) {
    let paths = &mut doc["paths"];
    let id = param(
        "id",
        "path",
        "Delivery id (dly_...).",
        json!({"type": "string"}),
    );
    let hook_id = param(
        "id",
        "path",
        "Webhook id from the config.",
        json!({"type": "string"}),
    );
    let mut delivery_params =
        vec![
        param(
            "status",
            "query",
            "Only deliveries in this state (failed: tried, retry scheduled; dead: dead letters).",
            json!({"enum": ["pending", "failed", "delivered", "dead"]}),
        ),
        param("endpoint", "query", "Only this webhook's.", json!({"type": "string"})),
    ];
    delivery_params.extend(paging());
    let after = param(
        "after",
        "query",
        "An event id: start after it.",
        json!({"type": "string", "pattern": "^evt_[0-9a-f]{16}$"}),
    );
    paths["/v1/webhooks"] = json!({
        "get": secured("read", "Webhook endpoints and their state", json!({
            "description": "Each configured endpoint: enabled, or disabled (by a 410 Gone) and why; open and dead delivery counts; last success and failure.",
            "responses": { "200": ok("All endpoints (one page).", page_of("WebhookEndpoint")) }
        }))
    });
    paths["/v1/webhooks/deliveries"] = json!({
        "get": secured("read", "Webhook deliveries, by endpoint then event order", json!({
            "parameters": delivery_params,
            "responses": {
                "200": ok("A page.", page_of("Delivery")),
                "422": problem("A bad parameter (`invalid_query`).")
            }
        }))
    });
    paths["/v1/webhooks/deliveries/{id}/retry"] = json!({
        "post": secured("admin", "Try a delivery again now", json!({
            "description": "A dead letter or a waiting delivery is due at once with a fresh retry schedule; it is signed afresh (new webhook-timestamp, same webhook-id).",
            "parameters": [id],
            "responses": {
                "202": ok("Scheduled.", schema("Delivery")),
                "404": problem("`not_found`."),
                "409": problem("Already delivered (`already_delivered`).")
            }
        }))
    });
    paths["/v1/webhooks/{id}/enable"] = json!({
        "post": secured("admin", "Enable an endpoint a 410 disabled", json!({
            "description": "Its waiting deliveries go out again, in order.",
            "parameters": [hook_id],
            "responses": { "200": ok("Enabled.", schema("WebhookEndpoint")), "404": problem("`not_found`.") }
        }))
    });
    paths["/v1/events"] = json!({
        "get": secured("read", "Events in order, for catching up", json!({
            "description": "The events webhooks deliver, oldest first, after `after` (from the first without it). `next_cursor` is the last item's id when the page is full, null otherwise: poll again with `after` set to the last id seen.",
            "parameters": [after.clone(), paging()[0].clone()],
            "responses": {
                "200": ok("A page.", page_of("Event")),
                "422": problem("A bad parameter (`invalid_query`).")
            }
        }))
    });
    paths["/v1/events/stream"] = json!({
        "get": secured("read", "Live events (Server-Sent Events)", json!({
            "description": "text/event-stream. Each event: `id:` the event id, `event:` its type, `data:` the Event JSON. Starts after the `Last-Event-ID` header (a reconnecting EventSource sends it), else after `after`, else with the next new event.",
            "parameters": [after, param("Last-Event-ID", "header", "Resume after this event id.", json!({"type": "string"}))],
            "responses": {
                "200": { "description": "The stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                "422": problem("A bad id (`invalid_query`).")
            }
        }))
    });
}

/// `GET /v1/openapi.json`.
pub async fn serve_document() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (method, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = document();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn document_and_router_list_the_same_routes() {
        let served: BTreeSet<(String, String)> = super::super::ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served, not documented: {undocumented:?}"
        );
        assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
    }

    #[test]
    fn security_in_document_matches_route_scopes() {
        let doc = document();
        for r in super::super::ROUTES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            let security = op["security"].as_array().unwrap();
            match r.scope {
                None => assert!(security.is_empty(), "{r:?}"),
                Some(scope) => assert_eq!(security[0]["bearer"][0], scope.as_str(), "{r:?}"),
            }
        }
    }

    #[test]
    fn operation_ids_are_unique_and_links_reach_them() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            }
        }
        assert_eq!(ids.len(), super::super::ROUTES.len());
        assert!(ids.contains("get_v1_messages_id") && ids.contains("get_v1_openapi_json"));
        let mut linked = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flatten() {
                        let target = link.1["operationId"].as_str().unwrap();
                        assert!(ids.contains(target), "{target}");
                        linked += 1;
                    }
                }
            }
        }
        assert_eq!(linked, 9);
    }

    #[test]
    fn is_openapi_3_1_with_resolvable_refs() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let text = doc.to_string();
        for name in text.split("#/components/schemas/").skip(1) {
            let name: String = name.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(doc["components"]["schemas"][&name].is_object(), "{name}");
        }
    }
}
