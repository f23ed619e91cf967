//! Protocol tests: real HTTP against `Simulator::spawn`, checking the behaviour emag-sync
//! relies on (emag-api.md §3–§5, §6, §9). Time-sensitive tests run on paused tokio time, so
//! nothing here sleeps for real.

use std::time::Duration;

use chrono::NaiveDateTime;
use emag_sim::{
    AccountKind, AccountSpec, FaultPlan, JournalEntry, Mutation, MutationOutcome, Offer, Order,
    RunningSim, SimConfig, Simulator,
};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const EPOCH: &str = "2025-10-13 12:00:00";

fn epoch() -> NaiveDateTime {
    NaiveDateTime::parse_from_str(EPOCH, "%Y-%m-%d %H:%M:%S").expect("valid epoch")
}

/// A small, fixed-epoch config without rate limits: most tests are not about limits.
fn config() -> SimConfig {
    SimConfig {
        offers_per_account: 230,
        orders_per_account: 120,
        rate_limits: false,
        epoch: epoch(),
        ..SimConfig::default()
    }
}

struct Harness {
    running: RunningSim,
    client: reqwest::Client,
}

/// One answer, with the body kept raw so tests can check exact bytes.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).expect("a JSON body")
    }

    fn results(&self) -> Value {
        let body = self.json();
        assert_eq!(
            body["isError"],
            json!(false),
            "unexpected error answer: {}",
            self.text
        );
        body["results"].clone()
    }

    fn messages(&self) -> Vec<String> {
        serde_json::from_value(self.json()["messages"].clone()).expect("string messages")
    }
}

impl Harness {
    async fn start(config: SimConfig) -> Self {
        let running = Simulator::spawn(config).await.expect("simulator starts");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Self { running, client }
    }

    fn main(&self) -> AccountSpec {
        AccountSpec::main()
    }

    fn fbe(&self) -> AccountSpec {
        AccountSpec::fbe()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request completes");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            text,
        }
    }

    fn request(
        &self,
        method: Method,
        account: &AccountSpec,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/{path}", self.running.base_url))
            .basic_auth(&account.username, Some(&account.password))
    }

    async fn post(&self, account: &AccountSpec, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::POST, account, path).json(&body))
            .await
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}/__admin/{path}", self.running.addr)
    }

    async fn offers_page(&self, account: &AccountSpec, filters: Value) -> Vec<Offer> {
        let answer = self
            .post(account, "product_offer/read", json!({ "data": filters }))
            .await;
        serde_json::from_value(answer.results()).expect("offers decode into the wire model")
    }

    async fn orders_page(&self, account: &AccountSpec, filters: Value) -> Vec<Order> {
        let answer = self
            .post(account, "order/read", json!({ "data": filters }))
            .await;
        serde_json::from_value(answer.results()).expect("orders decode into the wire model")
    }

    async fn count(&self, account: &AccountSpec, path: &str, filters: Value) -> Value {
        self.post(account, path, json!({ "data": filters }))
            .await
            .results()
    }

    async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

#[tokio::test]
async fn count_answers_strings_and_pages_follow_the_requested_page_size() {
    let h = Harness::start(config()).await;

    let count = h.count(&h.main(), "product_offer/count", json!({})).await;
    let count_50 = h
        .count(
            &h.main(),
            "product_offer/count",
            json!({"itemsPerPage": 50}),
        )
        .await;
    let last_page = h
        .offers_page(&h.main(), json!({"currentPage": 3, "itemsPerPage": 100}))
        .await;

    assert_eq!(
        count,
        json!({"noOfItems": "230", "noOfPages": "3", "itemsPerPage": "100"})
    );
    assert_eq!(
        count_50,
        json!({"noOfItems": "230", "noOfPages": "5", "itemsPerPage": "50"})
    );
    assert_eq!(last_page.len(), 30);
    assert_eq!(last_page.first().map(|o| o.id), Some(201));
    assert_eq!(last_page.last().map(|o| o.id), Some(230));
    h.shutdown().await;
}

#[tokio::test]
async fn a_page_past_the_end_is_empty_and_not_an_error() {
    let h = Harness::start(config()).await;

    let answer = h
        .post(
            &h.main(),
            "product_offer/read",
            json!({"data": {"currentPage": 4}}),
        )
        .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["isError"], json!(false));
    assert_eq!(answer.results(), json!([]));
    h.shutdown().await;
}

