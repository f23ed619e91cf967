//! `/livez`, `/readyz` and `/health`: is the process serving, can it reach its store, and how
//! is everything (the [`HealthReport`] of the status snapshot, `application/health+json`,
//! 503 when it fails).

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::problem::Problem;
use super::AppState;
use crate::status::{HealthReport, HealthStatus};

/// The media type of the health report (draft-inadarei-api-health-check).
pub const HEALTH_JSON: &str = "application/health+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
}

/// 200 while the process serves requests: nothing else is asked.
async fn livez() -> Response {
    plain(StatusCode::OK, "ok\n")
}

/// 200 when the store answers a trivial query in time, 503 otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.ping().await {
        Ok(_) => plain(StatusCode::OK, "ready\n"),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/readyz")
            .into_response(),
    }
}

/// The health report: `pass`/`warn` → 200, `fail` (data critically stale, an account refused,
/// no scheduler, or the database unreadable) → 503.
async fn health(State(state): State<AppState>) -> Response {
    // The database's response time is measured now; the snapshot may be the shared one of
    // the last second (`EMAG_DASHBOARD_STATUS_MAX_AGE`).
    let started = Instant::now();
    let (ping, snapshot) = tokio::join!(state.ping(), state.snapshot());
    let db_time = ping.as_ref().copied().unwrap_or_else(|_| started.elapsed());
    let snapshot = match (ping, snapshot) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(_), Ok(cached)) => Ok(cached),
    };
    let report = HealthReport::of(
        snapshot.as_ref().map(|c| &c.snapshot),
        db_time,
        storage::now_ms(),
    );
    let status = if report.status == HealthStatus::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    match serde_json::to_vec(&report) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the health report");
            Problem::internal().with_instance("/health").into_response()
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}
