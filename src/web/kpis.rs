//! `GET /api/kpis?days=7|30`: the KPIs of the window against the seed's targets
//! ([`Kpis::read`]), for the page's KPI panel; `GET /api/series?range=24h|7d|30d
//! [&account=][&kind=]`: the page's charts ([`Series::read`]). Render; decide nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::analytics::{Kpis, Range, Series};
use crate::web::problem::Problem;
use crate::web::AppState;
use domain::SyncKind;

#[derive(Debug, Deserialize)]
pub struct Window {
    days: Option<String>,
}

/// A query string that does not deserialize (a parameter given twice): a 400 problem, as
/// every error of the API.
fn bad_query(e: &QueryRejection, path: &str) -> Response {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        "Invalid parameter",
    )
    .with_detail(e.body_text())
    .with_instance(path)
    .into_response()
}

pub async fn get(
    State(state): State<AppState>,
    window: Result<Query<Window>, QueryRejection>,
) -> Response {
    let window = match window {
        Ok(Query(w)) => w,
        Err(e) => return bad_query(&e, "/api/kpis"),
    };
    let days = match window.days.as_deref() {
        None | Some("7") => 7,
        Some("30") => 30,
        Some(other) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-window", "Invalid window")
                .with_detail("days must be 7 or 30")
                .with_invalid_param("days", format!("not 7 or 30: {other:?}"))
                .with_instance("/api/kpis")
                .into_response()
        }
    };
    let read = Kpis::read(state.config(), state.store(), days, storage::now_ms());
    match state.bounded(read).await {
        Ok(kpis) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(kpis),
        )
            .into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/kpis")
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    range: Option<String>,
    account: Option<String>,
    kind: Option<String>,
}

pub async fn series(
    State(state): State<AppState>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(&e, "/api/series"),
    };
    let bad = |field: &str, detail: &str, value: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
        )
        .with_detail(detail.to_owned())
        .with_invalid_param(field, format!("{value:?}"))
        .with_instance("/api/series")
        .into_response()
    };
    let range = match q.range.as_deref() {
        None => Range::Day,
        Some(text) => match Range::parse(text) {
            Some(r) => r,
            None => return bad("range", "range must be 24h, 7d or 30d", text),
        },
    };
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(text) => match text.parse::<SyncKind>() {
            Ok(k) => Some(k),
            Err(_) => {
                return bad(
                    "kind",
                    "kind must be offers, orders, returns or reference",
                    text,
                )
            }
        },
    };
    let account = q.account.as_deref().filter(|a| !a.is_empty());
    if let Some(name) = account {
        if !state
            .config()
            .accounts
            .iter()
            .any(|a| a.name.as_str() == name)
        {
            return crate::web::api::accounts::unknown_account(name, "/api/series").into_response();
        }
    }
    let read = Series::read(
        state.config(),
        state.store(),
        range,
        account,
        kind,
        storage::now_ms(),
    );
    match state.bounded(read).await {
        Ok(series) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(series),
        )
            .into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/series")
            .into_response(),
    }
}
