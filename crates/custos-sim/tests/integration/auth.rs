//! OAuth client credentials and bearer-token checks.

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn client_credentials_grant_issues_expiring_tokens() {
    let t = start(custos_sim::Scenario {
        token_ttl_s: 300,
        ..scenario()
    })
    .await;
    let r = t
        .http
        .post(format!("{}/oauth/token", t.base))
        .basic_auth("client-a", Some("secret-a"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 300);
    let tok = v["access_token"].as_str().unwrap();
    assert!(tok.len() >= 40);
    assert_eq!(t.get(tok, "/api/v2/recording/settings").await.status(), 200);

    t.sim.advance_clock(299_000);
    assert_eq!(t.get(tok, "/api/v2/recording/settings").await.status(), 200);
    t.sim.advance_clock(2_000);
    assert_error(
        t.get(tok, "/api/v2/recording/settings").await,
        401,
        "bad.credentials",
    )
    .await;
    assert_eq!(t.sim.stats().tokens_issued, 1);
}

#[tokio::test]
async fn bad_credentials_and_bad_requests_are_refused() {
    let t = start(scenario()).await;
    let post = |id: &'static str, secret: &'static str, grant: &'static str| {
        t.http
            .post(format!("{}/oauth/token", t.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", grant)])
            .send()
    };
    let r = post("client-a", "wrong", "client_credentials")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"].is_string() && v["description"].is_string());

    let r = post("nobody", "secret-a", "client_credentials")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post("client-a", "secret-a", "password").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Credentials in the form body are accepted too (RFC 6749 §2.3.1).
    let r = t
        .http
        .post(format!("{}/oauth/token", t.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "client-b"),
            ("client_secret", "secret-b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(t.sim.stats().token_failures, 3);
}

#[tokio::test]
async fn api_calls_need_a_valid_bearer_token() {
    let t = start(scenario()).await;
    let r = t
        .http
        .get(format!("{}/api/v2/recording/settings", t.base))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "authentication.required").await;
    assert_error(
        t.get("not-a-token", "/api/v2/recording/settings").await,
        401,
        "bad.credentials",
    )
    .await;
    assert_eq!(t.sim.stats().unauthorized, 2);
}
