//! `/api/runs`: the run history with typed filters and keyset pagination, one run in full,
//! and the operator's cancel of a run.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::{ErrorClass, RunCounts, RunState, RunTrigger, SyncKind};
use serde::Serialize;
use storage::{CancelRun, RunQuery, RunRow, RUN_PAGE_MAX};
use utoipa::ToSchema;

use crate::status::rfc3339;
use crate::web::auth::Operator;
use crate::web::openapi::ProblemDoc;
use crate::web::problem::Problem;
use crate::web::AppState;

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 50;

/// One run as the API shows it. Times are RFC 3339 (UTC); `*_ms` are Unix ms.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    pub account: String,
    #[schema(value_type = String, example = "offers")]
    pub kind: SyncKind,
    /// `schedule`, `manual`, `retry` or `callback`.
    #[schema(value_type = String, example = "schedule")]
    pub trigger: RunTrigger,
    /// `queued`, `running`, `succeeded`, `failed`, `interrupted` or `cancelled`.
    #[schema(value_type = String, example = "succeeded")]
    pub state: RunState,
    /// 1 for a first attempt; each takeover or resumption adds one.
    pub attempt: i64,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From start to end, or to now for a run in progress.
    pub duration_ms: Option<i64>,
    /// The last page fully written: where a resumption continues.
    pub checkpoint_page: i64,
    pub total_items: Option<i64>,
    /// pages, items_read, created, updated, unchanged, removed, requests, rate_limit_waits,
    /// retries.
    #[schema(value_type = Object)]
    pub counts: RunCounts,
    /// The classified error of a failed run (`auth`, `rate_limited`, `server`, …).
    #[schema(value_type = Option<String>, example = "server")]
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    /// eMAG's own messages: of the failure, or of reads answered `isError` and retried
    /// before the run succeeded (issue 9, point 5).
    pub emag_messages: Vec<String>,
    pub note: Option<String>,
    /// The process holding a running run.
    pub holder: Option<String>,
    /// The holder whose lease expired when this run was taken over, and when.
    pub reclaimed_from: Option<String>,
    pub reclaimed_at: Option<String>,
}

impl RunView {
    fn of(r: RunRow, now_ms: i64) -> RunView {
        let duration_ms = r
            .started_at
            .map(|s| r.finished_at.unwrap_or(now_ms).saturating_sub(s).max(0));
        RunView {
            id: r.id,
            account: r.account,
            kind: r.kind,
            trigger: r.trigger,
            state: r.state,
            attempt: r.attempt,
            created_at: rfc3339(r.created_at),
            started_at: r.started_at.and_then(rfc3339),
            finished_at: r.finished_at.and_then(rfc3339),
            duration_ms,
            checkpoint_page: r.checkpoint_page,
            total_items: r.total_items,
            counts: r.counts,
            error_class: r.error_class,
            error_message: r.error_message,
            emag_messages: r.emag_messages,
            note: r.note,
            holder: r.holder,
            reclaimed_from: r.reclaimed_from,
            reclaimed_at: r.reclaimed_at.and_then(rfc3339),
        }
    }
}

/// One run in full: the run and the operator's cancel request, if any.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    /// When an operator asked to cancel it (a running run stops at its next page).
    pub cancel_requested_at: Option<String>,
    pub cancel_requested_by: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunPageView {
    pub items: Vec<RunView>,
    /// The `after` of the next page; null on the last page.
    pub next: Option<i64>,
}

