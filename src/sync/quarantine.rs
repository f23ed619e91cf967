//! Items eMAG sent that cannot be decoded (issue 9, point 6): each is stored raw in the
//! quarantine table with the reason, counted, logged (by id and reason, never by content) and
//! skipped, so the run goes on and succeeds with a warning instead of blocking the account.

use domain::QuarantineKind;
use serde_json::Value;
use storage::{ActiveRun, QuarantineRow};

use super::{content_hash, SyncContext, SyncError};

/// Why one item could not be decoded, in our words: nothing of the item's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Odd {
    /// The item's id as sent, when there is one.
    pub item_id: Option<String>,
    pub reason: String,
}

impl Odd {
    /// An item whose JSON does not have the shape we decode, with serde's reason stripped of
    /// every value it quotes (a customer's name in "invalid type: string …", a phone sent as
    /// a number in "invalid type: integer `40722…`"), by the client's one rule for that.
    pub(crate) fn shape(raw: &str, what: &str, e: &serde_json::Error) -> Odd {
        Odd {
            item_id: raw_id(raw),
            reason: format!(
                "not a readable {what}: {} at line {} column {}",
                emag_client::json_error_without_values(e),
                e.line(),
                e.column()
            ),
        }
    }

    pub(crate) fn new(item_id: &impl ToString, reason: impl Into<String>) -> Odd {
        Odd {
            item_id: Some(item_id.to_string()),
            reason: reason.into(),
        }
    }
}

/// The item's top-level `id` as text (a number of any size, or a string of digits), when the
/// item is an object.
pub(crate) fn raw_id(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    match serde_json::from_str::<emag_client::Object<Id>>(raw)
        .ok()?
        .0
        .id?
    {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Some(s),
        _ => None,
    }
}

/// The odd items of one run of one kind.
#[derive(Debug)]
pub(crate) struct Quarantine {
    kind: QuarantineKind,
    pending: Vec<QuarantineRow>,
    count: u64,
}

impl Quarantine {
    pub(crate) fn new(kind: QuarantineKind) -> Self {
        Quarantine {
            kind,
            pending: Vec::new(),
            count: 0,
        }
    }

    /// Takes `raw` aside for `odd`'s reason; it is stored at the next [`Quarantine::flush`].
    pub(crate) fn add(&mut self, account: &str, raw: &str, odd: Odd) {
        tracing::warn!(
            account.name = account,
            item.kind = %self.kind,
            item.id = odd.item_id.as_deref().unwrap_or("-"),
            reason = %odd.reason,
            "an item eMAG sent cannot be read; it is quarantined and skipped"
        );
        self.count += 1;
        self.pending.push(QuarantineRow {
            kind: self.kind,
            item_id: odd.item_id,
            reason: odd.reason,
            data: raw.to_owned(),
            content_hash: content_hash(raw),
        });
    }

    /// Stores the items taken aside since the last flush.
    pub(crate) async fn flush(
        &mut self,
        ctx: &SyncContext,
        run: &ActiveRun,
    ) -> Result<(), SyncError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        ctx.store.quarantine_items(run, &self.pending).await?;
        self.pending.clear();
        Ok(())
    }

    /// Items quarantined in this run.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The run's warning, when it quarantined anything.
    pub(crate) fn note(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} {} item(s) could not be read and were quarantined (see `emag-sync status`)",
                self.count, self.kind
            )
        })
    }
}

/// Joins the notes of a run.
pub(crate) fn join_notes(notes: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = notes.into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_reason_names_the_problem_but_no_value() {
        let raw = r#"{"id": 7, "status": "Ana Pop"}"#;
        let e = serde_json::from_str::<std::collections::HashMap<String, u8>>(raw)
            .expect_err("a string is no u8");
        let odd = Odd::shape(raw, "order", &e);
        assert_eq!(odd.item_id.as_deref(), Some("7"));
        assert!(!odd.reason.contains("Ana"), "{}", odd.reason);
        assert!(odd.reason.contains("invalid type"), "{}", odd.reason);
    }

    #[test]
    fn a_shape_reason_quotes_no_number_and_no_text_past_an_escaped_quote() {
        // Found by the fuzzer (issue 11): the old rule toggled at every `"` (so an escaped
        // quote let the rest of a name through) and kept numbers in backticks (a phone).
        for (raw, secret) in [
            (r#"{"phone": -40721990084}"#, "40721990084"),
            (r#"{"name": "Ion \"Nelu\" Popescu"}"#, "Nelu"),
        ] {
            let e =
                serde_json::from_str::<std::collections::HashMap<String, u8>>(raw).expect_err(raw);
            let odd = Odd::shape(raw, "order", &e);
            assert!(!odd.reason.contains(secret), "{raw}: {}", odd.reason);
            assert!(odd.reason.contains("line 1 column"), "{}", odd.reason);
        }
    }

    #[test]
    fn an_item_that_is_not_an_object_has_no_id() {
        for raw in [r#"[5, "PN-1"]"#, r#"["42"]"#, "7", "\"x\"", "null", "true"] {
            assert_eq!(raw_id(raw), None, "{raw}");
        }
        assert_eq!(raw_id(r#" {"id": 1}"#).as_deref(), Some("1"));
    }

    #[test]
    fn ids_are_read_whatever_their_size() {
        assert_eq!(
            raw_id(r#"{"id": 1099511627778}"#).as_deref(),
            Some("1099511627778")
        );
        assert_eq!(raw_id(r#"{"id": "42"}"#).as_deref(), Some("42"));
        assert_eq!(raw_id(r#"{"name": "x"}"#), None);
        assert_eq!(raw_id("not json"), None);
    }
}
