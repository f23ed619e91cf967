//! Reference data: VAT rates, handling times and categories of the account's marketplace.
//! It is the same for every seller of a platform, so it is stored per marketplace.
//!
//! The shapes of `vat/read` and `handling_time/read` are partly guessed in eMAG's own
//! documentation, and answers seen in the field differ (`{id, name, value}` instead of
//! `{vat_id, vat_rate}`), so they are read leniently: the id and the name each come from the
//! first field present of a list, `results` may be a list or an object of items, and an item
//! with no id at all is skipped with a warning instead of failing the run.

use domain::{storable_text, SyncKind};
use serde_json::{Map, Value};
use storage::{ActiveRun, ReferenceRow};

use super::offers::int;
use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

/// (resource, id fields, name fields — the first present wins —, paginated)
type Kind = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);
const KINDS: [Kind; 3] = [
    (
        "vat",
        &["vat_id", "id"],
        &["vat_rate", "value", "name"],
        false,
    ),
    (
        "handling_time",
        &["id", "value"],
        &["value", "name", "id"],
        false,
    ),
    ("category", &["id"], &["name"], true),
];

/// The items of an unpaginated answer: a list, or an object whose values are the items.
fn items_of(resource: &str, results: &str) -> Result<Vec<emag_client::RawItem>, SyncError> {
    if let Ok(list) = serde_json::from_str::<Vec<emag_client::RawItem>>(results) {
        return Ok(list);
    }
    serde_json::from_str::<std::collections::BTreeMap<String, emag_client::RawItem>>(results)
        .map(|m| m.into_values().collect())
        .map_err(|_| {
            SyncError::Item(format!(
                "{resource}/read answered with neither a list nor an object of items"
            ))
        })
}

fn first<'a>(v: &'a Value, fields: &[&str]) -> Option<&'a Value> {
    fields
        .iter()
        .find_map(|f| v.get(*f).filter(|x| !x.is_null()))
}

/// The item's name: the first of `fields` present, as text both stores keep (a NUL in it
/// becomes U+FFFD, which PostgreSQL's `text` refuses; issue 11, found by the fuzzer).
fn name_of(v: &Value, fields: &[&str]) -> Option<String> {
    first(v, fields).map(|n| match n {
        Value::String(s) => storable_text(s.clone()),
        other => other.to_string(),
    })
}

pub(crate) async fn sync_reference(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
) -> Result<KindResult, SyncError> {
    let marketplace = account.config.marketplace.as_str();
    let mut done = 0u64;
    for (resource, id_fields, name_fields, paginated) in KINDS {
        let mut items = Vec::new();
        // Bounded and checked: a repeated page or endless full pages end the run.
        let mut pages = emag_client::PageLoop::new(resource, 1, 100, None);
        while let Some(page_no) = pages.next_page() {
            if ctx.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            let page = if paginated {
                let mut page = account
                    .client
                    .read_page(resource, &Map::new(), page_no, 100)
                    .await?;
                pages.accept(&mut page)?;
                page
            } else {
                let env = account
                    .client
                    .call(resource, "read", &Value::Object(Map::new()))
                    .await?;
                let items = items_of(resource, env.results.get())?;
                emag_client::Page {
                    number: 1,
                    items,
                    last: true,
                }
            };
            items.extend(page.items);
            if page.last {
                break;
            }
        }
        let mut rows = Vec::with_capacity(items.len());
        let mut skipped = 0_u64;
        for raw in &items {
            let v: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            let Some(id) = int(first(&v, id_fields)) else {
                skipped += 1;
                continue;
            };
            let name = name_of(&v, name_fields);
            rows.push(ReferenceRow {
                id,
                name,
                data: raw.get().to_owned(),
                content_hash: content_hash(raw.get()),
            });
        }
        if skipped > 0 {
            tracing::warn!(
                account.name = account.name(),
                reference.kind = resource,
                items.skipped = skipped,
                "reference items without an id ({}) were skipped",
                id_fields.join(" or ")
            );
        }
        let stored = ctx.store.reference_hashes(marketplace, resource).await?;
        let (changed, counts) = changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
        ctx.store
            .write_reference(marketplace, resource, &changed)
            .await?;
        ctx.store.add_run_counts(run, &counts).await?;
        done += counts.items_read;
        ctx.report_progress(account.name(), SyncKind::Reference, done, None);
    }
    Ok(KindResult::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: &Kind, raw: &str) -> (Option<i64>, Option<String>) {
        let v: Value = serde_json::from_str(raw).expect("json");
        (int(first(&v, kind.1)), name_of(&v, kind.2))
    }

    #[test]
    fn vat_and_handling_times_are_read_in_the_documented_and_the_alternate_shape() {
        let [vat, handling, _] = &KINDS;
        assert_eq!(
            read(vat, r#"{"vat_id": 9, "vat_rate": 0.21, "is_default": 1}"#),
            (Some(9), Some("0.21".into()))
        );
        assert_eq!(
            read(vat, r#"{"id": "9", "name": "TVA 21%", "value": "0.21"}"#),
            (Some(9), Some("0.21".into()))
        );
        assert_eq!(read(handling, r#"{"id": 3}"#), (Some(3), Some("3".into())));
        assert_eq!(
            read(handling, r#"{"id": 5, "name": "5 days", "value": 5}"#),
            (Some(5), Some("5".into()))
        );
    }

    #[test]
    fn a_nul_in_a_name_becomes_the_replacement_character() {
        let [_, _, category] = &KINDS;
        assert_eq!(
            read(category, r#"{"id": 7, "name": "Tele\u0000foane"}"#),
            (Some(7), Some("Tele\u{fffd}foane".into()))
        );
    }

    #[test]
    fn an_answer_may_be_a_list_or_an_object_of_items() {
        assert_eq!(items_of("vat", r#"[{"id": 1}]"#).expect("list").len(), 1);
        assert_eq!(
            items_of("vat", r#"{"9": {"id": 9}, "4": {"id": 4}}"#)
                .expect("object")
                .len(),
            2
        );
        assert!(items_of("vat", r#""nothing""#).is_err());
    }
}
