//! Reference data: VAT rates, handling times and categories of the account's marketplace.
//! It is the same for every seller of a platform, so it is stored per marketplace.

use domain::SyncKind;
use serde_json::{Map, Value};
use storage::{ActiveRun, ReferenceRow};

use super::offers::int;
use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

/// (resource, id field, name field, paginated)
const KINDS: [(&str, &str, &str, bool); 3] = [
    ("vat", "vat_id", "vat_rate", false),
    ("handling_time", "id", "id", false),
    ("category", "id", "name", true),
];

pub(crate) async fn sync_reference(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
) -> Result<KindResult, SyncError> {
    let marketplace = account.config.marketplace.as_str();
    let mut done = 0u64;
    for (resource, id_field, name_field, paginated) in KINDS {
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
                let items: Vec<emag_client::RawItem> = serde_json::from_str(env.results.get())
                    .map_err(|e| SyncError::Item(format!("{resource}: {e}")))?;
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
        for raw in &items {
            let v: Value = serde_json::from_str(raw.get())
                .map_err(|e| SyncError::Item(format!("{resource}: {e}")))?;
            let id = int(v.get(id_field)).ok_or_else(|| {
                SyncError::Item(format!("{resource} item without {id_field}: {}", raw.get()))
            })?;
            let name = v.get(name_field).map(|n| match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            rows.push(ReferenceRow {
                id,
                name,
                data: raw.get().to_owned(),
                content_hash: content_hash(raw.get()),
            });
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
