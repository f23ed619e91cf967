//! `GET /api/kpis?days=7|30`: the KPIs of the window against the seed's targets
//! ([`Kpis::read`]), for the page's KPI panel. Renders; decides nothing.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::analytics::Kpis;
use crate::web::problem::Problem;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct Window {
    days: Option<String>,
}

pub async fn get(State(state): State<AppState>, Query(window): Query<Window>) -> Response {
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
