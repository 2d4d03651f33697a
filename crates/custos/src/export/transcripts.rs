//! `--transcripts`, after retrieval: for each voice recording that exists at the source
//! (every item but the `Purged`), its Speech & Text Analytics transcript (`GET
//! …/speechandtextanalytics/conversations/{cid}/communications/{sessionId}/transcripturl`, one
//! API call under the run's budget, then the pre-signed URL, fetched without the bearer
//! token), once per voice communication (recordings can share one), kept as received in
//! `data/transcripts/<cid>/<communicationId>.json`, with a plain-text rendering beside it
//! (`.txt`, crate::transcript) that also places the recording's
//! annotations (holds, secure pauses: the `annotations` of its metadata as listed, which the
//! recordings list includes) in the timeline. Transcripts are deleted with their recording, so
//! they are collected in the same run. Every answer is in the custody log; the run counts what
//! it found.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::context::Ctx;
use crate::digest::Sha256;
use crate::durable::{make_dirs, write_sealed};
use crate::error::{Error, Result};
use crate::model::{Item, Outcome, safe_id};
use crate::source::url_path;
use crate::state::Key;

/// Where transcripts and their renderings are kept.
pub const TRANSCRIPTS_DIR: &str = "data/transcripts";

/// What was found.
#[derive(Default)]
struct Count {
    transcripts: u64,
    without: u64,
    failed: u64,
}

/// A recording of a voice communication: its id, its start (epoch ms), its annotations.
type Rec = (String, Option<i64>, Value);

/// Where the voice recordings wait, in manifest order, while their transcripts are collected
/// (not payload: removed once they are).
const TO_COLLECT: &str = ".custos/transcripts-to-collect.jsonl";

/// Collects the transcript of every voice communication the items were recorded in, unless an
/// earlier run of this export did.
pub(super) async fn collect(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.state.get(Key::TranscriptsCollected)?.is_some() {
        return Ok(());
    }
    // The voice recordings, a line each, in manifest order (sorted by conversation): written
    // aside as the job state passes, so that a conversation's are read back together and a
    // million are never held.
    let scratch = ctx.root.join(TO_COLLECT);
    let mut w = std::io::BufWriter::new(
        crate::durable::create_file(&scratch).map_err(|e| Error::io(&scratch, e))?,
    );
    let mut items = 0u64;
    ctx.state.for_each(|it, d| {
        if d.is_some_and(|d| d.outcome != Outcome::Purged)
            && safe_id(&it.conversation_id)
            && safe_id(&it.recording_id)
            && let Some((session, media, start, ann)) = listed(ctx, &it)
            && media == "audio"
            && safe_id(&session)
        {
            items += 1;
            let line = json!([it.conversation_id, session, it.recording_id, start, ann]);
            serde_json::to_writer(&mut w, &line)
                .map_err(std::io::Error::other)
                .and_then(|()| std::io::Write::write_all(&mut w, b"\n"))
                .map_err(|e| Error::io(&scratch, e))?;
        }
        Ok(())
    })?;
    std::io::Write::flush(&mut w).map_err(|e| Error::io(&scratch, e))?;
    drop(w);
    let names = crate::facts::Names::read(&ctx.root.join(crate::facts::DIRECTORY_DIR));
    let mut n = Count::default();
    // One transcript per communication (the recorded session), which recordings can share:
    // the communications of one conversation at a time, in order.
    let mut communications = 0u64;
    let mut conversation: Option<String> = None;
    let mut sessions: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
    let file = std::fs::File::open(&scratch).map_err(|e| Error::io(&scratch, e))?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(file));
    loop {
        let line = lines
            .next()
            .transpose()
            .map_err(|e| Error::io(&scratch, e))?;
        let row = match &line {
            Some(l) => Some(
                serde_json::from_str::<(String, String, String, Option<i64>, Value)>(l)
                    .map_err(|e| Error::io(&scratch, std::io::Error::other(e)))?,
            ),
            None => None,
        };
        // A conversation ends where the next begins, or at the end.
        if conversation.is_some() && row.as_ref().map(|r| &r.0) != conversation.as_ref() {
            let cid = conversation.take().unwrap_or_default();
            for (session, recs) in std::mem::take(&mut sessions) {
                communications += 1;
                transcript(ctx, &cid, &session, &recs, &names, &mut n).await?;
            }
        }
        let Some((cid, session, rid, start, ann)) = row else {
            break;
        };
        conversation = Some(cid);
        sessions.entry(session).or_default().push((rid, start, ann));
    }
    std::fs::remove_file(&scratch).map_err(|e| Error::io(&scratch, e))?;
    ctx.log(
        "transcripts-collected",
        json!({"recordings": items, "communications": communications, "transcripts": n.transcripts, "withoutTranscript": n.without,
               "transcriptFetchFailed": n.failed, "dir": TRANSCRIPTS_DIR}),
    )?;
    ctx.state.set(Key::TranscriptsCollected, "true")
}

