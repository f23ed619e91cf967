//! What wraps every response, whatever route (or none) made it: the security headers, and a
//! guard that turns a handler's panic into a 500 problem instead of a dropped connection.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use super::problem::Problem;

/// The policy of the page to come: its own scripts, styles and images only (every asset is
/// embedded), no inline script, no plugins, never framed. The JSON routes do not need it, but
/// one policy for every response leaves no route unguarded.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Adds the security headers to a response (keeping any a handler set itself).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set: [(HeaderName, &'static str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Runs the rest of the stack, answering a panic with a 500 problem (and one log line).
pub async fn catch_panic(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(http.path = %path, panic = %message, "a request handler panicked; answered 500");
            Problem::internal().with_instance(path).into_response()
        }
    }
}
