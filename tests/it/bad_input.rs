//! Bad-input tables (issue 11, point 4): malformed configurations and command lines through
//! the real binary, and malformed requests to every JSON API route generated from the OpenAPI
//! document. Whatever the input: a clear message naming what is wrong, the documented exit
//! code or a 4xx problem, never a panic, never a secret.

mod api;
mod cli;
mod config;

use base64::Engine;

/// A secret no output may hold: `canary-` and 20 random hex digits, new for every use.
pub fn canary() -> String {
    format!("canary-{:020x}", rand::random::<u128>() >> 48)
}

/// What must never be printed or served for credentials `user`/`password`: the password,
/// and the Basic-auth header value that carries both.
pub fn credential_secrets(user: &str, password: &str) -> [String; 2] {
    [
        password.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
    ]
}

/// The secrets of `secrets` that `text` holds.
pub fn leaked<'a>(text: &str, secrets: &'a [String]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(String::as_str)
        .collect()
}
