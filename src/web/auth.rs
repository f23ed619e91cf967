//! Who may reach the server and who may change things through it.
//!
//! - Binding: without `EMAG_DASHBOARD_TOKEN` the server listens on loopback addresses only
//!   ([`check_bind`]).
//! - Mutations (`POST /api/...`) pass [`require_operator`]: `Authorization: Bearer <token>`
//!   (compared in constant time), or the cookie of a session opened by `POST /login` with the
//!   token. A cookie is sent by the browser to any request for this origin, so a
//!   cookie-authenticated mutation must also prove it comes from this origin (`Origin`
//!   matching `Host`, or `Sec-Fetch-Site: same-origin`): CSRF-safe without a form token.
//! - With no token configured, mutations are allowed only when the server is bound to
//!   loopback, and never from a page of another origin (a browser on this machine visiting a
//!   hostile site must not drive the dashboard).
//!
//! The session cookie holds a random id (never the token); the server keeps only the BLAKE3
//! hash of each id, in memory: a restart logs everybody out, which is the safe default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::WebError;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "emag_session";

/// How long a session lasts.
const SESSION_TTL_MS: i64 = 12 * 3_600_000;

/// Refuses a non-loopback address (`0.0.0.0` included) unless a token is configured: the
/// dashboard would otherwise be open to the network with nothing to guard its mutations.
pub fn check_bind(addr: SocketAddr, token: Option<&SecretString>) -> Result<(), WebError> {
    let has_token = token.is_some_and(|t| !t.expose_secret().is_empty());
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(WebError::TokenRequired { addr })
    }
}

/// The guard of one server: its token (as a hash), whether it is bound to loopback, and the
/// sessions it opened. Cheap to clone; reached by handlers as an `Extension`.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    /// BLAKE3 of the token: `blake3::Hash` compares in constant time, and hashing first
    /// makes the comparison independent of the lengths too.
    token: Option<blake3::Hash>,
    loopback: bool,
    /// Session id hash → expiry (unix ms).
    sessions: Mutex<HashMap<blake3::Hash, i64>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.inner.token.map(|_| "[redacted]"))
            .field("loopback", &self.inner.loopback)
            .finish_non_exhaustive()
    }
}

/// Who a mutation is done by, for the run notes and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Bearer,
    Session,
    /// No token configured; the server is on loopback.
    Loopback,
}

impl Operator {
    pub fn describe(self) -> &'static str {
        match self {
            Operator::Bearer => "operator (bearer token)",
            Operator::Session => "operator (dashboard session)",
            Operator::Loopback => "operator (loopback, no token)",
        }
    }
}

impl Guard {
    /// The guard of a server with `token`, bound to `bound` (`None`: unknown, treated as
    /// reachable from the network).
    pub fn new(token: Option<&SecretString>, bound: Option<SocketAddr>) -> Guard {
        let token = token
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty())
            .map(|t| blake3::hash(t.as_bytes()));
        Guard {
            inner: Arc::new(GuardInner {
                token,
                loopback: bound.is_some_and(|a| a.ip().is_loopback()),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn token_matches(&self, candidate: &str) -> bool {
        self.inner
            .token
            .is_some_and(|t| t == blake3::hash(candidate.as_bytes()))
    }

    fn open_session(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = storage::now_ms();
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, expires| *expires > now);
        sessions.insert(blake3::hash(id.as_bytes()), now + SESSION_TTL_MS);
        id
    }

    fn session_valid(&self, id: &str) -> bool {
        let sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions
            .get(&blake3::hash(id.as_bytes()))
            .is_some_and(|expires| *expires > storage::now_ms())
    }

    fn close_session(&self, id: &str) {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&blake3::hash(id.as_bytes()));
    }

    /// Who may do this mutation, or the problem that refuses it.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<Operator, Box<Problem>> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let bearer = auth.to_str().ok().and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
            return match bearer {
                Some(t) if self.token_matches(t.trim()) => Ok(Operator::Bearer),
                _ if self.inner.token.is_none() => Err(forbidden(
                    "no EMAG_DASHBOARD_TOKEN is configured, so no bearer token is valid; \
                     set EMAG_DASHBOARD_TOKEN to use one",
                )),
                _ => Err(unauthorized(
                    "the bearer token is not the dashboard's token",
                )),
            };
        }
        if let Some(id) = session_cookie(headers) {
            if self.session_valid(&id) {
                return if same_origin(headers) == Origin::Same {
                    Ok(Operator::Session)
                } else {
                    Err(forbidden(
                        "a session-authenticated change must come from the dashboard's own \
                         page (same-origin Origin or Sec-Fetch-Site header)",
                    ))
                };
            }
        }
        if self.inner.token.is_none() {
            if !self.inner.loopback {
                return Err(forbidden(
                    "no EMAG_DASHBOARD_TOKEN is configured and the server is not bound to \
                     loopback: changes are refused. Set EMAG_DASHBOARD_TOKEN",
                ));
            }
            if same_origin(headers) == Origin::Cross {
                return Err(forbidden(
                    "the request comes from a page of another origin; without \
                     EMAG_DASHBOARD_TOKEN only this machine's own clients may change things",
                ));
            }
            return Ok(Operator::Loopback);
        }
        Err(unauthorized(
            "changes need `Authorization: Bearer <EMAG_DASHBOARD_TOKEN>` or a session \
             opened at POST /login",
        ))
    }
}

