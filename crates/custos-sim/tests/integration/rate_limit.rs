//! The per-token rate windows and their headers.

use crate::common::*;

#[tokio::test]
async fn platform_window_counts_refuses_and_resets() {
    let t = start(custos_sim::Scenario {
        api_rate: 5,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    for i in 1..=5u32 {
        let r = t.get(&tok, "/api/v2/recording/settings").await;
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["inin-ratelimit-allowed"], "5");
        assert_eq!(h["inin-ratelimit-count"], i.to_string().as_str());
        let reset: u64 = h["inin-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
        assert!(h.contains_key("inin-correlation-id"));
    }
    let r = t.get(&tok, "/api/v2/recording/settings").await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let v = assert_error(r, 429, "too.many.requests").await;
    assert_eq!(
        v["message"],
        "Rate limit exceeded the maximum [5] requests within [60] seconds"
    );
    assert_eq!(
        v["limit"]["key"],
        "client.credentials.token.rate.per.minute"
    );
    assert_eq!(v["limit"]["namespace"], "platform.api");
    assert_eq!(v["limit"]["value"], 5);

    // Another token has its own budget; the refused one recovers when the window passes.
    let other = t.token().await;
    assert_eq!(
        t.get(&other, "/api/v2/recording/settings").await.status(),
        200
    );
    t.sim.advance_clock(retry * 1000);
    let r = t.get(&tok, "/api/v2/recording/settings").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["inin-ratelimit-count"], "1");
    assert_eq!(t.sim.stats().rate_limited, 1);
}

#[tokio::test]
async fn search_api_has_its_own_per_second_window() {
    let t = start(custos_sim::Scenario {
        search_rate: 3,
        api_rate: 1000,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let q = "/api/v2/search/recordings?q=direction:inbound&pageSize=1";
    for _ in 0..3 {
        assert_eq!(t.get(&tok, q).await.status(), 200);
    }
    let r = t.get(&tok, q).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let v = assert_error(r, 429, "too.many.requests").await;
    assert_eq!(v["limit"]["value"], 3);
    // The platform budget is untouched by search calls.
    let r = t.get(&tok, "/api/v2/recording/settings").await;
    assert_eq!(r.headers()["inin-ratelimit-count"], "1");
    t.sim.advance_clock(1_000);
    assert_eq!(t.get(&tok, q).await.status(), 200);
}
