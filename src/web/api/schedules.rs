//! `GET /api/schedules`: every (account, kind) schedule with its last and next run, from the
//! status snapshot.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::status::{Freshness, Next, Progress, RunSummary, ScheduleSpec};
use crate::web::openapi::ProblemDoc;
use crate::web::problem::Problem;
use crate::web::AppState;

/// The schedule of one (account, kind) and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    pub account: String,
    #[schema(value_type = String, example = "offers")]
    pub kind: domain::SyncKind,
    pub paused: bool,
    /// `{type: interval, minutes}`, `{type: cron, expr, zone}` or `{type: manual}`.
    #[schema(value_type = Object)]
    pub schedule: ScheduleSpec,
    /// The latest run of any outcome.
    #[schema(value_type = Option<Object>)]
    pub last_run: Option<RunSummary>,
    /// Unix ms: when the latest succeeded run started.
    pub last_success_at: Option<i64>,
    /// `{type: due|at|running|paused|when_asked|waits_for|after_stopped_run|never, …}`.
    #[schema(value_type = Object)]
    pub next: Next,
    #[schema(value_type = Option<Object>)]
    pub freshness: Option<Freshness>,
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Progress>,
}

#[utoipa::path(get, path = "/api/schedules", tag = "schedules",
    responses(
        (status = 200, body = Vec<ScheduleView>),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Response {
    match state.snapshot().await {
        Ok(s) => {
            let views: Vec<ScheduleView> = s
                .snapshot
                .accounts
                .iter()
                .flat_map(|a| {
                    a.kinds.iter().map(|k| ScheduleView {
                        account: a.name.clone(),
                        kind: k.kind,
                        paused: a.paused,
                        schedule: k.schedule.clone(),
                        last_run: k.last_run.clone(),
                        last_success_at: k.last_success_at,
                        next: k.next.clone(),
                        freshness: k.freshness,
                        progress: k.progress.clone(),
                    })
                })
                .collect();
            Json(views).into_response()
        }
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/schedules")
            .into_response(),
    }
}
