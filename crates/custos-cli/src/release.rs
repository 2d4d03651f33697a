//! `custos release --protect DIR`: revokes the Genesys deletion protection an export put on
//! (`export --protect`), exactly the set it proves it protected, with a receipt beside the bag.
//!
//! Releasing a hold acts at the source, so the export must be signed by the key the operator
//! names (`--pubkey`), and the API, the login host and the OAuth client come from the
//! operator's own settings (flags, environment, `--config`), never from the package: an export
//! naming another API than the one given is refused with both named, before anything is sent.

use std::path::PathBuf;

use clap::Args;
use custos::http::Api;
use custos::protection::{ReleaseOptions, release};

use crate::options::{ExportOptions, OptionsError};

/// Options of `custos release`.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The sealed export whose protection is released (it must verify, signed by --pubkey).
    pub dir: PathBuf,
    /// Release the deletion protection `export --protect` put on (the one thing releasable).
    #[arg(long, required = true)]
    pub protect: bool,
    /// The minisign public key the export must be signed with [or `pubkey` in --config].
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Where the API is, as for export; it must be the one the export was made against.
    #[command(flatten)]
    pub api: crate::options::ApiArgs,
    /// The export's TOML config file: its region, api-base, login-base, credentials and pubkey
    /// are used (flags > environment > file).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TOML file with client-id and client-secret (chmod 600); or set
    /// GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// API requests per minute.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
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

/// The operator's settings: the API, the login, the OAuth client and the key, from the flags,
/// the environment and the config file; nothing from the package.
fn settings(
    a: &ReleaseArgs,
) -> Result<(String, String, custos::http::Credentials, PathBuf), OptionsError> {
    let flags = ExportOptions {
        api: a.api.clone(),
        credentials: a.credentials.clone(),
        pubkey: a.pubkey.clone(),
        ..Default::default()
    };
    let file = match &a.config {
        Some(p) => crate::options::read_file(p)?,
        None => ExportOptions::default(),
    };
    let (o, creds) = crate::options::layered(&flags, &crate::options::env, &file)?;
    let (api_base, login_base) = crate::options::api_location(&o)?;
    let pubkey = o.pubkey.ok_or(
        "releasing a hold acts at the source, so the export must prove who sealed it: pass --pubkey KEY.pub (the public half of the export's --sign-key), or set pubkey in --config",
    )?;
    Ok((api_base, login_base, creds, pubkey))
}

/// Runs `custos release` (exit 0 released, 1 some still protected, some listed ids not proven,
/// or the export does not verify or is not signed by --pubkey, 2 bad usage, 3 the API could
/// not be reached).
pub async fn run_release(a: ReleaseArgs) -> i32 {
    let (api_base, login_base, creds, pubkey) = match settings(&a) {
        Ok(s) => s,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let api = match Api::new(&api_base, &login_base, creds, a.rate) {
        Ok(api) => api,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let o = ReleaseOptions {
        export: a.dir.clone(),
        pubkey,
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
            out!("  export    {}", r.origin);
            out!("  receipt   {}", r.receipt.display());
            if let Some(s) = &r.signature {
                out!("  signature {}", s.display());
            }
            0
        }
        Err(e) => {
            crate::error(&e);
            match e {
                custos::Error::Tampered { .. }
                | custos::Error::Unproven(_)
                | custos::Error::Protection(_) => 1,
                ref e if e.is_permanent() => 2,
                _ => 3,
            }
        }
    }
}
