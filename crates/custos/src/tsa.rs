//! RFC 3161 trusted timestamps: a Time Stamping Authority signs "this SHA-256 existed at this
//! time", which the exporter cannot fake (a signature's own time is self-asserted).
//!
//! The request and the token's TSTInfo are small DER structures, written and read here; the
//! token's CMS signature and its certificate chain are checked with the standard tool,
//! `openssl ts -verify` (docs/verification.md shows the command), which `custos verify
//! --tsa-ca` runs.

use crate::package::files;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::Sha256;

/// The largest answer read from a TSA (a token is a few kilobytes, with its certificates).
const MAX_REPLY: usize = 1 << 20;

/// Why a timestamp could not be had, or does not say what it should.
#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    /// The TSA could not be reached or answered something else than a granted token.
    #[error("{url}: {why}")]
    Refused {
        /// The TSA.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The token is not a well-formed RFC 3161 token.
    #[error("not an RFC 3161 timestamp: {0}")]
    Malformed(String),
    /// `openssl`, which checks a token's signature, could not run.
    #[error(
        "cannot check the token's signature: openssl ts -verify: {0} (apt-get install openssl)"
    )]
    Tool(String),
}

/// How far in the future a token's time may be (clocks differ a little; a TSA's never by more).
pub const FUTURE_SKEW: time::Duration = time::Duration::minutes(10);

/// A token dated later than now (plus [`FUTURE_SKEW`]) attests nothing: refused.
pub fn check_time(a: &Attested) -> Result<(), String> {
    let t = &a.gen_time;
    let digits: String = t.chars().take(14).collect();
    let latest = time::OffsetDateTime::now_utc() + FUTURE_SKEW;
    let now = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        latest.year(),
        u8::from(latest.month()),
        latest.day(),
        latest.hour(),
        latest.minute(),
        latest.second()
    );
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "its time '{}' is not a GeneralizedTime",
            crate::shown::text(t)
        ));
    }
    if digits > now {
        return Err(format!(
            "dated {}, in the future: a TSA does not sign times to come",
            crate::shown::text(t)
        ));
    }
    Ok(())
}

