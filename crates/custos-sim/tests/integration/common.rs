//! Starting a simulator on port 0 and talking to it.

use custos_sim::{Client, Scenario, Sim, Truth};
use reqwest::{Method, Response};
use serde_json::Value;

pub struct TestSim {
    pub sim: Sim,
    pub base: String,
    pub http: reqwest::Client,
    _running: custos_sim::Running,
}

/// A small, fast scenario: instant transcodes and jobs unless a test asks otherwise.
pub fn scenario() -> Scenario {
    Scenario {
        conversations: 40,
        max_recording_s: 20,
        transcode_ms: 0,
        batch_ms_per_item: 0,
        async_job_ms: 0,
        clients: vec![
            Client {
                id: "client-a".into(),
                secret: "secret-a".into(),
            },
            Client {
                id: "client-b".into(),
                secret: "secret-b".into(),
            },
        ],
        ..Scenario::default()
    }
}

pub async fn start(s: Scenario) -> TestSim {
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    TestSim {
        sim: running.sim.clone(),
        base: running.base_url.clone(),
        http,
        _running: running,
    }
}

impl TestSim {
    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let r = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn token(&self) -> String {
        self.token_for("client-a", "secret-a").await
    }

    pub async fn call(
        &self,
        method: Method,
        tok: &str,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self.http.request(method, url).bearer_auth(tok);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }

    pub async fn get(&self, tok: &str, path: &str) -> Response {
        self.call(Method::GET, tok, path, None).await
    }

    pub async fn get_json(&self, tok: &str, path: &str) -> Value {
        let r = self.get(tok, path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, tok: &str, path: &str, body: Value) -> Response {
        self.call(Method::POST, tok, path, Some(body)).await
    }

    /// Fetches a pre-signed URL as a client must: with no Authorization header.
    pub async fn download(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    pub fn truth(&self) -> Truth {
        self.sim.truth()
    }
}

/// Asserts a Genesys `ErrorBody` with this status and code.
pub async fn assert_error(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "expected {status} {code}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(v["contextId"].is_string());
    v
}

pub const WEEK: &str = "2023-10-01T00:00:00.000Z/2023-10-08T00:00:00.000Z";

/// Every conversation id of a sync details query, over all pages.
pub async fn all_conversations(t: &TestSim, tok: &str, body: Value) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1.. {
        let mut b = body.clone();
        b["paging"] = serde_json::json!({"pageSize": 10, "pageNumber": page});
        let r = t
            .post(tok, "/api/v2/analytics/conversations/details/query", b)
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let Some(convs) = v["conversations"].as_array() else {
            break;
        };
        ids.extend(
            convs
                .iter()
                .map(|c| c["conversationId"].as_str().unwrap().to_owned()),
        );
    }
    ids
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
