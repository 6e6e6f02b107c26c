//! The users page (admins only): who signs in, add a person, remove one.
//! It calls the same functions as `/v1/users` (`api::users::create`,
//! `remove`); an agent gets a page that says the page is for admins.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::pages::{self, Nav, Shell};
use super::session::{require_admin, Person};
use super::{escape, WebState};
use crate::api::users::{self, UserRequest};
use crate::store::users::PASSWORD_MIN_CHARS;

/// What the add form keeps when it is refused.
#[derive(Debug, Default)]
struct Draft {
    name: String,
    team: String,
    role: String,
    error: Option<String>,
}

fn render(state: &WebState, person: &Person, draft: Draft, status: StatusCode) -> Response {
    let people = match state.api.store.users() {
        Ok(people) => people,
        Err(e) => return pages::store_error(e),
    };
    let csrf = person.csrf();
    let body = html! {
        table.users {
            caption { "People who sign in" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Team" } th scope="col" { span.visually-hidden { "Remove" } } } }
            tbody {
                @for u in &people {
                    tr {
                        td { (u.name) }
                        td { (u.role.as_str()) }
                        td { (u.team.as_deref().unwrap_or("—")) }
                        td {
                            @if u.name != person.name {
                                form method="post" action={ "/users/" (escape(&u.name)) "/remove" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" aria-label={ "Remove " (u.name) } { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="add-heading" {
            h2 #add-heading { "Add a person" }
            @if let Some(error) = &draft.error {
                p.error role="alert" { (error) }
            }
            form.add-user method="post" action="/users" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="new-name" { "Username" }
                    input #new-name type="text" name="name" value=(draft.name) required
                        autocomplete="off" autocapitalize="none" spellcheck="false" aria-describedby="name-hint";
                    span #name-hint .hint { "letters, digits, '.', '_' or '-'" }
                }
                p {
                    label for="new-password" { "Password" }
                    input #new-password type="password" name="password" required
                        minlength=(PASSWORD_MIN_CHARS) autocomplete="new-password" aria-describedby="password-hint";
                    span #password-hint .hint { "at least " (PASSWORD_MIN_CHARS) " characters" }
                }
                p {
                    label for="new-role" { "Role" }
                    select #new-role name="role" {
                        option value="agent" selected[draft.role != "admin"] { "Agent" }
                        option value="admin" selected[draft.role == "admin"] { "Admin" }
                    }
                }
                p {
                    label for="new-team" { "Team" }
                    input #new-team type="text" name="team" value=(draft.team);
                }
                p { button type="submit" { "Add user" } }
            }
        }
    };
    (
        status,
        Shell::signed_in("Users", person, Some(Nav::Users)).render(body),
    )
        .into_response()
}

/// `GET /users`.
pub async fn page(State(state): State<WebState>, person: Person) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    render(&state, &person, Draft::default(), StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    team: String,
}

/// `POST /users`.
pub async fn add(
    State(state): State<WebState>,
    person: Person,
    form: Result<Form<AddForm>, FormRejection>,
) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    let form = match pages::read_form(&person, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let team = form.team.trim();
    let request = UserRequest {
        name: form.name.clone(),
        password: form.password,
        role: form.role.clone(),
        team: (!team.is_empty()).then(|| team.to_string()),
    };
    match users::create(&state.api, request, state.clock.now()).await {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(e) => {
            let draft = Draft {
                name: form.name,
                team: form.team,
                role: form.role,
                error: Some(pages::plain(&e)),
            };
            render(&state, &person, draft, e.status)
        }
    }
}

/// `POST /users/{name}/remove`.
pub async fn remove(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<super::session::CsrfForm>, FormRejection>,
) -> Response {
    if let Err(refused) = require_admin(&person) {
        return refused.into_response();
    }
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    let Ok(Path(name)) = path else {
        return pages::problem_page(
            StatusCode::NOT_FOUND,
            Some(&person),
            "Not found",
            "No such person.",
        );
    };
    if name == person.name {
        let draft = Draft {
            error: Some("You cannot remove yourself; ask another administrator.".into()),
            ..Draft::default()
        };
        return render(&state, &person, draft, StatusCode::CONFLICT);
    }
    match users::remove(&state.api, &name).await {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(e) => {
            let draft = Draft {
                error: Some(pages::plain(&e)),
                ..Draft::default()
            };
            render(&state, &person, draft, e.status)
        }
    }
}
