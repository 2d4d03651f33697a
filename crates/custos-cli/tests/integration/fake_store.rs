//! What no local server enforces, checked on the exact requests custos sends: a recording fake
//! of S3 and Azure Blob on 127.0.0.1 that answers as the real services document (checksums
//! checked, conditional creates refused, KMS key errors, immutability headers echoed on read) and
//! keeps every request. Covered here: S3 Object Lock/SSE-KMS/checksum headers on every PUT,
//! multipart with a full-object CRC-64/NVME (each part's and the whole's checked by the fake),
//! never a retention change or a delete (so a COMPLIANCE retention is never shortened), a KMS key
//! S3 refuses; Azure immutability policy, legal hold, encryption scope and Content-MD5 on Put
//! Blob and on block lists, Entra ID client-credential tokens.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;

use crate::common::store::{custos, receipt, run, text};
use crate::common::tmp;

/// One request as received.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl Req {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn q(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| {
                v.replace("%3D", "=")
                    .replace("%2F", "/")
                    .replace("%2B", "+")
            })
        })
    }
}

#[derive(Clone, Debug)]
struct Obj {
    body: Bytes,
    headers: BTreeMap<String, String>,
    version: String,
}

#[derive(Default)]
struct Fake {
    log: Vec<Req>,
    objects: BTreeMap<String, Obj>,
    uploads: BTreeMap<String, Upload>,
    blocks: BTreeMap<String, Bytes>,
    tokens: u32,
    next: u64,
    /// Milliseconds each object write takes (a slow store, to kill an upload mid-way).
    put_delay_ms: u64,
}

type Shared = Arc<Mutex<Fake>>;

/// A multipart upload in progress: key, the CreateMultipartUpload headers kept, parts.
type Upload = (String, BTreeMap<String, String>, BTreeMap<u32, Bytes>);

fn crc(data: &[u8]) -> String {
    B64.encode(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data).to_be_bytes())
}

fn sha_b64(data: &[u8]) -> String {
    B64.encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

fn md5_b64(data: &[u8]) -> String {
    B64.encode(md5::Md5::digest(data))
}

fn s3_error(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{msg}</Message><RequestId>fake</RequestId></Error>"),
    )
        .into_response()
}

fn az_error(status: u16, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("x-ms-error-code", code)],
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"),
    )
        .into_response()
}

fn with_headers(status: u16, headers: Vec<(String, String)>, body: String) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

const S3_ECHO: &[&str] = &[
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-server-side-encryption",
    "x-amz-meta-sha256",
];

fn kms_arn(id: &str) -> String {
    format!("arn:aws:kms:us-east-1:111122223333:key/{id}")
}

