//! The request encoding kept per account (issue 9, point 1): which of eMAG's body shapes had
//! its filters honoured when the account was probed.

use domain::ApiEncoding;

use crate::{Result, Store};

/// The encoding an account was found to need, and when (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptEncoding {
    pub encoding: ApiEncoding,
    pub probed_at: i64,
}

impl Store {
    /// Keeps `encoding` for `account` (after a probe) against its current API URL, or forgets
    /// it (`None`: probe again before the next run). The account must be registered.
    pub async fn set_api_encoding(
        &self,
        account: &str,
        encoding: Option<ApiEncoding>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET api_encoding = $1, api_encoding_at = $2, \
             api_encoding_url = CASE WHEN $1 IS NULL THEN NULL ELSE base_url END WHERE name = $3",
        )
        .bind(encoding.map(ApiEncoding::as_str))
        .bind(encoding.map(|_| crate::now_ms()))
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The encoding kept for `account`; `None` when it was never probed, was probed against
    /// another API URL, or holds a value this version does not know (probed again rather than
    /// trusted).
    pub async fn api_encoding(&self, account: &str) -> Result<Option<KeptEncoding>> {
        let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT api_encoding, api_encoding_at FROM accounts \
                 WHERE name = $1 AND api_encoding_url = base_url",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(text, at)| {
            Some(KeptEncoding {
                encoding: text?.parse().ok()?,
                probed_at: at.unwrap_or(0),
            })
        }))
    }

    /// Every account's kept encoding, by account name (for `status`).
    pub async fn api_encodings(&self) -> Result<Vec<(String, KeptEncoding)>> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT name, api_encoding, api_encoding_at FROM accounts \
             WHERE api_encoding IS NOT NULL AND api_encoding_url = base_url ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, text, at)| {
                Some((
                    name,
                    KeptEncoding {
                        encoding: text.parse().ok()?,
                        probed_at: at.unwrap_or(0),
                    },
                ))
            })
            .collect())
    }
}
