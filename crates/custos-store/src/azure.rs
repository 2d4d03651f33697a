//! Azure Blob Storage over its REST API (reqwest). The official Rust SDK offers no Shared Key
//! authentication and retries 5xx for a minute; what we need is a handful of calls (Put Blob, Put
//! Block, Put Block List, Get Blob Properties, Get Container Properties, List Blobs, Get Blob),
//! written out here.
//!
//! Put Blob carries `Content-MD5` (Azure recomputes it on receipt and refuses a mismatch), our
//! SHA-256 as `x-ms-meta-sha256` (checked against the file as we read it; Azure does not check
//! metadata), `If-None-Match: *` (never overwrite), `x-ms-encryption-scope`, and the
//! immutability policy (`x-ms-immutability-policy-until-date`/`-mode`) and legal hold. Above the
//! threshold the blob goes up as blocks, each with its own Content-MD5, committed by one Put Block
//! List carrying the same headers.
//!
//! Credentials, in this order: `AZURE_STORAGE_CONNECTION_STRING` (account key or SAS, or
//! `UseDevelopmentStorage=true`), `AZURE_STORAGE_SAS_TOKEN`, `AZURE_STORAGE_KEY`, then Entra ID:
//! a client secret or a federated token file (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET` / `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`), or a managed
//! identity endpoint (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use md5::Digest as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::plan::Item;
use crate::store::{Check, PutError, StoreError, StoreOptions, Stored, part_size};
use crate::target::Protection;

/// The REST API version we speak (immutability policies on Put Blob need 2020-10-02 or later).
pub const API_VERSION: &str = "2023-11-03";

/// Azurite's well-known development account key.
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Put Blob's size limit.
const MAX_PUT_BLOB: u64 = 5000 * 1024 * 1024;
const MIN_BLOCK: u64 = 16 * 1024 * 1024;

enum Auth {
    SharedKey(Vec<u8>),
    Sas(String),
    Entra {
        source: TokenSource,
        cached: tokio::sync::Mutex<Option<(String, Instant)>>,
    },
}

/// Where Entra ID tokens for Azure Storage come from.
enum TokenSource {
    /// A service principal's client secret (client-credentials grant).
    ClientSecret {
        token_url: String,
        client_id: String,
        secret: String,
    },
    /// Workload identity: a federated token in a file (AKS, GitHub Actions OIDC), re-read on
    /// every refresh as the platform rotates it.
    Federated {
        token_url: String,
        client_id: String,
        token_file: String,
    },
    /// The managed identity endpoint of App Service, Functions and Container Apps
    /// (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`); a user-assigned identity by `AZURE_CLIENT_ID`.
    ManagedIdentity {
        endpoint: String,
        header: String,
        client_id: Option<String>,
    },
}

impl TokenSource {
    fn url(&self) -> &str {
        match self {
            TokenSource::ClientSecret { token_url, .. }
            | TokenSource::Federated { token_url, .. } => token_url,
            TokenSource::ManagedIdentity { endpoint, .. } => endpoint,
        }
    }
}

/// The scope (v2 token endpoint) and resource (managed identity) of Azure Storage.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

/// A container.
pub struct AzureStore {
    http: reqwest::Client,
    /// `https://acct.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    base: url::Url,
    account: String,
    container: String,
    auth: Auth,
    threshold: u64,
    block_size: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Entra ID from the environment, as Azure's SDKs read it: a client secret, then a federated
/// token file, then a managed identity endpoint.
fn token_source() -> Option<TokenSource> {
    let token_url = |tenant: &str| {
        let authority = env("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| "https://login.microsoftonline.com".into());
        format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        )
    };
    if let (Some(tenant), Some(client_id)) = (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")) {
        if let Some(secret) = env("AZURE_CLIENT_SECRET") {
            return Some(TokenSource::ClientSecret {
                token_url: token_url(&tenant),
                client_id,
                secret,
            });
        }
        if let Some(token_file) = env("AZURE_FEDERATED_TOKEN_FILE") {
            return Some(TokenSource::Federated {
                token_url: token_url(&tenant),
                client_id,
                token_file,
            });
        }
    }
    match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => Some(TokenSource::ManagedIdentity {
            endpoint,
            header,
            client_id: env("AZURE_CLIENT_ID"),
        }),
        _ => None,
    }
}