async fn handle(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    };
    let delay = st.lock().unwrap().put_delay_ms;
    if delay > 0 && req.method == "PUT" {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut f = st.lock().unwrap();
    f.log.push(req.clone());
    f.next += 1;
    let n = f.next;
    let path = req.path.clone();
    // Entra ID: the token endpoint (client secret or federated token) and a managed identity
    // endpoint.
    if path.ends_with("/oauth2/v2.0/token") {
        f.tokens += 1;
        let form = String::from_utf8_lossy(&req.body).to_string();
        let secret = form.contains("client_secret=s3cret");
        let federated = form.contains("client_assertion=jwt-abc")
            && form.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
        if !(secret || federated) || !form.contains("grant_type=client_credentials") {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        return axum::Json(
            serde_json::json!({"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}),
        )
        .into_response();
    }
    if path == "/msi/token" {
        f.tokens += 1;
        if req.h("x-identity-header") != Some("h-1")
            || req.q("resource").as_deref() != Some("https%3A//storage.azure.com/")
                && req.q("resource").as_deref() != Some("https://storage.azure.com/")
        {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "bad request"})),
            )
                .into_response();
        }
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        return axum::Json(serde_json::json!({"access_token": "tok-1", "expires_on": expires.to_string(), "resource": "https://storage.azure.com/", "token_type": "Bearer"})).into_response();
    }
    if let Some(rest) = path.strip_prefix("/fakeacct/") {
        return azure(&mut f, &req, rest, n);
    }
    let Some(rest) = path.strip_prefix("/evidence") else {
        return s3_error(404, "NoSuchBucket", "no such bucket");
    };
    let key = rest.trim_start_matches('/').to_owned();
    let q = &req.query;
    match (req.method.as_str(), key.is_empty()) {
        ("GET", true) if q.contains("versioning") => with_headers(200, vec![], "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>".into()),
        ("GET", true) if q.contains("object-lock") => with_headers(200, vec![], "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>".into()),
        ("GET", true) if q.contains("encryption") => with_headers(200, vec![], "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>".into()),
        ("GET", true) if q.contains("logging") => with_headers(200, vec![], "<BucketLoggingStatus><LoggingEnabled><TargetBucket>logs</TargetBucket><TargetPrefix>evidence/</TargetPrefix></LoggingEnabled></BucketLoggingStatus>".into()),
        ("GET", true) if q.contains("publicAccessBlock") => with_headers(200, vec![], "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>".into()),
        ("GET", true) if q.contains("list-type=2") => {
            let prefix = req.q("prefix").unwrap_or_default();
            let items: String = f.objects.keys().filter(|k| k.starts_with(&prefix)).map(|k| format!("<Contents><Key>{k}</Key></Contents>")).collect();
            with_headers(200, vec![], format!("<ListBucketResult><IsTruncated>false</IsTruncated>{items}</ListBucketResult>"))
        }
        ("PUT", false) if q.contains("uploadId") => {
            let id = req.q("uploadId").unwrap();
            let part: u32 = req.q("partNumber").unwrap().parse().unwrap();
            if req.h("x-amz-checksum-crc64nvme") != Some(&crc(&req.body)) {
                return s3_error(400, "BadDigest", "The CRC64NVME you specified did not match the calculated checksum.");
            }
            f.uploads.get_mut(&id).unwrap().2.insert(part, req.body.clone());
            with_headers(200, vec![("etag".into(), format!("\"p{part}\"")), ("x-amz-checksum-crc64nvme".into(), crc(&req.body))], String::new())
        }
        ("PUT", false) if q.contains("retention") || q.contains("legal-hold") => s3_error(400, "Unexpected", "custos must never change retention"),
        ("PUT", false) => {
            if f.objects.contains_key(&key) && req.h("if-none-match") == Some("*") {
                return s3_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
            }
            if req.h("x-amz-server-side-encryption-aws-kms-key-id") == Some("missing-key") {
                return s3_error(400, "KMS.NotFoundException", "Invalid keyId missing-key");
            }
            if req.h("x-amz-object-lock-mode").is_some() && req.h("x-amz-sdk-checksum-algorithm").is_none() && req.h("content-md5").is_none() {
                return s3_error(400, "InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters");
            }
            match req.h("x-amz-checksum-sha256") {
                Some(c) if c != sha_b64(&req.body) => return s3_error(400, "BadDigest", "The SHA256 you specified did not match the calculated checksum."),
                Some(_) => {}
                None => return s3_error(400, "Unexpected", "custos always sends x-amz-checksum-sha256"),
            }
            let mut kept: BTreeMap<String, String> = S3_ECHO.iter().filter_map(|h| Some((h.to_string(), req.h(h)?.to_owned()))).collect();
            kept.insert("x-amz-checksum-sha256".into(), sha_b64(&req.body));
            if let Some(k) = req.h("x-amz-server-side-encryption-aws-kms-key-id") {
                kept.insert("x-amz-server-side-encryption-aws-kms-key-id".into(), kms_arn(k));
            }
            let version = format!("v{n}");
            f.objects.insert(key, Obj { body: req.body.clone(), headers: kept.clone(), version: version.clone() });
            let mut h: Vec<(String, String)> = kept.into_iter().filter(|(k, _)| !k.starts_with("x-amz-object-lock") && k != "x-amz-meta-sha256").collect();
            h.push(("x-amz-version-id".into(), version));
            h.push(("x-amz-request-id".into(), format!("req-{n}")));
            with_headers(200, h, String::new())
        }
        ("POST", false) if q.contains("uploads") => {
            let kept: BTreeMap<String, String> = S3_ECHO.iter().chain(["x-amz-checksum-algorithm", "x-amz-checksum-type"].iter()).filter_map(|h| Some((h.to_string(), req.h(h)?.to_owned()))).collect();
            let mut kept = kept;
            if let Some(k) = req.h("x-amz-server-side-encryption-aws-kms-key-id") {
                kept.insert("x-amz-server-side-encryption-aws-kms-key-id".into(), kms_arn(k));
            }
            let id = format!("up{n}");
            f.uploads.insert(id.clone(), (key.clone(), kept, BTreeMap::new()));
            with_headers(200, vec![], format!("<InitiateMultipartUploadResult><Bucket>evidence</Bucket><Key>{key}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"))
        }
        ("POST", false) if q.contains("uploadId") => {
            let id = req.q("uploadId").unwrap();
            let (k, mut kept, parts) = f.uploads.remove(&id).unwrap();
            let whole: Vec<u8> = parts.values().flat_map(|b| b.iter().copied()).collect();
            if kept.get("x-amz-checksum-type").map(String::as_str) != Some("FULL_OBJECT") || req.h("x-amz-checksum-type") != Some("FULL_OBJECT") {
                return s3_error(400, "InvalidRequest", "The upload was created using a COMPOSITE checksum type");
            }
            if req.h("x-amz-checksum-crc64nvme") != Some(&crc(&whole)) {
                return s3_error(400, "BadDigest", "The CRC64NVME you specified did not match the calculated checksum.");
            }
            if f.objects.contains_key(&k) && req.h("if-none-match") == Some("*") {
                return s3_error(412, "PreconditionFailed", "pre-condition");
            }
            kept.insert("x-amz-checksum-crc64nvme".into(), crc(&whole));
            let version = format!("v{n}");
            f.objects.insert(k.clone(), Obj { body: whole.clone().into(), headers: kept, version: version.clone() });
            with_headers(200, vec![("x-amz-version-id".into(), version)], format!("<CompleteMultipartUploadResult><Bucket>evidence</Bucket><Key>{k}</Key><ETag>\"m-{}\"</ETag><ChecksumCRC64NVME>{}</ChecksumCRC64NVME><ChecksumType>FULL_OBJECT</ChecksumType></CompleteMultipartUploadResult>", parts.len(), crc(&whole)))
        }
        ("DELETE", false) if q.contains("uploadId") => with_headers(204, vec![], String::new()),
        ("HEAD", false) => match f.objects.get(&key) {
            None => with_headers(404, vec![], String::new()),
            Some(o) => {
                let mut h: Vec<(String, String)> = o.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                h.push(("content-length".into(), o.body.len().to_string()));
                h.push(("x-amz-version-id".into(), o.version.clone()));
                if h.iter().any(|(k, _)| k == "x-amz-checksum-crc64nvme") {
                    h.push(("etag".into(), "\"m-3\"".into()));
                }
                let mut r = with_headers(200, h, String::new());
                // HEAD carries the length of the object, not of an (empty) body.
                r.headers_mut().insert("content-length", o.body.len().to_string().parse().unwrap());
                r
            }
        },
        _ => s3_error(400, "Unexpected", &format!("{} {}?{}", req.method, req.path, req.query)),
    }
}

