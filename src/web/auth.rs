//! Who may reach the server. Today: the rule that keeps an unguarded server on this machine —
//! without `EMAG_DASHBOARD_TOKEN` it listens on loopback addresses only. The bearer token and
//! session checks of mutations belong here too when the mutations arrive.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};

use super::WebError;

/// Refuses a non-loopback address (`0.0.0.0` included) unless a token is configured: the
/// dashboard would otherwise be open to the network with nothing to guard its mutations.
pub fn check_bind(addr: SocketAddr, token: Option<&SecretString>) -> Result<(), WebError> {
    let has_token = token.is_some_and(|t| !t.expose_secret().is_empty());
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(WebError::TokenRequired { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_served_without_a_token() {
        let token = SecretString::from("0123456789abcdef".to_owned());
        for ok in ["127.0.0.1:8001", "127.0.0.2:80", "[::1]:8001"] {
            let addr = ok.parse().expect("addr");
            assert!(check_bind(addr, None).is_ok(), "{ok}");
        }
        for open in ["0.0.0.0:8001", "[::]:8001", "192.168.1.10:8001"] {
            let addr: SocketAddr = open.parse().expect("addr");
            let err = check_bind(addr, None).expect_err(open);
            assert!(err.to_string().contains("EMAG_DASHBOARD_TOKEN"), "{err}");
            assert!(
                check_bind(addr, Some(&token)).is_ok(),
                "{open} with a token"
            );
        }
    }
}
