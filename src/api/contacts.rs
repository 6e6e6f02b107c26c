//! Contacts and consent: profiles (name, external id, tags, owning team,
//! fields, time zone), their lists and CSV import; opt-in evidence, manual
//! opt-outs, the ledger and its CSV export, and erasure.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::csv;
use super::json::ApiJson;
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::store::{
    ConsentChange, ConsentStatus, ContactProfile, ContactQuery, Evidence, ProfileRefused,
    ProfileUpdate, ProfileWrite, IMPORT_BATCH,
};
use crate::wire::{ConsentView, ContactView, Erased, ImportError, ImportReport, Page};

fn contact_of(
    path: Result<Path<String>, PathRejection>,
    state: &ApiState,
) -> Result<String, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::not_found("no such contact"))?;
    params::contact(&raw, &state.sms.default_country).map_err(|e| {
        ApiError::unprocessable(
            "invalid_number",
            format!("contact: {e} (percent-encode the +, as %2B)"),
        )
    })
}

/// `PUT /v1/contacts/{number}/consent`: an opt-in needs `source` and
/// `evidence`; an opt-out cancels what waits for the contact.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `opted_in` or `opted_out`.
    #[schema(schema_with = consent_choice)]
    pub status: String,
    /// Opt-in: where the consent was given (web_form, paper, ...).
    #[serde(default)]
    #[schema(nullable = false, example = "web_form")]
    pub source: Option<String>,
    /// Opt-in: the proof (a form id, a URL, the signed text).
    #[serde(default)]
    #[schema(nullable = false, example = "signup form #4411")]
    pub evidence: Option<String>,
    /// Opt-in: when it was given (RFC 3339; default now; not in the future).
    #[serde(default)]
    #[schema(nullable = false, format = DateTime)]
    pub captured_at: Option<String>,
    /// Kept in the ledger.
    #[serde(default)]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// The schema of `ConsentRequest::status` (read by hand, for the
/// `invalid_status` refusal).
fn consent_choice() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["opted_in", "opted_out"]))
        .build()
}

fn view(state: &ApiState, contact: &str) -> Result<ConsentView, ApiError> {
    Ok(ConsentView::new(
        state.store.consent(contact, None)?,
        state.store.ledger(contact)?,
    ))
}

/// Opt the contact out and cancel what waits for them.
async fn opt_out(
    state: &ApiState,
    contact: &str,
    action: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    state
        .store
        .change_consent(ConsentChange {
            contact: contact.to_string(),
            status: ConsentStatus::OptedOut,
            action: action.into(),
            reason,
            evidence: None,
            number: None,
        })
        .await?;
    state
        .store
        .fail_waiting_to(
            contact,
            "recipient_opted_out",
            "cancelled: the recipient was opted out",
        )
        .await?;
    Ok(())
}

/// `PUT /v1/contacts/{number}/consent`: opting in needs evidence.
pub async fn put_consent(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<ConsentRequest>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = contact_of(path, &state)?;
    match request.status.as_str() {
        "opted_out" => opt_out(&state, &contact, "manual_opt_out", request.reason).await?,
        "opted_in" => {
            let source = request.source.filter(|s| !s.trim().is_empty());
            let evidence = request.evidence.filter(|s| !s.trim().is_empty());
            let (Some(source), Some(evidence)) = (source, evidence) else {
                return Err(ApiError::unprocessable(
                    "evidence_required",
                    "opting in needs `source` and `evidence` (how and where consent was given)",
                ));
            };
            let captured_at = match &request.captured_at {
                Some(t) => params::time(t).ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_captured_at",
                        "captured_at must be an RFC 3339 time",
                    )
                })?,
                None => Utc::now(),
            };
            if captured_at > Utc::now() + chrono::Duration::minutes(5) {
                return Err(ApiError::unprocessable(
                    "invalid_captured_at",
                    "captured_at is in the future",
                ));
            }
            state
                .store
                .change_consent(ConsentChange {
                    contact: contact.clone(),
                    status: ConsentStatus::OptedIn,
                    action: "opt_in".into(),
                    reason: request.reason,
                    evidence: Some(Evidence {
                        source,
                        evidence,
                        captured_at,
                    }),
                    number: None,
                })
                .await?;
        }
        other => {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("status {other:?}: use opted_in or opted_out"),
            ))
        }
    }
    Ok(Json(view(&state, &contact)?))
}

/// `GET /v1/contacts/{number}/consent`.
pub async fn get_consent(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = contact_of(path, &state)?;
    Ok(Json(view(&state, &contact)?))
}

/// `POST /v1/optouts`: opt a number out by hand (a call, an email).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    /// E.164, or national in the default country.
    #[serde(default)]
    #[schema(required = true, example = "+15551234567")]
    pub number: String,
    /// Kept in the ledger.
    #[serde(default)]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

