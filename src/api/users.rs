//! `/v1/users`: the people who sign in to the web inbox (admin scope). The
//! store is the daemon's alone, so people are managed through the API while
//! it runs; `smsgate user` is a client of these routes. Passwords go in,
//! never out: they are kept as argon2id hashes, hashed off the async workers.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::json::ApiJson;
use super::problem::ApiError;
use super::ApiState;
use crate::store::users::{self, CredentialError, Role, UserRecord};
use crate::wire::Page;

/// A person as the API shows them (never the password or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    #[schema(example = "ana")]
    pub name: String,
    /// `agent` (the inbox) or `admin` (also users and settings).
    #[schema(example = "agent")]
    pub role: String,
    /// Their team, for the inbox's "My team".
    #[schema(required = true, example = "support")]
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&UserRecord> for User {
    fn from(u: &UserRecord) -> Self {
        User {
            name: u.name.clone(),
            role: u.role.as_str().to_string(),
            team: u.team.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// 1 to 64 letters, digits, `.`, `_`, `-`: the sign-in name and the
    /// author of the person's notes and replies.
    #[schema(example = "ana")]
    pub name: String,
    /// At least 10 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// `agent` or `admin`.
    #[schema(example = "agent")]
    pub role: String,
    /// A team id (up to 100 characters).
    #[serde(default)]
    #[schema(nullable = false, example = "support")]
    pub team: Option<String>,
}

/// `PUT /v1/users/{name}`: what is given changes, the rest stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new password (at least 10 characters): the person's sessions end.
    #[serde(default)]
    #[schema(nullable = false)]
    pub password: Option<String>,
    /// `agent` or `admin`.
    #[serde(default)]
    #[schema(nullable = false)]
    pub role: Option<String>,
    /// A team id; null takes the person out of their team.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub team: Option<Value>,
}

/// A field that is present, null or not (absent is the `default`): serde
/// reads a null into `None` otherwise, and null here means "clear".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn credential(e: CredentialError) -> ApiError {
    match e {
        CredentialError::InvalidName => ApiError::unprocessable("invalid_name", e.to_string()),
        CredentialError::PasswordTooShort | CredentialError::PasswordTooLong => {
            ApiError::unprocessable("invalid_password", e.to_string())
        }
        CredentialError::Hash(_) => ApiError::internal(e),
    }
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text)
        .ok_or_else(|| ApiError::unprocessable("invalid_role", "role must be agent or admin"))
}

/// A team id: 1 to 100 characters, no control characters (as a thread's
/// team); blank is none.
fn team(text: &str) -> Result<Option<String>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > 100 || text.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_team",
            "team must be up to 100 characters, no control characters",
        ));
    }
    Ok(Some(text.to_string()))
}

/// Hash a password on the blocking pool.
async fn hashed(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(credential)
}

/// Create a user: the one way, for `POST /v1/users`, the web's users page
/// and the demo.
pub async fn create(
    state: &ApiState,
    request: UserRequest,
    now: DateTime<Utc>,
) -> Result<User, ApiError> {
    let name = users::check_name(&request.name)
        .map_err(credential)?
        .to_string();
    let role = role(&request.role)?;
    let team = match &request.team {
        Some(t) => team(t)?,
        None => None,
    };
    let record = UserRecord {
        name,
        role,
        team,
        password: hashed(request.password).await?,
        created_at: now,
        updated_at: now,
    };
    if !state.store.create_user(&record).await? {
        return Err(ApiError::conflict(
            "user_exists",
            format!("there is a user {:?} already", record.name),
        ));
    }
    tracing::info!(user = %record.name, role = record.role.as_str(), "user created");
    Ok(User::from(&record))
}

/// Change a user (password, role, team): the one way, for `PUT
/// /v1/users/{name}` and the web.
pub async fn update(
    state: &ApiState,
    name: &str,
    request: UserUpdate,
    now: DateTime<Utc>,
) -> Result<User, ApiError> {
    let mut record = state
        .store
        .user(name)?
        .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))?;
    if let Some(r) = &request.role {
        record.role = role(r)?;
    }
    match &request.team {
        None => {}
        Some(Value::Null) => record.team = None,
        Some(Value::String(t)) => record.team = team(t)?,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_team",
                "team must be a string or null",
            ))
        }
    }
    let new_password = request.password.is_some();
    if let Some(password) = request.password {
        record.password = hashed(password).await?;
    }
    record.updated_at = now;
    if !state.store.update_user(&record, new_password).await? {
        return Err(ApiError::not_found(format!("no user {name:?}")));
    }
    tracing::info!(user = %record.name, role = record.role.as_str(), new_password, "user changed");
    Ok(User::from(&record))
}

/// Remove a user and end their sessions: the one way.
pub async fn remove(state: &ApiState, name: &str) -> Result<(), ApiError> {
    if !state.store.remove_user(name).await? {
        return Err(ApiError::not_found(format!("no user {name:?}")));
    }
    tracing::info!(user = %name, "user removed");
    Ok(())
}

fn name_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path.map_err(|_| ApiError::not_found("no such user"))?;
    Ok(name)
}

/// `POST /v1/users`: 201 with the user.
pub async fn post(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let user = create(&state, request, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `GET /v1/users`: every user, by name (one page).
pub async fn list(State(state): State<ApiState>) -> Result<Json<Page<User>>, ApiError> {
    Ok(Json(Page {
        items: state.store.users()?.iter().map(User::from).collect(),
        next_cursor: None,
    }))
}

/// `PUT /v1/users/{name}`.
pub async fn put(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    let name = name_of(path)?;
    Ok(Json(update(&state, &name, request, Utc::now()).await?))
}

/// `DELETE /v1/users/{name}`: 204.
pub async fn delete(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_of(path)?;
    remove(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI operations of these routes.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    use super::openapi::{ok, page_of, problem, schema, secured};
    let name = json!({
        "name": "name", "in": "path", "required": true,
        "description": "The user's name.", "schema": {"type": "string"}
    });
    let body =
        |s: &str| json!({"required": true, "content": {"application/json": {"schema": schema(s)}}});
    vec![
        (
            "/v1/users",
            json!({
                "post": secured("admin", "Add a person who signs in to the web inbox", json!({
                    "description": "The password is kept as an argon2id hash and never shown again.",
                    "requestBody": body("UserRequest"),
                    "responses": {
                        "201": ok("Created.", schema("User")),
                        "409": problem("The name is taken (`user_exists`)."),
                        "422": problem("`invalid_name`, `invalid_password` (under 10 characters), `invalid_role`, `invalid_team`, `invalid_request`.")
                    }
                })),
                "get": secured("admin", "The people who sign in, by name", json!({
                    "responses": { "200": ok("Every user (one page).", page_of("User")) }
                }))
            }),
        ),
        (
            "/v1/users/{name}",
            json!({
                "put": secured("admin", "Change a person's password, role or team", json!({
                    "description": "Only the fields given change; `team: null` clears the team. A new password ends the person's sessions.",
                    "parameters": [name.clone()],
                    "requestBody": body("UserUpdate"),
                    "responses": {
                        "200": ok("The user.", schema("User")),
                        "404": problem("`not_found`."),
                        "422": problem("`invalid_password`, `invalid_role`, `invalid_team`, `invalid_request`.")
                    }
                })),
                "delete": secured("admin", "Remove a person; their sessions end", json!({
                    "parameters": [name],
                    "responses": {
                        "204": {"description": "Removed."},
                        "404": problem("`not_found`.")
                    }
                }))
            }),
        ),
    ]
}