/// `k=v;k=v` → map (values may contain `=`).
fn parse_connection_string(s: &str) -> BTreeMap<String, String> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

crate::store::backend_by_inherent_methods!(AzureStore);

impl AzureStore {
    /// A client for `account`/`container` from the environment's credentials.
    pub fn connect(
        account: &str,
        container: &str,
        opts: &StoreOptions,
    ) -> Result<AzureStore, StoreError> {
        Self::connect_with(account, container, opts).map_err(StoreError::Settings)
    }

    fn connect_with(
        account: &str,
        container: &str,
        opts: &StoreOptions,
    ) -> Result<AzureStore, String> {
        let mut endpoint = opts.endpoint.clone();
        let auth = if let Some(cs) = env("AZURE_STORAGE_CONNECTION_STRING") {
            let mut m = parse_connection_string(&cs);
            if m.get("UseDevelopmentStorage").map(String::as_str) == Some("true") {
                m.entry("AccountName".into())
                    .or_insert("devstoreaccount1".into());
                m.entry("AccountKey".into()).or_insert(DEV_KEY.into());
                m.entry("BlobEndpoint".into())
                    .or_insert("http://127.0.0.1:10000/devstoreaccount1".into());
            }
            if let Some(name) = m.get("AccountName")
                && name != account
            {
                return Err(format!(
                    "AZURE_STORAGE_CONNECTION_STRING is for account '{name}', the target names '{account}'"
                ));
            }
            if endpoint.is_none() {
                endpoint = m.get("BlobEndpoint").cloned().or_else(|| {
                    m.get("EndpointSuffix").map(|sfx| {
                        let proto = m
                            .get("DefaultEndpointsProtocol")
                            .map(String::as_str)
                            .unwrap_or("https");
                        format!("{proto}://{account}.blob.{sfx}")
                    })
                });
            }
            if let Some(key) = m.get("AccountKey") {
                Auth::SharedKey(
                    B64.decode(key).map_err(|_| {
                        "the connection string's AccountKey is not base64".to_owned()
                    })?,
                )
            } else if let Some(sas) = m.get("SharedAccessSignature") {
                Auth::Sas(sas.trim_start_matches('?').to_owned())
            } else {
                return Err(
                    "AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature"
                        .into(),
                );
            }
        } else if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
            Auth::Sas(sas.trim_start_matches('?').to_owned())
        } else if let Some(key) = env("AZURE_STORAGE_KEY") {
            Auth::SharedKey(
                B64.decode(key.trim())
                    .map_err(|_| "AZURE_STORAGE_KEY is not base64".to_owned())?,
            )
        } else if let Some(source) = token_source() {
            Auth::Entra {
                source,
                cached: tokio::sync::Mutex::new(None),
            }
        } else {
            return Err("no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_KEY; or for Entra ID AZURE_TENANT_ID + AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, or a managed identity (IDENTITY_ENDPOINT + IDENTITY_HEADER)".into());
        };
        let base = endpoint.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let base = url::Url::parse(base.trim_end_matches('/'))
            .map_err(|e| format!("Azure endpoint '{base}': {e}"))?;
        let loopback =
            |u: &url::Url| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if let Auth::Entra { source, .. } = &auth {
            let t = url::Url::parse(source.url())
                .map_err(|e| format!("Entra ID token endpoint '{}': {e}", source.url()))?;
            for u in [&base, &t] {
                if u.scheme() != "https" && !loopback(u) {
                    return Err(format!(
                        "{u}: Entra ID tokens are only sent over https (http only to a loopback address)"
                    ));
                }
            }
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AzureStore {
            http,
            base,
            account: account.into(),
            container: container.into(),
            auth,
            threshold: opts
                .multipart_threshold
                .unwrap_or(MAX_PUT_BLOB)
                .min(MAX_PUT_BLOB),
            block_size: opts.part_size,
        })
    }

    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.base.clone();
        {
            let mut segs = u.path_segments_mut().expect("http(s) URL");
            segs.pop_if_empty().push(&self.container);
            if let Some(k) = key {
                segs.extend(k.split('/'));
            }
        }
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u
    }

    async fn bearer(&self) -> Result<Option<String>, PutError> {
        let Auth::Entra { source, cached } = &self.auth else {
            return Ok(None);
        };
        let mut c = cached.lock().await;
        if let Some((t, until)) = c.as_ref()
            && Instant::now() < *until
        {
            return Ok(Some(t.clone()));
        }
        let req = match source {
            TokenSource::ClientSecret {
                token_url,
                client_id,
                secret,
            } => self.http.post(token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", STORAGE_SCOPE),
            ]),
            TokenSource::Federated {
                token_url,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    PutError::Fatal(format!("AZURE_FEDERATED_TOKEN_FILE {token_file}: {e}"))
                })?;
                self.http.post(token_url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                    ("scope", STORAGE_SCOPE),
                ])
            }
            TokenSource::ManagedIdentity {
                endpoint,
                header,
                client_id,
            } => {
                let mut q = vec![
                    ("api-version", "2019-08-01"),
                    ("resource", STORAGE_RESOURCE),
                ];
                if let Some(id) = client_id {
                    q.push(("client_id", id));
                }
                self.http
                    .get(endpoint)
                    .query(&q)
                    .header("x-identity-header", header)
            }
        };
        let resp = req.send().await.map_err(|e| {
            PutError::Fatal(format!(
                "Entra ID token request failed: {}",
                e.without_url()
            ))
        })?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let token = body["access_token"]
            .as_str()
            .filter(|_| status.is_success());
        let Some(token) = token else {
            return Err(PutError::Fatal(format!(
                "Entra ID refused the token request ({status}): {}",
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or("")
            )));
        };
        // Lifetime: `expires_in` (seconds, token endpoint) or `expires_on` (epoch seconds, as a
        // string or a number, managed identity); a minute's margin.
        let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        let life = number(&body["expires_in"])
            .or_else(|| number(&body["expires_on"]).map(|t| t.saturating_sub(now)))
            .unwrap_or(300)
            .saturating_sub(60);
        *c = Some((token.to_owned(), Instant::now() + Duration::from_secs(life)));
        Ok(Some(token.to_owned()))
    }

    /// Signs and sends one request, retrying server errors and dropped connections (the body is
    /// rebuilt each time by `body`).
    async fn send(
        &self,
        method: reqwest::Method,
        mut url: url::Url,
        mut headers: HeaderMap,
        len: Option<u64>,
        body: impl Fn()
            -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<reqwest::Body>> + Send>>,
    ) -> Result<reqwest::Response, PutError> {
        if let Auth::Sas(sas) = &self.auth {
            let q = match url.query() {
                Some(q) => format!("{q}&{sas}"),
                None => sas.clone(),
            };
            url.set_query(Some(&q));
        }
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut h = headers.clone();
            h.insert(
                "x-ms-date",
                HeaderValue::from_str(&rfc1123(time::OffsetDateTime::now_utc())).expect("date"),
            );
            match &self.auth {
                Auth::SharedKey(key) => {
                    let sig = self.shared_key(&method, &url, &h, len.unwrap_or(0), key);
                    h.insert(
                        reqwest::header::AUTHORIZATION,
                        HeaderValue::from_str(&sig).expect("ascii"),
                    );
                }
                Auth::Entra { .. } => {
                    let t = self.bearer().await?.expect("entra");
                    h.insert(
                        reqwest::header::AUTHORIZATION,
                        HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                            PutError::Fatal("the Entra ID token is not a header value".into())
                        })?,
                    );
                }
                Auth::Sas(_) => {}
            }
            let mut req = self.http.request(method.clone(), url.clone()).headers(h);
            if let Some(n) = len {
                req = req.header(reqwest::header::CONTENT_LENGTH, n);
                let b = body()
                    .await
                    .map_err(|e| PutError::Fatal(format!("reading the file: {e}")))?;
                req = req.body(b);
            }
            match req.send().await {
                // Server errors and dropped connections: again, after a while (up to 5 tries).
                Ok(r) if r.status().is_server_error() && attempt < 5 => {}
                Ok(r) => return Ok(r),
                Err(e) if attempt < 5 && !e.is_builder() => {}
                Err(e) => {
                    return Err(PutError::Fatal(format!(
                        "{method} {}: {}",
                        redact(&url),
                        e.without_url()
                    )));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(8));
        }
    }

    /// The Shared Key signature (Blob service, version 2009-09-19 and later).
    fn shared_key(
        &self,
        method: &reqwest::Method,
        url: &url::Url,
        h: &HeaderMap,
        len: u64,
        key: &[u8],
    ) -> String {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut ms: Vec<(String, String)> = h
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("x-ms-"))
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or("").trim().to_owned(),
                )
            })
            .collect();
        ms.sort();
        let mut sts = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
            method.as_str(),
            get("content-encoding"),
            get("content-language"),
            if len == 0 {
                String::new()
            } else {
                len.to_string()
            },
            get("content-md5"),
            get("content-type"),
            get("if-modified-since"),
            get("if-match"),
            get("if-none-match"),
            get("if-unmodified-since"),
            get("range"),
        );
        for (n, v) in ms {
            sts.push_str(&format!("{n}:{v}\n"));
        }
        sts.push_str(&format!("/{}{}", self.account, url.path()));
        let mut q: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url.query_pairs() {
            q.entry(k.to_lowercase()).or_default().push(v.into_owned());
        }
        for (k, mut vs) in q {
            vs.sort();
            sts.push_str(&format!("\n{k}:{}", vs.join(",")));
        }
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(sts.as_bytes());
        format!(
            "SharedKey {}:{}",
            self.account,
            B64.encode(mac.finalize().into_bytes())
        )
    }

    /// Container properties: version-level immutability (which implies versioning), a container
    /// policy or legal hold, the default encryption scope, public access.
    pub async fn preflight(&self) -> Result<Vec<Check>, StoreError> {
        self.preflight_checks()
            .await
            .map_err(StoreError::Unreachable)
    }

    async fn preflight_checks(&self) -> Result<Vec<Check>, String> {
        let url = self.url(None, &[("restype", "container")]);
        let resp = self
            .send(reqwest::Method::HEAD, url, HeaderMap::new(), None, no_body)
            .await
            .map_err(|e| format!("{}: {e}", self.container))?;
        if resp.status().as_u16() == 403 && matches!(self.auth, Auth::Sas(_)) {
            // A SAS scoped to blobs may not read the container: nothing to check with.
            return Ok(vec![Check {
                name: "immutable-storage",
                ok: None,
                required: true,
                detail: "the SAS does not allow reading the container's properties".into(),
            }]);
        }
        if !resp.status().is_success() {
            return Err(format!(
                "container {}: {} {}",
                self.container,
                resp.status(),
                header(resp.headers(), "x-ms-error-code").unwrap_or_default()
            ));
        }
        let h = resp.headers();
        let flag = |n: &str| header(h, n).as_deref() == Some("true");
        let version_worm = flag("x-ms-immutable-storage-with-versioning-enabled");
        let policy = flag("x-ms-has-immutability-policy");
        let hold = flag("x-ms-has-legal-hold");
        let scope = header(h, "x-ms-default-encryption-scope");
        Ok(vec![
            Check {
                name: "immutable-storage",
                ok: Some(version_worm),
                required: true,
                detail: if version_worm {
                    "version-level immutability (WORM) enabled".into()
                } else {
                    "version-level immutability is not enabled on the container: per-blob retention cannot be set".into()
                },
            },
            Check {
                name: "container-policy",
                ok: Some(policy || hold),
                required: false,
                detail: format!(
                    "container immutability policy: {}; container legal hold: {}",
                    if policy { "yes" } else { "no" },
                    if hold { "yes" } else { "no" }
                ),
            },
            Check {
                name: "default-encryption",
                ok: Some(true),
                required: true,
                detail: format!(
                    "Azure Storage encrypts all data at rest; default encryption scope {}",
                    scope.as_deref().unwrap_or("(account key)")
                ),
            },
            Check {
                name: "public-access",
                ok: Some(header(h, "x-ms-blob-public-access").is_none()),
                required: false,
                detail: match header(h, "x-ms-blob-public-access") {
                    None => "no anonymous public access".into(),
                    Some(level) => format!("anonymous public access: {level}"),
                },
            },
            Check {
                name: "access-logging",
                ok: None,
                required: false,
                detail: "diagnostic settings (Azure Monitor resource logs) are not visible to data-plane credentials; check them as docs/storage.md says".into(),
            },
        ])
    }

    fn put_headers(&self, item: &Item, p: &Protection) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut set = |n: &'static str, v: &str| {
            h.insert(
                HeaderName::from_static(n),
                HeaderValue::from_str(v).expect("header value"),
            );
        };
        set("if-none-match", "*");
        set("x-ms-meta-sha256", &item.sha256);
        if let Some(s) = &p.encryption_scope {
            set("x-ms-encryption-scope", s);
        }
        if let (Some(mode), Some(until)) = (p.lock_mode, p.retain_until) {
            set("x-ms-immutability-policy-until-date", &rfc1123(until));
            set("x-ms-immutability-policy-mode", mode.as_azure());
        }
        if p.legal_hold {
            set("x-ms-legal-hold", "true");
        }
        h
    }

    /// Writes one blob, never over an existing one.
    pub async fn put(&self, item: &Item, key: &str, p: &Protection) -> Result<Stored, PutError> {
        if item.size > self.threshold {
            return self.put_blocks(item, key, p).await;
        }
        let (sha, md5) = {
            let path = item.path.clone();
            tokio::task::spawn_blocking(move || sha_md5(&path))
                .await
                .map_err(|e| PutError::Fatal(e.to_string()))?
                .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?
        };
        local_check(item, &sha)?;
        let mut h = self.put_headers(item, p);
        h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
        h.insert("content-md5", HeaderValue::from_str(&md5).expect("b64"));
        h.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let path = item.path.clone();
        let resp = self
            .send(
                reqwest::Method::PUT,
                self.url(Some(key), &[]),
                h,
                Some(item.size),
                move || {
                    let path = path.clone();
                    Box::pin(
                        async move { Ok(reqwest::Body::from(tokio::fs::File::open(path).await?)) },
                    )
                },
            )
            .await?;
        let mut stored = written(resp, key).await?;
        stored.md5.get_or_insert(md5);
        Ok(stored)
    }

    async fn put_blocks(&self, item: &Item, key: &str, p: &Protection) -> Result<Stored, PutError> {
        let block = self
            .block_size
            .unwrap_or_else(|| part_size(item.size, MIN_BLOCK));
        let f = std::fs::File::open(&item.path)
            .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?;
        // Reading and hashing a block is blocking work: off the async workers, with the file and
        // the running hashes handed to the blocking pool and back.
        let mut state = (f, sha2::Sha256::new(), md5::Md5::new());
        let mut ids = Vec::new();
        let mut sent = 0u64;
        while sent < item.size {
            let n = block.min(item.size - sent) as usize;
            let (next, buf, md5) = tokio::task::spawn_blocking(move || {
                let (mut f, mut sha, mut whole) = state;
                let mut buf = vec![0u8; n];
                f.read_exact(&mut buf)?;
                sha2::Digest::update(&mut sha, &buf);
                whole.update(&buf);
                let md5 = B64.encode(md5::Md5::digest(&buf));
                Ok::<_, std::io::Error>(((f, sha, whole), buf, md5))
            })
            .await
            .map_err(|e| PutError::Fatal(e.to_string()))?
            .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?;
            state = next;
            let id = B64.encode(format!("custos-block-{:08}", ids.len()));
            let mut h = HeaderMap::new();
            h.insert("content-md5", HeaderValue::from_str(&md5).expect("b64"));
            if let Some(s) = &p.encryption_scope {
                h.insert(
                    "x-ms-encryption-scope",
                    HeaderValue::from_str(s).expect("scope"),
                );
            }
            let bytes = bytes::Bytes::from(buf);
            let resp = self
                .send(
                    reqwest::Method::PUT,
                    self.url(Some(key), &[("comp", "block"), ("blockid", &id)]),
                    h,
                    Some(n as u64),
                    move || {
                        let b = bytes.clone();
                        Box::pin(async move { Ok(reqwest::Body::from(b)) })
                    },
                )
                .await?;
            if !resp.status().is_success() {
                return Err(refusal(resp).await);
            }
            ids.push(id);
            sent += n as u64;
        }
        let (_, sha, whole) = state;
        local_check(item, &hex::encode(sha2::Digest::finalize(sha)))?;
        let md5 = B64.encode(whole.finalize());
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let mut h = self.put_headers(item, p);
        h.insert(
            "x-ms-blob-content-md5",
            HeaderValue::from_str(&md5).expect("b64"),
        );
        h.insert(
            "x-ms-blob-content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let body = bytes::Bytes::from(xml);
        let resp = self
            .send(
                reqwest::Method::PUT,
                self.url(Some(key), &[("comp", "blocklist")]),
                h,
                Some(body.len() as u64),
                move || {
                    let b = body.clone();
                    Box::pin(async move { Ok(reqwest::Body::from(b)) })
                },
            )
            .await?;
        let mut stored = written(resp, key).await?;
        stored.md5 = Some(md5);
        stored.multipart = true;
        Ok(stored)
    }

    /// Get Blob Properties.
    pub async fn head(&self, key: &str) -> Result<Option<Stored>, PutError> {
        let resp = self
            .send(
                reqwest::Method::HEAD,
                self.url(Some(key), &[]),
                HeaderMap::new(),
                None,
                no_body,
            )
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND
            && header(resp.headers(), "x-ms-error-code").as_deref() != Some("ContainerNotFound")
        {
            return Ok(None);
        }
        if !resp.status().is_success() {
            let e = refusal(resp).await;
            return Err(match e {
                PutError::Refused { .. } => PutError::Fatal(format!("Get Blob Properties: {e}")),
                other => other,
            });
        }
        let h = resp.headers();
        Ok(Some(Stored {
            key: key.into(),
            version_id: header(h, "x-ms-version-id"),
            request_id: header(h, "x-ms-request-id"),
            size: header(h, "content-length").and_then(|v| v.parse().ok()),
            sha256_metadata: header(h, "x-ms-meta-sha256"),
            md5: header(h, "content-md5"),
            lock_mode: header(h, "x-ms-immutability-policy-mode"),
            retain_until: header(h, "x-ms-immutability-policy-until-date")
                .and_then(|d| parse_rfc1123(&d)),
            legal_hold: header(h, "x-ms-legal-hold").map(|v| v == "true"),
            encryption: encrypted(h, "x-ms-server-encrypted"),
            encryption_scope: header(h, "x-ms-encryption-scope"),
            etag: header(h, "etag"),
            ..Default::default()
        }))
    }

    /// Get Blob, hashed as it streams.
    pub async fn download_sha256(&self, key: &str) -> Result<(String, u64), PutError> {
        use futures_util::StreamExt;
        let resp = self
            .send(
                reqwest::Method::GET,
                self.url(Some(key), &[]),
                HeaderMap::new(),
                None,
                no_body,
            )
            .await?;
        if !resp.status().is_success() {
            let e = refusal(resp).await;
            return Err(PutError::Fatal(format!("Get Blob {key}: {e}")));
        }
        let mut sha = sha2::Sha256::new();
        let mut n = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| PutError::Fatal(format!("reading the blob: {}", e.without_url())))?;
            sha2::Digest::update(&mut sha, &chunk);
            n += chunk.len() as u64;
        }
        Ok((hex::encode(sha2::Digest::finalize(sha)), n))
    }

    /// List Blobs under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, PutError> {
        let mut names = Vec::new();
        let mut marker = String::new();
        loop {
            let mut q = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
            ];
            if !marker.is_empty() {
                q.push(("marker", &marker));
            }
            let resp = self
                .send(
                    reqwest::Method::GET,
                    self.url(None, &q),
                    HeaderMap::new(),
                    None,
                    no_body,
                )
                .await?;
            if !resp.status().is_success() {
                return Err(refusal(resp).await);
            }
            let xml = resp
                .text()
                .await
                .map_err(|e| PutError::Fatal(e.without_url().to_string()))?;
            let blobs = xml.split("<Blob>").skip(1);
            names.extend(blobs.filter_map(|b| xml_text(b, "Name")));
            marker = xml_text(&xml, "NextMarker").unwrap_or_default();
            if marker.is_empty() {
                return Ok(names);
            }
        }
    }
}