pub async fn post_optout(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<OptOutRequest>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = crate::phone::normalize(&request.number, &state.sms.default_country)
        .map_err(|e| ApiError::unprocessable("invalid_number", format!("number: {e}")))?;
    opt_out(&state, &contact, "manual_opt_out", request.reason).await?;
    Ok(Json(view(&state, &contact)?))
}

/// `PUT /v1/contacts/{number}`: the whole profile. A field left out (or
/// null) is cleared, as a CRM's full update expects; consent is not here
/// (`/consent`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// IANA time zone for quiet hours; absent or null clears it.
    #[serde(default)]
    #[schema(example = "America/Chicago")]
    pub time_zone: Option<String>,
    /// Up to 200 characters, no control characters.
    #[serde(default)]
    #[schema(example = "Ana Ruiz")]
    pub name: Option<String>,
    /// The CRM's id of the contact, up to 200 characters; another contact
    /// holding it is a 409 `external_id_taken`.
    #[serde(default)]
    #[schema(example = "crm-10442")]
    pub external_id: Option<String>,
    /// Up to 50 tags of up to 64 characters, without `;` or control
    /// characters; repeats are dropped.
    #[serde(default)]
    #[schema(example = json!(["vip", "dental"]))]
    pub tags: Option<Vec<String>>,
    /// The owning team (up to 64 characters).
    #[serde(default)]
    #[schema(example = "support")]
    pub owner_team: Option<String>,
    /// Up to 100 fields for templates: keys of letters, digits, `_`, `-`,
    /// `.` (up to 64; not a profile field's name), values up to 1,000
    /// characters.
    #[serde(default)]
    #[schema(example = json!({"plan": "gold"}))]
    pub fields: Option<BTreeMap<String, String>>,
}

/// A refused profile as a problem: a taken external id is a conflict, the
/// rest are values to fix.
fn refused(r: ProfileRefused) -> ApiError {
    if r.code == "external_id_taken" {
        ApiError::conflict(r.code, r.detail)
    } else {
        ApiError::unprocessable(r.code, r.detail)
    }
}

fn contact_view(state: &ApiState, contact: String) -> Result<ContactView, ApiError> {
    let profile = state.store.profile(&contact)?;
    let consent = state.store.consent(&contact, None)?.status;
    Ok(ContactView::new(contact, profile, consent))
}

pub async fn put_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<ContactRequest>,
) -> Result<Json<ContactView>, ApiError> {
    let contact = contact_of(path, &state)?;
    let profile = ContactProfile {
        time_zone: request.time_zone,
        name: request.name,
        external_id: request.external_id,
        tags: request.tags.unwrap_or_default(),
        owner_team: request.owner_team,
        fields: request.fields.unwrap_or_default(),
    };
    if let ProfileWrite::Refused(r) = state.store.set_profile(&contact, &profile).await? {
        return Err(refused(r));
    }
    Ok(Json(contact_view(&state, contact)?))
}

pub async fn get_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ContactView>, ApiError> {
    let contact = contact_of(path, &state)?;
    Ok(Json(contact_view(&state, contact)?))
}

