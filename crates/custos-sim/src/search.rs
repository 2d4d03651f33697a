//! The design guide's search-style API, which real Genesys Cloud does **not** have (see
//! docs/simulator.md): `GET /api/v2/search/recordings?q=<lucene>&pageSize=N` with `elements` and
//! a relative `nextPageUri`, `GET /api/v2/recordings/{id}` and `GET /api/v2/recordings/{id}/media`.
//!
//! The query language is the guide's: `field:value`, `field:"quoted value"`, inclusive
//! `[a TO b]` and exclusive `{a TO b}` ranges (`*` for an open end), `field:(a OR b)`, and terms
//! joined by `AND`. This parser is the simulator's own, written apart from the client's, so a
//! shared misreading cannot hide.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Sim;
use crate::analytics::reveal_one;
use crate::catalog::{Conversation, FileState, Recording};
use crate::media::stream_media;
use crate::state::Inner;
use crate::wire::{compact, error, ok, parse_ts, ts};

const FIELDS: &[&str] = &[
    "timestamp",
    "conversationId",
    "participantId",
    "userId",
    "queueId",
    "mediaType",
    "direction",
    "ani",
    "dnis",
    "divisionId",
];

#[derive(Debug, PartialEq)]
enum Cond {
    Any(Vec<String>),
    Range {
        lo: Option<String>,
        lo_incl: bool,
        hi: Option<String>,
        hi_incl: bool,
    },
}

