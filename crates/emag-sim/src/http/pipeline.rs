//! The path every API request takes, in eMAG's order: identify the caller from the Basic
//! username, spend its rate budget (even when the password turns out wrong, as eMAG throttles
//! invalid requests too), check the password and the IP allow-list, draw the planned faults,
//! run the action, then journal the outcome.
//!
//! Delays (latency, hangs) are awaited before the action runs, so a client that gives up
//! during a hang never has its write applied behind its back; graceful shutdown cuts them
//! short.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::Response;
use tokio::time::Instant;

use crate::faults::FaultOutcome;
use crate::http::auth::{basic_credentials, Credentials};
use crate::http::reply::Reply;
use crate::http::resources::{self, Handled};
use crate::http::route::Route;
use crate::journal::JournalRecord;
use crate::query::Page;
use crate::ratelimit::RateVerdict;
use crate::state::{AccountState, SimState};

/// Largest request body accepted (bulk saves are capped at 50 entities anyway).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Message of the simulated transient failure.
pub(crate) const SIMULATED_ERROR: &str = "Simulated internal error, please retry";

/// Waits `delay`, returning early when the simulator shuts down.
async fn wait(state: &SimState, delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let mut shutdown = state.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = shutdown.wait_for(|stopped| *stopped) => {}
    }
}

/// Where the gate in front of the actions sends a request.
enum Gate<'a> {
    /// Answered before reaching an action (429, 401, IP block), after the planned latency.
    Rejected(Reply),
    /// Authenticated as this account.
    Admitted(&'a AccountState),
}

/// Rate budget, credentials and IP checks, in eMAG's order.
fn gate<'a>(
    state: &'a SimState,
    account: Option<&'a AccountState>,
    credentials: Option<&Credentials>,
    rate: Option<RateVerdict>,
    peer: Option<IpAddr>,
) -> Gate<'a> {
    if rate.is_some_and(|r| !r.allowed) {
        return Gate::Rejected(Reply::RateLimited);
    }
    let username = credentials.map(|c| c.username.as_str());
    let password_ok =
        matches!((account, credentials), (Some(a), Some(c)) if a.spec.password == c.password);
    let Some(account) = account.filter(|_| password_ok) else {
        return Gate::Rejected(Reply::Unauthorized);
    };
    if state
        .faults
        .rejects_credentials(Some(account.name()), username)
    {
        return Gate::Rejected(Reply::Unauthorized);
    }
    let ip_allowed = account
        .spec
        .allowed_ips
        .as_ref()
        .is_none_or(|ips| peer.is_some_and(|p| ips.contains(&p)));
    if !ip_allowed || state.faults.blocks_ip(account.name()) {
        let shown = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        return Gate::Rejected(Reply::error(format!("ERROR: Invalid vendor ip [{shown}]")));
    }
    Gate::Admitted(account)
}

/// What an admitted request produced.
struct Served {
    reply: Reply,
    page: Option<Page>,
    truncate: bool,
}

/// Runs the planned faults and, unless they pre-empt it, the action.
async fn serve_admitted(
    state: &SimState,
    account: &AccountState,
    route: &Route,
    content_type: Option<&str>,
    body: Body,
) -> Served {
    let decision = state.faults.decide(account.name());
    wait(state, decision.delay).await;
    let reply = match decision.outcome {
        FaultOutcome::ServerError => Reply::BadGateway,
        FaultOutcome::RateLimited => Reply::RateLimited,
        FaultOutcome::IsError => Reply::error(
            state
                .faults
                .is_error_message()
                .unwrap_or_else(|| SIMULATED_ERROR.to_owned()),
        ),
        FaultOutcome::Redirect => Reply::Redirect {
            location: route_location(route),
        },
        FaultOutcome::Oversize(bytes) => Reply::Oversize { bytes },
        FaultOutcome::Normal | FaultOutcome::Malformed => {
            match to_bytes(body, MAX_BODY_BYTES).await {
                Ok(bytes) => {
                    let Handled { reply, page } =
                        resources::handle(state, account, route, content_type, &bytes);
                    return Served {
                        reply,
                        page,
                        truncate: decision.outcome == FaultOutcome::Malformed,
                    };
                }
                Err(_) => Reply::invalid_content(),
            }
        }
    };
    Served {
        reply,
        page: None,
        truncate: false,
    }
}

/// Where the redirect fault sends a client: the same API path.
fn route_location(route: &Route) -> String {
    format!("/api-3/{}/{}", route.resource(), route.action())
}

/// Axum handler for every `/api-3/...` request.
pub(crate) async fn handle_api(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let route = Route::parse(&parts.method, parts.uri.path());
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let credentials = basic_credentials(&parts.headers);
    let account = credentials
        .as_ref()
        .and_then(|c| state.account_by_username(&c.username));
    let account_name = account.map(|a| a.name().to_owned());

    // The budget is spent before the password is checked: eMAG throttles invalid requests too.
    let rate = account.filter(|_| state.config.rate_limits).map(|a| {
        state
            .limiter
            .admit(&a.spec.username, route.class(), Instant::now())
    });

    let served = match gate(&state, account, credentials.as_ref(), rate, peer) {
        Gate::Rejected(reply) => {
            wait(&state, state.faults.latency(account_name.as_deref())).await;
            Served {
                reply,
                page: None,
                truncate: false,
            }
        }
        Gate::Admitted(account) => {
            serve_admitted(&state, account, &route, content_type, body).await
        }
    };

    let status = if served.truncate {
        200
    } else {
        served.reply.status().as_u16()
    };
    state.journal.record(JournalRecord {
        at_ms: state.clock.elapsed_ms(),
        account: account_name,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        resource: route.resource().to_owned(),
        action: route.action().to_owned(),
        status,
        rate_limited: matches!(served.reply, Reply::RateLimited),
        page: served.page.map(|p| p.current),
        items: served.page.map(|p| p.items),
    });
    tracing::debug!(
        http.path = parts.uri.path(),
        http.status = status,
        "simulator answered an API request"
    );
    served.reply.into_response(rate, served.truncate)
}
