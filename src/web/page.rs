//! The dashboard page `GET /` and its assets `GET /assets/{name}`, all embedded in the binary
//! (`include_str!`/`include_bytes!`): it works offline, with no CDN and no build step.
//!
//! Asset names carry a hash of their content (`app.3f9c1a0b2d.js`), so they are cached for a
//! year and a new binary's page can never run with an old script; the page itself is
//! `no-cache`. The page holds no inline script or style (the CSP forbids both): `app.js`
//! reads `/api/status`, follows `/api/events` and calls the JSON API.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::problem::Problem;
use super::AppState;

/// One embedded file.
#[derive(Debug)]
struct Asset {
    /// The name in the source tree (`app.js`), which the page template refers to.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

const TEMPLATE: &str = include_str!("assets/index.html");

/// Cached for a year: the name changes whenever the content does.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The assets under their hashed names, and the page that refers to them.
#[derive(Debug)]
struct Built {
    /// (hashed name, asset).
    assets: Vec<(String, &'static Asset)>,
    page: String,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut page = TEMPLATE.to_owned();
        let assets = ASSETS
            .iter()
            .map(|a| {
                let hash = blake3::hash(a.body).to_hex();
                let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
                let hashed = format!("{stem}.{}.{ext}", &hash[..10]);
                page = page.replace(&format!("{{{{{}}}}}", a.name), &format!("/assets/{hashed}"));
                (hashed, a)
            })
            .collect();
        Built { assets, page }
    })
}

/// The hashed names of the embedded assets (`app.3f9c1a0b2d.js`), for tests and tools.
pub fn asset_names() -> Vec<String> {
    built().assets.iter().map(|(n, _)| n.clone()).collect()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
}

async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        built().page.as_str(),
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match built().assets.iter().find(|(n, _)| *n == name) {
        Some((_, a)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            ],
            a.body,
        )
            .into_response(),
        None => Problem::not_found(&format!("/assets/{name}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_to_every_asset_by_its_hashed_name_and_to_nothing_else() {
        let b = built();
        assert!(!b.page.contains("{{"), "a placeholder was left: {}", b.page);
        for (hashed, _) in &b.assets {
            assert!(b.page.contains(&format!("/assets/{hashed}")), "{hashed}");
        }
        for text in [b.page.as_str()].into_iter().chain(
            ASSETS
                .iter()
                .filter_map(|a| std::str::from_utf8(a.body).ok()),
        ) {
            // The SVG namespace is a name, not a request.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for external in ["http://", "https://", "url(", "@import", "@font-face"] {
                assert!(
                    !text.contains(external),
                    "an external reference ({external})"
                );
            }
        }
    }
}
