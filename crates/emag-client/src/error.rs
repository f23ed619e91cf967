//! The client's error type, classified once where the error is born.

use domain::ErrorClass;

/// Everything a call to eMAG can end with, other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmagError {
    #[error("eMAG refused the credentials (HTTP {status}): {}", join(.messages))]
    Unauthorized { status: u16, messages: Vec<String> },
    #[error("eMAG refused this machine's IP address: {}", join(.messages))]
    IpNotWhitelisted { messages: Vec<String> },
    #[error("eMAG rate limit exceeded and still exceeded after waiting {waited_secs} s")]
    RateLimited { waited_secs: u64 },
    #[error("eMAG rejected the call (isError: true): {}", join(.messages))]
    Rejected { messages: Vec<String> },
    #[error("eMAG answered something that is not a valid API answer (HTTP {status}): {excerpt}")]
    Malformed { status: u16, excerpt: String },
    #[error("eMAG server error HTTP {status}")]
    Server { status: u16 },
    #[error("no answer from eMAG within {timeout_secs} s")]
    Timeout { timeout_secs: u64 },
    #[error("cannot reach eMAG: {0}")]
    Transport(String),
    #[error("the API URL is wrong (HTTP {status} {excerpt}): check the account's API URL")]
    BadUrl { status: u16, excerpt: String },
    /// A 3xx answer. Redirects are not followed: a 301/302 turns the POST into a GET without
    /// a body, which eMAG would answer as an unfiltered read.
    #[error("eMAG answered HTTP {status} redirecting to {location}; redirects are not followed (a POST would become a body-less GET): set the account's API URL to the final address")]
    Redirected { status: u16, location: String },
    /// The answer was larger than `EMAG_API_MAX_BODY`; refused without reading it all.
    #[error("eMAG's answer to {resource}/{action} is larger than the {limit} bytes allowed (EMAG_API_MAX_BODY){}", seen_text(.declared))]
    BodyTooLarge {
        resource: String,
        action: String,
        limit: u64,
        /// The Content-Length eMAG declared, when it declared one.
        declared: Option<u64>,
    },
    /// A read answered with more items than its `itemsPerPage`: eMAG did not apply the
    /// request's filters (or its paging), so nothing of the answer can be trusted.
    #[error("eMAG answered {got} items to {resource}/read page {page} that asked for at most {asked}: the request's filters were not applied (check EMAG_API_ENCODING)")]
    TooManyItems {
        resource: String,
        page: u32,
        asked: u32,
        got: usize,
    },
    /// A page listed exactly the items of the page before it: eMAG ignores `currentPage`,
    /// and the loop would read the same page forever.
    #[error("eMAG answered page {page} of {resource} with the same {items} items as page {previous}: it does not honour currentPage (check EMAG_API_ENCODING)")]
    PageRepeated {
        resource: String,
        page: u32,
        previous: u32,
        items: usize,
    },
    /// Full pages kept coming past the last page the count announced (plus one for items
    /// added meanwhile), or past the hard bound of a read without a count.
    #[error("eMAG kept answering full pages of {resource} up to page {page}, past {}: the scan was stopped", bound_text(.count_items, .bound))]
    TooManyPages {
        resource: String,
        page: u32,
        /// The item count eMAG announced, if the loop had one.
        count_items: Option<u64>,
        /// The last page the loop may ask for.
        bound: u32,
    },
}

fn seen_text(declared: &Option<u64>) -> String {
    match declared {
        Some(n) => format!(" (it declared {n} bytes)"),
        None => String::new(),
    }
}

fn bound_text(count_items: &Option<u64>, bound: &u32) -> String {
    match count_items {
        Some(items) => format!("the {items} items its count announced (page {bound} at most)"),
        None => format!("the {bound} pages a read without a count may take"),
    }
}

