//! The seed corpus: real answers of the simulator (`emag-sim`, the same router `emag-sync sim`
//! serves), asked in-process with `tower::ServiceExt::oneshot`: offer, order, return and
//! reference pages of a MAIN and an FBE account, their counts, and what its fault plan and
//! oddities make of them (`isError`, a body cut in half, a 502 gateway page, a 401, an IP
//! refusal, a 429, a 301, an oversized envelope, a 404, ids and prices past every range, order
//! lines without or with repeated ids). Customer data in them is replaced by canaries
//! ([`crate::canary`]). Built once per run (deterministic: fixed seed and epoch).

use axum::body::Body;
use axum::http::{header, Request};
use base64::Engine;
use emag_sim::{FaultPlan, Oddity, SimConfig, Simulator};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::canary;
use crate::json::Json;

/// One answer: HTTP status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Every seed the targets start from.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Whole answers of every kind.
    pub answers: Vec<Answer>,
    /// Answers of `…/count`, and read answers sent where a count was expected.
    pub counts: Vec<Answer>,
    /// One item each, as listed in `results`.
    pub offers: Vec<String>,
    pub orders: Vec<String>,
    pub returns: Vec<String>,
    /// Amounts as they travel: offer prices as JSON number literals, order money as strings.
    pub number_prices: Vec<String>,
    pub string_prices: Vec<String>,
}

/// The simulator's data: fixed seed and epoch, eMAG's limits off (nothing waits).
fn sim_config() -> SimConfig {
    SimConfig {
        seed: 11,
        offers_per_account: 40,
        orders_per_account: 40,
        rate_limits: false,
        epoch: chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap_or_default(),
        ..SimConfig::default()
    }
}

struct Asker {
    sim: Simulator,
    runtime: tokio::runtime::Runtime,
}

impl Asker {
    /// `POST /api-3/{path}` as `user` with `data` under `data` (JSON).
    fn ask(&self, user: &str, password: &str, path: &str, data: &Value) -> anyhow::Result<Answer> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = Request::post(format!("/api-3/{path}"))
            .header(header::AUTHORIZATION, format!("Basic {auth}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "data": data }).to_string()))?;
        let router = self.sim.router();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
            Ok(Answer {
                status,
                body: body.to_vec(),
            })
        })
    }
}

