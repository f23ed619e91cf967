//! The routes of the HTTP server and what wraps them all. Each area brings its own
//! `routes()` (health, `/api/<resource>`), so the page, the events stream and the docs slot in
//! as one more `merge`/`nest` here; unknown paths and methods get a problem body.

use std::net::SocketAddr;

use axum::http::{StatusCode, Uri};
use axum::middleware::{from_fn, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::problem::Problem;
use super::{api, auth, events, health, kpis, metrics, middleware, openapi, page, AppState};

/// The whole application: every route, the 404/405 problems, the security headers and the
/// panic guard around all of them.
pub fn router(state: AppState) -> Router {
    router_bound(state, None)
}

/// The application of a server listening on `bound`: without a token, mutations are taken
/// only on loopback (`None`: unknown, so refused).
pub fn router_bound(state: AppState, bound: Option<SocketAddr>) -> Router {
    let guard = auth::Guard::new(state.config().dashboard.token.as_ref(), bound);
    Router::new()
        .merge(health::routes())
        .route("/metrics", get(metrics::get))
        .merge(page::routes())
        .route("/api/events", get(events::get))
        .route("/api/kpis", get(kpis::get))
        .route("/api/series", get(kpis::series))
        .nest("/api", api::routes(&state))
        .merge(openapi::routes())
        .route("/api/session", get(auth::session))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(guard))
        .layer(from_fn(middleware::catch_panic))
        .layer(map_response(middleware::security_headers))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    Problem::not_found(uri.path()).into_response()
}

async fn method_not_allowed(uri: Uri) -> Response {
    Problem::status(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail("this resource does not take that method")
        .with_instance(uri.path())
        .into_response()
}
