//! `custos release --protect DIR`: revokes the Genesys deletion protection an export put on
//! (`export --protect`), exactly the set it recorded, with a receipt beside the bag.

use std::path::PathBuf;

use clap::Args;
use custos::http::{Api, Credentials};
use custos::protection::{ReleaseOptions, release};

/// Options of `custos release`.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The sealed export whose protection is released (it must verify).
    pub dir: PathBuf,
    /// Release the deletion protection `export --protect` put on (the one thing releasable).
    #[arg(long, required = true)]
    pub protect: bool,
    /// The Platform API [default: the export's Genesys-API-Base].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// The login host [default: the API's, with api. replaced by login.].
    #[arg(long, value_name = "URL")]
    pub login_base: Option<String>,
    /// TOML file with client-id and client-secret (chmod 600); or set
    /// GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// API requests per minute.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Verify the export's signature with this minisign public key first.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Sign the receipt with this minisign secret key.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// The person releasing, e.g. "Jane Doe <jane@firm.example>".
    #[arg(long)]
    pub operator: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn credentials(a: &ReleaseArgs) -> Result<Credentials, String> {
    if let Some(p) = &a.credentials {
        return crate::options::read_credentials(p).map_err(|e| e.to_string());
    }
    crate::options::env_credentials(&crate::options::env).ok_or_else(|| {
        "no credentials: set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET, or pass --credentials FILE (chmod 600)".into()
    })
}

/// The export's `Genesys-API-Base` label.
fn recorded_api_base(a: &ReleaseArgs) -> Option<String> {
    let text = std::fs::read_to_string(a.dir.join("bag-info.txt")).ok()?;
    custos::package::parse_tags(&text)
        .into_iter()
        .find(|(k, _)| k == "Genesys-API-Base")
        .map(|(_, v)| v)
}

/// Runs `custos release` (exit 0 released, 1 some still protected or the export does not
/// verify, 2 bad usage, 3 the API could not be reached).
pub async fn run_release(a: ReleaseArgs) -> i32 {
    let creds = match credentials(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let Some(api_base) = a.api_base.clone().or_else(|| recorded_api_base(&a)) else {
        eprintln!(
            "custos: error: {}: no Genesys-API-Base in bag-info.txt; pass --api-base",
            a.dir.display()
        );
        return 2;
    };
    let login_base = a
        .login_base
        .clone()
        .unwrap_or_else(|| api_base.replacen("//api.", "//login.", 1));
    let api = match Api::new(&api_base, &login_base, creds, a.rate) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let o = ReleaseOptions {
        export: a.dir.clone(),
        pubkey: a.pubkey.clone(),
        sign_key: a.sign_key.clone(),
        operator: a.operator.clone(),
    };
    match release(&o, &api).await {
        Ok(r) if a.json => {
            out!("{}", serde_json::to_string_pretty(&r).expect("json"));
            0
        }
        Ok(r) => {
            out!(
                "Released deletion protection on {} of {} conversations ({} no longer known to Genesys); none is listed as protected now.",
                r.released,
                r.conversations,
                r.not_found
            );
            out!("  receipt   {}", r.receipt.display());
            if let Some(s) = &r.signature {
                out!("  signature {}", s.display());
            }
            0
        }
        Err(e) => {
            eprintln!("custos: error: {e}");
            match e {
                custos::Error::Tampered { .. } | custos::Error::Protection(_) => 1,
                ref e if e.is_permanent() => 2,
                _ => 3,
            }
        }
    }
}
