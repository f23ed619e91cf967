//! `GET /api/status`: the seed's JSON shape ([`ApiStatus`], the body of `monitor json` too).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::status::ApiStatus;
use crate::web::problem::Problem;
use crate::web::AppState;

pub async fn get(State(state): State<AppState>) -> Response {
    match state.snapshot().await {
        Ok(snapshot) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(ApiStatus::from(&snapshot)),
        )
            .into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/status")
            .into_response(),
    }
}
