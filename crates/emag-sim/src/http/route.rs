//! Which API operation a method and path name. Parsing the URL once into an enum keeps the
//! rate-limit class, the journal fields and the dispatch consistent with each other.

use axum::http::Method;

use crate::ratelimit::RouteClass;

/// Path prefix of every API route.
pub(crate) const API_PREFIX: &str = "/api-3/";

/// A recognized API operation, or the reason the URL is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /api-3/{resource}/{action}` for a supported pair.
    Rpc { resource: String, action: String },
    /// `POST /api-3/order/acknowledge/{id}`.
    Acknowledge { id: Option<u64> },
    /// `PATCH /api-3/offer_stock/{id}`.
    OfferStock { id: Option<u32> },
    /// Anything else: 404 `Invalid URL`.
    Unknown { resource: String, action: String },
}

const RPC_ROUTES: &[(&str, &[&str])] = &[
    ("product_offer", &["read", "count", "save"]),
    ("offer", &["save"]),
    ("order", &["read", "count"]),
    ("category", &["read", "count"]),
    ("vat", &["read"]),
    ("handling_time", &["read"]),
    ("rma", &["read", "count"]),
];

impl Route {
    pub(crate) fn parse(method: &Method, path: &str) -> Self {
        let rest = path
            .strip_prefix(API_PREFIX)
            .unwrap_or_default()
            .trim_end_matches('/');
        let segments: Vec<&str> = rest.split('/').collect();
        let unknown = || Self::Unknown {
            resource: segments.first().copied().unwrap_or_default().to_owned(),
            action: segments.get(1..).map(|s| s.join("/")).unwrap_or_default(),
        };
        match (method, segments.as_slice()) {
            (&Method::POST, ["order", "acknowledge", id]) => Self::Acknowledge {
                id: id.parse().ok(),
            },
            (&Method::PATCH, ["offer_stock", id]) => Self::OfferStock {
                id: id.parse().ok(),
            },
            (&Method::POST, [resource, action]) => {
                let known = RPC_ROUTES
                    .iter()
                    .any(|(r, actions)| r == resource && actions.contains(action));
                if known {
                    Self::Rpc {
                        resource: (*resource).to_owned(),
                        action: (*action).to_owned(),
                    }
                } else {
                    unknown()
                }
            }
            _ => unknown(),
        }
    }

    pub(crate) fn resource(&self) -> &str {
        match self {
            Self::Rpc { resource, .. } | Self::Unknown { resource, .. } => resource,
            Self::Acknowledge { .. } => "order",
            Self::OfferStock { .. } => "offer_stock",
        }
    }

    pub(crate) fn action(&self) -> &str {
        match self {
            Self::Rpc { action, .. } | Self::Unknown { action, .. } => action,
            Self::Acknowledge { .. } => "acknowledge",
            Self::OfferStock { .. } => "update",
        }
    }

    pub(crate) fn class(&self) -> RouteClass {
        RouteClass::of_resource(self.resource())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognized_by_method_and_path() {
        assert_eq!(
            Route::parse(&Method::POST, "/api-3/product_offer/read"),
            Route::Rpc {
                resource: "product_offer".into(),
                action: "read".into()
            }
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api-3/order/acknowledge/3115229985"),
            Route::Acknowledge {
                id: Some(3_115_229_985)
            }
        );
        assert_eq!(
            Route::parse(&Method::PATCH, "/api-3/offer_stock/12"),
            Route::OfferStock { id: Some(12) }
        );
        assert!(matches!(
            Route::parse(&Method::POST, "/api-3/product_offer/delete"),
            Route::Unknown { .. }
        ));
        assert_eq!(
            Route::parse(&Method::POST, "/api-3/order/read").class(),
            RouteClass::Orders
        );
    }
}
