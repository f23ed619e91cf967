//! `emag-sync export`: synced offers or orders to stdout, streamed in batches.

use std::io::Write;
use std::path::Path;

use super::{check_account_filter, load_config_and_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to export.
    #[arg(value_enum)]
    what: What,
    /// Only this account.
    #[arg(long)]
    account: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum What {
    Offers,
    Orders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

const BATCH: i64 = 2000;

/// Where rows go: JSON lines or CSV records, over the same writer.
enum Sink<W: Write> {
    Json(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Sink<W> {
    fn new(format: Format, out: W, header: &[&str]) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Jsonl => Sink::Json(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(header)?;
                Sink::Csv(Box::new(w))
            }
        })
    }

    fn json(&mut self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        if let Sink::Json(out) = self {
            serde_json::to_writer(&mut *out, value)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Json(mut out) => out.flush()?,
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

/// A free-text cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's CSV injection advice). Product
/// names, brands and customer names come from eMAG and its buyers, so a seller who opens the
/// export must not execute what they wrote. Only free-text columns pass through here: numbers
/// and money keep their sign.
fn spreadsheet_safe(text: Option<&str>) -> String {
    let text = text.unwrap_or_default();
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let (config, store) = match load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let account = args.account.as_deref().map(str::to_ascii_lowercase);
    if let Some(name) = &account {
        if let Err(code) = check_account_filter(&config, &store, name).await {
            return code;
        }
    }
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = match args.what {
        What::Offers => export_offers(&store, account.as_deref(), args.format, out).await,
        What::Orders => export_orders(&store, account.as_deref(), args.format, out).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("error: export failed: {e:#}");
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn export_offers(
    store: &storage::Store,
    account: Option<&str>,
    format: Format,
    out: impl Write,
) -> anyhow::Result<()> {
    let mut sink = Sink::new(
        format,
        out,
        &[
            "account",
            "id",
            "part_number",
            "part_number_key",
            "name",
            "brand",
            "status",
            "sale_price",
            "recommended_price",
            "currency",
            "vat_id",
            "general_stock",
            "estimated_stock",
            "ean",
            "removed",
        ],
    )?;
    let mut after: Option<(String, i64)> = None;
    loop {
        let batch = store
            .export_offers(
                account,
                after.as_ref().map(|(a, i)| (a.as_str(), *i)),
                BATCH,
            )
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.account.clone(), last.id));
        for o in &batch {
            match &mut sink {
                Sink::Json(_) => sink.json(o)?,
                Sink::Csv(w) => {
                    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
                    w.write_record([
                        o.account.clone(),
                        o.id.to_string(),
                        spreadsheet_safe(o.part_number.as_deref()),
                        spreadsheet_safe(o.part_number_key.as_deref()),
                        spreadsheet_safe(o.name.as_deref()),
                        spreadsheet_safe(o.brand.as_deref()),
                        num(o.status),
                        opt(&o.sale_price),
                        opt(&o.recommended_price),
                        opt(&o.currency),
                        num(o.vat_id),
                        num(o.general_stock),
                        num(o.estimated_stock),
                        spreadsheet_safe(Some(&o.ean.join(";"))),
                        o.removed.to_string(),
                    ])?;
                }
            }
        }
    }
    sink.finish()
}

async fn export_orders(
    store: &storage::Store,
    account: Option<&str>,
    format: Format,
    out: impl Write,
) -> anyhow::Result<()> {
    // CSV has one row per order line: the flat shape spreadsheets want.
    let mut sink = Sink::new(
        format,
        out,
        &[
            "account",
            "id",
            "type",
            "status",
            "date",
            "modified",
            "payment_mode_id",
            "customer_id",
            "customer_name",
            "line_id",
            "product_id",
            "part_number",
            "quantity",
            "sale_price",
            "currency",
            "vat",
            "line_status",
        ],
    )?;
    let mut after: Option<(String, i64)> = None;
    loop {
        let batch = store
            .export_orders(
                account,
                after.as_ref().map(|(a, i)| (a.as_str(), *i)),
                BATCH / 4,
            )
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.account.clone(), last.id));
        for o in &batch {
            match &mut sink {
                Sink::Json(_) => sink.json(&serde_json::json!({
                    "account": o.account, "id": o.id, "type": o.order_type,
                    "status": o.status, "date": o.date, "modified": o.modified,
                    "payment_mode_id": o.payment_mode_id,
                    "customer": { "id": o.customer_id, "name": o.customer_name },
                    "products": o.products,
                }))?,
                Sink::Csv(w) => {
                    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
                    for l in &o.products {
                        w.write_record([
                            o.account.clone(),
                            o.id.to_string(),
                            o.order_type.to_string(),
                            num(o.status),
                            opt(&o.date),
                            opt(&o.modified),
                            num(o.payment_mode_id),
                            num(o.customer_id),
                            spreadsheet_safe(o.customer_name.as_deref()),
                            l.id.to_string(),
                            num(l.product_id),
                            spreadsheet_safe(l.part_number.as_deref()),
                            num(l.quantity),
                            opt(&l.sale_price),
                            opt(&l.currency),
                            opt(&l.vat),
                            num(l.status),
                        ])?;
                    }
                }
            }
        }
    }
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_that_a_spreadsheet_would_run_is_quoted() {
        for evil in [
            "=HYPERLINK(\"http://x\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
        ] {
            assert_eq!(spreadsheet_safe(Some(evil)), format!("'{evil}"), "{evil}");
        }
        for plain in ["Telefon Samsung", "123", "", "a=b", "e-mail"] {
            assert_eq!(spreadsheet_safe(Some(plain)), plain);
        }
        assert_eq!(spreadsheet_safe(None), "");
        // Through the CSV writer: the cell stays one quoted-as-text field.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["1", &spreadsheet_safe(Some("=1+1"))])
            .expect("write");
        let out = String::from_utf8(w.into_inner().expect("inner")).expect("utf-8");
        assert_eq!(out, "1,'=1+1\n");
    }
}