/// Renders every chat, email and messaging recording that exists at the source (every item
/// but the `Purged`) as plain text from the messages its metadata states, into
/// `data/transcripts/<cid>/<communicationId>.txt` (the communication, as for calls). No API
/// call: the metadata is already kept. A rendering already written is left as it is.
pub(super) fn render_digital(ctx: &Ctx<'_>) -> Result<()> {
    let names = crate::facts::Names::read(&ctx.root.join(crate::facts::DIRECTORY_DIR));
    let mut rendered = 0u64;
    ctx.state.for_each(|it, d| {
        if d.is_none_or(|d| d.outcome == Outcome::Purged)
            || !safe_id(&it.conversation_id)
            || !safe_id(&it.recording_id)
        {
            return Ok(());
        }
        let p = ctx
            .root
            .join(format!("data/metadata/{}.json", it.recording_id));
        let Some(v) = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return Ok(());
        };
        let Some(session) = v["sessionId"].as_str().filter(|s| safe_id(s)) else {
            return Ok(());
        };
        let dir = ctx.root.join(TRANSCRIPTS_DIR).join(&it.conversation_id);
        let txt = dir.join(format!("{session}.txt"));
        if txt.exists() {
            return Ok(());
        }
        if let Some(text) = crate::transcript::render_digital(&v, &names) {
            make_dirs(&dir)?;
            write_sealed(&txt, text.as_bytes())?;
            rendered += 1;
        }
        Ok(())
    })?;
    if rendered > 0 {
        ctx.log(
            "digital-transcripts-rendered",
            json!({"rendered": rendered, "dir": TRANSCRIPTS_DIR}),
        )?;
    }
    Ok(())
}

/// The recording's metadata as kept: its `sessionId`, `media`, start (epoch ms) and
/// `annotations`.
fn listed(ctx: &Ctx<'_>, it: &Item) -> Option<(String, String, Option<i64>, Value)> {
    let p = ctx
        .root
        .join(format!("data/metadata/{}.json", it.recording_id));
    let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    let start = v["startTime"]
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    Some((
        v["sessionId"].as_str()?.to_owned(),
        v["media"].as_str().unwrap_or("audio").to_owned(),
        start,
        v["annotations"].clone(),
    ))
}

/// The communication's transcript, if Speech & Text Analytics has one, and its rendering.
async fn transcript(
    ctx: &Ctx<'_>,
    cid: &str,
    session: &str,
    recs: &[Rec],
    names: &crate::facts::Names,
    n: &mut Count,
) -> Result<()> {
    let path = format!(
        "/api/v2/speechandtextanalytics/conversations/{}/communications/{}/transcripturl",
        url_path(cid),
        url_path(session)
    );
    let url = match ctx.api.send_ok(Method::GET, &path, None).await {
        Ok(r) => serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null)["url"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        // No transcript (404), or no permission to read them: in the log, and counted.
        Err(Error::Refused { .. }) => {
            n.without += 1;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    crate::http::check_media_url("a transcript URL", &url)?;
    let Some(body) = fetch(ctx, cid, session, &url).await? else {
        n.failed += 1;
        return Ok(());
    };
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let dir = ctx.root.join(TRANSCRIPTS_DIR).join(cid);
    make_dirs(&dir)?;
    let json_file = dir.join(format!("{session}.json"));
    if !json_file.exists() {
        write_sealed(&json_file, &body)?;
    }
    let recorded: Vec<crate::transcript::Recorded<'_>> = recs
        .iter()
        .map(|(id, start, ann)| crate::transcript::Recorded {
            id,
            start_ms: start.unwrap_or(0),
            annotations: ann,
        })
        .collect();
    let txt = dir.join(format!("{session}.txt"));
    if !txt.exists() {
        let text = crate::transcript::render(&doc, &recorded, names);
        write_sealed(&txt, text.as_bytes())?;
    }
    n.transcripts += 1;
    Ok(())
}

/// GETs a pre-signed transcript URL (no bearer token), bounded, and logs what came: the body,
/// or `None` when it did not come whole (the transcript supplements the recording; the log
/// says why it is missing).
async fn fetch(ctx: &Ctx<'_>, cid: &str, session: &str, url: &str) -> Result<Option<bytes::Bytes>> {
    let mut e = json!({"conversationId": cid, "communicationId": session,
                       "url": crate::custody::redact_url(url)});
    let got = match ctx.api.http.get(url).send().await {
        Ok(resp) => {
            e["status"] = json!(resp.status().as_u16());
            let ok = resp.status().is_success();
            match crate::http::read_limited(resp, crate::http::MAX_JSON_BYTES).await {
                Ok(body) => {
                    e["bytes"] = json!(body.len());
                    e["sha256"] = json!(Sha256::of(&body).hex());
                    ok.then_some(body)
                }
                Err((_, why)) => {
                    e["error"] = json!(why);
                    None
                }
            }
        }
        Err(err) => {
            e["error"] = json!(err.without_url().to_string());
            None
        }
    };
    ctx.log("transcript-fetched", e)?;
    Ok(got)
}
