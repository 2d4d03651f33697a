//! What the source stated about a recording (size, playable duration, and where the duration
//! came from), and the judge that reads a downloaded file as media and holds it to that.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::super::context::Ctx;
use crate::model::Item;

/// What the source stated about a recording's media, to check the file against.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stated {
    /// Bytes (`outputSizeInBytes`).
    pub size: Option<u64>,
    /// The playable duration, ms (`outputDurationMs`, `durationMs`, or end − start less the
    /// pauses cut from the recording).
    pub duration_ms: Option<u64>,
    /// Where `duration_ms` came from, or why there is none (the custody record says it).
    pub source: String,
}

impl Stated {
    /// The playable duration a recording's JSON states: `ms_key` when present, else
    /// `end_key − start_key` less every `pause` annotation (Genesys cuts paused spans from the
    /// recording: `absoluteLocation` is "after removing the cumulative duration of all pauses").
    pub(super) fn duration(
        v: &Value,
        ms_key: &str,
        start_key: &str,
        end_key: &str,
    ) -> (Option<u64>, String) {
        if let Some(ms) = v[ms_key].as_u64() {
            return (Some(ms), ms_key.to_owned());
        }
        let t = |k: &str| {
            v[k].as_str().and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let (Some(a), Some(b)) = (t(start_key), t(end_key)) else {
            return (
                None,
                format!("not stated: neither {ms_key} nor {start_key} and {end_key}"),
            );
        };
        let Ok(span) = u64::try_from((b - a).whole_milliseconds()) else {
            return (None, format!("not stated: {end_key} is before {start_key}"));
        };
        let pauses: Vec<u64> = v["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("pause"))
            })
            .map(|a| a["durationMs"].as_u64().unwrap_or(0))
            .collect();
        let cut: u64 = pauses.iter().sum();
        let source = match pauses.len() {
            0 => format!("{end_key} − {start_key}"),
            n => format!(
                "{end_key} − {start_key} − {n} pause{} ({:.3} s)",
                if n == 1 { "" } else { "s" },
                cut as f64 / 1000.0
            ),
        };
        match span.checked_sub(cut) {
            Some(ms) => (Some(ms), source),
            None => (
                None,
                format!("not stated: pauses longer than the recording ({source})"),
            ),
        }
    }

    /// What a batch item states: its listed `Recording` (data/metadata/), read again here, since
    /// batch results state neither size nor duration.
    pub(super) fn of_listed(ctx: &Ctx<'_>, it: &Item) -> Stated {
        let path = ctx
            .root
            .join("data/metadata")
            .join(format!("{}.json", it.recording_id));
        let v: Value = match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Stated {
                    source: format!("not stated: the listed metadata is not JSON ({e})"),
                    ..Stated::default()
                };
            }
            Err(_) => {
                return Stated {
                    source: "not stated: no listed metadata for this recording".into(),
                    ..Stated::default()
                };
            }
        };
        let (duration_ms, source) =
            Stated::duration(&v, "outputDurationMs", "startTime", "endTime");
        Stated {
            size: None,
            duration_ms,
            source,
        }
    }
}

/// Reads the downloaded file's container and judges it against what the API stated: the
/// measured duration (ms) if one could be read, and why it is not evidence, if it is not.
pub(super) async fn judge(
    ctx: &Ctx<'_>,
    part: &Path,
    stated: &Stated,
) -> (Option<crate::media::MediaInfo>, Result<(), String>) {
    let p = part.to_path_buf();
    let probed = tokio::task::spawn_blocking(move || crate::media::probe_file(&p))
        .await
        .unwrap_or_else(|e| {
            Err(crate::media::MediaError::Invalid(format!(
                "probe failed: {e}"
            )))
        });
    let info = match probed {
        Ok(i) => i,
        Err(e) => return (None, Err(format!("not readable as audio: {e}"))),
    };
    let verdict = if !info.problems.is_empty() {
        Err(format!("damaged media: {}", info.problems.join("; ")))
    } else if info.duration.is_zero() {
        Err("no audio: the file's duration is 0 s".to_owned())
    } else if let Some(ms) = stated.duration_ms {
        let said = Duration::from_millis(ms);
        let diff = info.duration.abs_diff(said);
        if diff > ctx.cfg.duration_tolerance {
            Err(format!(
                "duration mismatch: the file holds {:.3} s, the API states {:.3} s (tolerance {} s)",
                info.seconds(),
                said.as_secs_f64(),
                ctx.cfg.duration_tolerance.as_secs_f64()
            ))
        } else {
            Ok(())
        }
    } else {
        Ok(())
    };
    (Some(info), verdict)
}
