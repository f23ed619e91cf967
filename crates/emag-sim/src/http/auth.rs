//! HTTP Basic credentials as sent by the client. Only decoding lives here; whether they are
//! valid is decided by the pipeline against the account table (and the fault plan).

use axum::http::{header, HeaderMap};
use base64::Engine;

/// A decoded `Authorization: Basic` pair.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, even a simulated one: logs get copied around.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Decodes the Basic credentials of a request, if well formed.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_decoded_and_never_debug_printed() {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode("sim-main:pass-main");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        let credentials = basic_credentials(&headers);
        assert_eq!(
            credentials.as_ref().map(|c| c.username.as_str()),
            Some("sim-main")
        );
        assert_eq!(
            credentials.as_ref().map(|c| c.password.as_str()),
            Some("pass-main")
        );
        assert!(!format!("{credentials:?}").contains("pass-main"));
    }
}