/// The query string as a typed [`RunQuery`], or a 400 naming every field at fault.
pub fn parse_filters(raw: Option<&str>) -> Result<RunQuery, Box<Problem>> {
    const KNOWN: [&str; 8] = [
        "account", "kind", "outcome", "trigger", "since", "until", "limit", "after",
    ];
    let mut pairs: HashMap<String, String> = HashMap::new();
    // A filter given twice (`?account=a&account=b`) is refused: reading one of them silently
    // answers another question than the one asked (found by the fuzzer, issue 11).
    let mut repeated: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned() {
        if pairs.contains_key(&name) && !repeated.contains(&name) {
            repeated.push(name.clone());
        }
        pairs.insert(name, value);
    }
    let mut problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-filter", "Invalid filter")
        .with_instance("/api/runs");
    repeated.sort();
    for name in &repeated {
        problem = problem.with_invalid_param(name.clone(), "given more than once; give it once");
    }
    let mut q = RunQuery {
        limit: DEFAULT_LIMIT,
        ..RunQuery::default()
    };
    let mut names: Vec<&String> = pairs.keys().collect();
    names.sort();
    for name in names {
        let value = pairs[name].trim();
        let empty = value.is_empty();
        let result: Result<(), String> = match name.as_str() {
            _ if empty && KNOWN.contains(&name.as_str()) => Ok(()),
            "account" => {
                if value.len() > 64 || value.chars().any(char::is_control) {
                    Err("an account name is at most 64 printable characters".into())
                } else {
                    q.account = Some(value.to_owned());
                    Ok(())
                }
            }
            "kind" => value
                .parse::<SyncKind>()
                .map(|k| q.kind = Some(k))
                .map_err(|e| format!("{e}; one of offers, orders, reference, returns")),
            "outcome" => value
                .parse::<RunState>()
                .map(|s| q.state = Some(s))
                .map_err(|e| {
                    format!(
                        "{e}; one of succeeded, failed, cancelled, running, queued, interrupted"
                    )
                }),
            "trigger" => value
                .parse::<RunTrigger>()
                .map(|t| q.trigger = Some(t))
                .map_err(|e| format!("{e}; one of schedule, manual, retry, callback")),
            "since" => parse_time(value).map(|t| q.since = Some(t)),
            "until" => parse_time(value).map(|t| q.until = Some(t)),
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=RUN_PAGE_MAX).contains(&n) => {
                    q.limit = n;
                    Ok(())
                }
                _ => Err(format!("a whole number from 1 to {RUN_PAGE_MAX}")),
            },
            "after" => match value.parse::<i64>() {
                Ok(n) if n > 0 => {
                    q.before_id = Some(n);
                    Ok(())
                }
                _ => Err("a run id (the `next` of the previous page)".into()),
            },
            _ => Err(format!(
                "not a filter of this resource; the filters are {}",
                KNOWN.join(", ")
            )),
        };
        if let Err(reason) = result {
            if !repeated.contains(name) {
                problem = problem.with_invalid_param(name.clone(), reason);
            }
        }
    }
    if let (Some(since), Some(until)) = (q.since, q.until) {
        if since >= until {
            problem = problem.with_invalid_param("until", "must be later than since");
        }
    }
    if problem.invalid_params.is_empty() {
        Ok(q)
    } else {
        let fields: Vec<&str> = problem
            .invalid_params
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let detail = format!("invalid: {}", fields.join(", "));
        Err(Box::new(problem.with_detail(detail)))
    }
}

/// RFC 3339 or Unix ms.
fn parse_time(value: &str) -> Result<i64, String> {
    if let Ok(ms) = value.parse::<i64>() {
        return if ms >= 0 {
            Ok(ms)
        } else {
            Err("a time: RFC 3339 (2026-11-29T22:00:00Z) or Unix ms".into())
        };
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| "a time: RFC 3339 (2026-11-29T22:00:00Z) or Unix ms".into())
}