/// `openssl ts -verify` of `token` (a TimeStampResp) for the SHA-256 `sha256_hex`, on a copy
/// of what was read (never on a package's own paths, which a hostile package could swap for a
/// FIFO): the CMS signature, the imprint, and the signer's certificate chain to `ca` (the TSA's certificates, PEM). With
/// no `ca`, the certificate the token carries is taken as the anchor: that proves the token is
/// whole and signed by the key its certificate names (with the timeStamping purpose), not who
/// that is. `Ok(Err(why))` when openssl refuses the token.
pub fn openssl_verify(
    token: &[u8],
    sha256_hex: &str,
    ca: Option<&Path>,
) -> Result<Result<(), String>, TsaError> {
    let dir = std::env::temp_dir().join(format!(
        "custos-ts-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let tool = |e: std::io::Error| TsaError::Tool(e.to_string());
    crate::durable::make_dirs(&dir).map_err(|e| TsaError::Tool(e.to_string()))?;
    let result = verify_in(&dir, token, sha256_hex, ca);
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(tool)
}

fn verify_in(
    dir: &Path,
    token: &[u8],
    sha256_hex: &str,
    ca: Option<&Path>,
) -> std::io::Result<Result<(), String>> {
    use std::process::{Command, Stdio};
    let t = dir.join("token.tsr");
    std::fs::write(&t, token)?;
    let mut cmd = Command::new("openssl");
    cmd.args(["ts", "-verify", "-in"])
        .arg(&t)
        .args(["-digest", sha256_hex])
        .stdin(Stdio::null());
    match ca {
        Some(ca) => {
            cmd.arg("-CAfile").arg(ca);
        }
        None => {
            // The token's own certificates, as the anchor.
            let pem = dir.join("embedded.pem");
            let token_p7 = dir.join("token.p7");
            let o = Command::new("openssl")
                .args(["ts", "-reply", "-in"])
                .arg(&t)
                .args(["-token_out", "-out"])
                .arg(&token_p7)
                .stdin(Stdio::null())
                .output()?;
            if !o.status.success() {
                return Ok(Err("openssl cannot read the reply's token".into()));
            }
            let o = Command::new("openssl")
                .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
                .arg(&token_p7)
                .arg("-out")
                .arg(&pem)
                .stdin(Stdio::null())
                .output()?;
            let has_cert =
                std::fs::read_to_string(&pem).is_ok_and(|p| p.contains("BEGIN CERTIFICATE"));
            if !o.status.success() || !has_cert {
                return Ok(Err(
                    "the token carries no certificate to check its signature with".into(),
                ));
            }
            cmd.arg("-CAfile").arg(&pem).arg("-partial_chain");
        }
    }
    let o = cmd.output()?;
    let said = String::from_utf8_lossy(&o.stdout);
    if o.status.success() && said.contains("Verification: OK") {
        return Ok(Ok(()));
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let why: String = err
        .lines()
        .chain(said.lines())
        .find(|l| l.contains("error") || l.contains("FAILED"))
        .unwrap_or("refused")
        .chars()
        .take(300)
        .collect();
    Ok(Err(format!(
        "openssl ts -verify: {}",
        crate::shown::text(&why)
    )))
}

/// Whether `token` is one to keep for a file whose SHA-256 is `digest`: it attests that
/// digest, is not dated in the future, and its signature checks (against `ca`, or its own
/// certificate).
pub fn check_token(token: &[u8], digest: &Sha256, ca: Option<&Path>) -> Result<Attested, String> {
    let a = read(token).map_err(|e| e.to_string())?;
    if a.sha256 != digest.hex() {
        return Err(format!(
            "attests SHA-256 {}, the file is {digest}",
            a.sha256
        ));
    }
    check_time(&a)?;
    openssl_verify(token, &a.sha256, ca).map_err(|e| e.to_string())??;
    Ok(a)
}

/// [`check_token`] off the async runtime (it runs `openssl`).
async fn check_token_blocking(
    token: Vec<u8>,
    digest: &Sha256,
    ca: Option<&Path>,
) -> Result<Attested, String> {
    let (digest, ca) = (*digest, ca.map(Path::to_path_buf));
    tokio::task::spawn_blocking(move || check_token(&token, &digest, ca.as_deref()))
        .await
        .map_err(|e| format!("the check did not finish: {e}"))?
}

/// What a token attests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attested {
    /// The time, as the TSA wrote it (GeneralizedTime, UTC), e.g. `20261130194249Z`.
    pub gen_time: String,
    /// The SHA-256 it timestamps, hex.
    pub sha256: String,
    /// The token's serial number, hex.
    pub serial: String,
    /// The request's nonce, if the token repeats one.
    pub nonce: Option<u64>,
}

// ---- DER, the little of it RFC 3161 needs.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn integer(v: u64) -> Vec<u8> {
    let mut b: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if b.first().is_none_or(|x| x & 0x80 != 0) {
        b.insert(0, 0);
    }
    tlv(0x02, &b)
}

/// id-sha256, 2.16.840.1.101.3.4.2.1.
const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// A TimeStampReq (RFC 3161 §2.4.1) for `digest`: version 1, SHA-256 message imprint, the
/// nonce, and the TSA's certificate asked for (so the token can be checked on its own).
pub fn request(digest: &Sha256, nonce: u64) -> Vec<u8> {
    let alg = tlv(0x30, &[tlv(0x06, SHA256_OID), vec![0x05, 0x00]].concat());
    let imprint = tlv(0x30, &[alg, tlv(0x04, &digest.bytes())].concat());
    tlv(
        0x30,
        &[integer(1), imprint, integer(nonce), vec![0x01, 0x01, 0xff]].concat(),
    )
}

/// One DER element: (tag, content, the rest after it).
fn next(b: &[u8]) -> Result<(u8, &[u8], &[u8]), TsaError> {
    let bad = |w: &str| TsaError::Malformed(w.to_owned());
    let (&tag, rest) = b.split_first().ok_or_else(|| bad("truncated"))?;
    let (&l, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    let (len, rest) = if l < 0x80 {
        (usize::from(l), rest)
    } else {
        let k = usize::from(l & 0x7f);
        if k == 0 || k > 4 || rest.len() < k {
            return Err(bad("bad length"));
        }
        let n = rest[..k]
            .iter()
            .fold(0usize, |a, x| (a << 8) | usize::from(*x));
        (n, &rest[k..])
    };
    if rest.len() < len {
        return Err(bad("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The content of the element, which must have `tag`.
fn expect<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), TsaError> {
    let (t, c, rest) = next(b)?;
    if t != tag {
        return Err(TsaError::Malformed(format!(
            "{what}: tag 0x{t:02x}, expected 0x{tag:02x}"
        )));
    }
    Ok((c, rest))
}

/// The TSTInfo DER inside a TimeStampResp whose status is granted (0) or granted with mods (1).
fn tst_info(resp: &[u8]) -> Result<&[u8], TsaError> {
    let (resp, _) = expect(resp, 0x30, "TimeStampResp")?;
    let (status, rest) = expect(resp, 0x30, "PKIStatusInfo")?;
    let (code, _) = expect(status, 0x02, "PKIStatus")?;
    if !matches!(code, [0] | [1]) {
        return Err(TsaError::Malformed(format!(
            "the TSA did not grant the timestamp (PKIStatus {code:?})"
        )));
    }
    let (content_info, _) = expect(rest, 0x30, "timeStampToken")?;
    let (_oid, rest) = expect(content_info, 0x06, "contentType")?;
    let (explicit, _) = expect(rest, 0xa0, "content")?;
    let (signed, _) = expect(explicit, 0x30, "SignedData")?;
    let (_version, rest) = expect(signed, 0x02, "version")?;
    let (_algs, rest) = expect(rest, 0x31, "digestAlgorithms")?;
    let (encap, _) = expect(rest, 0x30, "encapContentInfo")?;
    let (_type, rest) = expect(encap, 0x06, "eContentType")?;
    let (explicit, _) = expect(rest, 0xa0, "eContent")?;
    let (octets, _) = expect(explicit, 0x04, "eContent")?;
    Ok(octets)
}

/// What the token in a TimeStampResp attests (its signature is not checked here).
pub fn read(resp: &[u8]) -> Result<Attested, TsaError> {
    let (info, _) = expect(tst_info(resp)?, 0x30, "TSTInfo")?;
    let (_version, rest) = expect(info, 0x02, "version")?;
    let (_policy, rest) = expect(rest, 0x06, "policy")?;
    let (imprint, rest) = expect(rest, 0x30, "messageImprint")?;
    let (alg, hashed) = expect(imprint, 0x30, "hashAlgorithm")?;
    let (oid, _) = expect(alg, 0x06, "algorithm")?;
    if oid != SHA256_OID {
        return Err(TsaError::Malformed("the imprint is not SHA-256".into()));
    }
    let (hashed, _) = expect(hashed, 0x04, "hashedMessage")?;
    let (serial, rest) = expect(rest, 0x02, "serialNumber")?;
    let (time, mut rest) = expect(rest, 0x18, "genTime")?;
    let mut nonce = None;
    while !rest.is_empty() {
        let (tag, c, after) = next(rest)?;
        if tag == 0x02 {
            nonce = Some(c.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)));
        }
        rest = after;
    }
    Ok(Attested {
        gen_time: String::from_utf8_lossy(time).into_owned(),
        sha256: hex::encode(hashed),
        serial: hex::encode(serial),
        nonce,
    })
}

/// Asks the TSA at `url` to timestamp `digest`: the TimeStampResp, checked to be granted, to
/// attest exactly this digest and nonce, and to verify ([`check_token`], against `ca` when
/// given).
pub async fn stamp(
    http: &reqwest::Client,
    url: &str,
    digest: &Sha256,
    ca: Option<&Path>,
) -> Result<(Vec<u8>, Attested), TsaError> {
    let refused = |why: String| TsaError::Refused {
        url: crate::custody::redact_url(url),
        why,
    };
    // Plain http is allowed, as for most public TSAs: the token is signed, and that signature
    // (not the transport) is what `openssl ts -verify` and `custos verify --tsa-ca` check.
    // Credentials in the URL are not: they would end up in reports.
    match reqwest::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.username().is_empty()
                && u.password().is_none() => {}
        _ => return Err(refused("not an http(s) URL without credentials".into())),
    }
    let nonce = u64::from_be_bytes(
        Sha256::of(uuid::Uuid::new_v4().as_bytes()).bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    ) >> 1;
    let resp = http
        .post(url)
        .header("Content-Type", "application/timestamp-query")
        .header("Accept", "application/timestamp-reply")
        .timeout(Duration::from_secs(60))
        .body(request(digest, nonce))
        .send()
        .await
        .map_err(|e| refused(e.without_url().to_string()))?;
    let status = resp.status();
    let body = crate::http::read_limited(resp, MAX_REPLY)
        .await
        .map_err(|(_, why)| refused(why))?;
    if !status.is_success() {
        return Err(refused(format!("HTTP {}", status.as_u16())));
    }
    let attested = read(&body).map_err(|e| refused(e.to_string()))?;
    if attested.sha256 != digest.hex() || attested.nonce != Some(nonce) {
        return Err(refused(
            "the token attests another digest or nonce than asked".into(),
        ));
    }
    // Kept only if it proves itself: a token that does not check would be stored as the bag's
    // timestamp and stop a real one from being asked for.
    let body = body.to_vec();
    check_token_blocking(body.clone(), digest, ca)
        .await
        .map_err(|why| refused(format!("the token is refused: {why}")))?;
    Ok((body, attested))
}

/// One TSA asked to timestamp one file.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    /// The file timestamped (as named to the user: `tagmanifest-sha256.txt`, a receipt…).
    pub file: String,
    /// The TSA.
    pub tsa: String,
    /// The attested time (GeneralizedTime), when it did.
    pub time: Option<String>,
    /// Why not, when it did not.
    pub error: Option<String>,
}

/// The token's path for `file`: `<file>.tsr` beside it.
pub fn token_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".tsr");
    PathBuf::from(p)
}

