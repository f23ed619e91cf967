//! `/api/alerts`: the incidents (open first, then the latest resolved), and an operator's
//! acknowledge / resolve. The rules and their state are the library's ([`crate::alerts`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use storage::IncidentRow;

use crate::web::auth::Operator;
use crate::web::openapi::ProblemDoc;
use crate::web::problem::Problem;
use crate::web::AppState;

/// One incident.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    pub id: i64,
    /// consecutive_failures, stale_data, access_refused, scheduler_down, error_burst,
    /// rate_limited, takeover, stopped_run.
    #[schema(value_type = String)]
    pub rule: domain::AlertRule,
    pub account: Option<String>,
    #[schema(value_type = Option<String>)]
    pub kind: Option<domain::SyncKind>,
    /// info, warning or critical.
    #[schema(value_type = String)]
    pub severity: domain::Severity,
    /// firing, acknowledged or resolved.
    #[schema(value_type = String)]
    pub state: domain::IncidentState,
    pub message: String,
    pub action: String,
    /// Unix ms.
    pub opened_at: i64,
    pub last_seen_at: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// `auto` (the condition cleared) or the operator.
    pub resolved_by: Option<String>,
    /// Unix ms when it passed both escalation thresholds and was raised to critical.
    pub escalated_at: Option<i64>,
}

impl From<IncidentRow> for IncidentView {
    fn from(r: IncidentRow) -> Self {
        IncidentView {
            id: r.id,
            rule: r.rule,
            account: r.account,
            kind: r.kind,
            severity: r.severity,
            state: r.state,
            message: r.message,
            action: r.action,
            opened_at: r.opened_at,
            last_seen_at: r.last_seen_at,
            acknowledged_at: r.acknowledged_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
            escalated_at: r.escalated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    responses(
        (status = 200, body = Vec<IncidentView>),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Response {
    match state.bounded(state.store().incidents(100)).await {
        Ok(rows) => {
            Json(rows.into_iter().map(IncidentView::from).collect::<Vec<_>>()).into_response()
        }
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/alerts")
            .into_response(),
    }
}

#[utoipa::path(post, path = "/api/alerts/{id}/ack", tag = "alerts",
    params(("id" = i64, Path, description = "The incident's id")),
    responses(
        (status = 200, body = IncidentView),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    change(state, op, id, Change::Ack).await
}

#[utoipa::path(post, path = "/api/alerts/{id}/resolve", tag = "alerts",
    params(("id" = i64, Path, description = "The incident's id")),
    responses(
        (status = 200, body = IncidentView),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn resolve(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    change(state, op, id, Change::Resolve).await
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Ack,
    Resolve,
}

async fn change(
    state: AppState,
    op: Operator,
    id: Result<Path<i64>, PathRejection>,
    what: Change,
) -> Response {
    let verb = match what {
        Change::Ack => "ack",
        Change::Resolve => "resolve",
    };
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => {
            return super::bad_path(&e, "id", &format!("/api/alerts/?/{verb}")).into_response()
        }
    };
    let path = format!("/api/alerts/{id}/{verb}");
    let store = state.store();
    let now = storage::now_ms();
    let done = match what {
        Change::Ack => state.bounded(store.acknowledge_incident(id, now)).await,
        Change::Resolve => {
            state
                .bounded(crate::alerts::resolve_by_hand(
                    state.config(),
                    store,
                    id,
                    op.describe(),
                ))
                .await
        }
    };
    let found = match done {
        Ok(changed) => state
            .bounded(store.incident(id))
            .await
            .map(|r| (changed, r)),
        Err(e) => Err(e),
    };
    match found {
        Ok((_, None)) => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-incident",
            "Unknown incident",
        )
        .with_detail(format!("no incident {id}; see GET /api/alerts"))
        .with_instance(path)
        .into_response(),
        Ok((false, Some(row))) => Problem::new(
            StatusCode::CONFLICT,
            "incident-state",
            "Not possible in this state",
        )
        .with_detail(format!(
            "incident {id} is {}: only a firing incident can be acknowledged, an open one resolved",
            row.state
        ))
        .with_instance(path)
        .into_response(),
        Ok((true, Some(row))) => {
            tracing::info!(
                incident = id,
                by = op.describe(),
                "incident {verb} from the dashboard"
            );
            Json(IncidentView::from(row)).into_response()
        }
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}