const AZ_KEEP: &[&str] = &[
    "x-ms-meta-sha256",
    "x-ms-immutability-policy-until-date",
    "x-ms-immutability-policy-mode",
    "x-ms-legal-hold",
    "x-ms-encryption-scope",
];

fn azure(f: &mut Fake, req: &Req, rest: &str, n: u64) -> Response {
    if req.h("authorization") != Some("Bearer tok-1") {
        return az_error(403, "AuthenticationFailed");
    }
    let (container, blob) = rest.split_once('/').unwrap_or((rest, ""));
    assert_eq!(container, "evidence");
    let key = format!("az:{blob}");
    match req.method.as_str() {
        "HEAD" if blob.is_empty() => with_headers(
            200,
            vec![
                (
                    "x-ms-immutable-storage-with-versioning-enabled".into(),
                    "true".into(),
                ),
                (
                    "x-ms-default-encryption-scope".into(),
                    "matter-scope".into(),
                ),
            ],
            String::new(),
        ),
        "GET" if blob.is_empty() => {
            let prefix = format!("az:{}", req.q("prefix").unwrap_or_default());
            let items: String = f
                .objects
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .map(|k| format!("<Blob><Name>{}</Name></Blob>", &k[3..]))
                .collect();
            with_headers(
                200,
                vec![],
                format!(
                    "<EnumerationResults><Blobs>{items}</Blobs><NextMarker/></EnumerationResults>"
                ),
            )
        }
        "PUT" if req.query.contains("comp=block&") || req.q("comp").as_deref() == Some("block") => {
            if req.h("content-md5") != Some(&md5_b64(&req.body)) {
                return az_error(400, "Md5Mismatch");
            }
            let id = req.q("blockid").unwrap();
            f.blocks.insert(format!("{key}#{id}"), req.body.clone());
            with_headers(201, vec![], String::new())
        }
        "PUT" => {
            if f.objects.contains_key(&key) && req.h("if-none-match") == Some("*") {
                return az_error(409, "BlobAlreadyExists");
            }
            let (data, md5) = if req.q("comp").as_deref() == Some("blocklist") {
                let xml = String::from_utf8_lossy(&req.body).to_string();
                let data: Vec<u8> = xml
                    .split("<Latest>")
                    .skip(1)
                    .map(|s| s.split("</Latest>").next().unwrap())
                    .flat_map(|id| {
                        f.blocks[&format!("{key}#{id}")]
                            .iter()
                            .copied()
                            .collect::<Vec<_>>()
                    })
                    .collect();
                (
                    data,
                    req.h("x-ms-blob-content-md5").unwrap_or("").to_owned(),
                )
            } else {
                if req.h("content-md5") != Some(&md5_b64(&req.body)) {
                    return az_error(400, "Md5Mismatch");
                }
                (req.body.to_vec(), md5_b64(&req.body))
            };
            let mut kept: BTreeMap<String, String> = AZ_KEEP
                .iter()
                .filter_map(|h| Some((h.to_string(), req.h(h)?.to_owned())))
                .collect();
            kept.insert("content-md5".into(), md5.clone());
            let version = format!("2026-11-26T00:00:{n:02}.0000000Z");
            f.objects.insert(
                key,
                Obj {
                    body: data.into(),
                    headers: kept,
                    version: version.clone(),
                },
            );
            let mut h = vec![
                ("x-ms-version-id".into(), version),
                ("x-ms-request-id".into(), format!("req-{n}")),
                ("x-ms-request-server-encrypted".into(), "true".into()),
            ];
            if req.q("comp").is_none() {
                h.push(("content-md5".into(), md5));
            }
            if let Some(s) = req.h("x-ms-encryption-scope") {
                h.push(("x-ms-encryption-scope".into(), s.to_owned()));
            }
            with_headers(201, h, String::new())
        }
        "HEAD" => match f.objects.get(&key) {
            None => az_error(404, "BlobNotFound"),
            Some(o) => {
                let mut h: Vec<(String, String)> = o
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                h.push(("x-ms-version-id".into(), o.version.clone()));
                h.push(("x-ms-server-encrypted".into(), "true".into()));
                let mut r = with_headers(200, h, String::new());
                r.headers_mut()
                    .insert("content-length", o.body.len().to_string().parse().unwrap());
                r
            }
        },
        // What Azure answers for a blob under an immutability policy or legal hold.
        "DELETE" => az_error(409, "BlobImmutableDueToPolicy"),
        _ => az_error(400, "Unexpected"),
    }
}