fn unauthorized(detail: &str) -> Box<Problem> {
    Box::new(
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        )
        .with_detail(detail),
    )
}

fn forbidden(detail: &str) -> Box<Problem> {
    Box::new(Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed").with_detail(detail))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Same,
    Cross,
    /// No browser header says: a non-browser client.
    Unknown,
}

/// Whether the browser says this request comes from a page of this server's origin.
fn same_origin(headers: &HeaderMap) -> Origin {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Origin::Cross;
        }
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if authority.is_some_and(|a| a.eq_ignore_ascii_case(host)) {
                Origin::Same
            } else {
                Origin::Cross
            }
        }
        (Some(_), None) => Origin::Cross,
        (None, _) if text("sec-fetch-site") == Some("same-origin") => Origin::Same,
        (None, _) => Origin::Unknown,
    }
}

/// The middleware of every mutation: refuses with a 401/403 problem, or lets the request on
/// with its [`Operator`] as an extension.
pub async fn require_operator(
    Extension(guard): Extension<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    match guard.authorize(request.headers()) {
        Ok(op) => {
            request.extensions_mut().insert(op);
            next.run(request).await
        }
        Err(problem) => (*problem)
            .with_instance(request.uri().path().to_owned())
            .into_response(),
    }
}

/// The login form's body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The dashboard token (`EMAG_DASHBOARD_TOKEN`).
    pub token: String,
}