/// `GET /v1/contacts?tag=&q=&cursor=&limit=`, or `?external_id=`.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<ContactView>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let mut filter = ContactQuery::default();
    let mut external_id = None;
    let mut rest = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &pairs {
        let slot = match key.as_str() {
            "tag" => &mut filter.tag,
            "q" => &mut filter.q,
            "external_id" => &mut external_id,
            "limit" | "cursor" => {
                rest.push((key.clone(), value.clone()));
                continue;
            }
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?} (tag, q, external_id, limit, cursor)"
                )))
            }
        };
        if seen.contains(&key.as_str()) {
            return Err(ApiError::invalid_query(format!("{key} is given twice")));
        }
        seen.push(key);
        if value.trim().is_empty() {
            return Err(ApiError::invalid_query(format!("{key} is empty")));
        }
        *slot = Some(value.clone());
    }
    let paging = params::paging(&rest)?;
    if let Some(id) = external_id {
        if filter != ContactQuery::default() || paging.cursor.is_some() {
            return Err(ApiError::invalid_query(
                "external_id finds one contact: give it alone",
            ));
        }
        let items = match state.store.contact_by_external_id(&id)? {
            Some((contact, _)) => vec![contact_view(&state, contact)?],
            None => Vec::new(),
        };
        return Ok(Json(Page {
            items,
            next_cursor: None,
        }));
    }
    let page = state
        .store
        .contacts(&filter, paging.cursor.as_deref(), paging.limit)?;
    let items = page
        .items
        .into_iter()
        .map(|(contact, profile)| {
            let consent = state.store.consent(&contact, None)?.status;
            Ok(ContactView::new(contact, profile, consent))
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// The largest import body: 100,000 rows of about 100 bytes, with room.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The most rows an import takes.
pub const IMPORT_MAX_ROWS: usize = 100_000;

/// What an import column feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Number,
    Name,
    ExternalId,
    Tags,
    TimeZone,
    OwnerTeam,
    Field(String),
}

/// The header row as columns: `number` required; the profile's names
/// (any case); every other name a field key.
fn header_columns(names: &[String]) -> Result<Vec<Column>, ApiError> {
    let bad = |detail: String| ApiError::unprocessable("invalid_csv_header", detail);
    let mut columns: Vec<Column> = Vec::with_capacity(names.len());
    for (n, raw) in names.iter().enumerate() {
        let name = raw.trim();
        let column = match name.to_ascii_lowercase().as_str() {
            "number" => Column::Number,
            "name" => Column::Name,
            "external_id" => Column::ExternalId,
            "tags" => Column::Tags,
            "time_zone" => Column::TimeZone,
            "owner_team" => Column::OwnerTeam,
            _ => {
                // The profile's own check, on a profile of just this key.
                let probe = ContactProfile {
                    fields: [(name.to_string(), String::new())].into(),
                    ..ContactProfile::default()
                };
                if let Err(r) = probe.check() {
                    return Err(bad(format!("column {}: {}", n + 1, r.detail)));
                }
                Column::Field(name.to_string())
            }
        };
        if columns.contains(&column) {
            return Err(bad(format!("column {name:?} is given twice")));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Number) {
        return Err(bad("the header row has no `number` column".into()));
    }
    Ok(columns)
}

/// One data row as (contact, the columns it sets), or the row's error.
fn import_row(
    columns: &[Column],
    cells: Vec<String>,
    default_country: &str,
) -> Result<(String, ProfileUpdate), ImportError> {
    let error = |code: &str, detail: String| ImportError {
        line: 0,
        code: code.into(),
        detail,
    };
    if cells.len() != columns.len() {
        return Err(error(
            "wrong_column_count",
            format!("{} fields, the header has {}", cells.len(), columns.len()),
        ));
    }
    let mut contact = None;
    let mut update = ProfileUpdate::default();
    for (column, cell) in columns.iter().zip(cells) {
        let value = (!cell.trim().is_empty()).then_some(cell);
        match column {
            Column::Number => {
                let raw = value.unwrap_or_default();
                contact = Some(
                    crate::phone::normalize(&raw, default_country)
                        .map_err(|e| error("invalid_number", format!("number {raw:?}: {e}")))?,
                );
            }
            Column::Name => update.name = Some(value),
            Column::ExternalId => update.external_id = Some(value),
            Column::TimeZone => update.time_zone = Some(value),
            Column::OwnerTeam => update.owner_team = Some(value),
            Column::Tags => {
                update.tags = Some(
                    value
                        .unwrap_or_default()
                        .split(';')
                        .map(str::to_string)
                        .collect(),
                )
            }
            Column::Field(key) => {
                update.fields.insert(key.clone(), value);
            }
        }
    }
    let contact = contact.ok_or_else(|| error("invalid_number", "no number".into()))?;
    Ok((contact, update))
}

/// Whether the request says its body is CSV.
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"))
}

/// An import being read: the body, where reading stands, the columns.
struct ImportFile {
    body: Bytes,
    at: csv::Position,
    columns: Vec<Column>,
    default_country: String,
    done: bool,
}

/// One batch of an import: its good rows with their lines, its bad rows.
type ImportBatch = (Vec<(u64, String, ProfileUpdate)>, Vec<ImportError>);

impl ImportFile {
    /// Read the header row and count the rows (refusing more than
    /// [`IMPORT_MAX_ROWS`] before anything is written).
    fn open(body: Bytes, default_country: String) -> Result<ImportFile, ApiError> {
        let mut records = csv::Reader::new(&body);
        let header = match records.next() {
            None => {
                return Err(ApiError::unprocessable(
                    "invalid_csv_header",
                    "the body is empty: send a header row (number, name, ...) and the rows",
                ))
            }
            Some(csv::Record { fields: Err(e), .. }) => {
                return Err(ApiError::unprocessable(
                    "invalid_csv_header",
                    format!("the header row: {}", e.detail),
                ))
            }
            Some(csv::Record {
                fields: Ok(names), ..
            }) => names,
        };
        let columns = header_columns(&header)?;
        let at = records.position();
        if records.count() > IMPORT_MAX_ROWS {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_rows",
                format!("an import takes at most {IMPORT_MAX_ROWS} rows; split the file"),
            ));
        }
        Ok(ImportFile {
            body,
            at,
            columns,
            default_country,
            done: false,
        })
    }

    /// The next `n` rows at most (fewer at the end).
    fn next_batch(&mut self, n: usize) -> ImportBatch {
        let mut rows = Vec::with_capacity(n);
        let mut errors = Vec::new();
        let mut records = csv::Reader::resume(&self.body, self.at);
        for _ in 0..n {
            let Some(record) = records.next() else {
                self.done = true;
                break;
            };
            let row = record
                .fields
                .map_err(|e| ImportError {
                    line: 0,
                    code: e.code.into(),
                    detail: e.detail,
                })
                .and_then(|cells| import_row(&self.columns, cells, &self.default_country));
            match row {
                Ok((contact, update)) => rows.push((record.line, contact, update)),
                Err(mut e) => {
                    e.line = record.line;
                    errors.push(e);
                }
            }
        }
        self.at = records.position();
        (rows, errors)
    }
}

