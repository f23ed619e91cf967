//! Reading the synced data back out, in keyset-paginated batches so that exporting a
//! million offers keeps memory flat.

use sqlx::Row;

use crate::sql::Sql;

use crate::{Result, Store};

/// An offer as exported: eMAG's field names, money as the exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportOffer {
    pub account: String,
    pub id: i64,
    pub part_number: Option<String>,
    pub part_number_key: Option<String>,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub status: Option<i64>,
    pub sale_price: Option<String>,
    pub recommended_price: Option<String>,
    pub currency: Option<String>,
    pub vat_id: Option<i64>,
    pub general_stock: Option<i64>,
    pub estimated_stock: Option<i64>,
    pub ean: Vec<String>,
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportOrderLine {
    pub id: i64,
    pub product_id: Option<i64>,
    pub part_number: Option<String>,
    pub name: Option<String>,
    pub quantity: Option<i64>,
    pub sale_price: Option<String>,
    pub currency: Option<String>,
    pub vat: Option<String>,
    pub status: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportOrder {
    pub account: String,
    pub id: i64,
    #[serde(rename = "type")]
    pub order_type: i64,
    pub status: Option<i64>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub payment_mode_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub products: Vec<ExportOrderLine>,
}

impl Store {
    /// Offers ordered by (account, id) after the given key, at most `limit`.
    pub async fn export_offers(
        &self,
        account: Option<&str>,
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExportOffer>> {
        let (after_account, after_id) = after.unwrap_or(("", i64::MIN));
        let rows = sqlx::query(
            "SELECT account, id, part_number, part_number_key, name, brand, status, sale_price, \
             recommended_price, currency, vat_id, general_stock, estimated_stock, ean, removed \
             FROM offers WHERE ($1 IS NULL OR account = $1) \
             AND (account > $2 OR (account = $2 AND id > $3)) ORDER BY account, id LIMIT $4",
        )
        .bind(account)
        .bind(after_account)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let ean: String = r.try_get("ean")?;
                Ok(ExportOffer {
                    account: r.try_get("account")?,
                    id: r.try_get("id")?,
                    part_number: r.try_get("part_number")?,
                    part_number_key: r.try_get("part_number_key")?,
                    name: r.try_get("name")?,
                    brand: r.try_get("brand")?,
                    status: r.try_get("status")?,
                    sale_price: r.try_get("sale_price")?,
                    recommended_price: r.try_get("recommended_price")?,
                    currency: r.try_get("currency")?,
                    vat_id: r.try_get("vat_id")?,
                    general_stock: r.try_get("general_stock")?,
                    estimated_stock: r.try_get("estimated_stock")?,
                    ean: serde_json::from_str(&ean).unwrap_or_default(),
                    removed: r.try_get::<i64, _>("removed")? != 0,
                })
            })
            .collect()
    }

    /// Orders with their lines ordered by (account, id) after the given key.
    pub async fn export_orders(
        &self,
        account: Option<&str>,
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExportOrder>> {
        let (after_account, after_id) = after.unwrap_or(("", i64::MIN));
        let rows = sqlx::query(
            "SELECT account, id, order_type, status, date, modified, payment_mode_id, \
             customer_id, customer_name FROM orders WHERE ($1 IS NULL OR account = $1) \
             AND (account > $2 OR (account = $2 AND id > $3)) ORDER BY account, id LIMIT $4",
        )
        .bind(account)
        .bind(after_account)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut orders: Vec<ExportOrder> = rows
            .iter()
            .map(|r| {
                Ok(ExportOrder {
                    account: r.try_get("account")?,
                    id: r.try_get("id")?,
                    order_type: r.try_get("order_type")?,
                    status: r.try_get("status")?,
                    date: r.try_get("date")?,
                    modified: r.try_get("modified")?,
                    payment_mode_id: r.try_get("payment_mode_id")?,
                    customer_id: r.try_get("customer_id")?,
                    customer_name: r.try_get("customer_name")?,
                    products: Vec::new(),
                })
            })
            .collect::<Result<_>>()?;
        if orders.is_empty() {
            return Ok(orders);
        }
        // One page of orders belongs to at most a few accounts: filter by id and match the
        // account when attaching.
        let mut q = Sql::new(
            self.backend(),
            "SELECT account, order_id, line_id, product_id, part_number, name, quantity, \
             sale_price, currency, vat, status FROM order_lines WHERE order_id IN ",
        );
        q.bind_list(orders.iter().map(|o| o.id));
        q.push(" ORDER BY account, order_id, line_id");
        let lines = q.fetch_all(&self.pool).await?;
        let mut index = std::collections::HashMap::new();
        for (i, o) in orders.iter().enumerate() {
            index.insert((o.account.clone(), o.id), i);
        }
        for r in lines {
            let key: (String, i64) = (r.try_get("account")?, r.try_get("order_id")?);
            if let Some(&i) = index.get(&key) {
                orders[i].products.push(ExportOrderLine {
                    id: r.try_get("line_id")?,
                    product_id: r.try_get("product_id")?,
                    part_number: r.try_get("part_number")?,
                    name: r.try_get("name")?,
                    quantity: r.try_get("quantity")?,
                    sale_price: r.try_get("sale_price")?,
                    currency: r.try_get("currency")?,
                    vat: r.try_get("vat")?,
                    status: r.try_get("status")?,
                });
            }
        }
        Ok(orders)
    }
}