async fn serve() -> (String, Shared) {
    let st: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(st.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, st)
}

/// A sealed bag made by hand that `custos verify` accepts (as `custos upload` requires): the
/// given payload files beside an empty custody record (no item, outside `data/recordings/`),
/// a one-line custody log, the seals in bag-info, the manifests.
fn make_bag(root: &Path, files: &[(&str, Vec<u8>)]) {
    let sha = |d: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d));
    std::fs::create_dir_all(root.join("data")).unwrap();
    let query = b"{\"query\":\"made by hand\"}\n".to_vec();
    let items = b"Conversation_ID,Recording_ID\n".to_vec();
    let rows = b"Recording_ID,Conversation_ID,File_Name,SHA256_Hash,Outcome\n".to_vec();
    let line = format!(
        "{{\"seq\":1,\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":\"export-run\",\"prev\":\"{}\"}}",
        "0".repeat(64)
    );
    let head = sha(line.as_bytes());
    let mut all: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(r, d)| (r.to_string(), d.clone()))
        .collect();
    all.extend([
        ("data/query.json".to_owned(), query.clone()),
        ("data/manifest.csv".to_owned(), items.clone()),
        ("data/chain_of_custody.csv".to_owned(), rows),
        (
            "data/custody_log.jsonl".to_owned(),
            format!("{line}\n").into_bytes(),
        ),
    ]);
    all.sort();
    let mut manifest = String::new();
    let mut bytes = 0;
    for (rel, data) in &all {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        manifest.push_str(&format!("{}  {rel}\n", sha(data)));
        bytes += data.len();
    }
    let tags = [
        (
            "bagit.txt",
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".to_owned(),
        ),
        (
            "bag-info.txt",
            format!(
                "Payload-Oxum: {bytes}.{}\nExport-Id: e-1\nExternal-Identifier: M-9\nQuery-SHA256: {}\nManifest-SHA256: {}\nCustody-Log-Head: {head}\n",
                all.len(),
                sha(&query),
                sha(&items)
            ),
        ),
        ("manifest-sha256.txt", manifest),
    ];
    let mut tag = String::new();
    for (name, text) in &tags {
        std::fs::write(root.join(name), text).unwrap();
        tag.push_str(&format!("{}  {name}\n", sha(text.as_bytes())));
    }
    std::fs::write(root.join("tagmanifest-sha256.txt"), tag).unwrap();
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 2654435761 % 251) as u8 ^ seed)
        .collect()
}

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn s3_every_put_carries_the_sealed_sha256_lock_and_kms_and_big_files_go_as_full_object_crc64_multipart()
 {
    let dir = tmp("fake-s3");
    let root = dir.join("bag");
    let big = payload(7, 12 * MIB + 12345);
    make_bag(
        &root,
        &[
            ("data/a.wav", payload(1, 4000)),
            ("data/b.json", b"{\"x\":1}".to_vec()),
            ("data/big.wav", big.clone()),
        ],
    );
    let (url, st) = serve().await;
    let args = [
        "upload",
        root.to_str().unwrap(),
        "s3://evidence/m9",
        "--endpoint",
        &url,
        "--lock-mode",
        "compliance",
        "--retain-until",
        "2099-01-31",
        "--legal-hold",
        "--kms-key-id",
        "key-1",
        "--require-worm",
        "--multipart-threshold",
        &(8 * MIB).to_string(),
        "--part-size",
        &(5 * MIB).to_string(),
    ];
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let log = st.lock().unwrap().log.clone();
    let puts: Vec<&Req> = log
        .iter()
        .filter(|r| r.method == "PUT" && !r.query.contains("uploadId"))
        .collect();
    assert_eq!(
        puts.len(),
        11,
        "a.wav, b.json, the four custody-record files, the four tag files, then the receipt, in single PUTs"
    );
    assert!(
        puts.last()
            .unwrap()
            .path
            .contains("/receipts/upload-s3-evidence-")
    );
    let puts = &puts[..10];
    for r in puts {
        assert_eq!(
            r.h("x-amz-checksum-sha256"),
            Some(sha_b64(&r.body).as_str()),
            "{}",
            r.path
        );
        assert_eq!(r.h("x-amz-sdk-checksum-algorithm"), Some("SHA256"));
        assert_eq!(r.h("if-none-match"), Some("*"));
        assert_eq!(r.h("x-amz-object-lock-mode"), Some("COMPLIANCE"));
        assert_eq!(
            r.h("x-amz-object-lock-retain-until-date"),
            Some("2099-01-31T00:00:00Z")
        );
        assert_eq!(r.h("x-amz-object-lock-legal-hold"), Some("ON"));
        assert_eq!(r.h("x-amz-server-side-encryption"), Some("aws:kms"));
        assert_eq!(
            r.h("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("key-1")
        );
        assert!(
            r.h("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "))
        );
    }
    // The tag manifest is stored last: after everything it pins.
    assert!(
        puts.last()
            .unwrap()
            .path
            .ends_with("/tagmanifest-sha256.txt")
    );
    // Multipart: created with a full-object CRC-64/NVME and the lock; three parts, each with its
    // CRC (the fake refuses a wrong one); completed with the whole object's CRC.
    let create = log
        .iter()
        .find(|r| r.method == "POST" && r.query.contains("uploads"))
        .unwrap();
    assert_eq!(create.h("x-amz-checksum-algorithm"), Some("CRC64NVME"));
    assert_eq!(create.h("x-amz-checksum-type"), Some("FULL_OBJECT"));
    assert_eq!(create.h("x-amz-object-lock-mode"), Some("COMPLIANCE"));
    assert_eq!(
        create.h("x-amz-meta-sha256"),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&big)).as_str())
    );
    let mut parts: Vec<(u32, usize)> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.query.contains("uploadId"))
        .map(|r| (r.q("partNumber").unwrap().parse().unwrap(), r.body.len()))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![(1, 5 * MIB), (2, 5 * MIB), (3, 2 * MIB + 12345)]
    );
    let complete = log
        .iter()
        .find(|r| r.method == "POST" && r.query.contains("uploadId"))
        .unwrap();
    assert_eq!(
        complete.h("x-amz-checksum-crc64nvme"),
        Some(crc(&big).as_str())
    );
    assert_eq!(complete.h("if-none-match"), Some("*"));
    assert_eq!(
        st.lock().unwrap().objects["m9/data/big.wav"].body.as_ref(),
        big.as_slice()
    );

    let (_, ev) = receipt(&root);
    let big_ev = ev.iter().find(|e| e["path"] == "data/big.wav").unwrap();
    assert_eq!(big_ev["event"], "object-stored");
    assert_eq!(big_ev["readBack"]["crc64nvme"], crc(&big));
    assert_eq!(
        big_ev["readBack"]["kmsKeyId"],
        "arn:aws:kms:us-east-1:111122223333:key/key-1"
    );
    assert_eq!(ev.last().unwrap()["event"], "upload-complete");

    // A re-run asking for a shorter retention, after a crash that lost the receipt's last
    // lines: objects are found stored and receipted; no retention is ever changed, nothing is
    // deleted or written twice.
    let rpath = std::fs::read_dir(root.join("receipts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines: Vec<String> = std::fs::read_to_string(&rpath)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&rpath, lines[..3].join("\n") + "\n").unwrap();
    // The receipt is stored only when an upload completes: a crash before that leaves none.
    st.lock()
        .unwrap()
        .objects
        .retain(|k, _| !k.starts_with("m9/receipts/"));
    let mut shorter = args.to_vec();
    shorter[8] = "2098-01-01";
    let o = run(custos(&shorter)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = st.lock().unwrap().log.clone();
    assert!(
        !log.iter()
            .any(|r| r.method == "DELETE" && !r.query.contains("uploadId"))
    );
    assert!(
        !log.iter()
            .any(|r| r.query.contains("retention") || r.query.contains("legal-hold"))
    );
    assert_eq!(
        st.lock().unwrap().objects.len(),
        12,
        "eleven files and the receipt"
    );
    assert!(
        log.iter()
            .filter(|r| r.method == "PUT")
            .all(|r| r.h("if-none-match") == Some("*") || r.query.contains("uploadId"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_key_s3_refuses_stops_the_upload_with_its_code() {
    let dir = tmp("fake-kms");
    let root = dir.join("bag");
    make_bag(&root, &[("data/a.wav", payload(1, 4000))]);
    let (url, st) = serve().await;
    let o = run(custos(&[
        "upload",
        root.to_str().unwrap(),
        "s3://evidence/m9",
        "--endpoint",
        &url,
        "--kms-key-id",
        "missing-key",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("KMS.NotFoundException"),
        "{}",
        text(&o)
    );
    assert!(st.lock().unwrap().objects.is_empty());
    let (_, ev) = receipt(&root);
    assert_eq!(ev.last().unwrap()["event"], "upload-stopped");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_put_blob_and_block_lists_carry_md5_immutability_legal_hold_and_scope_with_an_entra_token()
 {
    let dir = tmp("fake-azure");
    let root = dir.join("bag");
    let big = payload(9, 9 * MIB + 77);
    make_bag(
        &root,
        &[
            ("data/a.wav", payload(3, 5000)),
            ("data/big.wav", big.clone()),
        ],
    );
    let (url, st) = serve().await;
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://fakeacct/evidence/m9",
        "--endpoint",
        &format!("{url}/fakeacct"),
        "--lock-mode",
        "compliance",
        "--retain-until",
        "2099-01-31",
        "--legal-hold",
        "--encryption-scope",
        "matter-scope",
        "--require-worm",
        "--multipart-threshold",
        &(4 * MIB).to_string(),
        "--part-size",
        &(4 * MIB).to_string(),
    ]);
    c.env("AZURE_TENANT_ID", "t-1")
        .env("AZURE_CLIENT_ID", "c-1")
        .env("AZURE_CLIENT_SECRET", "s3cret")
        .env("AZURE_AUTHORITY_HOST", &url);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    {
        let f = st.lock().unwrap();
        assert_eq!(f.tokens, 1, "one token for the whole upload");
        let writes: Vec<&Req> = f
            .log
            .iter()
            .filter(|r| r.method == "PUT" && r.q("comp").as_deref() != Some("block"))
            .collect();
        assert_eq!(
            writes.len(),
            11,
            "a.wav, big.wav's block list, four custody-record files, four tag files, the receipt"
        );
        for r in &writes {
            assert_eq!(r.h("if-none-match"), Some("*"), "{}", r.path);
            assert_eq!(
                r.h("x-ms-immutability-policy-until-date"),
                Some("Sat, 31 Jan 2099 00:00:00 GMT")
            );
            assert_eq!(r.h("x-ms-immutability-policy-mode"), Some("Locked"));
            assert_eq!(r.h("x-ms-legal-hold"), Some("true"));
            assert_eq!(r.h("x-ms-encryption-scope"), Some("matter-scope"));
            assert!(r.h("x-ms-meta-sha256").is_some_and(|s| s.len() == 64));
            if r.q("comp").is_none() {
                assert_eq!(r.h("content-md5"), Some(md5_b64(&r.body).as_str()));
                assert_eq!(r.h("x-ms-blob-type"), Some("BlockBlob"));
            } else {
                assert_eq!(r.h("x-ms-blob-content-md5"), Some(md5_b64(&big).as_str()));
            }
        }
        let blocks: Vec<&Req> = f
            .log
            .iter()
            .filter(|r| r.q("comp").as_deref() == Some("block"))
            .collect();
        assert_eq!(blocks.len(), 3);
        assert!(
            blocks
                .iter()
                .all(|r| r.h("content-md5") == Some(md5_b64(&r.body).as_str())
                    && r.h("x-ms-encryption-scope") == Some("matter-scope"))
        );
        assert_eq!(
            f.objects["az:m9/data/big.wav"].body.as_ref(),
            big.as_slice()
        );
        assert!(f.log.iter().all(|r| r.method != "DELETE"));
    }
    let (_, ev) = receipt(&root);
    let a = ev.iter().find(|e| e["path"] == "data/a.wav").unwrap();
    assert_eq!(a["readBack"]["lockMode"], "Locked");
    assert_eq!(a["readBack"]["retainUntil"], "2099-01-31T00:00:00Z");
    assert_eq!(a["readBack"]["legalHold"], true);
    assert_eq!(a["readBack"]["encryptionScope"], "matter-scope");
    assert_eq!(ev.last().unwrap()["event"], "upload-complete");

    // A wrong client secret: refused before anything is written.
    let other = dir.join("bag2");
    make_bag(&other, &[("data/a.wav", payload(4, 10))]);
    let mut c = custos(&[
        "upload",
        other.to_str().unwrap(),
        "azure://fakeacct/evidence/m10",
        "--endpoint",
        &format!("{url}/fakeacct"),
    ]);
    c.env("AZURE_TENANT_ID", "t-1")
        .env("AZURE_CLIENT_ID", "c-1")
        .env("AZURE_CLIENT_SECRET", "wrong")
        .env("AZURE_AUTHORITY_HOST", &url);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid_client"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_killed_mid_way_resumes_to_a_complete_receipt_and_stores_each_object_once() {
    let dir = tmp("fake-kill");
    let root = dir.join("bag");
    let files: Vec<(String, Vec<u8>)> = (0..30u8)
        .map(|i| (format!("data/r{i:02}.wav"), payload(i, 3000 + i as usize)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    make_bag(&root, &refs);
    let (url, st) = serve().await;
    st.lock().unwrap().put_delay_ms = 150;
    let args = [
        "upload",
        root.to_str().unwrap(),
        "s3://evidence/m9",
        "--endpoint",
        &url,
        "--upload-concurrency",
        "2",
    ];
    let mut child = custos(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL: no clean-up, the lock goes with the process) once ten objects are
    // receipted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lines = std::fs::read_dir(root.join("receipts"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .map(|t| t.matches("\"object-stored\"").count())
            .unwrap_or(0);
        if lines >= 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never got going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A second upload to the same destination meanwhile is refused: it would interleave its
    // lines into the receipt's chain.
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("another custos upload to this destination is running"),
        "{}",
        text(&o)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, before) = receipt(&root);
    assert!(
        before.iter().all(|e| e["event"] != "upload-complete"),
        "killed mid-way"
    );
    let stored_before = st.lock().unwrap().objects.len();
    assert!(
        stored_before < 38,
        "{stored_before} objects stored before the kill"
    );

    st.lock().unwrap().put_delay_ms = 0;
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (_, ev) = receipt(&root);
    assert_eq!(ev.last().unwrap()["event"], "upload-complete");
    let stored: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "object-stored")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = stored.iter().copied().collect();
    assert_eq!(
        (stored.len(), unique.len()),
        (38, 38),
        "each object receipted once"
    );
    let f = st.lock().unwrap();
    assert_eq!(
        f.objects.len(),
        39,
        "30 recordings, 4 custody-record files, 4 tag files and the receipt"
    );
    // Every write was a conditional create: one that met an object stored before the kill was
    // refused, never an overwrite.
    assert!(
        f.log
            .iter()
            .filter(|r| r.method == "PUT")
            .all(|r| r.h("if-none-match") == Some("*"))
    );
    drop(f);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_workload_identity_and_managed_identity_tokens() {
    let dir = tmp("fake-azure-identities");
    let (url, st) = serve().await;
    let token_file = dir.join("federated-token");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&token_file, "jwt-abc\n").unwrap();
    let endpoint = format!("{url}/fakeacct");
    for (i, env) in [
        vec![
            ("AZURE_TENANT_ID", "t-1".to_owned()),
            ("AZURE_CLIENT_ID", "c-1".to_owned()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.to_str().unwrap().to_owned(),
            ),
            ("AZURE_AUTHORITY_HOST", url.clone()),
        ],
        vec![
            ("IDENTITY_ENDPOINT", format!("{url}/msi/token")),
            ("IDENTITY_HEADER", "h-1".to_owned()),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let root = dir.join(format!("bag{i}"));
        make_bag(&root, &[("data/a.wav", payload(i as u8, 100))]);
        let target = format!("azure://fakeacct/evidence/id{i}");
        let mut c = custos(&[
            "upload",
            root.to_str().unwrap(),
            &target,
            "--endpoint",
            &endpoint,
        ]);
        c.envs(env);
        let o = run(c).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let f = st.lock().unwrap();
    assert_eq!(f.tokens, 2, "one token per upload");
    assert!(
        f.objects.contains_key("az:id0/data/a.wav") && f.objects.contains_key("az:id1/data/a.wav")
    );
    drop(f);
    std::fs::remove_dir_all(&dir).unwrap();
}
