//! Which request encoding eMAG honours for an account (issue 9, point 1).
//!
//! No source settles how a read's filters must travel: eMAG's PHP samples send form fields,
//! production JSON clients put the filters at the top level, older ones under `data`. A
//! server that does not parse a shape ignores its filters silently, so the only proof is an
//! answer that obeys them: a `product_offer/read` with `itemsPerPage=1` returns at most one
//! offer, and an `order/read` with `type=2` returns only type-2 orders. The first encoding
//! that passes both is kept in the store, so each account is probed once — and again after an
//! encoding-shaped failure (filters or paging ignored) or when its API URL changes.

use domain::{ApiEncoding, OrderType};
use emag_client::{EmagClient, EmagError};
use serde_json::{Map, Value};
use storage::{StorageError, Store};

use super::offers::int;
use super::{Account, SyncContext, SyncError};
use crate::config::EncodingChoice;

/// The order encodings are tried in: the shape this client always sent first (what works
/// today keeps working without a change on the wire), then eMAG's documented form fields,
/// then top-level JSON.
pub const PROBE_ORDER: [ApiEncoding; 3] =
    [ApiEncoding::JsonData, ApiEncoding::Form, ApiEncoding::Json];

/// What the probe of one encoding saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ProbeVerdict {
    /// Both filters were applied.
    Honoured,
    /// A read with `itemsPerPage=1` was answered with `answered` offers.
    PagingIgnored { answered: usize },
    /// A read of type-2 orders was answered with an order of type `other`.
    TypeIgnored { other: i64 },
    /// eMAG refused the request in this encoding.
    Refused { messages: Vec<String> },
}

impl std::fmt::Display for ProbeVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeVerdict::Honoured => f.write_str("filters honoured"),
            ProbeVerdict::PagingIgnored { answered } => {
                write!(f, "itemsPerPage=1 answered with {answered} offers")
            }
            ProbeVerdict::TypeIgnored { other } => {
                write!(f, "type=2 answered with a type-{other} order")
            }
            ProbeVerdict::Refused { messages } => write!(f, "refused: {}", messages.join("; ")),
        }
    }
}

/// How the encoding of an account was settled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum EncodingSource {
    /// `EMAG_API_ENCODING` names it.
    Configured,
    /// Probed before and kept in the store.
    Kept,
    /// Probed now; what each encoding tried showed.
    Probed {
        tried: Vec<(ApiEncoding, ProbeVerdict)>,
    },
}

/// The encoding an account uses and how it was settled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SettledEncoding {
    pub encoding: ApiEncoding,
    #[serde(flatten)]
    pub source: EncodingSource,
}

impl std::fmt::Display for SettledEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            EncodingSource::Configured => write!(f, "{} (EMAG_API_ENCODING)", self.encoding),
            EncodingSource::Kept => write!(f, "{} (probed before)", self.encoding),
            EncodingSource::Probed { tried } => {
                write!(f, "{} (probed: {})", self.encoding, describe_tried(tried))
            }
        }
    }
}

/// Tries each encoding of [`PROBE_ORDER`] on `client` until one has its filters honoured, and
/// leaves the client on it. `Ok(Err(tried))` when none was: the client is left as it was.
/// Errors that say nothing about the encoding (credentials, network) end the probe.
pub async fn probe_encoding(
    client: &EmagClient,
) -> Result<Result<SettledEncoding, Vec<(ApiEncoding, ProbeVerdict)>>, EmagError> {
    let before = client.encoding();
    let mut tried = Vec::new();
    for encoding in PROBE_ORDER {
        client.set_encoding(encoding);
        let verdict = probe_one(client).await;
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                client.set_encoding(before);
                return Err(e);
            }
        };
        let honoured = verdict == ProbeVerdict::Honoured;
        tried.push((encoding, verdict));
        if honoured {
            return Ok(Ok(SettledEncoding {
                encoding,
                source: EncodingSource::Probed { tried },
            }));
        }
    }
    client.set_encoding(before);
    Ok(Err(tried))
}

