//! `custos produce`: argv → custos::produce (a production volume from a verified export).

use std::path::PathBuf;

use clap::Args;
use custos::produce::{ProduceError, ProduceOptions};

/// Options of `custos produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The sealed export to produce from (verified first; one with findings is refused).
    pub dir: PathBuf,
    /// The production volume to create (a new directory; itself a BagIt bag).
    #[arg(long)]
    pub out: PathBuf,
    /// Control-number prefix: documents are PREFIX0000001, PREFIX0000002, …
    #[arg(long)]
    pub prefix: String,
    /// The first control number.
    #[arg(long, default_value_t = 1)]
    pub start: u64,
    /// Produce only these recording ids (one per line; `#` comments), the responsive subset.
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// Check the export's signature with this minisign public key first.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Sign the volume's tag manifest with this minisign secret key.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Counsel's minisign public key: a Corrupted item is produced (marked as such) when this
    /// key, or another --approver-key, signed its approval (`custos approve`); never otherwise.
    #[arg(long, value_name = "FILE")]
    pub approver_key: Vec<PathBuf>,
    /// Make no near-natives (by default, every native a review platform cannot play, Opus,
    /// WebM or μ-law, gets a PCM WAV or H.264 MP4 copy beside it, made by ffmpeg, and every
    /// chat and messaging thread an RSMF rendering).
    #[arg(long)]
    pub no_near_natives: bool,
    /// Write no RSMF (Relativity Short Message Format) rendering of chat and messaging threads
    /// (playable copies are still made).
    #[arg(long)]
    pub no_rsmf: bool,
    /// The ffmpeg that makes near-natives (a path, or a name on PATH).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "ffmpeg",
        conflicts_with = "no_near_natives"
    )]
    pub ffmpeg: PathBuf,
    /// Extract no text from PDF attachments (by default their text is extracted by pdftotext,
    /// poppler-utils, and kept in TEXT like every other document's).
    #[arg(long)]
    pub no_pdf_text: bool,
    /// The pdftotext that extracts PDF attachments' text (a path, or a name on PATH).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "pdftotext",
        conflicts_with = "no_pdf_text"
    )]
    pub pdftotext: PathBuf,
    /// Whom the volume is produced to, named in its transmittal (data/TRANSMITTAL.txt).
    #[arg(long, value_name = "PARTY")]
    pub produced_to: Option<String>,
    /// The confidentiality designation of every document, in the load files' CONFIDENTIALITY
    /// field and the transmittal, e.g. "CONFIDENTIAL - ATTORNEYS' EYES ONLY".
    #[arg(long, value_name = "LABEL")]
    pub confidentiality: Option<String>,
    /// The person producing, recorded in the production log.
    #[arg(long)]
    pub operator: Option<String>,
    /// Have this RFC 3161 Time Stamping Authority timestamp the volume's tag manifest (and
    /// signature) once sealed; repeat it for fallbacks, tried in order.
    #[arg(long, value_name = "URL")]
    pub tsa: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `custos produce` (0 produced, 1 the export does not verify, 2 bad options or
/// selection, 3 failed part-way or not timestamped).
pub async fn run_produce(a: ProduceArgs) -> i32 {
    let o = ProduceOptions {
        export: a.dir,
        out: a.out,
        prefix: a.prefix,
        start: a.start,
        ids: a.ids,
        pubkey: a.pubkey,
        sign_key: a.sign_key,
        operator: a.operator,
        approver_keys: a.approver_key,
        near_natives: (!a.no_near_natives).then_some(a.ffmpeg),
        rsmf: !a.no_near_natives && !a.no_rsmf,
        produced_to: a.produced_to,
        confidentiality: a.confidentiality,
        pdf_text: (!a.no_pdf_text).then_some(a.pdftotext),
    };
    let mut r = custos::produce::produce(&o);
    if let (Ok(r), false) = (&mut r, a.tsa.is_empty()) {
        match crate::timestamp::stamp(&r.out, &a.tsa, None).await {
            Ok(stamps) => r.timestamps = stamps,
            Err(code) => {
                eprintln!(
                    "custos: the volume is produced and sealed; only its timestamp is missing"
                );
                return code;
            }
        }
    }
    match r {
        Ok(r) if a.json => {
            out!("{}", serde_json::to_string_pretty(&r).expect("json"));
            0
        }
        Ok(r) => {
            out!(
                "Production: {}\n  {} documents {}..{}, {} bytes of natives\n  from the export whose tag manifest has SHA-256 {}{}{}{}{}\nCheck it: bagit.py --quiet --validate {}  ·  custos verify {}",
                r.out.display(),
                r.documents,
                r.begdoc,
                r.enddoc,
                r.bytes,
                r.source_tag_manifest_sha256,
                match &r.decoder {
                    Some(d) => format!("\n  {} playable near-native(s) (derived copies, in NEAR_NATIVE_LINK) made by {d}", r.near_natives),
                    None => "\n  no near-natives (--no-near-natives): Opus and WebM natives may not play in review".to_owned(),
                },
                match r.rsmf {
                    Some(n) => format!("\n  {n} chat and messaging thread(s) as RSMF {} (derived, in NEAR_NATIVE_LINK)", custos::produce::rsmf::VERSION),
                    None => "\n  no RSMF: chat and messaging threads are in their natives and TEXT only".to_owned(),
                },
                match (r.approved, r.approvals_unchecked) {
                    (0, 0) => String::new(),
                    (n, 0) => format!("\n  {n} Corrupted item(s) produced on counsel's approval (EVIDENCE_STATUS says so)"),
                    (n, u) => format!("\n  {n} Corrupted item(s) produced on counsel's approval; {u} approval(s) NOT CHECKED (give --approver-key with counsel's public key): their items are not produced"),
                },
                r.signature.as_ref().map_or_else(
                    || "\n  NOT SIGNED: nothing proves who produced this volume; produce it again with --sign-key KEY (custos keygen --out KEY makes one)".to_owned(),
                    |s| format!("\n  signed: {}", s.display())
                ),
                r.out.display(),
                r.out.display()
            );
            crate::timestamp::print(&r.timestamps);
            0
        }
        Err(e) => {
            crate::error(&e);
            match e {
                ProduceError::NotVerified(_) => 1,
                ProduceError::Config(_) => 2,
                ProduceError::Failed(_) => 3,
            }
        }
    }
}
