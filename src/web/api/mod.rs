//! The JSON API under `/api`, one module per resource. Handlers read through the status
//! snapshot or typed `Store` methods and render; they decide nothing and hold no SQL.
//! Reads are open; every mutation (`POST`) passes [`crate::web::auth::require_operator`].

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::auth;
use super::problem::Problem;
use super::AppState;

pub(crate) mod accounts;
pub(crate) mod alerts;
pub(crate) mod runs;
pub(crate) mod schedules;
mod status;

pub fn routes(state: &AppState) -> Router<AppState> {
    // Layers run outside in: the operator is checked first; a change it let through makes
    // the shared snapshot stale, so the page that made it sees it at its next read.
    let mutations = Router::new()
        .route("/accounts/{name}/sync", post(accounts::sync_now))
        .route("/accounts/{name}/pause", post(accounts::pause))
        .route("/accounts/{name}/resume", post(accounts::resume))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route_layer(from_fn_with_state(state.clone(), invalidate_snapshot))
        .route_layer(from_fn(auth::require_operator));
    Router::new()
        .route("/status", get(status::get))
        .route("/accounts", get(accounts::list))
        .route("/accounts/{name}", get(accounts::one))
        .route("/schedules", get(schedules::list))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::one))
        .route("/alerts", get(alerts::list))
        .merge(mutations)
}

/// Runs a mutation, then drops the shared status snapshot (it was read before the change).
async fn invalidate_snapshot(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    state.invalidate_snapshot();
    response
}

/// A path parameter that does not parse (a run id that is not a number).
pub(crate) fn bad_path(e: &PathRejection, field: &str, path: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        "Invalid parameter",
    )
    .with_detail(format!("{field} is not valid here"))
    .with_invalid_param(field, e.body_text())
    .with_instance(path)
}

/// A JSON body that does not parse or has the wrong shape; serde names the field at fault.
pub(crate) fn bad_body(e: &JsonRejection, path: &str) -> Problem {
    let text = e.body_text();
    // serde_json's messages read "unknown variant `x`, expected one of … at line 1 column 9";
    // the field is named by `path_to_error`-style prefixes only for nested data, so the body
    // as a whole is the parameter at fault unless serde names one.
    let field = text
        .split("field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("body")
        .to_owned();
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-body",
        "Invalid request body",
    )
    .with_detail(text.clone())
    .with_invalid_param(field, text)
    .with_instance(path)
}
