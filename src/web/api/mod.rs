//! The JSON API under `/api`, one module per resource. Handlers read through the status
//! snapshot or typed `Store` methods and render; they decide nothing and hold no SQL.

use axum::routing::get;
use axum::Router;

use super::AppState;

mod status;

pub fn routes() -> Router<AppState> {
    Router::new().route("/status", get(status::get))
}
