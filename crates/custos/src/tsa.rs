//! RFC 3161 trusted timestamps: a Time Stamping Authority signs "this SHA-256 existed at this
//! time", which the exporter cannot fake (a signature's own time is self-asserted).
//!
//! The request and the token's TSTInfo are small DER structures, written and read here; the
//! token's CMS signature and its certificate chain are checked with the standard tool,
//! `openssl ts -verify` (docs/verification.md shows the command), which `custos verify
//! --tsa-ca` runs.

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

/// Asks the TSA at `url` to timestamp `digest`: the TimeStampResp, checked to be granted and to
/// attest exactly this digest and nonce.
pub async fn stamp(
    http: &reqwest::Client,
    url: &str,
    digest: &Sha256,
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
    Ok((body.to_vec(), attested))
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
/// a token, unless a token for its current bytes is already there. Returns every attempt, and
/// whether the file now has a token (`false`: no TSA granted one; asking again later is safe).
pub async fn stamp_file(
    http: &reqwest::Client,
    tsas: &[String],
    file: &Path,
    name: &str,
) -> crate::Result<(Vec<Stamp>, bool)> {
    let token = token_path(file);
    let (digest, _) = crate::durable::sha256_file(file)?;
    let current = std::fs::read(&token)
        .ok()
        .and_then(|t| read(&t).ok())
        .is_some_and(|a| a.sha256 == digest.hex());
    if current {
        return Ok((Vec::new(), true));
    }
    let mut stamps = Vec::new();
    for url in tsas {
        let (time, error) = match stamp(http, url, &digest).await {
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

/// Timestamps a sealed bag's tag manifest and (when signed) its signature, each unless a
/// token for its current bytes is already there: an export, a production volume. Every TSA
/// tried is returned; `Err(Error::Timestamp)` when none timestamped one of them (asking again
/// later is safe).
pub async fn stamp_bag(root: &Path, tsas: &[String]) -> crate::Result<Vec<Stamp>> {
    let mut stamps = Vec::new();
    if tsas.is_empty() {
        return Ok(stamps);
    }
    let http = reqwest::Client::new();
    for name in ["tagmanifest-sha256.txt", "tagmanifest-sha256.txt.minisig"] {
        let file = root.join(name);
        if !file.exists() {
            continue;
        }
        let (tried, granted) = stamp_file(&http, tsas, &file, name).await?;
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

    #[tokio::test]
    async fn a_tsa_url_with_credentials_is_refused_and_never_repeated() {
        let e = stamp(
            &reqwest::Client::new(),
            "https://user:s3cret@tsa.example/?token=t0ps3cret",
            &Sha256::of(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("without credentials"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("t0ps3cret"), "{e}");
    }
}
