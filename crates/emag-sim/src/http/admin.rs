//! Admin routes under `/__admin/`: the test and demo control panel. No auth, no rate limit,
//! no journal entry and no faults, so inspecting the simulator never disturbs what is being
//! measured.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultPlan;
use crate::mutation::{Mutation, SimError};
use crate::state::{AccountState, SimState};

#[derive(Debug, Deserialize)]
pub(crate) struct SinceQuery {
    since: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccountQuery {
    account: Option<String>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

fn sim_error(e: &SimError) -> Response {
    let status = match e {
        SimError::UnknownAccount(_)
        | SimError::UnknownOffer(_)
        | SimError::UnknownOrder(_)
        | SimError::UnknownReturn(_) => StatusCode::NOT_FOUND,
        SimError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e)
}

pub(crate) async fn health() -> &'static str {
    "ok"
}

pub(crate) async fn journal(
    State(state): State<Arc<SimState>>,
    Query(q): Query<SinceQuery>,
) -> Response {
    Json(state.journal.since(q.since.unwrap_or(0))).into_response()
}

pub(crate) async fn get_faults(State(state): State<Arc<SimState>>) -> Response {
    Json(state.faults.plan()).into_response()
}

pub(crate) async fn put_faults(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultPlan>(&body) {
        Ok(plan) => {
            state.faults.set_plan(plan.clone());
            Json(plan).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid fault plan: {e}")),
    }
}

/// The account named by `?account=`, or the admin error response.
fn lookup<'a>(state: &'a SimState, q: &AccountQuery) -> Result<&'a AccountState, Box<Response>> {
    let name = q.account.as_deref().ok_or_else(|| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "the account query parameter is required",
        ))
    })?;
    state.account(name).map_err(|e| Box::new(sim_error(&e)))
}

pub(crate) async fn mutate(
    State(state): State<Arc<SimState>>,
    Query(q): Query<AccountQuery>,
    body: Bytes,
) -> Response {
    let account = match lookup(&state, &q) {
        Ok(account) => account,
        Err(response) => return *response,
    };
    let mutation = match serde_json::from_slice::<Mutation>(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid mutation: {e}")),
    };
    match state.mutate(account.name(), mutation) {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => sim_error(&e),
    }
}

pub(crate) async fn offers(
    State(state): State<Arc<SimState>>,
    Query(q): Query<AccountQuery>,
) -> Response {
    match lookup(&state, &q) {
        Ok(account) => {
            let data = account.read();
            let offers: Vec<_> = data
                .offers
                .iter()
                .map(|r| r.materialize(&data.salts))
                .collect();
            Json(offers).into_response()
        }
        Err(response) => *response,
    }
}

pub(crate) async fn orders(
    State(state): State<Arc<SimState>>,
    Query(q): Query<AccountQuery>,
) -> Response {
    match lookup(&state, &q) {
        Ok(account) => Json(&account.read().orders).into_response(),
        Err(response) => *response,
    }
}
