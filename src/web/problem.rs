//! Errors of the HTTP server as RFC 9457 problem details (`application/problem+json`): every
//! error response of every route is one of these, with a stable `type`, a `title` for
//! people, the HTTP `status`, a `detail` of this occurrence and, for a bad request, the
//! parameters at fault (`invalid-params`, the RFC's own example extension).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use storage::StorageError;

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `about:blank` when the status says it all; otherwise `urn:emag-sync:problem:<slug>`,
    /// stable for clients to match on.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request parameters (query, path or body fields) at fault.
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

/// A parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl Problem {
    /// A problem described by its status alone (`about:blank`, the status's reason as title).
    pub fn status(status: StatusCode) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            invalid_params: Vec::new(),
        }
    }

    /// A problem of our own kind: `urn:emag-sync:problem:<slug>`.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:emag-sync:problem:{slug}"),
            title: title.into(),
            ..Problem::status(status)
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_instance(mut self, path: impl Into<String>) -> Problem {
        self.instance = Some(path.into());
        self
    }

    /// A parameter at fault (a 400's reason).
    pub fn with_invalid_param(
        mut self,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Problem {
        self.invalid_params.push(InvalidParam {
            name: name.into(),
            reason: reason.into(),
        });
        self
    }

    /// No route has this path.
    pub fn not_found(path: &str) -> Problem {
        Problem::status(StatusCode::NOT_FOUND)
            .with_detail("no such resource; see README.md for the endpoints")
            .with_instance(path)
    }

    /// The store could not be read (or did not answer in time): the server is up but cannot
    /// say anything true, so it says so with a 503.
    pub fn database_unavailable(e: &StorageError) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "The database cannot be read",
        )
        .with_detail(e.to_string())
    }

    /// A bug: the handler failed where it should not. Details stay in the log.
    pub fn internal() -> Problem {
        Problem::status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("an internal error occurred; the server log has the details")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // A struct of strings always serialises; the fallback keeps the content type honest.
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| {
            br#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.to_vec()
        });
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_has_the_rfc_9457_members_and_the_parameters_at_fault() {
        let p = Problem::new(StatusCode::BAD_REQUEST, "invalid-filter", "Invalid filter")
            .with_detail("kind must be one of offers, orders, reference, returns")
            .with_invalid_param("kind", "unknown sync kind \"x\"");
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(json["type"], "urn:emag-sync:problem:invalid-filter");
        assert_eq!(json["status"], 400);
        assert_eq!(json["invalid-params"][0]["name"], "kind");
        assert!(json.get("instance").is_none());
        let plain = serde_json::to_value(Problem::status(StatusCode::NOT_FOUND)).expect("json");
        assert_eq!(plain["type"], "about:blank");
        assert_eq!(plain["title"], "Not Found");
        assert!(plain.get("invalid-params").is_none());
    }
}