/// `POST /login` (form field `token`): opens a session and sets its cookie, then sends the
/// browser back to the page.
#[utoipa::path(
    post, path = "/login", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Session opened; the cookie is set"),
        (status = 400, description = "Not the form, or no `token` in it", body = super::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/x-www-form-urlencoded`", body = super::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Wrong token", body = super::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No token configured", body = super::openapi::ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    Extension(guard): Extension<Guard>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    // A body that is not the form (another content type, no `token`, past the size limit)
    // gets a problem like every other error, with the rejection's own status.
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => {
            return Problem::new(e.status(), "invalid-body", "Invalid request body")
                .with_detail(e.body_text())
                .with_instance("/login")
                .into_response()
        }
    };
    if guard.inner.token.is_none() {
        return (*forbidden(
            "no EMAG_DASHBOARD_TOKEN is configured: there is nothing to log in with. On \
             loopback the dashboard's controls work without a session",
        ))
        .with_instance("/login")
        .into_response();
    }
    if !guard.token_matches(form.token.trim()) {
        tracing::warn!("dashboard login refused: wrong token");
        return (*unauthorized("the token is not the dashboard's token"))
            .with_instance("/login")
            .into_response();
    }
    let id = guard.open_session();
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    session_response(&cookie)
}

/// What the page may do, so it can offer its controls or the login form.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Whether this client's changes would be taken (same rule as every mutation).
    pub may_change: bool,
    /// How: `bearer`, `session` or `loopback` (no token configured, a local server).
    #[schema(value_type = Option<String>)]
    pub via: Option<&'static str>,
    /// Whether the server has `EMAG_DASHBOARD_TOKEN` (so a login opens a session).
    pub token_configured: bool,
}

/// `GET /api/session`: whether this client may change things, and how.
#[utoipa::path(get, path = "/api/session", tag = "auth",
    responses((status = 200, body = SessionView)))]
pub async fn session(Extension(guard): Extension<Guard>, headers: HeaderMap) -> Response {
    let via = guard.authorize(&headers).ok().map(|op| match op {
        Operator::Bearer => "bearer",
        Operator::Session => "session",
        Operator::Loopback => "loopback",
    });
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(SessionView {
            may_change: via.is_some(),
            via,
            token_configured: guard.inner.token.is_some(),
        }),
    )
        .into_response()
}

/// `POST /logout`: closes the session and clears its cookie.
#[utoipa::path(post, path = "/logout", tag = "auth",
    responses((status = 303, description = "Session closed; the cookie is cleared")))]
pub async fn logout(Extension(guard): Extension<Guard>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        guard.close_session(&id);
    }
    session_response(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
}

fn session_response(cookie: &str) -> Response {
    let mut response = Redirect::to("/").into_response();
    match HeaderValue::from_str(cookie) {
        Ok(v) => {
            response.headers_mut().insert(header::SET_COOKIE, v);
            response
        }
        Err(_) => Problem::internal().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_served_without_a_token() {
        let token = SecretString::from("0123456789abcdef".to_owned());
        for ok in ["127.0.0.1:8001", "127.0.0.2:80", "[::1]:8001"] {
            let addr = ok.parse().expect("addr");
            assert!(check_bind(addr, None).is_ok(), "{ok}");
        }
        for open in ["0.0.0.0:8001", "[::]:8001", "192.168.1.10:8001"] {
            let addr: SocketAddr = open.parse().expect("addr");
            let err = check_bind(addr, None).expect_err(open);
            assert!(err.to_string().contains("EMAG_DASHBOARD_TOKEN"), "{err}");
            assert!(
                check_bind(addr, Some(&token)).is_ok(),
                "{open} with a token"
            );
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn without_a_token_only_a_loopback_server_takes_changes_and_never_from_another_origin() {
        let on_loopback = Guard::new(None, Some("127.0.0.1:8001".parse().expect("addr")));
        let open = Guard::new(None, Some("0.0.0.0:8001".parse().expect("addr")));
        assert_eq!(on_loopback.authorize(&headers(&[])), Ok(Operator::Loopback));
        let cross = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8001"),
        ]);
        assert_eq!(
            on_loopback.authorize(&cross).map_err(|p| p.status),
            Err(403)
        );
        let err = open.authorize(&headers(&[])).expect_err("refused");
        assert_eq!(err.status, 403);
        assert!(err.detail.unwrap_or_default().contains("loopback"));
    }

    #[test]
    fn a_session_needs_a_same_origin_request_and_a_bearer_token_is_compared_exactly() {
        let token = SecretString::from("0123456789abcdef".to_owned());
        let g = Guard::new(Some(&token), Some("127.0.0.1:8001".parse().expect("addr")));
        let ok = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert_eq!(g.authorize(&ok), Ok(Operator::Bearer));
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdeF")]);
        assert_eq!(g.authorize(&wrong).map_err(|p| p.status), Err(401));
        assert_eq!(g.authorize(&headers(&[])).map_err(|p| p.status), Err(401));
        let id = g.open_session();
        let cookie = format!("a=b; {SESSION_COOKIE}={id}");
        let same = headers(&[
            ("cookie", &cookie),
            ("origin", "http://127.0.0.1:8001"),
            ("host", "127.0.0.1:8001"),
        ]);
        assert_eq!(g.authorize(&same), Ok(Operator::Session));
        let no_origin = headers(&[("cookie", &cookie)]);
        assert_eq!(g.authorize(&no_origin).map_err(|p| p.status), Err(403));
        let fetch = headers(&[("cookie", &cookie), ("sec-fetch-site", "same-origin")]);
        assert_eq!(g.authorize(&fetch), Ok(Operator::Session));
        g.close_session(&id);
        assert_eq!(g.authorize(&same).map_err(|p| p.status), Err(401));
    }
}