/// Asks the simulator for every seed. Errors only if the simulator cannot be run at all.
pub fn build() -> anyhow::Result<Corpus> {
    let asker = Asker {
        sim: Simulator::new(sim_config()),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let mut plain = Vec::new();
    let mut counts = Vec::new();
    let ask = |account: &str, path: &str, data: Value| {
        asker.ask(
            &format!("sim-{account}"),
            &format!("pass-{account}"),
            path,
            &data,
        )
    };
    for account in ["main", "fbe"] {
        for (page, per) in [(1, 1), (2, 3), (1, 10), (4, 10)] {
            plain.push((
                "offer",
                ask(
                    account,
                    "product_offer/read",
                    json!({"currentPage": page, "itemsPerPage": per}),
                )?,
            ));
        }
        for kind in [2, 3] {
            for (page, per) in [(1, 1), (1, 3), (2, 5)] {
                plain.push((
                    "order",
                    ask(
                        account,
                        "order/read",
                        json!({"type": kind, "currentPage": page, "itemsPerPage": per}),
                    )?,
                ));
                plain.push((
                    "rma",
                    ask(
                        account,
                        "rma/read",
                        json!({"type": kind, "currentPage": page, "itemsPerPage": per}),
                    )?,
                ));
            }
            counts.push(ask(account, "order/count", json!({"type": kind}))?);
            counts.push(ask(account, "rma/count", json!({"type": kind}))?);
        }
        counts.push(ask(account, "product_offer/count", json!({}))?);
        counts.push(ask(account, "category/count", json!({}))?);
        plain.push(("reference", ask(account, "vat/read", json!({}))?));
        plain.push(("reference", ask(account, "handling_time/read", json!({}))?));
        plain.push((
            "reference",
            ask(account, "category/read", json!({"itemsPerPage": 2}))?,
        ));
        // Refused: paging past eMAG's limit, a resource that does not exist, a bad password.
        plain.push((
            "other",
            ask(account, "product_offer/read", json!({"itemsPerPage": 500}))?,
        ));
        plain.push(("other", ask(account, "nope/read", json!({}))?));
        plain.push((
            "other",
            asker.ask(
                &format!("sim-{account}"),
                "wrong",
                "product_offer/read",
                &json!({}),
            )?,
        ));
    }
    // What the fault plan makes of a read.
    let faults = [
        FaultPlan {
            is_error_next: 1,
            ..FaultPlan::default()
        },
        FaultPlan {
            is_error_next: 1,
            is_error_message: Some(
                "ERROR: please provide the customer name - Rma id: 1143768".into(),
            ),
            ..FaultPlan::default()
        },
        FaultPlan {
            malformed_next: 1,
            ..FaultPlan::default()
        },
        FaultPlan {
            server_error_next: 1,
            ..FaultPlan::default()
        },
        FaultPlan {
            rate_limited_next: 1,
            ..FaultPlan::default()
        },
        FaultPlan {
            redirect_next: 1,
            ..FaultPlan::default()
        },
        FaultPlan {
            oversize_next: 1,
            oversize_bytes: 4096,
            ..FaultPlan::default()
        },
        FaultPlan {
            bad_credentials: true,
            ..FaultPlan::default()
        },
        FaultPlan {
            ip_blocked: true,
            ..FaultPlan::default()
        },
    ];
    for plan in faults {
        for path in ["product_offer/read", "order/read"] {
            asker.sim.set_faults(plan.clone());
            plain.push(("fault", ask("main", path, json!({"itemsPerPage": 3}))?));
        }
    }
    asker.sim.set_faults(FaultPlan::default());
    // Odd items: an offer id and a price past every range, order lines without or with the
    // same id, a line price past every range.
    let orders: Vec<u64> = asker
        .sim
        .orders("main")
        .iter()
        .map(|o| o.id)
        .take(3)
        .collect();
    asker
        .sim
        .add_oddity("main", Oddity::OfferIdOutOfRange { id: 1 });
    asker
        .sim
        .add_oddity("main", Oddity::OfferPriceOverflow { id: 2 });
    for (i, id) in orders.iter().enumerate() {
        asker.sim.add_oddity(
            "main",
            match i {
                0 => Oddity::OrderLineWithoutId { id: *id },
                1 => Oddity::OrderDuplicateLineId { id: *id },
                _ => Oddity::OrderPriceOverflow { id: *id },
            },
        );
    }
    plain.push((
        "offer",
        ask("main", "product_offer/read", json!({"itemsPerPage": 3}))?,
    ));
    plain.push((
        "order",
        ask(
            "main",
            "order/read",
            json!({"type": 3, "itemsPerPage": 100}),
        )?,
    ));
    let oddity_orders = plain.len() - 1;

    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut corpus = Corpus::default();
    for (i, (what, answer)) in plain.into_iter().enumerate() {
        let mut answer = answer;
        let parsed = serde_json::from_slice::<Value>(&answer.body).ok();
        if let Some(value) = &parsed {
            let mut tree = Json::from_value(value);
            canary::plant(&mut rng, &mut tree);
            if let Some(Json::Arr(items)) = tree.get("results") {
                // The oddity page is long: only its odd orders are kept as items.
                let keep: Vec<&Json> = if i == oddity_orders {
                    items
                        .iter()
                        .filter(|o| matches!(o.get("id"), Some(Json::Num(n)) if orders.iter().any(|id| id.to_string() == *n)))
                        .collect()
                } else {
                    items.iter().collect()
                };
                for item in keep {
                    collect_prices(item, &mut corpus);
                    let text = item.render();
                    match what {
                        "offer" => corpus.offers.push(text),
                        "order" => corpus.orders.push(text),
                        "rma" => corpus.returns.push(text),
                        _ => {}
                    }
                }
            }
            if i != oddity_orders {
                answer.body = tree.render().into_bytes();
            }
        }
        // Read answers sent where a count was expected (eMAG ignoring the action).
        if what == "order" && corpus.counts.len() < 4 && i != oddity_orders {
            corpus.counts.push(answer.clone());
        }
        if i != oddity_orders {
            corpus.answers.push(answer);
        }
    }
    corpus.counts.extend(counts);
    corpus.number_prices.sort();
    corpus.number_prices.dedup();
    corpus.string_prices.sort();
    corpus.string_prices.dedup();
    Ok(corpus)
}

fn collect_prices(item: &Json, corpus: &mut Corpus) {
    match item {
        Json::Obj(pairs) => {
            for (k, v) in pairs {
                if k.contains("price") || k == "vat" || k.contains("value") {
                    match v {
                        Json::Num(n) => corpus.number_prices.push(n.clone()),
                        Json::Str(s) => corpus.string_prices.push(s.clone()),
                        _ => {}
                    }
                }
                collect_prices(v, corpus);
            }
        }
        Json::Arr(items) => items.iter().for_each(|i| collect_prices(i, corpus)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_holds_every_kind_of_answer_with_canaries_instead_of_customers() {
        let c = build().expect("corpus");
        assert!(c.offers.len() >= 20, "{} offers", c.offers.len());
        assert!(c.orders.len() >= 10, "{} orders", c.orders.len());
        assert!(c.returns.len() >= 3, "{} returns", c.returns.len());
        assert!(c.counts.len() >= 10);
        for status in [200, 401, 404, 429, 301, 502] {
            assert!(
                c.answers.iter().any(|a| a.status == status),
                "no {status} answer"
            );
        }
        let all: String = c.orders.concat();
        assert!(all.contains(canary::TEXT_MARK), "canaries planted");
        assert!(!c.number_prices.is_empty() && !c.string_prices.is_empty());
        // Deterministic.
        let again = build().expect("corpus");
        assert_eq!(c.orders, again.orders);
        assert_eq!(c.answers.len(), again.answers.len());
    }
}