#[utoipa::path(get, path = "/api/runs", tag = "runs",
    params(
        ("account" = Option<String>, Query, description = "Account name"),
        ("kind" = Option<String>, Query, description = "offers, orders, reference or returns"),
        ("outcome" = Option<String>, Query, description = "The run's state: succeeded, failed, cancelled, running, queued, interrupted"),
        ("trigger" = Option<String>, Query, description = "schedule, manual, retry or callback"),
        ("since" = Option<String>, Query, description = "Runs created at or after: RFC 3339 or Unix ms"),
        ("until" = Option<String>, Query, description = "Runs created before: RFC 3339 or Unix ms"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 500 (default 50)"),
        ("after" = Option<i64>, Query, description = "The `next` of the previous page: runs with a smaller id"),
    ),
    responses(
        (status = 200, body = RunPageView),
        (status = 400, description = "A filter is invalid; `invalid-params` names it", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = match parse_filters(raw.as_deref()) {
        Ok(q) => q,
        Err(p) => return p.into_response(),
    };
    match state.bounded(state.store().list_runs_page(&q)).await {
        Ok(page) => {
            let now = storage::now_ms();
            Json(RunPageView {
                items: page
                    .items
                    .into_iter()
                    .map(|r| RunView::of(r, now))
                    .collect(),
                next: page.next,
            })
            .into_response()
        }
        Err(e) => Problem::database_unavailable(&e)
            .with_instance("/api/runs")
            .into_response(),
    }
}

fn unknown_run(id: i64, path: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown-run", "Unknown run")
        .with_detail(format!("there is no run {id}"))
        .with_instance(path)
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, body = RunDetail),
        (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn one(State(state): State<AppState>, id: Result<Path<i64>, PathRejection>) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return super::bad_path(&e, "id", "/api/runs/{id}").into_response(),
    };
    let path = format!("/api/runs/{id}");
    let store = state.store();
    let read = async {
        let run = store.get_run(id).await?;
        let cancel = match run {
            Some(_) => store.run_cancel_requested(id).await?,
            None => None,
        };
        Ok((run, cancel))
    };
    match state.bounded(read).await {
        Ok((Some(run), cancel)) => Json(RunDetail {
            run: RunView::of(run, storage::now_ms()),
            cancel_requested_at: cancel.as_ref().and_then(|(at, _)| rfc3339(*at)),
            cancel_requested_by: cancel.map(|(_, by)| by),
        })
        .into_response(),
        Ok((None, _)) => unknown_run(id, &path).into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}

/// What a cancel did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelAccepted {
    pub run_id: i64,
    /// `cancelled`: it was queued or interrupted and is cancelled now; `requested`: it is
    /// running and stops at its next page boundary.
    pub outcome: String,
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses(
        (status = 202, body = CancelAccepted),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The run has ended already", body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return super::bad_path(&e, "id", "/api/runs/{id}/cancel").into_response(),
    };
    let path = format!("/api/runs/{id}/cancel");
    match state
        .bounded(state.store().request_run_cancel(id, op.describe()))
        .await
    {
        Ok(CancelRun::Cancelled | CancelRun::Requested) => {
            let outcome = match state.bounded(state.store().get_run(id)).await {
                Ok(Some(r)) if r.state == RunState::Cancelled => "cancelled",
                _ => "requested",
            };
            tracing::info!(
                run.id = id,
                outcome,
                by = op.describe(),
                "run cancel from the dashboard"
            );
            (
                StatusCode::ACCEPTED,
                Json(CancelAccepted {
                    run_id: id,
                    outcome: outcome.into(),
                }),
            )
                .into_response()
        }
        Ok(CancelRun::AlreadyEnded(s)) => {
            Problem::new(StatusCode::CONFLICT, "run-ended", "The run has ended")
                .with_detail(format!(
                    "run {id} has ended already ({s}); nothing to cancel"
                ))
                .with_instance(path)
                .into_response()
        }
        Ok(CancelRun::NotFound) => unknown_run(id, &path).into_response(),
        Err(e) => Problem::database_unavailable(&e)
            .with_instance(path)
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(raw: &str) -> Vec<String> {
        match parse_filters(Some(raw)) {
            Ok(_) => Vec::new(),
            Err(p) => p.invalid_params.iter().map(|p| p.name.clone()).collect(),
        }
    }

    #[test]
    fn a_filter_given_twice_is_refused_not_silently_one_of_them() {
        // Found by the fuzzer (issue 11): the last value won.
        assert_eq!(fields("account=a&account=b"), ["account"]);
        assert_eq!(fields("kind=0&kind=orders&limit=5"), ["kind"]);
        assert_eq!(fields("after=1&after=1&outcome=x"), ["after", "outcome"]);
        assert!(parse_filters(Some("account=a&kind=offers&limit=5")).is_ok());
    }
}