#[derive(Debug, PartialEq)]
struct Term {
    field: String,
    cond: Cond,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn err<T>(&self, msg: &str) -> Result<T, String> {
        Err(format!("Invalid query at column {}: {msg}", self.pos + 1))
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self) -> String {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && !b" \t\r\n()[]{}:\"".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
    fn atom(&mut self) -> Result<String, String> {
        self.ws();
        if self.eat(b'"') {
            let start = self.pos;
            while self.pos < self.s.len() && self.s[self.pos] != b'"' {
                self.pos += 1;
            }
            if self.pos >= self.s.len() {
                self.pos = start - 1;
                return self.err("unterminated quoted value");
            }
            let v = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
            self.pos += 1;
            return Ok(v);
        }
        // A bare value may contain ':' (timestamps) but ends at whitespace or a bracket.
        let start = self.pos;
        while self.pos < self.s.len() && !b" \t\r\n()[]{}\"".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("expected a value");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
}

fn parse(q: &str) -> Result<Vec<Term>, String> {
    let mut lx = Lexer {
        s: q.as_bytes(),
        pos: 0,
    };
    let mut terms = Vec::new();
    loop {
        let at = {
            lx.ws();
            lx.pos
        };
        let field = lx.word();
        if field.is_empty() {
            return lx.err("expected a field name");
        }
        if !FIELDS.contains(&field.as_str()) {
            lx.pos = at;
            return lx.err(&format!(
                "unknown field '{field}' (known: {})",
                FIELDS.join(", ")
            ));
        }
        if !lx.eat(b':') {
            return lx.err("expected ':' after the field name");
        }
        lx.ws();
        let cond = match lx.s.get(lx.pos) {
            Some(b'[') | Some(b'{') => {
                let lo_incl = lx.s[lx.pos] == b'[';
                lx.pos += 1;
                let lo = lx.atom()?;
                lx.ws();
                let at = lx.pos;
                if lx.word() != "TO" {
                    lx.pos = at;
                    return lx.err("expected TO in a range");
                }
                let hi = lx.atom()?;
                lx.ws();
                let hi_incl = match lx.s.get(lx.pos) {
                    Some(b']') => true,
                    Some(b'}') => false,
                    _ => return lx.err("expected ']' or '}' to close the range"),
                };
                lx.pos += 1;
                let open = |v: String| (v != "*").then_some(v);
                Cond::Range {
                    lo: open(lo),
                    lo_incl,
                    hi: open(hi),
                    hi_incl,
                }
            }
            Some(b'(') => {
                lx.pos += 1;
                let mut vals = vec![lx.atom()?];
                loop {
                    if lx.eat(b')') {
                        break;
                    }
                    lx.ws();
                    let at = lx.pos;
                    if lx.word() != "OR" {
                        lx.pos = at;
                        return lx.err("expected OR or ')' in a value list");
                    }
                    vals.push(lx.atom()?);
                }
                Cond::Any(vals)
            }
            _ => Cond::Any(vec![lx.atom()?]),
        };
        terms.push(Term { field, cond });
        lx.ws();
        if lx.pos >= lx.s.len() {
            return Ok(terms);
        }
        let at = lx.pos;
        if lx.word() != "AND" {
            lx.pos = at;
            return lx.err("expected AND between terms");
        }
    }
}

fn matches(c: &Conversation, r: &Recording, t: &Term) -> Result<bool, String> {
    let values: Vec<String> = match t.field.as_str() {
        "timestamp" => {
            let Cond::Range {
                lo,
                lo_incl,
                hi,
                hi_incl,
            } = &t.cond
            else {
                let Cond::Any(v) = &t.cond else {
                    unreachable!()
                };
                let ts: Vec<OffsetDateTime> = v
                    .iter()
                    .map(|s| parse_ts(s).ok_or(format!("invalid timestamp '{s}'")))
                    .collect::<Result<_, _>>()?;
                return Ok(ts.contains(&r.start));
            };
            let bound = |b: &Option<String>| -> Result<Option<OffsetDateTime>, String> {
                b.as_ref()
                    .map(|s| parse_ts(s).ok_or(format!("invalid timestamp '{s}'")))
                    .transpose()
            };
            let (lo, hi) = (bound(lo)?, bound(hi)?);
            let above = lo.is_none_or(|l| if *lo_incl { r.start >= l } else { r.start > l });
            let below = hi.is_none_or(|h| if *hi_incl { r.start <= h } else { r.start < h });
            return Ok(above && below);
        }
        "conversationId" => vec![c.id.clone()],
        "participantId" => c
            .participants
            .iter()
            .flat_map(|p| std::iter::once(p.participant_id.clone()).chain(p.user_id.clone()))
            .collect(),
        "userId" => c
            .participants
            .iter()
            .filter_map(|p| p.user_id.clone())
            .collect(),
        "queueId" => vec![c.queue_id.clone()],
        "mediaType" => vec!["voice".into()],
        "direction" => vec![c.direction.into()],
        "ani" => c.participants.iter().map(|p| p.ani.clone()).collect(),
        "dnis" => c.participants.iter().map(|p| p.dnis.clone()).collect(),
        "divisionId" => vec![c.division_id.clone()],
        _ => return Ok(false),
    };
    Ok(match &t.cond {
        Cond::Any(want) => want.iter().any(|w| values.contains(w)),
        Cond::Range {
            lo,
            lo_incl,
            hi,
            hi_incl,
        } => values.iter().any(|v| {
            lo.as_ref()
                .is_none_or(|l| if *lo_incl { v >= l } else { v > l })
                && hi
                    .as_ref()
                    .is_none_or(|h| if *hi_incl { v <= h } else { v < h })
        }),
    })
}

/// The guide's recording metadata shape (not a Genesys model).
fn element(inner: &Inner, state: FileState, rec: usize) -> Value {
    let r = &inner.catalog.recordings[rec];
    let c = &inner.catalog.conversations[r.conversation];
    let participants: Vec<Value> = c
        .participants
        .iter()
        .map(|p| compact(json!({"participantId": p.participant_id, "userId": p.user_id, "purpose": p.purpose, "name": p.name})))
        .collect();
    json!({
        "id": r.id,
        "conversationId": r.conversation_id,
        "startTimestamp": ts(r.start),
        "endTimestamp": ts(r.end),
        "durationMs": r.playable_ms(),
        "mediaType": "voice",
        "direction": c.direction,
        "divisionId": c.division_id,
        "queueId": c.queue_id,
        "participants": participants,
        "tags": [],
        "fileState": state.as_str(),
        "contentType": r.codec.content_type(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    q: Option<String>,
    page_size: Option<String>,
    cursor: Option<String>,
}

pub async fn search(State(sim): State<Sim>, Query(p): Query<SearchParams>) -> Response {
    let inner = &sim.0;
    let bad = |m: &str| error(inner, StatusCode::BAD_REQUEST, "bad.request", m);
    let Some(q) = p.q.filter(|q| !q.trim().is_empty()) else {
        return bad("The q parameter (a query) is required");
    };
    let size: usize = match p.page_size.as_deref().map(str::parse) {
        None => 25,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => return bad("pageSize must be a whole number within 1..=1000"),
    };
    let off: usize = match p.cursor.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid cursor"),
    };
    let terms = match parse(&q) {
        Ok(t) => t,
        Err(e) => return bad(&e),
    };
    let mut st = inner.state();
    let mut hits = Vec::new();
    for (ri, r) in inner.catalog.recordings.iter().enumerate() {
        let c = &inner.catalog.conversations[r.conversation];
        // The design guide's search API knows call recordings only.
        if r.kind != crate::natives::Kind::Audio || !inner.visible(&st, r.conversation) {
            continue;
        }
        let mut all = true;
        for t in &terms {
            match matches(c, r, t) {
                Ok(true) => {}
                Ok(false) => {
                    all = false;
                    break;
                }
                Err(e) => {
                    drop(st);
                    return bad(&e);
                }
            }
        }
        if all {
            hits.push(ri);
        }
    }
    let recs = &inner.catalog.recordings;
    hits.sort_by(|&a, &b| (recs[a].start, &recs[a].id).cmp(&(recs[b].start, &recs[b].id)));
    let mut page: Vec<usize> = hits.iter().skip(off).take(size).copied().collect();
    if inner.scenario.faults.duplicates && off > 0 && off <= hits.len() && !page.is_empty() {
        page.insert(0, hits[off - 1]);
    }
    let elements: Vec<Value> = page
        .iter()
        .map(|&r| element(inner, inner.file_state(&st, r), r))
        .collect();
    reveal_one(inner, &mut st);
    drop(st);
    let mut body = json!({"elements": elements});
    if off + size < hits.len() {
        let qs = serde_urlencoded::to_string([
            ("q", q.as_str()),
            ("pageSize", &size.to_string()),
            ("cursor", &(off + size).to_string()),
        ])
        .expect("strings encode");
        body["nextPageUri"] = json!(format!("/api/v2/search/recordings?{qs}"));
    }
    ok(body)
}

fn lookup(inner: &Inner, id: &str) -> Result<(usize, FileState), Response> {
    let st = inner.state();
    // The design guide's search API knows call recordings only.
    match inner
        .catalog
        .recording(id)
        .filter(|&r| inner.catalog.recordings[r].kind == crate::natives::Kind::Audio)
        .map(|r| (r, inner.file_state(&st, r)))
    {
        Some((r, s)) if s != FileState::Deleted => Ok((r, s)),
        _ => {
            drop(st);
            Err(error(
                inner,
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("Recording {id} not found"),
            ))
        }
    }
}

pub async fn metadata(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    match lookup(&sim.0, &id) {
        Ok((r, s)) => ok(element(&sim.0, s, r)),
        Err(e) => e,
    }
}

pub async fn media(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let inner = &sim.0;
    inner.stats().media_requests += 1;
    let (rec, state) = match lookup(inner, &id) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if matches!(state, FileState::Archived | FileState::Restoring) {
        return error(
            inner,
            StatusCode::CONFLICT,
            "recording.archived",
            &format!("Recording {id} is archived; restore it first"),
        );
    }
    stream_media(&sim, rec, inner.catalog.recordings[rec].codec).unwrap_or_else(|| {
        error(
            inner,
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Recording {id} not found"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guides_example() {
        let t = parse(r#"timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-01T23:59:59.999Z] AND participantId:"5f4d""#).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].cond,
            Cond::Range {
                lo: Some("2023-10-01T00:00:00.000Z".into()),
                lo_incl: true,
                hi: Some("2023-10-01T23:59:59.999Z".into()),
                hi_incl: true
            }
        );
        assert_eq!(t[1].cond, Cond::Any(vec!["5f4d".into()]));
        let t = parse("direction:(inbound OR outbound) AND timestamp:{* TO 2024-01-01T00:00:00Z}")
            .unwrap();
        assert_eq!(
            t[0].cond,
            Cond::Any(vec!["inbound".into(), "outbound".into()])
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        assert!(
            parse("colour:red")
                .unwrap_err()
                .contains("column 1: unknown field 'colour'")
        );
        assert!(
            parse("direction:inbound OR x")
                .unwrap_err()
                .contains("column 19")
        );
        assert!(parse("ani:\"open").unwrap_err().contains("unterminated"));
        assert!(
            parse("timestamp:[a b]")
                .unwrap_err()
                .contains("expected TO")
        );
    }
}