impl EmagError {
    pub fn class(&self) -> ErrorClass {
        match self {
            EmagError::Unauthorized { .. } => ErrorClass::Auth,
            EmagError::IpNotWhitelisted { .. } => ErrorClass::IpNotWhitelisted,
            EmagError::RateLimited { .. } => ErrorClass::RateLimited,
            EmagError::Rejected { .. } => ErrorClass::Rejected,
            EmagError::Malformed { .. } => ErrorClass::Malformed,
            EmagError::Server { .. } => ErrorClass::Server,
            EmagError::Timeout { .. } => ErrorClass::Timeout,
            EmagError::Transport(_) => ErrorClass::Transport,
            EmagError::BadUrl { .. } | EmagError::Redirected { .. } => ErrorClass::Config,
            EmagError::BodyTooLarge { .. }
            | EmagError::TooManyItems { .. }
            | EmagError::PageRepeated { .. }
            | EmagError::TooManyPages { .. } => ErrorClass::Protocol,
        }
    }

    /// Whether the same call may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the error suggests eMAG did not understand how the request was encoded (its
    /// filters or paging ignored, or the body refused): the stored encoding should be probed
    /// again before the next run (issue 9, point 1).
    pub fn is_encoding_shaped(&self) -> bool {
        match self {
            EmagError::TooManyItems { .. } | EmagError::PageRepeated { .. } => true,
            EmagError::Malformed { status, excerpt } => {
                *status == 400 && excerpt.to_ascii_lowercase().contains("invalid content")
            }
            EmagError::Rejected { messages } => messages.iter().any(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("invalid content") || m.contains("invalid request")
            }),
            _ => false,
        }
    }

    /// eMAG's own messages carried by the error, if any.
    pub fn emag_messages(&self) -> Vec<String> {
        match self {
            EmagError::Unauthorized { messages, .. }
            | EmagError::IpNotWhitelisted { messages }
            | EmagError::Rejected { messages } => messages.clone(),
            _ => Vec::new(),
        }
    }
}

fn join(messages: &[String]) -> String {
    if messages.is_empty() {
        "(no message)".to_owned()
    } else {
        messages.join("; ")
    }
}

/// Whether eMAG's `isError` messages on a read may heal by themselves (issue 9, point 5).
/// Reads are idempotent, so an `isError` answer to one is retried unless a message is a known
/// validation or permission message, which the same request would get again. Messages that
/// ask to retry win over everything else.
pub(crate) fn rejection_is_transient(messages: &[String]) -> bool {
    const TRANSIENT: [&str; 6] = [
        "retry",
        "temporar",
        "try again",
        "timeout",
        "unavailable",
        "internal error",
    ];
    const PERMANENT: [&str; 16] = [
        "invalid",
        "not allowed",
        "permission",
        "forbidden",
        "required",
        "mandatory",
        "please provide",
        "maximum",
        "must ",
        "does not exist",
        "not found",
        "exceeded",
        "validation",
        "not valid",
        "missing",
        "unknown",
    ];
    let text = messages.join(" ").to_ascii_lowercase();
    if TRANSIENT.iter().any(|t| text.contains(t)) {
        return true;
    }
    !PERMANENT.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn temporary_problems_are_transient_and_validation_messages_are_not() {
        assert!(rejection_is_transient(&msgs(&[
            "Temporary problem, please retry"
        ])));
        assert!(rejection_is_transient(&msgs(&[
            "Simulated internal error, please retry"
        ])));
        assert!(rejection_is_transient(&msgs(&["Something odd happened"])));
        assert!(!rejection_is_transient(&msgs(&[
            "Invalid itemsPerPage: the maximum number of items per page is 100"
        ])));
        assert!(!rejection_is_transient(&msgs(&[
            "The maximum interval between createdAfter and createdBefore is one month"
        ])));
        assert!(!rejection_is_transient(&msgs(&[
            "You are not allowed to use this API."
        ])));
        assert!(!rejection_is_transient(&msgs(&[
            "ERROR: please provide the customer name - Rma id: 1143768"
        ])));
    }

    #[test]
    fn protocol_violations_have_their_own_class_and_a_redirect_is_config() {
        let repeated = EmagError::PageRepeated {
            resource: "product_offer".into(),
            page: 2,
            previous: 1,
            items: 100,
        };
        assert_eq!(repeated.class(), ErrorClass::Protocol);
        assert!(!repeated.is_retryable());
        assert!(repeated.is_encoding_shaped());
        let moved = EmagError::Redirected {
            status: 301,
            location: "https://x".into(),
        };
        assert_eq!(moved.class(), ErrorClass::Config);
    }
}
