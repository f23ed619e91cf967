//! `/api/accounts`: the accounts of the status snapshot, one with its kinds, and the
//! operator's controls of an account (sync now, pause, resume).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::SyncKind;
use serde::{Deserialize, Serialize};
use storage::Enqueued;
use utoipa::ToSchema;

use crate::status::{AccountStatus, KindStatus};
use crate::web::auth::Operator;
use crate::web::openapi::ProblemDoc;
use crate::web::problem::Problem;
use crate::web::AppState;

/// One account as the dashboard lists it. Never holds a credential.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    pub name: String,
    /// `main` or `fbe`.
    #[schema(value_type = String, example = "main")]
    pub account_type: domain::AccountKind,
    #[schema(value_type = String, example = "emag_ro")]
    pub marketplace: domain::Marketplace,
    /// `needs_attention`, `paused`, `running` or `idle`.
    #[schema(value_type = String, example = "idle")]
    pub state: crate::status::AccountState,
    pub paused: bool,
    /// Why a person must act, since when, and what to do (`reason`, `since`, `action`).
    #[schema(value_type = Option<Object>)]
    pub attention: Option<crate::status::Attention>,
}

/// One account with the status of each of its kinds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountDetail {
    #[serde(flatten)]
    pub account: AccountView,
    /// Per kind: schedule, last run, last success, freshness, next run, progress.
    #[schema(value_type = Vec<Object>)]
    pub kinds: Vec<KindStatus>,
}

impl From<&AccountStatus> for AccountView {
    fn from(a: &AccountStatus) -> Self {
        AccountView {
            name: a.name.clone(),
            account_type: a.account_type,
            marketplace: a.marketplace,
            state: a.state,
            paused: a.paused,
            attention: a.attention.clone(),
        }
    }
}

/// `POST /api/accounts/{name}/sync`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// `offers`, `orders`, `reference` or `returns`.
    #[schema(value_type = String, example = "offers")]
    pub kind: SyncKind,
    /// A full scan (orders/returns: the whole window instead of the changes since the last).
    #[serde(default)]
    pub full: bool,
}

/// A queued run, or the active run that covers what was asked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncQueued {
    pub run_id: i64,
    /// True when the (account, kind) had an active run already: that run covers it.
    pub joined: bool,
}

/// An account's paused flag after a pause or resume.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PauseState {
    pub name: String,
    pub paused: bool,
}

/// The `{name}` of the path, or the 400 problem of one that does not decode (not UTF-8).
fn path_name(
    name: Result<Path<String>, PathRejection>,
    template: &str,
) -> Result<String, Box<Problem>> {
    name.map(|Path(n)| n)
        .map_err(|e| Box::new(super::bad_path(&e, "name", template)))
}

pub(crate) fn unknown_account(name: &str, path: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown-account", "Unknown account")
        .with_detail(format!(
            "no account named {name:?} is configured; see GET /api/accounts"
        ))
        .with_instance(path)
}

#[utoipa::path(get, path = "/api/accounts", tag = "accounts",
    responses(
        (status = 200, body = Vec<AccountView>),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Response {
    match state.snapshot().await {
        Ok(s) => Json(
            s.snapshot
                .accounts
                .iter()
                .map(AccountView::from)
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/accounts")
            .into_response(),
    }
}

#[utoipa::path(get, path = "/api/accounts/{name}", tag = "accounts",
    params(("name" = String, Path, description = "The account's name (`main`, `fbe`, …)")),
    responses(
        (status = 200, body = AccountDetail),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn one(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match path_name(name, "/api/accounts/{name}") {
        Ok(n) => n,
        Err(p) => return (*p).into_response(),
    };
    let path = format!("/api/accounts/{name}");
    match state.snapshot().await {
        Ok(s) => match s.snapshot.account(&name) {
            Some(a) => Json(AccountDetail {
                account: AccountView::from(a),
                kinds: a.kinds.clone(),
            })
            .into_response(),
            None => unknown_account(&name, &path).into_response(),
        },
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}

#[utoipa::path(post, path = "/api/accounts/{name}/sync", tag = "accounts",
    params(("name" = String, Path, description = "The account's name")),
    request_body = SyncRequest,
    responses(
        (status = 202, description = "Queued for a scheduler to claim", body = SyncQueued),
        (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn sync_now(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<SyncRequest>, JsonRejection>,
) -> Response {
    let name = match path_name(name, "/api/accounts/{name}/sync") {
        Ok(n) => n,
        Err(p) => return (*p).into_response(),
    };
    let path = format!("/api/accounts/{name}/sync");
    if state.config().account(&name).is_none() {
        return unknown_account(&name, &path).into_response();
    }
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return super::bad_body(&e, &path).into_response(),
    };
    if let Err(e) = ensure_registered(&state, &name).await {
        return e.with_instance(path).into_response();
    }
    match state
        .bounded(state.store().enqueue_run(&name, req.kind, req.full))
        .await
    {
        Ok(done) => {
            let (run_id, joined) = match done {
                Enqueued::Queued { run_id } => (run_id, false),
                Enqueued::AlreadyActive { run_id, .. } => (run_id, true),
            };
            tracing::info!(account.name = %name, sync.kind = %req.kind, run.id = run_id, joined, by = op.describe(), "sync queued from the dashboard");
            (StatusCode::ACCEPTED, Json(SyncQueued { run_id, joined })).into_response()
        }
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}

/// Registers a configured account in the store if no command has yet (a fresh database).
async fn ensure_registered(state: &AppState, name: &str) -> Result<(), Problem> {
    // Registration is idempotent: the same as every command does first.
    crate::accounts::select(state.config(), state.store(), name)
        .await
        .map(drop)
        .map_err(|e| {
            tracing::error!(account.name = %name, error = %e, "cannot register the account");
            Problem::internal()
        })
}

#[utoipa::path(post, path = "/api/accounts/{name}/pause", tag = "accounts",
    params(("name" = String, Path, description = "The account's name")),
    responses(
        (status = 200, body = PauseState),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    match path_name(name, "/api/accounts/{name}/pause") {
        Ok(name) => set_paused(&state, op, &name, true).await,
        Err(p) => (*p).into_response(),
    }
}

#[utoipa::path(post, path = "/api/accounts/{name}/resume", tag = "accounts",
    params(("name" = String, Path, description = "The account's name")),
    responses(
        (status = 200, body = PauseState),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    match path_name(name, "/api/accounts/{name}/resume") {
        Ok(name) => set_paused(&state, op, &name, false).await,
        Err(p) => (*p).into_response(),
    }
}

async fn set_paused(state: &AppState, op: Operator, name: &str, paused: bool) -> Response {
    let verb = if paused { "pause" } else { "resume" };
    let path = format!("/api/accounts/{name}/{verb}");
    if state.config().account(name).is_none() {
        return unknown_account(name, &path).into_response();
    }
    let mut done = state.bounded(state.store().set_paused(name, paused)).await;
    if matches!(done, Ok(false)) {
        if let Err(e) = ensure_registered(state, name).await {
            return e.with_instance(path).into_response();
        }
        done = state.bounded(state.store().set_paused(name, paused)).await;
    }
    match done {
        Ok(true) => {
            tracing::info!(account.name = %name, paused, by = op.describe(), "account {verb}d from the dashboard");
            Json(PauseState {
                name: name.to_owned(),
                paused,
            })
            .into_response()
        }
        Ok(false) => unknown_account(name, &path).into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}
