//! Answers of the API routes and how they become HTTP responses: the eMAG envelope, the bare
//! `{"message": …}` bodies of the gateway-level errors, 204, and the fault answers (an HTML
//! 502 page, a truncated body).
//!
//! Envelopes are assembled from pre-serialized `results` bytes so a page of offers is
//! serialized once, straight from the typed structs, without an intermediate `Value`.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::ratelimit::RateVerdict;

/// Message of the 401 answer (and of eMAG's 403 for offer_stock).
pub(crate) const NOT_ALLOWED: &str = "You are not allowed to use this API.";

/// The body of a gateway 502, as nginx would send it.
const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// One answer of an API route.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// `{"isError", "messages", "errors", "results"}` with already-serialized results.
    Envelope {
        status: StatusCode,
        is_error: bool,
        messages: Vec<String>,
        results: Vec<u8>,
    },
    /// 401 with the exact body eMAG-style clients expect (no `errors` key).
    Unauthorized,
    /// 429 `{"message":"API rate limit exceeded"}` — deliberately no `isError`.
    RateLimited,
    /// Any other bare JSON body (`Invalid URL`, `Invalid content`, offer_stock answers).
    Bare {
        status: StatusCode,
        body: serde_json::Value,
    },
    /// 204 without a body.
    NoContent,
    /// 502 HTML from the "gateway".
    BadGateway,
    /// 301 to `location`, without a body.
    Redirect { location: String },
    /// 200 with a valid, empty envelope padded with whitespace to `bytes`, streamed without a
    /// Content-Length (a client must refuse it while it arrives).
    Oversize { bytes: u64 },
}

impl Reply {
    /// 200, `isError:false`, with `results`.
    pub(crate) fn ok<T: Serialize + ?Sized>(results: &T) -> Self {
        match serde_json::to_vec(results) {
            Ok(bytes) => Self::Envelope {
                status: StatusCode::OK,
                is_error: false,
                messages: Vec::new(),
                results: bytes,
            },
            Err(e) => Self::error(format!("Internal error: {e}")),
        }
    }

    /// 200, `isError:false`, with messages.
    pub(crate) fn ok_with_messages(messages: Vec<String>, results: &serde_json::Value) -> Self {
        Self::Envelope {
            status: StatusCode::OK,
            is_error: false,
            messages,
            results: serde_json::to_vec(results).unwrap_or_else(|_| b"[]".to_vec()),
        }
    }

    /// 200, `isError:true`, one message, empty results.
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self::errors(vec![message.into()])
    }

    /// 200, `isError:true`, several messages, empty results.
    pub(crate) fn errors(messages: Vec<String>) -> Self {
        Self::Envelope {
            status: StatusCode::OK,
            is_error: true,
            messages,
            results: b"[]".to_vec(),
        }
    }

    pub(crate) fn invalid_url() -> Self {
        Self::Bare {
            status: StatusCode::NOT_FOUND,
            body: json!({"message": "Invalid URL"}),
        }
    }

    pub(crate) fn invalid_content() -> Self {
        Self::Bare {
            status: StatusCode::BAD_REQUEST,
            body: json!({"message": "Invalid content"}),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Envelope { status, .. } | Self::Bare { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::NoContent => StatusCode::NO_CONTENT,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Redirect { .. } => StatusCode::MOVED_PERMANENTLY,
            Self::Oversize { .. } => StatusCode::OK,
        }
    }

    /// Status, content type and body bytes.
    fn parts(self) -> (StatusCode, &'static str, Vec<u8>) {
        const JSON: &str = "application/json";
        let status = self.status();
        match self {
            Self::Envelope {
                is_error,
                messages,
                results,
                ..
            } => {
                let head =
                    json!({"isError": is_error, "messages": messages, "errors": []}).to_string();
                // Splice `results` into the object instead of re-parsing it.
                let mut body = Vec::with_capacity(head.len() + results.len() + 12);
                body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
                body.extend_from_slice(b",\"results\":");
                body.extend_from_slice(&results);
                body.push(b'}');
                (status, JSON, body)
            }
            Self::Unauthorized => (
                status,
                JSON,
                json!({"isError": true, "messages": [NOT_ALLOWED], "results": []})
                    .to_string()
                    .into_bytes(),
            ),
            Self::RateLimited => (
                status,
                JSON,
                br#"{"message":"API rate limit exceeded"}"#.to_vec(),
            ),
            Self::Bare { body, .. } => (status, JSON, body.to_string().into_bytes()),
            Self::NoContent | Self::Redirect { .. } | Self::Oversize { .. } => {
                (status, JSON, Vec::new())
            }
            Self::BadGateway => (status, "text/html", BAD_GATEWAY_HTML.as_bytes().to_vec()),
        }
    }

    /// The HTTP response; `truncate` cuts the body in half (the malformed-body fault).
    pub(crate) fn into_response(self, rate: Option<RateVerdict>, truncate: bool) -> Response {
        match self {
            Self::Redirect { location } => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                return response;
            }
            Self::Oversize { bytes } => return oversize(bytes),
            _ => {}
        }
        let (mut status, content_type, mut body) = self.parts();
        if truncate {
            if body.is_empty() {
                body = br#"{"isError":false,"results":["#.to_vec();
            } else {
                body.truncate((body.len() / 2).max(1));
            }
            status = StatusCode::OK;
        }
        let mut response = Response::new(if status == StatusCode::NO_CONTENT {
            Body::empty()
        } else {
            Body::from(body)
        });
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if status != StatusCode::NO_CONTENT {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(rate) = rate {
            headers.insert(
                "x-ratelimit-limit-3second",
                HeaderValue::from(rate.limit_3s),
            );
            headers.insert(
                "x-ratelimit-remaining-3second",
                HeaderValue::from(rate.remaining_3s),
            );
        }
        response
    }
}

/// A valid, empty envelope of `bytes` bytes, produced chunk by chunk as the client reads.
fn oversize(bytes: u64) -> Response {
    const HEAD: &[u8] = br#"{"isError":false,"messages":[],"errors":[],"results":["#;
    const TAIL: &[u8] = b"]}";
    const CHUNK: usize = 64 * 1024;
    let padding = bytes.saturating_sub((HEAD.len() + TAIL.len()) as u64);
    let chunks = padding.div_ceil(CHUNK as u64);
    let middle = futures::stream::iter(0..chunks).map(move |i| {
        let left = padding - i * CHUNK as u64;
        let len = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b' '; len]))
    });
    let stream = futures::stream::once(async { Ok(bytes::Bytes::from_static(HEAD)) })
        .chain(middle)
        .chain(futures::stream::once(async {
            Ok(bytes::Bytes::from_static(TAIL))
        }));
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
