#[tokio::test]
async fn perf() {
    let t = std::time::Instant::now();
    let running = emag_sim::Simulator::spawn(emag_sim::SimConfig { offers_per_account: 1_000_000, orders_per_account: 5000, rate_limits: false, ..Default::default() }).await.unwrap();
    println!("gen: {:?}", t.elapsed());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (path, body) in [("product_offer/read", serde_json::json!({"data":{"currentPage": 5000}})), ("product_offer/read", serde_json::json!({"data":{"currentPage": 5000, "status": 1}})), ("order/read", serde_json::json!({"data":{"currentPage": 2}})), ("product_offer/count", serde_json::json!({"data":{"status": 1}}))] {
        let t = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..20 {
            let r = client.post(format!("{}/{path}", running.base_url)).basic_auth("sim-main", Some("pass-main")).json(&body).send().await.unwrap();
            bytes = r.bytes().await.unwrap().len();
        }
        println!("{path} {body}: {:?} per request, {bytes} bytes", t.elapsed() / 20);
    }
    running.shutdown().await;
}