fn no_body() -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<reqwest::Body>> + Send>> {
    Box::pin(async { Ok(reqwest::Body::from(Vec::new())) })
}

fn header(h: &HeaderMap, n: &str) -> Option<String> {
    h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `x-ms-server-encrypted: true` → `server-encrypted`.
fn encrypted(h: &HeaderMap, n: &str) -> Option<String> {
    header(h, n).map(|v| {
        if v == "true" {
            "server-encrypted".into()
        } else {
            v
        }
    })
}

fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

async fn refusal(resp: reqwest::Response) -> PutError {
    let status = resp.status().as_u16();
    let code = header(resp.headers(), "x-ms-error-code").unwrap_or_else(|| format!("HTTP{status}"));
    let body = resp.text().await.unwrap_or_default();
    let message = xml_text(&body, "Message")
        .map(|m| m.lines().next().unwrap_or("").to_owned())
        .unwrap_or_default();
    match (status, code.as_str()) {
        (409, "BlobAlreadyExists") | (412, _) => PutError::Exists,
        (
            _,
            "AuthenticationFailed"
            | "AuthorizationFailure"
            | "ContainerNotFound"
            | "AccountIsDisabled"
            | "InvalidAuthenticationInfo",
        )
        | (500.., _) => PutError::Fatal(format!("{status} {code}: {message}")),
        _ => PutError::Refused {
            status,
            code,
            message,
        },
    }
}

async fn written(resp: reqwest::Response, key: &str) -> Result<Stored, PutError> {
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let h = resp.headers();
    Ok(Stored {
        key: key.into(),
        version_id: header(h, "x-ms-version-id"),
        request_id: header(h, "x-ms-request-id"),
        md5: header(h, "content-md5"),
        encryption: encrypted(h, "x-ms-request-server-encrypted"),
        encryption_scope: header(h, "x-ms-encryption-scope"),
        etag: header(h, "etag"),
        ..Default::default()
    })
}

fn local_check(item: &Item, sha: &str) -> Result<(), PutError> {
    if sha == item.sha256 {
        return Ok(());
    }
    Err(PutError::Refused {
        status: 0,
        code: crate::store::LOCAL_DIGEST_MISMATCH.into(),
        message: format!(
            "the file's SHA-256 is {sha}, the bag sealed {}; not uploaded",
            item.sha256
        ),
    })
}

fn sha_md5(path: &std::path::Path) -> std::io::Result<(String, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = sha2::Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut sha, &buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok((
        hex::encode(sha2::Digest::finalize(sha)),
        B64.encode(md5.finalize()),
    ))
}

/// `Thu, 26 Nov 2026 11:51:06 GMT`.
pub fn rfc1123(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .expect("date")
}

fn parse_rfc1123(s: &str) -> Option<String> {
    let t = time::PrimitiveDateTime::parse(
        s.trim(),
        time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ),
    )
    .ok()?;
    Some(crate::store::rfc3339(t.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_xml() {
        let t = time::macros::datetime!(2026-11-26 11:51:06 UTC);
        assert_eq!(rfc1123(t), "Thu, 26 Nov 2026 11:51:06 GMT");
        assert_eq!(
            parse_rfc1123("Thu, 26 Nov 2026 11:51:06 GMT").as_deref(),
            Some("2026-11-26T11:51:06Z")
        );
        assert_eq!(
            xml_text("<a><Name>x &amp; y</Name></a>", "Name").as_deref(),
            Some("x & y")
        );
        assert_eq!(xml_text("<a/>", "Name"), None);
    }

    #[test]
    fn shared_key_signature_matches_a_worked_example() {
        // String-to-sign rules from "Authorize with Shared Key" (Blob service); the signature is
        // checked end to end against Azurite in tests/azure.rs, this pins the canonical form.
        let s = AzureStore {
            http: reqwest::Client::new(),
            base: url::Url::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap(),
            account: "devstoreaccount1".into(),
            container: "evidence".into(),
            auth: Auth::SharedKey(B64.decode(DEV_KEY).unwrap()),
            threshold: MAX_PUT_BLOB,
            block_size: None,
        };
        let u = s.url(
            Some("m/data/a b.wav"),
            &[("comp", "block"), ("blockid", "QQ==")],
        );
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/evidence/m/data/a%20b.wav?comp=block&blockid=QQ%3D%3D"
        );
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Thu, 26 Nov 2026 11:51:06 GMT"),
        );
        let key = B64.decode(DEV_KEY).unwrap();
        let a = s.shared_key(&reqwest::Method::PUT, &u, &h, 5, &key);
        let b = s.shared_key(&reqwest::Method::PUT, &u, &h, 6, &key);
        assert!(a.starts_with("SharedKey devstoreaccount1:"));
        assert_ne!(a, b, "the length is signed");
    }
}
