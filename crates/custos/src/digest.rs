//! The SHA-256 digest type: every hash custos records, compares or prints.

use sha2::Digest;

/// A SHA-256 digest. Shown, stored and compared as 64 lowercase hex digits, as `sha256sum`
/// writes them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(sha2::Sha256::digest(data).into())
    }

    /// The digest a streaming hasher arrived at.
    pub fn finish(h: sha2::Sha256) -> Self {
        Self(h.finalize().into())
    }

    /// 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 32 bytes.
    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

/// SHA-256, MD5 and SHA-1 of one stream, computed in the same pass: the SHA-256 is custos's
/// own; MD5 and SHA-1 are the de-duplication keys review platforms still use (load files).
#[derive(Clone, Default)]
pub struct Hashes {
    sha256: sha2::Sha256,
    md5: md5::Md5,
    sha1: sha1::Sha1,
}

/// What [`Hashes`] arrived at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256.
    pub sha256: Sha256,
    /// MD5, 32 lowercase hex digits.
    pub md5: String,
    /// SHA-1, 40 lowercase hex digits.
    pub sha1: String,
}

impl Hashes {
    /// Fresh hashers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes to all three.
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.md5.update(data);
        self.sha1.update(data);
    }

    /// The three digests.
    pub fn finish(self) -> Digests {
        Digests {
            sha256: Sha256::finish(self.sha256),
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
        }
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a SHA-256 (64 hex digits): {0:?}")]
pub struct NotSha256(String);

impl std::str::FromStr for Sha256 {
    type Err = NotSha256;
    /// Exactly 64 hex digits (either case, as `sha256sum -c` accepts).
    fn from_str(s: &str) -> std::result::Result<Self, NotSha256> {
        let mut b = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut b).is_err() {
            return Err(NotSha256(s.chars().take(80).collect()));
        }
        Ok(Self(b))
    }
}

impl PartialEq<str> for Sha256 {
    fn eq(&self, other: &str) -> bool {
        other.len() == 64 && other.eq_ignore_ascii_case(&self.hex())
    }
}

impl PartialEq<&str> for Sha256 {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for Sha256 {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_gives_the_three_standard_digests() {
        let mut h = Hashes::new();
        h.update(b"a");
        h.update(b"bc");
        let d = h.finish();
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(d.sha256, Sha256::of(b"abc"));
    }

    #[test]
    fn a_digest_is_64_lowercase_hex_digits_and_parses_back() {
        let d = Sha256::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Sha256>().unwrap(), d);
        assert_eq!(d.to_string().to_uppercase().parse::<Sha256>().unwrap(), d);
        assert!(d == d.to_string().to_uppercase().as_str());
        assert!("abc".parse::<Sha256>().is_err());
        assert!(
            format!("{}g", &d.to_string()[..63])
                .parse::<Sha256>()
                .is_err()
        );
    }
}
