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
            EmagError::BadUrl { .. } => ErrorClass::Config,
        }
    }

    /// Whether the same call may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
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