async fn probe_one(client: &EmagClient) -> Result<ProbeVerdict, EmagError> {
    let refused = |e: EmagError| match e {
        EmagError::TooManyItems { got, .. } => Ok(ProbeVerdict::PagingIgnored { answered: got }),
        EmagError::Rejected { messages } => Ok(ProbeVerdict::Refused { messages }),
        e if e.is_encoding_shaped() => Ok(ProbeVerdict::Refused {
            messages: vec![e.to_string()],
        }),
        e => Err(e),
    };
    if let Err(e) = client.read_page("product_offer", &Map::new(), 1, 1).await {
        return refused(e);
    }
    let mut fbe = Map::new();
    fbe.insert("type".into(), Value::from(OrderType::Fbe.code()));
    let page = match client.read_page("order", &fbe, 1, 100).await {
        Ok(page) => page,
        Err(e) => return refused(e),
    };
    for item in &page.items {
        let order: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
        // An order without `type` (older answers) says nothing either way.
        if let Some(other) = int(order.get("type")).filter(|&t| t != OrderType::Fbe.code()) {
            return Ok(ProbeVerdict::TypeIgnored { other });
        }
    }
    Ok(ProbeVerdict::Honoured)
}

/// Why an account's encoding could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    #[error("{0}")]
    Api(#[from] EmagError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// Every encoding was tried; eMAG ignored or refused the filters of each.
    #[error("no request encoding had its filters honoured by eMAG ({}); set EMAG_API_ENCODING=form|json-data|json to choose one", describe_tried(.0))]
    NoneHonoured(Vec<(ApiEncoding, ProbeVerdict)>),
}

fn describe_tried(tried: &[(ApiEncoding, ProbeVerdict)]) -> String {
    tried
        .iter()
        .map(|(e, v)| format!("{e}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<EncodingError> for SyncError {
    fn from(e: EncodingError) -> Self {
        match e {
            EncodingError::Api(e) => SyncError::Api(e),
            EncodingError::Storage(e) => SyncError::Storage(e),
            e @ EncodingError::NoneHonoured(_) => SyncError::Protocol(e.to_string()),
        }
    }
}

/// Puts `client` on the encoding `choice` asks for: the configured one, the one kept in the
/// store for `account`, or the one a probe finds now (then kept). Used by every run and by
/// `emag-sync test`.
pub async fn settle_encoding(
    store: &Store,
    account: &str,
    client: &EmagClient,
    choice: EncodingChoice,
) -> Result<SettledEncoding, EncodingError> {
    if let EncodingChoice::Fixed(encoding) = choice {
        client.set_encoding(encoding);
        return Ok(SettledEncoding {
            encoding,
            source: EncodingSource::Configured,
        });
    }
    if let Some(kept) = store.api_encoding(account).await? {
        client.set_encoding(kept.encoding);
        return Ok(SettledEncoding {
            encoding: kept.encoding,
            source: EncodingSource::Kept,
        });
    }
    match probe_encoding(client).await? {
        Ok(settled) => {
            tracing::info!(
                account.name = account, api.encoding = %settled.encoding,
                "probed the request encoding eMAG honours; kept for this account"
            );
            store
                .set_api_encoding(account, Some(settled.encoding))
                .await?;
            Ok(settled)
        }
        Err(tried) => Err(EncodingError::NoneHonoured(tried)),
    }
}

/// [`settle_encoding`] for a run's account.
pub(crate) async fn ensure_encoding(ctx: &SyncContext, account: &Account) -> Result<(), SyncError> {
    settle_encoding(
        &ctx.store,
        account.name(),
        &account.client,
        ctx.settings.api_encoding,
    )
    .await
    .map(|_| ())
    .map_err(SyncError::from)
}

/// After a run failed with `error`: when it looks like eMAG did not understand the encoding
/// (filters or paging ignored), the kept one is forgotten so the next run probes again.
/// Returns whether it was.
pub(crate) async fn forget_after(ctx: &SyncContext, account: &Account, error: &EmagError) -> bool {
    if ctx.settings.api_encoding != EncodingChoice::Auto || !error.is_encoding_shaped() {
        return false;
    }
    match ctx.store.set_api_encoding(account.name(), None).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(account.name = account.name(), error = %e, "cannot forget the request encoding");
            false
        }
    }
}
