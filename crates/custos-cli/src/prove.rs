//! `custos prove` and `custos verify-proof`: one recording shown to belong to a signed export,
//! without the rest of it (custos::proof; the format in docs/formats.md).

use std::path::PathBuf;

use clap::Args;

/// Options of `custos prove`.
#[derive(Args, Debug)]
pub struct ProveArgs {
    /// The export directory (sealed; its bag-info states a Merkle root).
    pub dir: PathBuf,
    /// The recording to prove (an Exported one).
    pub recording_id: String,
    /// Where to write the proof (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// The export must be signed by this minisign public key (the proof is only as good as
    /// the signature it carries).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
}

/// Options of `custos verify-proof`.
#[derive(Args, Debug)]
pub struct VerifyProofArgs {
    /// The recording's file, as handed over (any name).
    pub file: PathBuf,
    /// The proof made by `custos prove`.
    pub proof: PathBuf,
    /// The signer's minisign public key: without it, the proof shows the file belongs to an
    /// export whose bag-info and tag manifest it carries, but not who sealed them.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `custos prove` (0 written, 1 the export does not verify or is not signed by
/// --pubkey, 2 could not).
pub fn run_prove(a: ProveArgs) -> i32 {
    let pkg = match crate::verify::open_package(&a.dir, a.pubkey.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let proof = match custos::proof::prove(&pkg, &a.recording_id) {
        Ok(p) => p,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let mut text = serde_json::to_vec_pretty(&proof).expect("json");
    text.push(b'\n');
    if let Err(e) = custos::durable::write_durably(&a.out, &text) {
        crate::error(&e);
        return 2;
    }
    out!(
        "{}: {} (leaf {} of {}, root {}){}",
        a.out.display(),
        proof.entry.split_once("  ").map_or("", |(_, p)| p),
        proof.leaf_index,
        proof.tree_size,
        proof.root,
        if proof.signature.is_some() {
            ""
        } else {
            "; the export is unsigned: the proof cannot show who sealed it"
        }
    );
    0
}

/// Runs `custos verify-proof` (0 holds, 1 does not, 2 could not run).
pub fn run_verify_proof(a: VerifyProofArgs) -> i32 {
    let proof = match custos::proof::read_proof(&a.proof) {
        Ok(p) => p,
        Err(e @ custos::proof::ProofError::Fails(_)) => {
            out!("FAILS: {e}");
            return 1;
        }
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    match custos::proof::check(&a.file, &proof, a.pubkey.as_deref()) {
        Ok(p) if a.json => {
            out!("{}", serde_json::to_string_pretty(&p).expect("json"));
            0
        }
        Ok(p) => {
            out!(
                "{}: is {} of the export with root {}",
                a.file.display(),
                p.file,
                p.root
            );
            match &p.signed {
                Some(c) => out!("HOLDS: signed by the holder of the key given ({c})"),
                None => {
                    out!("HOLDS, ORIGIN UNCHECKED: give --pubkey to check who sealed the export")
                }
            }
            0
        }
        Err(e @ custos::proof::ProofError::Fails(_)) => {
            out!("FAILS: {e}");
            1
        }
        Err(e) => {
            crate::error(&e);
            2
        }
    }
}
