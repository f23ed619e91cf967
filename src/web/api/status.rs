//! `GET /api/status`: the seed's JSON shape ([`ApiStatus`](crate::status::ApiStatus), the body of
//! `monitor json` too), rendered once per shared snapshot.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::web::problem::Problem;
use crate::web::AppState;

pub async fn get(State(state): State<AppState>) -> Response {
    match state.snapshot().await {
        Ok(cached) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            cached.status_json(),
        )
            .into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/status")
            .into_response(),
    }
}