/// Timestamps `file` (shown as `name`) into `<file>.tsr` with the first of `tsas` that grants
/// a token that verifies (against `ca`, or its own certificate), unless a token that verifies
/// for its current bytes is already there. A token already there that does not verify is set
/// aside (renamed `<file>.tsr.rejected-<time>`, never deleted) and a new one asked for. Both
/// are read as a package's files are: regular files only, never a FIFO or a link. Returns every
/// attempt, and whether the file now has a token (`false`: no TSA granted one; asking again
/// later is safe).
pub async fn stamp_file(
    http: &reqwest::Client,
    tsas: &[String],
    ca: Option<&Path>,
    file: &Path,
    name: &str,
) -> crate::Result<(Vec<Stamp>, bool)> {
    let token = token_path(file);
    let (dir, base) = match (file.parent(), file.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(b)) => (d, b),
        _ => {
            return Err(crate::Error::Config(format!(
                "{}: not a file to timestamp",
                file.display()
            )));
        }
    };
    let files = crate::verify::fsys::Bag::new(dir);
    let refused = |rel: &str, e: crate::verify::fsys::Refused| {
        crate::Error::Config(format!("{}: {}", dir.join(rel).display(), e))
    };
    let data = files.read(base, 1 << 30).map_err(|e| refused(base, e))?;
    let digest = Sha256::of(&data);
    let token_name = format!("{base}.tsr");
    let mut stamps = Vec::new();
    match files.read(&token_name, MAX_REPLY as u64) {
        Err(crate::verify::fsys::Refused::Missing) => {}
        Ok(t) => match check_token_blocking(t, &digest, ca).await {
            Ok(_) => return Ok((Vec::new(), true)),
            Err(why) => set_aside(&token, name, &why, &mut stamps)?,
        },
        Err(e) => return Err(refused(&token_name, e)),
    }
    for url in tsas {
        let (time, error) = match stamp(http, url, &digest, ca).await {
            Ok((der, attested)) => {
                crate::durable::write_durably(&token, &der)?;
                (Some(attested.gen_time), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let granted = time.is_some();
        tracing::info!(file = name, tsa = %crate::custody::redact_url(url), ok = granted, "timestamp");
        stamps.push(Stamp {
            file: name.into(),
            tsa: crate::custody::redact_url(url),
            time,
            error,
        });
        if granted {
            return Ok((stamps, true));
        }
    }
    Ok((stamps, false))
}

/// Renames a token that does not verify out of the way (kept, for whoever wants to see it),
/// and says so among the stamps.
fn set_aside(token: &Path, name: &str, why: &str, stamps: &mut Vec<Stamp>) -> crate::Result<()> {
    let stamp =
        crate::query::format_ms(time::OffsetDateTime::now_utc()).replace([':', '-', '.'], "");
    let mut aside = token.as_os_str().to_owned();
    aside.push(format!(".rejected-{stamp}"));
    std::fs::rename(token, &aside).map_err(|e| crate::Error::io(token, e))?;
    stamps.push(Stamp {
        file: name.into(),
        tsa: "(the token already there)".into(),
        time: None,
        error: Some(format!(
            "set aside as {}: {why}",
            std::path::Path::new(&aside).display()
        )),
    });
    Ok(())
}

/// Timestamps a sealed bag's tag manifest and (when signed) its signature, each unless a
/// token that verifies for its current bytes is already there: an export, a production
/// volume. Every TSA tried is returned; `Err(Error::Timestamp)` when none timestamped one of
/// them (asking again later is safe).
pub async fn stamp_bag(
    root: &Path,
    tsas: &[String],
    ca: Option<&Path>,
) -> crate::Result<Vec<Stamp>> {
    let mut stamps = Vec::new();
    if tsas.is_empty() {
        return Ok(stamps);
    }
    let http = reqwest::Client::new();
    for name in [files::TAG_MANIFEST, files::SIGNATURE] {
        let file = root.join(name);
        if matches!(
            crate::verify::fsys::Bag::new(root).lstat(name),
            Err(crate::verify::fsys::Refused::Missing)
        ) {
            continue;
        }
        let (tried, granted) = stamp_file(&http, tsas, ca, &file, name).await?;
        stamps.extend(tried);
        if !granted {
            return Err(crate::Error::Timestamp(format!(
                "{name}: {}",
                refusals(&stamps)
            )));
        }
    }
    Ok(stamps)
}

/// Why none of `stamps` granted a token, in one line.
pub fn refusals(stamps: &[Stamp]) -> String {
    stamps
        .iter()
        .filter_map(|s| s.error.as_deref())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_rfc_3161s_der() {
        let req = request(&"ab".repeat(32).parse().unwrap(), 1);
        // SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { id-sha256, NULL }, OCTET STRING[32] },
        // INTEGER nonce, BOOLEAN TRUE (certReq) }
        let head = "303c020101303130 0d0609608648016503040201 0500 0420".replace(' ', "");
        assert_eq!(hex::encode(&req[..head.len() / 2]), head);
        assert_eq!(&req[head.len() / 2..head.len() / 2 + 32], &[0xab; 32]);
        assert_eq!(&req[req.len() - 6..], &[0x02, 0x01, 0x01, 0x01, 0x01, 0xff]);
        assert_eq!(req.len(), 62);
        assert!(read(&req).is_err(), "a request is not a reply");
    }

    fn attested(gen_time: &str) -> Attested {
        Attested {
            gen_time: gen_time.into(),
            sha256: "00".repeat(32),
            serial: "01".into(),
            nonce: None,
        }
    }

    #[test]
    fn a_token_dated_in_the_future_is_refused() {
        let e = check_time(&attested("20991231000000Z")).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
    }

    #[test]
    fn a_token_dated_in_the_past_passes_the_time_check() {
        check_time(&attested("20240101120000Z")).unwrap();
        check_time(&attested("20240101120000.123Z")).unwrap();
    }

    #[test]
    fn a_time_that_is_not_generalized_time_is_refused_and_shown_escaped() {
        let e = check_time(&attested("\u{1b}[2Jsoon")).unwrap_err();
        assert!(e.contains("\\u{1b}[2J") && !e.contains('\u{1b}'), "{e}");
    }

    #[tokio::test]
    async fn a_tsa_url_with_credentials_is_refused_and_never_repeated() {
        let e = stamp(
            &reqwest::Client::new(),
            "https://user:s3cret@tsa.example/?token=t0ps3cret",
            &Sha256::of(b"x"),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("without credentials"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("t0ps3cret"), "{e}");
    }
}