#[tokio::test]
async fn more_than_one_hundred_items_per_page_is_rejected_unless_clamping_is_configured() {
    let strict = Harness::start(config()).await;
    let clamping = Harness::start(SimConfig {
        clamp_items_per_page: true,
        ..config()
    })
    .await;

    let rejected = strict
        .post(
            &strict.main(),
            "product_offer/read",
            json!({"data": {"itemsPerPage": 101}}),
        )
        .await;
    let clamped = clamping
        .offers_page(&clamping.main(), json!({"itemsPerPage": 101}))
        .await;

    assert_eq!(rejected.status, StatusCode::OK);
    assert_eq!(rejected.json()["isError"], json!(true));
    assert!(
        rejected.messages()[0].contains("100"),
        "message names the limit: {:?}",
        rejected.messages()
    );
    assert_eq!(clamped.len(), 100);
    strict.shutdown().await;
    clamping.shutdown().await;
}

#[tokio::test]
async fn json_with_and_without_the_data_wrapper_and_form_encoding_give_the_same_page() {
    let h = Harness::start(config()).await;

    let wrapped = h
        .post(
            &h.main(),
            "product_offer/read",
            json!({"data": {"currentPage": 2, "itemsPerPage": 10}}),
        )
        .await;
    let bare = h
        .post(
            &h.main(),
            "product_offer/read",
            json!({"currentPage": 2, "itemsPerPage": 10}),
        )
        .await;
    let form = h
        .send(
            h.request(Method::POST, &h.main(), "product_offer/read")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("data[currentPage]=2&data[itemsPerPage]=10"),
        )
        .await;

    assert_eq!(wrapped.results().as_array().map(Vec::len), Some(10));
    assert_eq!(wrapped.results()[0]["id"], json!(11));
    assert_eq!(wrapped.text, bare.text);
    assert_eq!(wrapped.text, form.text);
    h.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_401_with_the_not_allowed_body() {
    let h = Harness::start(config()).await;
    let mut wrong = h.main();
    wrong.password = "nope".into();

    let bad_password = h.post(&wrong, "vat/read", json!({})).await;
    let anonymous = h
        .send(
            h.client
                .post(format!("{}/vat/read", h.running.base_url))
                .json(&json!({})),
        )
        .await;

    for answer in [&bad_password, &anonymous] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.json(),
            json!({"isError": true, "messages": ["You are not allowed to use this API."], "results": []})
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_peer_outside_the_allow_list_gets_the_invalid_vendor_ip_error() {
    let mut main = AccountSpec::main();
    main.allowed_ips = Some(vec!["10.1.2.3".parse().expect("ip")]);
    let h = Harness::start(SimConfig {
        accounts: vec![main.clone(), AccountSpec::fbe()],
        ..config()
    })
    .await;

    let blocked = h.post(&main, "vat/read", json!({})).await;
    let other_account = h.post(&h.fbe(), "vat/read", json!({})).await;

    assert_eq!(blocked.status, StatusCode::OK);
    assert_eq!(blocked.json()["isError"], json!(true));
    assert_eq!(
        blocked.messages(),
        vec!["ERROR: Invalid vendor ip [127.0.0.1]".to_owned()]
    );
    assert_eq!(other_account.json()["isError"], json!(false));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_fourth_quick_non_order_request_gets_a_bare_429_while_twelve_order_requests_pass() {
    let h = Harness::start(SimConfig {
        rate_limits: true,
        ..config()
    })
    .await;

    let mut other = Vec::new();
    for _ in 0..4 {
        other.push(h.post(&h.main(), "vat/read", json!({})).await);
    }
    let mut orders = Vec::new();
    for _ in 0..13 {
        orders.push(h.post(&h.main(), "order/count", json!({})).await);
    }
    let fbe_budget_is_separate = h.post(&h.fbe(), "vat/read", json!({})).await;

    assert!(other[..3].iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(other[0].headers["x-ratelimit-limit-3second"], "9");
    assert_eq!(other[2].headers["x-ratelimit-remaining-3second"], "6");
    let limited = &other[3];
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.text, r#"{"message":"API rate limit exceeded"}"#);
    assert!(limited.headers.get("retry-after").is_none());
    assert_eq!(limited.headers["x-ratelimit-limit-3second"], "9");
    assert_eq!(limited.headers["x-ratelimit-remaining-3second"], "6");
    assert!(orders[..12].iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(orders[12].status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fbe_budget_is_separate.status, StatusCode::OK);
    let journal = h.running.sim.journal();
    assert_eq!(journal.iter().filter(|e| e.rate_limited).count(), 2);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_budget_frees_up_one_second_after_the_requests_that_filled_it() {
    let h = Harness::start(SimConfig {
        rate_limits: true,
        ..config()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            h.post(&h.main(), "vat/read", json!({})).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        h.post(&h.main(), "vat/read", json!({})).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    tokio::time::advance(Duration::from_secs(1)).await;

    assert_eq!(
        h.post(&h.main(), "vat/read", json!({})).await.status,
        StatusCode::OK
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn requests_with_a_wrong_password_still_spend_the_budget_of_that_username() {
    let h = Harness::start(SimConfig {
        rate_limits: true,
        ..config()
    })
    .await;
    let mut wrong = h.main();
    wrong.password = "nope".into();
    for _ in 0..3 {
        assert_eq!(
            h.post(&wrong, "vat/read", json!({})).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    let next = h.post(&h.main(), "vat/read", json!({})).await;

    assert_eq!(next.status, StatusCode::TOO_MANY_REQUESTS);
    h.shutdown().await;
}

#[tokio::test]
async fn order_read_defaults_to_type_three_and_fbe_orders_come_only_with_type_two() {
    // A 30-day window: accepted when "one month" is read as a calendar month.
    let h = Harness::start(SimConfig {
        order_window: emag_sim::OrderWindowLimit::CalendarMonth,
        ..config()
    })
    .await;
    let (from, to) = ("2025-09-13 12:00:00", "2025-10-13 12:00:00");
    let window = |extra: Value| {
        let mut filters = json!({"createdAfter": from, "createdBefore": to});
        if let (Some(f), Some(e)) = (filters.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        filters
    };

    let default = h.count(&h.fbe(), "order/count", window(json!({}))).await;
    let type_2 = h
        .count(&h.fbe(), "order/count", window(json!({"type": 2})))
        .await;
    let fbe_orders = h.orders_page(&h.fbe(), json!({"type": 2})).await;
    let main_type_2 = h
        .count(&h.main(), "order/count", window(json!({"type": 2})))
        .await;

    let in_window = |t: u8| {
        h.running
            .sim
            .orders("fbe")
            .iter()
            .filter(|o| o.order_type == t && o.date >= epoch() - chrono::Duration::days(30))
            .count()
            .to_string()
    };
    assert_eq!(default["noOfItems"], json!(in_window(3)));
    assert_eq!(type_2["noOfItems"], json!(in_window(2)));
    assert_ne!(
        type_2["noOfItems"],
        json!("0"),
        "an FBE account holds type-2 orders"
    );
    assert!(fbe_orders.iter().all(|o| o.order_type == 2));
    assert_eq!(main_type_2["noOfItems"], json!("0"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_window_longer_than_one_month_or_a_before_without_after_is_refused() {
    let h = Harness::start(config()).await;

    let too_long = h
        .post(
            &h.main(),
            "order/count",
            json!({"data": {"createdAfter": "2025-01-01 00:00:00", "createdBefore": "2025-03-01 00:00:00"}}),
        )
        .await;
    let lonely_before = h
        .post(
            &h.main(),
            "order/read",
            json!({"data": {"modifiedBefore": "2025-10-01 00:00:00"}}),
        )
        .await;
    let lonely_after_on_count = h
        .post(
            &h.main(),
            "order/count",
            json!({"data": {"modifiedAfter": "2025-10-01 00:00:00"}}),
        )
        .await;
    let lonely_after_on_read = h
        .post(
            &h.main(),
            "order/read",
            json!({"data": {"modifiedAfter": "2025-10-01 00:00:00"}}),
        )
        .await;

    assert_eq!(too_long.status, StatusCode::OK);
    assert_eq!(too_long.json()["isError"], json!(true));
    assert_eq!(
        too_long.messages(),
        vec!["The maximum interval between createdAfter and createdBefore is one month".to_owned()]
    );
    assert_eq!(lonely_before.json()["isError"], json!(true));
    assert_eq!(lonely_after_on_count.json()["isError"], json!(true));
    assert_eq!(lonely_after_on_read.json()["isError"], json!(false));
    h.shutdown().await;
}

#[tokio::test]
async fn orders_come_newest_first_filtered_by_an_inclusive_after_and_exclusive_before() {
    let h = Harness::start(config()).await;
    let all: Vec<Order> = h.running.sim.orders("main");
    let pivot = all[all.len() / 2].modified;
    let pivot_text = pivot.format("%Y-%m-%d %H:%M:%S").to_string();
    let earlier = (pivot - chrono::Duration::days(20))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();

    let after = h
        .orders_page(&h.main(), json!({"modifiedAfter": pivot_text}))
        .await;
    let before = h
        .orders_page(
            &h.main(),
            json!({"modifiedAfter": earlier, "modifiedBefore": pivot_text}),
        )
        .await;

    assert!(after.iter().any(|o| o.modified == pivot));
    assert!(after.iter().all(|o| o.modified >= pivot));
    assert!(!before.is_empty());
    assert!(before.iter().all(|o| o.modified < pivot));
    assert!(after
        .windows(2)
        .all(|w| (w[0].date, w[0].id) > (w[1].date, w[1].id)));
    h.shutdown().await;
}

#[tokio::test]
async fn order_ids_exceed_two_to_the_31_and_order_money_is_four_decimal_strings() {
    let h = Harness::start(config()).await;

    let raw = h
        .post(
            &h.main(),
            "order/read",
            json!({"data": {"itemsPerPage": 5}}),
        )
        .await
        .results();
    let offers = h
        .post(
            &h.main(),
            "product_offer/read",
            json!({"data": {"itemsPerPage": 5}}),
        )
        .await
        .results();

    let four_decimals = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.split_once('.').is_some_and(|(_, d)| d.len() == 4))
    };
    for order in raw.as_array().expect("a list") {
        assert!(order["id"].as_u64().expect("numeric id") > 1 << 31);
        assert!(
            four_decimals(&order["shipping_tax"]),
            "{}",
            order["shipping_tax"]
        );
        for line in order["products"].as_array().expect("lines") {
            assert!(four_decimals(&line["sale_price"]));
            assert_eq!(line["vat"], json!("0.2100"));
        }
    }
    for offer in offers.as_array().expect("a list") {
        assert!(
            offer["sale_price"].is_number(),
            "offer prices are JSON numbers"
        );
        assert_eq!(offer["currency"], json!("RON"));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn the_same_offer_id_names_different_products_in_main_and_fbe() {
    let h = Harness::start(config()).await;

    let main = h.offers_page(&h.main(), json!({"id": 7})).await;
    let fbe = h.offers_page(&h.fbe(), json!({"id": 7})).await;

    assert_eq!((main.len(), fbe.len()), (1, 1));
    assert_eq!(main[0].id, fbe[0].id);
    assert_ne!(main[0].part_number_key, fbe[0].part_number_key);
    assert_ne!(
        (&main[0].name, main[0].sale_price),
        (&fbe[0].name, fbe[0].sale_price)
    );
    h.shutdown().await;
}

#[test]
fn the_same_seed_generates_identical_data_and_another_seed_does_not() {
    let small = || SimConfig {
        offers_per_account: 50,
        orders_per_account: 30,
        ..config()
    };

    let a = Simulator::new(small());
    let b = Simulator::new(small());
    let c = Simulator::new(SimConfig {
        seed: 43,
        ..small()
    });

    assert_eq!(a.offers("main"), b.offers("main"));
    assert_eq!(a.orders("fbe"), b.orders("fbe"));
    assert_ne!(a.offers("main"), c.offers("main"));
    assert_ne!(a.orders("fbe"), c.orders("fbe"));
}

#[test]
fn generated_data_has_diacritics_and_orders_stay_within_sixty_days_of_the_epoch() {
    let sim = Simulator::new(config());
    let offers = sim.offers("main");
    let orders = sim.orders("main");
    let fbe_orders = sim.orders("fbe");
    let fbe_offers = sim.offers("fbe");

    let diacritics = ['ă', 'â', 'î', 'ș', 'ț', 'Ă', 'Î', 'Ș', 'Ț'];
    assert!(offers.iter().any(|o| o.name.contains(diacritics)));
    assert!(orders.iter().any(|o| o.customer.name.contains(diacritics)));
    assert!(orders.iter().all(|o| o.order_type == 3));
    assert!(
        fbe_orders.iter().any(|o| o.order_type == 3)
            && fbe_orders.iter().any(|o| o.order_type == 2)
    );
    for order in orders.iter().chain(&fbe_orders) {
        assert!(order.date >= epoch() - chrono::Duration::days(60));
        assert!(order.date <= order.modified && order.modified <= epoch());
    }
    // Order lines name offers of their own account.
    for (orders, offers) in [(&orders, &offers), (&fbe_orders, &fbe_offers)] {
        for line in orders.iter().flat_map(|o| &o.products) {
            assert!(offers
                .iter()
                .any(|o| o.id == line.product_id && o.name == line.name));
        }
    }
    assert!(orders.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test]
async fn mutations_through_the_admin_route_are_visible_through_read() {
    let h = Harness::start(config()).await;
    let admin = |account: &str| h.admin(&format!("mutate?account={account}"));
    let mutate = |account: &'static str, m: Mutation| {
        let request = h.client.post(admin(account)).json(&m);
        async move {
            let response = request.send().await.expect("admin answers");
            assert_eq!(response.status(), StatusCode::OK);
            response
                .json::<MutationOutcome>()
                .await
                .expect("an outcome")
        }
    };

    mutate(
        "main",
        Mutation::SetPrice {
            id: 5,
            sale_price: Decimal::new(1_234_567, 4),
        },
    )
    .await;
    mutate("main", Mutation::SetStock { id: 5, stock: 0 }).await;
    mutate("main", Mutation::RemoveOffer { id: 6 }).await;
    let added = mutate("main", Mutation::AddOffers { count: 2 }).await;
    let new_orders = mutate(
        "main",
        Mutation::AddOrders {
            count: 1,
            order_type: 3,
        },
    )
    .await;
    let unknown = h
        .client
        .post(admin("nobody"))
        .json(&Mutation::RemoveOffer { id: 1 })
        .send()
        .await
        .expect("answer");

    let offer = h.offers_page(&h.main(), json!({"id": 5})).await;
    assert_eq!(offer[0].sale_price, Decimal::new(1_234_567, 4));
    assert_eq!((offer[0].stock[0].value, offer[0].general_stock), (0, 0));
    assert!(h.offers_page(&h.main(), json!({"id": 6})).await.is_empty());
    assert_eq!(
        added,
        MutationOutcome::OffersAdded {
            ids: vec![231, 232]
        }
    );
    assert_eq!(
        h.count(&h.main(), "product_offer/count", json!({})).await["noOfItems"],
        json!("231")
    );
    let MutationOutcome::OrdersAdded { ids } = new_orders else {
        panic!("orders added")
    };
    let newest = h.orders_page(&h.main(), json!({"itemsPerPage": 1})).await;
    assert_eq!(newest[0].id, ids[0]);
    assert_eq!(newest[0].status, 1);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_order_status_change_bumps_modified_to_the_simulator_clock() {
    let h = Harness::start(config()).await;
    let order = h.running.sim.orders("main")[0].clone();

    h.running
        .sim
        .mutate("main", Mutation::AdvanceClock { minutes: 90 })
        .expect("clock moves");
    let outcome = h
        .running
        .sim
        .mutate(
            "main",
            Mutation::SetOrderStatus {
                id: order.id,
                status: 0,
            },
        )
        .expect("order exists");
    let seen = h
        .orders_page(&h.main(), json!({"id": order.id, "status": [0]}))
        .await;

    let expected = epoch() + chrono::Duration::minutes(90);
    assert_eq!(
        outcome,
        MutationOutcome::OrderUpdated {
            id: order.id,
            modified: expected
        }
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].modified, expected);
    h.shutdown().await;
}

#[tokio::test]
async fn acknowledge_moves_a_new_seller_order_to_in_progress_only_once() {
    let h = Harness::start(config()).await;
    let added = h
        .running
        .sim
        .mutate(
            "main",
            Mutation::AddOrders {
                count: 1,
                order_type: 3,
            },
        )
        .expect("added");
    let MutationOutcome::OrdersAdded { ids } = added else {
        panic!("orders added")
    };
    let fbe = h
        .running
        .sim
        .mutate(
            "fbe",
            Mutation::AddOrders {
                count: 1,
                order_type: 2,
            },
        )
        .expect("added");
    let MutationOutcome::OrdersAdded { ids: fbe_ids } = fbe else {
        panic!("orders added")
    };

    let first = h
        .post(
            &h.main(),
            &format!("order/acknowledge/{}", ids[0]),
            json!({}),
        )
        .await;
    let second = h
        .post(
            &h.main(),
            &format!("order/acknowledge/{}", ids[0]),
            json!({}),
        )
        .await;
    let fbe_ack = h
        .post(
            &h.fbe(),
            &format!("order/acknowledge/{}", fbe_ids[0]),
            json!({}),
        )
        .await;

    assert_eq!(first.json()["isError"], json!(false));
    assert_eq!(
        h.running
            .sim
            .orders("main")
            .iter()
            .find(|o| o.id == ids[0])
            .map(|o| o.status),
        Some(2)
    );
    assert_eq!(second.json()["isError"], json!(true));
    assert_eq!(fbe_ack.json()["isError"], json!(true));
    h.shutdown().await;
}

#[tokio::test]
async fn light_offer_save_reports_per_id_and_rejects_prices_outside_the_range() {
    let h = Harness::start(config()).await;
    let offer = h.running.sim.offers("main")[0].clone();
    let inside = offer.min_sale_price;
    let outside = offer.max_sale_price + Decimal::ONE;

    let answer = h
        .post(
            &h.main(),
            "offer/save",
            json!({"data": [{"id": offer.id, "sale_price": inside}, {"id": 2, "sale_price": outside + Decimal::from(100_000)}, {"id": 999_999, "stock": 1}]}),
        )
        .await;

    let results = answer.results();
    assert_eq!(results[offer.id.to_string()]["isError"], json!(false));
    assert_eq!(
        results[offer.id.to_string()]["messages"],
        json!([format!("Offer {} updated successfully", offer.id)])
    );
    assert_eq!(results["2"]["isError"], json!(true));
    assert_eq!(results["999999"]["isError"], json!(true));
    assert_eq!(h.running.sim.offers("main")[0].sale_price, inside);
    h.shutdown().await;
}

#[tokio::test]
async fn offer_stock_patch_answers_204_404_and_refuses_fbe_stock_changes() {
    let h = Harness::start(config()).await;

    let updated = h
        .send(
            h.request(Method::PATCH, &h.main(), "offer_stock/3")
                .json(&json!({"stock": 7})),
        )
        .await;
    let missing = h
        .send(
            h.request(Method::PATCH, &h.main(), "offer_stock/999999")
                .json(&json!({"stock": 7})),
        )
        .await;
    let fbe = h
        .send(
            h.request(Method::PATCH, &h.fbe(), "offer_stock/3")
                .json(&json!({"stock": 65_000})),
        )
        .await;
    let garbage = h
        .send(
            h.request(Method::PATCH, &h.main(), "offer_stock/3")
                .body("{stock"),
        )
        .await;

    assert_eq!(updated.status, StatusCode::NO_CONTENT);
    assert_eq!(h.running.sim.offers("main")[2].general_stock, 7);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        json!({"message": "This offer does not exist"})
    );
    assert_eq!(fbe.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        fbe.json()["message"],
        json!("Validation errors in your request")
    );
    assert_eq!(fbe.json()["errors"][0]["field"], json!("stock"));
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json(), json!({"message": "Invalid content"}));
    h.shutdown().await;
}

#[tokio::test]
async fn product_offer_save_creates_an_offer_in_id_order_and_reports_invalid_ones() {
    let h = Harness::start(config()).await;

    let created = h
        .post(
            &h.main(),
            "product_offer/save",
            json!({"data": [{"id": 1301, "part_number_key": "DY74FJYBM", "status": 1, "sale_price": 99.0,
                "min_sale_price": 80.0, "max_sale_price": 150.0, "vat_id": 9,
                "stock": [{"warehouse_id": 1, "value": 12}], "handling_time": [{"warehouse_id": 1, "value": 1}]}]}),
        )
        .await;
    let invalid = h
        .post(
            &h.main(),
            "product_offer/save",
            json!({"data": [{"id": 1302, "sale_price": 10}]}),
        )
        .await;

    assert_eq!(created.json()["isError"], json!(false));
    let read = h
        .offers_page(&h.main(), json!({"part_number_key": "DY74FJYBM"}))
        .await;
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].id, read[0].general_stock, read[0].sale_price),
        (1301, 12, Decimal::from(99))
    );
    assert_eq!(invalid.json()["isError"], json!(true));
    h.shutdown().await;
}

#[tokio::test]
async fn offer_filters_select_by_status_and_part_number() {
    let h = Harness::start(config()).await;
    let snapshot = h.running.sim.offers("main");
    let inactive = snapshot.iter().filter(|o| o.status == 0).count();
    let target = &snapshot[41];

    let count = h
        .count(&h.main(), "product_offer/count", json!({"status": 0}))
        .await;
    let by_part_number = h
        .offers_page(&h.main(), json!({"part_number": target.part_number}))
        .await;

    assert_eq!(count["noOfItems"], json!(inactive.to_string()));
    assert_eq!(by_part_number, vec![target.clone()]);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_get_invalid_url_and_broken_json_gets_invalid_content() {
    let h = Harness::start(config()).await;

    let unknown = h.post(&h.main(), "product_offer/delete", json!({})).await;
    let broken = h
        .send(
            h.request(Method::POST, &h.main(), "product_offer/read")
                .header("content-type", "application/json")
                .body("{\"data\": {"),
        )
        .await;

    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json(), json!({"message": "Invalid URL"}));
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.json(), json!({"message": "Invalid content"}));
    h.shutdown().await;
}

#[tokio::test]
async fn reference_data_and_returns_are_served() {
    let h = Harness::start(config()).await;

    let vat = h.post(&h.main(), "vat/read", json!({})).await.results();
    let handling = h
        .post(&h.main(), "handling_time/read", json!({}))
        .await
        .results();
    let category_count = h.count(&h.main(), "category/count", json!({})).await;
    let categories = h
        .post(
            &h.main(),
            "category/read",
            json!({"data": {"itemsPerPage": 10, "currentPage": 4}}),
        )
        .await
        .results();
    let rma_count = h.count(&h.main(), "rma/count", json!({})).await;
    let rma_window = h
        .count(
            &h.main(),
            "rma/count",
            json!({"date_start": "2025-01-01", "date_end": "2025-01-31"}),
        )
        .await;

    assert_eq!(
        vat[0],
        json!({"vat_id": 9, "vat_rate": 0.21, "is_default": 1})
    );
    assert_eq!(handling[0], json!({"id": 0}));
    assert_eq!(category_count["noOfItems"], json!("32"));
    assert_eq!(categories.as_array().map(Vec::len), Some(2));
    assert_eq!(
        rma_count["noOfItems"],
        json!(h.running.sim.returns("main").len().to_string())
    );
    assert_ne!(rma_count["noOfItems"], json!("0"));
    assert_eq!(rma_window["noOfItems"], json!("0"));
    h.shutdown().await;
}

#[tokio::test]
async fn the_journal_records_pages_statuses_and_accounts() {
    let h = Harness::start(config()).await;
    h.post(
        &h.main(),
        "product_offer/read",
        json!({"data": {"currentPage": 2, "itemsPerPage": 50}}),
    )
    .await;
    h.post(&h.fbe(), "order/count", json!({})).await;

    let entries: Vec<JournalEntry> = h
        .client
        .get(h.admin("journal?since=1"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("entries");

    let all = h.running.sim.journal();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].page, all[0].items, all[0].status),
        (Some(2), Some(50), 200)
    );
    assert_eq!(all[0].account.as_deref(), Some("main"));
    assert_eq!(
        (all[0].resource.as_str(), all[0].action.as_str()),
        ("product_offer", "read")
    );
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].account.as_deref(), Some("fbe"));
    h.shutdown().await;
}

#[tokio::test]
async fn server_error_faults_answer_502_html_for_the_next_requests_only() {
    let h = Harness::start(SimConfig {
        faults: FaultPlan {
            server_error_next: 2,
            ..FaultPlan::default()
        },
        ..config()
    })
    .await;

    let first = h.post(&h.main(), "vat/read", json!({})).await;
    let second = h.post(&h.fbe(), "vat/read", json!({})).await;
    let third = h.post(&h.main(), "vat/read", json!({})).await;
    let health = h.client.get(h.admin("health")).send().await.expect("admin");

    assert_eq!(first.status, StatusCode::BAD_GATEWAY);
    assert!(first.headers["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/html")));
    assert!(first.text.contains("502 Bad Gateway"));
    assert_eq!(second.status, StatusCode::BAD_GATEWAY);
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(h.running.sim.faults().server_error_next, 0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_server_error_rate_of_one_thousand_per_mille_fails_every_request_of_the_listed_account() {
    let h = Harness::start(config()).await;
    h.running.sim.set_faults(FaultPlan {
        server_error_per_mille: 1000,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });

    let fbe = h.post(&h.fbe(), "vat/read", json!({})).await;
    let main = h.post(&h.main(), "vat/read", json!({})).await;

    assert_eq!(fbe.status, StatusCode::BAD_GATEWAY);
    assert_eq!(main.status, StatusCode::OK);
    h.shutdown().await;
}

#[tokio::test]
async fn is_error_and_malformed_faults_answer_200_with_an_error_or_a_broken_body() {
    let h = Harness::start(config()).await;
    let put = h
        .client
        .put(h.admin("faults"))
        .json(&FaultPlan {
            is_error_next: 1,
            malformed_next: 1,
            ..FaultPlan::default()
        })
        .send()
        .await
        .expect("admin");

    let is_error = h.post(&h.main(), "product_offer/read", json!({})).await;
    let malformed = h.post(&h.main(), "product_offer/read", json!({})).await;
    let healthy = h.post(&h.main(), "product_offer/read", json!({})).await;

    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(is_error.status, StatusCode::OK);
    assert_eq!(is_error.json()["isError"], json!(true));
    assert_eq!(
        is_error.messages(),
        vec!["Simulated internal error, please retry".to_owned()]
    );
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&malformed.text).is_err());
    assert_eq!(healthy.results().as_array().map(Vec::len), Some(100));
    h.shutdown().await;
}

#[tokio::test]
async fn credential_and_ip_faults_reject_only_the_listed_accounts() {
    let h = Harness::start(config()).await;
    h.running.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["main".into()],
        ..FaultPlan::default()
    });
    let bad_credentials = h.post(&h.main(), "vat/read", json!({})).await;
    let fbe_fine = h.post(&h.fbe(), "vat/read", json!({})).await;

    h.running.sim.set_faults(FaultPlan {
        ip_blocked: true,
        ..FaultPlan::default()
    });
    let ip_blocked = h.post(&h.fbe(), "vat/read", json!({})).await;

    assert_eq!(bad_credentials.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fbe_fine.status, StatusCode::OK);
    assert_eq!(ip_blocked.status, StatusCode::OK);
    assert_eq!(
        ip_blocked.messages(),
        vec!["ERROR: Invalid vendor ip [127.0.0.1]".to_owned()]
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hang_trips_the_client_timeout_and_latency_delays_every_answer() {
    let h = Harness::start(SimConfig {
        faults: FaultPlan {
            hang_next: 1,
            ..FaultPlan::default()
        },
        ..config()
    })
    .await;

    let hung = h
        .request(Method::POST, &h.main(), "vat/read")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    h.running.sim.set_faults(FaultPlan {
        latency_ms: 1500,
        ..FaultPlan::default()
    });
    let started = tokio::time::Instant::now();
    let slow = h.post(&h.main(), "vat/read", json!({})).await;
    let took = started.elapsed();

    assert!(hung.is_err_and(|e| e.is_timeout()));
    assert_eq!(slow.status, StatusCode::OK);
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn admin_routes_expose_offers_orders_and_the_fault_plan() {
    let h = Harness::start(config()).await;

    let offers: Vec<Offer> = h
        .client
        .get(h.admin("offers?account=fbe"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("offers");
    let orders: Vec<Order> = h
        .client
        .get(h.admin("orders?account=main"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("orders");
    let faults: FaultPlan = h
        .client
        .get(h.admin("faults"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("plan");
    let missing = h
        .client
        .get(h.admin("offers?account=nobody"))
        .send()
        .await
        .expect("admin");

    assert_eq!(offers, h.running.sim.offers("fbe"));
    assert_eq!(orders, h.running.sim.orders("main"));
    assert_eq!(faults, FaultPlan::default());
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(h
        .running
        .sim
        .accounts()
        .iter()
        .any(|a| a.kind == AccountKind::Fbe));
    h.shutdown().await;
}

#[tokio::test]
async fn a_filtered_count_reflects_changes_made_after_the_same_filter_was_read() {
    let h = Harness::start(config()).await;
    let before = h
        .count(&h.main(), "product_offer/count", json!({"status": 0}))
        .await;
    let active = h
        .running
        .sim
        .offers("main")
        .into_iter()
        .find(|o| o.status == 1)
        .expect("an active offer");

    h.running
        .sim
        .mutate(
            "main",
            Mutation::SetStatus {
                id: active.id,
                status: 0,
            },
        )
        .expect("offer exists");
    let after = h
        .count(&h.main(), "product_offer/count", json!({"status": 0}))
        .await;
    let inactive = h
        .offers_page(&h.main(), json!({"status": 0, "itemsPerPage": 100}))
        .await;

    let parse = |v: &Value| {
        v["noOfItems"]
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .expect("a count")
    };
    assert_eq!(parse(&after), parse(&before) + 1);
    assert!(inactive.iter().any(|o| o.id == active.id));
    h.shutdown().await;
}

#[tokio::test]
async fn wait_for_request_returns_once_a_matching_request_was_answered() {
    let h = Harness::start(config()).await;
    h.post(&h.main(), "vat/read", json!({})).await;
    let sim = h.running.sim.clone();
    let waiter = tokio::spawn(async move {
        sim.wait_for_request(|e| e.resource == "product_offer" && e.page == Some(2))
            .await
    });

    h.post(
        &h.main(),
        "product_offer/read",
        json!({"data": {"currentPage": 1}}),
    )
    .await;
    h.post(
        &h.main(),
        "product_offer/read",
        json!({"data": {"currentPage": 2}}),
    )
    .await;
    let entry = waiter.await.expect("the waiter finishes");
    let already_recorded = h
        .running
        .sim
        .wait_for_request(|e| e.resource == "vat")
        .await;

    assert_eq!((entry.seq, entry.page, entry.status), (3, Some(2), 200));
    assert_eq!(already_recorded.seq, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_mutation_queued_after_an_offer_page_lands_between_that_page_and_the_next() {
    let h = Harness::start(config()).await;
    h.running
        .sim
        .mutate_after_offer_page("main", 1, Mutation::RemoveOffer { id: 5 });

    let by_id = h.offers_page(&h.main(), json!({"id": 7})).await;
    let untouched = h.running.sim.offers("main").len();
    let first = h
        .offers_page(&h.main(), json!({"currentPage": 1, "itemsPerPage": 100}))
        .await;
    let second = h
        .offers_page(&h.main(), json!({"currentPage": 2, "itemsPerPage": 100}))
        .await;

    assert_eq!(by_id.len(), 1, "a filtered read does not trigger it");
    assert_eq!(untouched, 230);
    assert!(
        first.iter().any(|o| o.id == 5),
        "page 1 was taken before the change"
    );
    assert_eq!(
        second.first().map(|o| o.id),
        Some(102),
        "offer 101 moved up into page 1, after it was read"
    );
    assert_eq!(h.running.sim.offers("main").len(), 229);
    h.shutdown().await;
}
