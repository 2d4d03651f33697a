//! Detached, minisign-compatible Ed25519 signatures of `tagmanifest-sha256.txt` (which pins
//! every tag file, and through `manifest-sha256.txt` every payload file). `minisign -Vm
//! tagmanifest-sha256.txt -p custos.pub` verifies it; the signature file
//! (`tagmanifest-sha256.txt.minisig`) is not in the tag manifest, so signing does not change
//! what it signs. The trusted comment, covered by the signature, names the matter, the export id
//! and the custody log's head.

use crate::package::files;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A minisign secret key, as [`load_secret_key`] returns it.
pub use minisign::SecretKey;

/// Env variable holding the password of an encrypted secret key (keys made by `custos keygen`
/// are not encrypted; protect them with file permissions or a vault).
pub const PASSWORD_ENV: &str = "CUSTOS_SIGN_PASSWORD";

/// Writes a new key pair: the secret key to `path` (mode 0600) and the public key to
/// `path.pub`. Refuses to overwrite either.
pub fn keygen(path: &Path) -> Result<PathBuf> {
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(Error::Config(format!(
                "{} exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let kp = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| Error::Config(format!("key generation failed: {e}")))?;
    let sk = kp
        .sk
        .to_box(Some("custos secret key"))
        .map_err(|e| Error::Config(e.to_string()))?
        .into_string();
    let pk = kp
        .pk
        .to_box()
        .map_err(|e| Error::Config(e.to_string()))?
        .into_string();
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
        f.write_all(sk.as_bytes()).map_err(|e| Error::io(path, e))?;
        f.sync_all().map_err(|e| Error::io(path, e))?;
    }
    std::fs::write(&pub_path, pk).map_err(|e| Error::io(&pub_path, e))?;
    Ok(pub_path)
}

/// Loads a secret key (minisign format; encrypted keys need [`PASSWORD_ENV`]).
pub fn load_secret_key(path: &Path) -> Result<minisign::SecretKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let sk_box = minisign::SecretKeyBox::from_string(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not a minisign secret key: {e}",
            path.display()
        ))
    })?;
    let password = std::env::var(PASSWORD_ENV).ok();
    let sk = match password {
        Some(p) => sk_box.into_secret_key(Some(p)),
        None => sk_box.into_unencrypted_secret_key(),
    };
    sk.map_err(|e| {
        Error::Config(format!(
            "{}: cannot use this key ({e}); an encrypted key needs {PASSWORD_ENV}",
            path.display()
        ))
    })
}

/// Signs `root/tagmanifest-sha256.txt` into `root/tagmanifest-sha256.txt.minisig`.
pub fn sign_bag(root: &Path, sk: &minisign::SecretKey, trusted_comment: &str) -> Result<PathBuf> {
    sign_file(
        &root.join(files::TAG_MANIFEST),
        sk,
        trusted_comment,
        "custos signature of tagmanifest-sha256.txt",
    )
}

/// Signs `target` into `target.minisig` (minisign format: `minisign -Vm target -p key.pub`).
pub fn sign_file(
    target: &Path,
    sk: &minisign::SecretKey,
    trusted_comment: &str,
    untrusted_comment: &str,
) -> Result<PathBuf> {
    let data = std::fs::File::open(target).map_err(|e| Error::io(target, e))?;
    let sig = minisign::sign(
        None,
        sk,
        data,
        Some(trusted_comment),
        Some(untrusted_comment),
    )
    .map_err(|e| Error::Config(format!("signing failed: {e}")))?;
    let out = PathBuf::from(format!("{}.minisig", target.display()));
    crate::durable::write_durably(&out, sig.into_string().as_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_sign_and_verify_round_trip() {
        let dir = std::env::temp_dir().join(format!("custos-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k.key");
        let pub_path = keygen(&key).unwrap();
        assert!(keygen(&key).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(dir.join(files::TAG_MANIFEST), "abc  bagit.txt\n").unwrap();
        let sk = load_secret_key(&key).unwrap();
        let sig = sign_bag(&dir, &sk, "custos matter:M-1").unwrap();
        let pk = minisign::PublicKey::from_file(&pub_path).unwrap();
        let sbox = minisign::SignatureBox::from_file(&sig).unwrap();
        assert_eq!(sbox.trusted_comment().unwrap(), "custos matter:M-1");
        let data = std::io::Cursor::new(std::fs::read(dir.join(files::TAG_MANIFEST)).unwrap());
        minisign::verify(&pk, &sbox, data, true, false, false).unwrap();
        let tampered = std::io::Cursor::new(b"abd  bagit.txt\n".to_vec());
        assert!(minisign::verify(&pk, &sbox, tampered, true, false, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