/// `POST /v1/contacts/import`: a CSV body (`text/csv`, up to 100,000 rows
/// and 16 MiB) with a header row. Read and written a batch of
/// [`IMPORT_BATCH`] rows at a time (each batch one transaction, durable
/// before the next), so what the import holds beyond the body stays small;
/// good rows are kept, bad ones reported by line; consent is never changed.
pub async fn import(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    if !is_csv(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the import as text/csv",
        ));
    }
    let body = axum::body::to_bytes(body, IMPORT_BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "an import body is at most {} MiB; split the file",
                    IMPORT_BODY_LIMIT / (1024 * 1024)
                ),
            )
        })?;
    let country = state.sms.default_country.clone();
    let mut file = tokio::task::spawn_blocking(move || ImportFile::open(body, country))
        .await
        .map_err(ApiError::internal)??;
    let mut report = ImportReport {
        imported: 0,
        updated: 0,
        errors: Vec::new(),
    };
    while !file.done {
        let (back, (rows, errors)) = tokio::task::spawn_blocking(move || {
            let batch = file.next_batch(IMPORT_BATCH);
            (file, batch)
        })
        .await
        .map_err(ApiError::internal)?;
        file = back;
        report.errors.extend(errors);
        let lines: Vec<u64> = rows.iter().map(|(line, _, _)| *line).collect();
        let outcomes = state
            .store
            .import_profiles(rows.into_iter().map(|(_, c, u)| (c, u)).collect())
            .await?;
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                ProfileWrite::Created => report.imported += 1,
                ProfileWrite::Updated => report.updated += 1,
                ProfileWrite::Refused(r) => report.errors.push(ImportError {
                    line,
                    code: r.code.into(),
                    detail: r.detail,
                }),
            }
        }
    }
    report.errors.sort_by_key(|e| e.line);
    Ok(Json(report))
}

/// `DELETE /v1/contacts/{number}`: erase messages and details.
pub async fn delete_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Erased>, ApiError> {
    let contact = contact_of(path, &state)?;
    // In a fleet, what waits for the contact may be in another gateway's
    // outbox: each is claimed in the fence for a cancel first, so that no
    // gateway sends it after (as a cancel does). One already claimed to
    // send is on its way; without the broker the erasure goes on (it is
    // announced when the broker is back, and a gateway that hears of it
    // sends nothing of before it).
    if let Some(fleet) = &state.fleet {
        for message in state.store.fleet_waiting_to(&contact)? {
            if let Err(e) =
                crate::conversation::campaigns::claim_for_cancel(fleet.as_ref(), &message).await
            {
                tracing::warn!(message_id = %message.id, error = %e, "erasure: the fleet's fence could not be asked; the message is forgotten here without a claim");
            }
        }
    }
    let erased_messages = state.store.erase_contact(&contact).await?;
    tracing::info!(contact = %crate::phone::masked(&contact), messages = erased_messages, "contact erased");
    let opt_out_kept = state.store.consent(&contact, None)?.status == ConsentStatus::OptedOut;
    Ok(Json(Erased {
        contact,
        erased_messages: u64::try_from(erased_messages).unwrap_or(u64::MAX),
        opt_out_kept,
    }))
}

/// `GET /v1/consent/export`: the whole ledger as CSV.
pub async fn export(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut out = String::from(
        "id,at,contact,action,status,source,inbound_message_id,matched,gateway_number,reason,evidence_source,evidence,captured_at\n",
    );
    for entry in state.store.ledger_all() {
        let e = entry?;
        let evidence = e.evidence.as_ref();
        let row = [
            e.id.clone(),
            e.at.to_rfc3339(),
            e.contact.clone(),
            e.action.clone(),
            e.status.as_str().to_string(),
            e.source.clone(),
            e.inbound_message_id.clone().unwrap_or_default(),
            e.matched.clone().unwrap_or_default(),
            e.gateway_number.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            evidence.map(|v| v.source.clone()).unwrap_or_default(),
            evidence.map(|v| v.evidence.clone()).unwrap_or_default(),
            evidence
                .map(|v| v.captured_at.to_rfc3339())
                .unwrap_or_default(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv::field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"consent-ledger.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
