//! The HTTP face of the simulator: the router that maps `/api-3/...` to the request pipeline
//! and `/__admin/...` to the control panel. Auth, limits and faults live in `pipeline`, the
//! actions in `resources`, response shapes in `reply`.

mod admin;
mod auth;
mod pipeline;
mod reply;
mod resources;
mod route;

use std::sync::Arc;

use axum::routing::{any, get, post};
use axum::Router;

use crate::state::SimState;

/// Builds the router with the state inside.
pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/api-3/{*rest}", any(pipeline::handle_api))
        .route("/__admin/health", get(admin::health))
        .route("/__admin/journal", get(admin::journal))
        .route(
            "/__admin/faults",
            get(admin::get_faults).put(admin::put_faults),
        )
        .route("/__admin/mutate", post(admin::mutate))
        .route("/__admin/offers", get(admin::offers))
        .route("/__admin/orders", get(admin::orders))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"message":"Invalid URL"}"#,
            )
        })
        .with_state(state)
}
