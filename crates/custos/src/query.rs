//! The deterministic query: the design guide's Lucene-style language, parsed strictly,
//! canonicalised, and turned into the exact requests each source API is sent.
//!
//! ```text
//! timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-01T23:59:59.999Z] AND participantId:"5f4d…"
//! ```
//!
//! The language: `field:value`, `field:"quoted value"` (`\"` and `\\` escape), `field:(a OR b)`,
//! inclusive `[a TO b]` and exclusive `{a TO b}` ranges (mixed brackets allowed; `*` leaves an
//! end open), terms joined by `AND`. Fields: `timestamp` (ranges only), `conversationId`,
//! `participantId`, `userId`, `queueId`, `mediaType`, `direction`, `ani`, `dnis`, `divisionId`.
//! Anything else — `OR` between fields, `NOT`, wildcards, a field given twice, lowercase
//! keywords — is refused with an error naming the column, because an eDiscovery query must mean
//! one thing only.
//!
//! What a query selects differs by source, because the APIs differ:
//! * `search` sends the query verbatim as `q`; the server decides (the guide: recordings whose
//!   start is in the range).
//! * `genesys` translates it into analytics bodies (see [`Query::genesys_requests`]); it selects
//!   **conversations that started in the range** and match the filters, and all their recordings.
//!   The synchronous details query returns every conversation that started on a *day touched* by
//!   its interval, so the exporter must keep only those whose `conversationStart` is in
//!   [`TimeRange`] (use [`TimeRange::contains`]).

use std::fmt;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A field of the query language, in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// Conversation start (genesys) or recording start (search).
    Timestamp,
    /// Genesys conversation id.
    ConversationId,
    /// The guide's participant: a user (agent) id for genesys, as Genesys has no participant-id
    /// filter; the search API may also match participant ids.
    ParticipantId,
    /// A user (agent) id.
    UserId,
    /// A queue id.
    QueueId,
    /// Session media type, e.g. `voice`.
    MediaType,
    /// `inbound` or `outbound` (the conversation's originating direction).
    Direction,
    /// Calling number.
    Ani,
    /// Dialled number.
    Dnis,
    /// Division id.
    DivisionId,
}

impl Field {
    const ALL: [Field; 10] = [
        Field::Timestamp,
        Field::ConversationId,
        Field::ParticipantId,
        Field::UserId,
        Field::QueueId,
        Field::MediaType,
        Field::Direction,
        Field::Ani,
        Field::Dnis,
        Field::DivisionId,
    ];

    /// The name in the query language.
    pub fn name(self) -> &'static str {
        match self {
            Field::Timestamp => "timestamp",
            Field::ConversationId => "conversationId",
            Field::ParticipantId => "participantId",
            Field::UserId => "userId",
            Field::QueueId => "queueId",
            Field::MediaType => "mediaType",
            Field::Direction => "direction",
            Field::Ani => "ani",
            Field::Dnis => "dnis",
            Field::DivisionId => "divisionId",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The analytics session media types (SDK 257.1.0 `AnalyticsSession.mediaType`).
const MEDIA_TYPES: &[&str] = &[
    "callback",
    "chat",
    "cobrowse",
    "email",
    "internalmessage",
    "message",
    "screenmonitoring",
    "screenshare",
    "unknown",
    "video",
    "voice",
];

/// A time range with explicit inclusivity; open ends are `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// Lower bound and whether it is included.
    pub start: Option<(OffsetDateTime, bool)>,
    /// Upper bound and whether it is included.
    pub end: Option<(OffsetDateTime, bool)>,
}

impl TimeRange {
    /// Whether `t` lies in the range.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        let above = self
            .start
            .is_none_or(|(s, incl)| if incl { t >= s } else { t > s });
        let below = self
            .end
            .is_none_or(|(e, incl)| if incl { t <= e } else { t < e });
        above && below
    }

    /// The half-open interval `[from, to)` at millisecond precision (Genesys' resolution) that
    /// holds exactly the range's instants, if both ends are bounded.
    pub fn half_open_ms(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let ms = Duration::milliseconds(1);
        let (s, s_incl) = self.start?;
        let (e, e_incl) = self.end?;
        let from = if s_incl { s } else { s + ms };
        let to = if e_incl { e + ms } else { e };
        Some((from, to))
    }
}

/// What one term asks of its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Any of these values (sorted, unique).
    OneOf(Vec<String>),
    /// A timestamp range.
    Range(TimeRange),
}

/// A parsed, validated query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    text: String,
    terms: Vec<(Field, Condition)>,
}

/// A query the language does not allow, with the column (1-based, in characters) it went wrong at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
    /// The query as given.
    pub query: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid query at column {}: {}",
            self.column, self.message
        )?;
        writeln!(f, "  {}", self.query)?;
        write!(f, "  {}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn err<T>(&self, at: usize, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            column: at + 1,
            message: message.into(),
            query: self.text.to_owned(),
        })
    }

    fn ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// A bare word: letters, digits and anything but whitespace, brackets, quotes and (when
    /// `colon_ends` is set) ':'.
    fn bare(&mut self, colon_ends: bool) -> (usize, String) {
        self.ws();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || "()[]{}\"".contains(c) || (colon_ends && c == ':') {
                break;
            }
            self.pos += 1;
        }
        (start, self.chars[start..self.pos].iter().collect())
    }

    fn keyword(&mut self, want: &str) -> Result<(), QueryError> {
        let (at, w) = self.bare(false);
        if w == want {
            return Ok(());
        }
        if w.eq_ignore_ascii_case(want) {
            return self.err(
                at,
                format!("keywords are upper case: write {want}, not {w}"),
            );
        }
        if w.is_empty() {
            return self.err(at, format!("expected {want}"));
        }
        self.err(at, format!("expected {want}, found '{w}'"))
    }

    /// A value: quoted, or bare. Returns (column, value, was_quoted).
    fn value(&mut self) -> Result<(usize, String, bool), QueryError> {
        self.ws();
        let at = self.pos;
        if self.peek() == Some('"') {
            self.pos += 1;
            let mut v = String::new();
            loop {
                match self.peek() {
                    None => return self.err(at, "unterminated quoted value: add the closing \""),
                    Some('"') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') => {
                        match self.chars.get(self.pos + 1) {
                            Some(c @ ('"' | '\\')) => v.push(*c),
                            _ => return self.err(self.pos, "only \\\" and \\\\ may be escaped"),
                        }
                        self.pos += 2;
                    }
                    Some(c) => {
                        v.push(c);
                        self.pos += 1;
                    }
                }
            }
            return Ok((at, v, true));
        }
        let (at, v) = self.bare(false);
        if v.is_empty() {
            return match self.peek() {
                None => self.err(at, "expected a value"),
                Some(c) => self.err(at, format!("expected a value, found '{c}'")),
            };
        }
        Ok((at, v, false))
    }
}

fn parse_time(p: &Parser<'_>, at: usize, v: &str) -> Result<OffsetDateTime, QueryError> {
    OffsetDateTime::parse(v, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .or_else(|_| p.err(at, format!("'{v}' is not an RFC 3339 time such as 2023-10-01T00:00:00.000Z (the offset is required)")))
}

/// The rest of a timestamp range after its opening `[` or `{` (at `at`): bounds, `TO`, the
/// closing bracket; `*` is an open bound.
fn parse_range(p: &mut Parser<'_>, open: char, at: usize) -> Result<TimeRange, QueryError> {
    let (lo_at, lo, lo_q) = p.value()?;
    p.keyword("TO")?;
    let (hi_at, hi, hi_q) = p.value()?;
    p.ws();
    let close = p.peek();
    let end_incl = match close {
        Some(']') => true,
        Some('}') => false,
        _ => return p.err(p.pos, "expected ']' or '}' to close the range"),
    };
    p.pos += 1;
    let bound = |at: usize,
                 v: &str,
                 quoted: bool,
                 incl: bool|
     -> Result<Option<(OffsetDateTime, bool)>, QueryError> {
        if v == "*" && !quoted {
            Ok(None)
        } else {
            Ok(Some((parse_time(p, at, v)?, incl)))
        }
    };
    let range = TimeRange {
        start: bound(lo_at, &lo, lo_q, open == '[')?,
        end: bound(hi_at, &hi, hi_q, end_incl)?,
    };
    if let (Some((s, _)), Some((e, _))) = (range.start, range.end)
        && s >= e
    {
        return p.err(hi_at, "the range ends before it starts");
    }
    if range.start.is_none() && range.end.is_none() {
        return p.err(at, "a range needs at least one bound");
    }
    Ok(range)
}

impl Query {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
            text,
        };
        let mut terms: Vec<(Field, Condition)> = Vec::new();
        p.ws();
        if p.peek().is_none() {
            return p.err(0, "the query is empty");
        }
        loop {
            let (at, name) = p.bare(true);
            if name.is_empty() {
                return match p.peek() {
                    Some(c) => p.err(at, format!("expected a field name, found '{c}'")),
                    None => p.err(at, "expected a field name"),
                };
            }
            if ["NOT", "OR", "AND"].contains(&name.to_ascii_uppercase().as_str())
                || name.starts_with(['-', '+', '!'])
            {
                return p.err(at, format!("'{name}' is not supported here: terms are fields joined by AND; OR only inside field:(a OR b)"));
            }
            let Some(field) = Field::parse(&name) else {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                return p.err(
                    at,
                    format!(
                        "unknown field '{name}' (fields are case-sensitive; known: {})",
                        known.join(", ")
                    ),
                );
            };
            if terms.iter().any(|(f, _)| *f == field) {
                return p.err(
                    at,
                    format!("{name} appears twice; give its values once, as {name}:(a OR b)"),
                );
            }
            if p.peek() != Some(':') {
                return p.err(p.pos, format!("expected ':' after {name}"));
            }
            p.pos += 1;
            if p.peek().is_some_and(char::is_whitespace) {
                return p.err(p.pos, format!("no space is allowed after {name}:"));
            }
            let cond = match p.peek() {
                Some(open @ ('[' | '{')) => {
                    let at = p.pos;
                    p.pos += 1;
                    if field != Field::Timestamp {
                        return p.err(
                            at,
                            format!("ranges are only supported on timestamp, not {name}"),
                        );
                    }
                    Condition::Range(parse_range(&mut p, open, at)?)
                }
                Some('(') => {
                    p.pos += 1;
                    let mut vals = vec![p.value()?];
                    loop {
                        p.ws();
                        if p.peek() == Some(')') {
                            p.pos += 1;
                            break;
                        }
                        p.keyword("OR")?;
                        vals.push(p.value()?);
                    }
                    Condition::OneOf(check_values(&p, field, vals)?)
                }
                _ => {
                    let v = p.value()?;
                    Condition::OneOf(check_values(&p, field, vec![v])?)
                }
            };
            if field == Field::Timestamp && !matches!(cond, Condition::Range(_)) {
                return p.err(at, "timestamp takes a range: timestamp:[from TO to]");
            }
            terms.push((field, cond));
            p.ws();
            if p.peek().is_none() {
                break;
            }
            p.keyword("AND")?;
            p.ws();
            if p.peek().is_none() {
                return p.err(p.pos, "expected a term after AND");
            }
        }
        terms.sort_by_key(|(f, _)| *f);
        Ok(Query {
            text: text.to_owned(),
            terms,
        })
    }

    /// The query as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The terms, in canonical field order.
    pub fn terms(&self) -> &[(Field, Condition)] {
        &self.terms
    }

    /// The timestamp range, if the query has one.
    pub fn time_range(&self) -> Option<TimeRange> {
        self.terms.iter().find_map(|(_, c)| match c {
            Condition::Range(r) => Some(*r),
            _ => None,
        })
    }

    /// This query narrowed to the people `ids` (`--custodian`, resolved to user ids): `AND
    /// userId:(…)` added to its text and terms. Refused when the query already names `userId`
    /// (the custodians would be AND-ed with it, selecting only conversations of both).
    pub fn with_users(&self, ids: &[String]) -> Result<Query, String> {
        if self.values(Field::UserId).is_some() {
            return Err(
                "the query names userId and --custodian is given: name the people one way, either in the query or with --custodian".into(),
            );
        }
        let mut ids: Vec<String> = ids.to_vec();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Err("no custodian to narrow the query to".into());
        }
        let quoted: Vec<String> = ids
            .iter()
            .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let mut terms = self.terms.clone();
        terms.push((Field::UserId, Condition::OneOf(ids)));
        terms.sort_by_key(|(f, _)| *f);
        Ok(Query {
            text: format!("{} AND userId:({})", self.text, quoted.join(" OR ")),
            terms,
        })
    }

    /// The values of `field`, if the query names it.
    pub fn values(&self, field: Field) -> Option<&[String]> {
        self.terms.iter().find_map(|(f, c)| match c {
            Condition::OneOf(v) if *f == field => Some(v.as_slice()),
            _ => None,
        })
    }

    /// The canonical form: fields in a fixed order, values sorted, unique and quoted, times in
    /// UTC with milliseconds. Two queries with the same canonical form select the same things.
    pub fn canonical(&self) -> String {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let ts = |t: OffsetDateTime| format_ms(t);
        self.terms
            .iter()
            .map(|(f, c)| match c {
                Condition::OneOf(v) if v.len() == 1 => format!("{}:{}", f.name(), quote(&v[0])),
                Condition::OneOf(v) => format!(
                    "{}:({})",
                    f.name(),
                    v.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" OR ")
                ),
                Condition::Range(r) => {
                    let (open, lo) = match r.start {
                        Some((t, incl)) => (if incl { '[' } else { '{' }, ts(t)),
                        None => ('[', "*".to_owned()),
                    };
                    let (close, hi) = match r.end {
                        Some((t, incl)) => (if incl { ']' } else { '}' }, ts(t)),
                        None => (']', "*".to_owned()),
                    };
                    format!("{}:{open}{lo} TO {hi}{close}", f.name())
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// SHA-256 (lowercase hex) of the canonical form.
    pub fn canonical_sha256(&self) -> String {
        crate::digest::Sha256::of(self.canonical().as_bytes()).hex()
    }

    /// The query's range and the filters every analytics body it derives holds (ordered by
    /// conversation start, no interval, no paging).
    fn analytics_base(&self) -> Result<(OffsetDateTime, OffsetDateTime, Value), String> {
        let range = self
            .time_range()
            .ok_or("the genesys source needs a timestamp range: timestamp:[from TO to]")?;
        let (from, to) = range
            .half_open_ms()
            .ok_or("the genesys source needs both ends of the timestamp range (no *)")?;
        let mut conversation_filters = Vec::new();
        let mut segment_filters = Vec::new();
        for (field, cond) in &self.terms {
            let Condition::OneOf(values) = cond else {
                continue;
            };
            let (level, dimension) = match field {
                Field::ConversationId => (&mut conversation_filters, "conversationId"),
                Field::DivisionId => (&mut conversation_filters, "divisionId"),
                Field::Direction => (&mut conversation_filters, "originatingDirection"),
                Field::ParticipantId | Field::UserId => (&mut segment_filters, "userId"),
                Field::QueueId => (&mut segment_filters, "queueId"),
                Field::MediaType => (&mut segment_filters, "mediaType"),
                Field::Ani => (&mut segment_filters, "ani"),
                Field::Dnis => (&mut segment_filters, "dnis"),
                Field::Timestamp => continue,
            };
            let predicates: Vec<Value> =
                values.iter().map(|v| json!({"type": "dimension", "dimension": dimension, "operator": "matches", "value": v})).collect();
            level.push(json!({"type": "or", "predicates": predicates}));
        }
        // participantId and userId both map to userId: two filters, both must hold.
        let mut base = json!({"order": "asc", "orderBy": "conversationStart"});
        if !conversation_filters.is_empty() {
            base["conversationFilters"] = Value::Array(conversation_filters);
        }
        if !segment_filters.is_empty() {
            base["segmentFilters"] = Value::Array(segment_filters);
        }
        Ok((from, to, base))
    }

    /// The whole query as one asynchronous analytics query (`interval` the whole range, no
    /// paging): a recording bulk job's `conversationQuery`. It selects every conversation that
    /// overlaps the range, a superset of the manifest's.
    pub fn conversation_query(&self) -> Result<Value, String> {
        let (from, to, mut base) = self.analytics_base()?;
        base["interval"] = json!(format!("{}/{}", format_ms(from), format_ms(to)));
        Ok(base)
    }

    /// The analytics requests that find the query's conversations on the Genesys Platform API,
    /// given the time the export starts (`now`, for the 35-day rule).
    ///
    /// Ranges starting within the last 35 days (less a day of margin) become synchronous
    /// `details/query` bodies, one per window of at most 7 days; older ones become one async
    /// `details/jobs` body, which has neither limit. Every field becomes one filter (values
    /// OR-ed): conversationId, divisionId and direction (`originatingDirection`) at conversation
    /// level; participantId and userId (`userId`), queueId, mediaType, ani and dnis at segment
    /// level. The range must be bounded at both ends: an export needs a finite interval.
    pub fn genesys_requests(
        &self,
        now: OffsetDateTime,
        page_size: u32,
    ) -> Result<Vec<DerivedRequest>, String> {
        let (from, to, base) = self.analytics_base()?;
        let interval =
            |a: OffsetDateTime, b: OffsetDateTime| format!("{}/{}", format_ms(a), format_ms(b));
        if from < now - Duration::days(SYNC_MAX_AGE_DAYS - 1) {
            let mut body = base;
            body["interval"] = json!(interval(from, to));
            return Ok(vec![DerivedRequest {
                method: "POST",
                path: DETAILS_JOBS,
                body,
            }]);
        }
        let mut out = Vec::new();
        let mut a = from;
        while a < to {
            let b = (a + Duration::days(SYNC_MAX_DAYS)).min(to);
            let mut body = base.clone();
            body["interval"] = json!(interval(a, b));
            body["paging"] = json!({"pageSize": page_size, "pageNumber": 1});
            out.push(DerivedRequest {
                method: "POST",
                path: DETAILS_QUERY,
                body,
            });
            a = b;
        }
        Ok(out)
    }
}

/// The synchronous details query's interval limit, days.
pub const SYNC_MAX_DAYS: i64 = 7;
/// How far back the synchronous details query reaches, days.
pub const SYNC_MAX_AGE_DAYS: i64 = 35;
/// The synchronous details query.
pub const DETAILS_QUERY: &str = "/api/v2/analytics/conversations/details/query";
/// The asynchronous details jobs.
pub const DETAILS_JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

/// One request derived from a query, recorded verbatim before it is sent. For a details query
/// the body is the first page's; later pages change only `paging.pageNumber`.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedRequest {
    /// HTTP method.
    pub method: &'static str,
    /// Path under the API base.
    pub path: &'static str,
    /// JSON body.
    pub body: Value,
}

/// `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn format_ms(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn check_values(
    p: &Parser<'_>,
    field: Field,
    vals: Vec<(usize, String, bool)>,
) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::with_capacity(vals.len());
    for (at, v, quoted) in vals {
        if v.is_empty() {
            return p.err(at, format!("{} needs a non-empty value", field.name()));
        }
        if v.chars().any(char::is_control) {
            return p.err(at, "control characters are not allowed in values");
        }
        if !quoted && (v.contains('*') || v.contains('?')) {
            return p.err(
                at,
                "wildcards are not supported: an eDiscovery query names exact values",
            );
        }
        match field {
            Field::Direction if v != "inbound" && v != "outbound" => {
                return p.err(at, format!("direction is inbound or outbound, not '{v}'"));
            }
            Field::MediaType if !MEDIA_TYPES.contains(&v.as_str()) => {
                return p.err(
                    at,
                    format!(
                        "unknown mediaType '{v}' (known: {})",
                        MEDIA_TYPES.join(", ")
                    ),
                );
            }
            _ => {}
        }
        out.push(v);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const GUIDE: &str = r#"timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-01T23:59:59.999Z] AND participantId:"5f4d0c1e""#;

    #[test]
    fn custodians_narrow_a_query_and_parse_back_the_same() {
        let q = Query::parse(
            "timestamp:[2026-11-01T00:00:00Z TO 2026-11-20T00:00:00Z} AND direction:inbound",
        )
        .unwrap();
        let n = q
            .with_users(&["u2".into(), "u1".into(), "u2".into()])
            .unwrap();
        assert_eq!(n.values(Field::UserId).unwrap(), ["u1", "u2"]);
        assert_eq!(Query::parse(n.text()).unwrap().canonical(), n.canonical());
        let named =
            Query::parse("timestamp:[2026-11-01T00:00:00Z TO 2026-11-20T00:00:00Z} AND userId:u1")
                .unwrap();
        assert!(named.with_users(&["u1".into()]).is_err());
    }

    #[test]
    fn parses_the_guides_example() {
        let q = Query::parse(GUIDE).unwrap();
        assert_eq!(q.text(), GUIDE);
        assert_eq!(q.values(Field::ParticipantId).unwrap(), ["5f4d0c1e"]);
        let r = q.time_range().unwrap();
        assert_eq!(r.start, Some((datetime!(2023-10-01 00:00 UTC), true)));
        assert_eq!(r.end, Some((datetime!(2023-10-01 23:59:59.999 UTC), true)));
        assert_eq!(
            r.half_open_ms(),
            Some((
                datetime!(2023-10-01 00:00 UTC),
                datetime!(2023-10-02 00:00 UTC)
            ))
        );
    }

    #[test]
    fn canonical_form_is_order_and_spelling_independent() {
        let a = Query::parse(r#"direction:(outbound OR inbound) AND timestamp:{2023-10-01T02:00:00+02:00 TO *] AND ani:"tel:+1555""#).unwrap();
        let b = Query::parse(r#"ani:"tel:+1555"   AND timestamp:{2023-10-01T00:00:00.000Z TO *]  AND direction:("inbound" OR outbound OR inbound)"#)
            .unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(
            a.canonical(),
            r#"timestamp:{2023-10-01T00:00:00.000Z TO *] AND direction:("inbound" OR "outbound") AND ani:"tel:+1555""#
        );
        assert_eq!(a.canonical_sha256(), b.canonical_sha256());
        assert_eq!(a.canonical_sha256().len(), 64);
        // The canonical form parses back to itself.
        assert_eq!(
            Query::parse(&a.canonical()).unwrap().canonical(),
            a.canonical()
        );
        let quoted = Query::parse(r#"queueId:"a \"b\" \\c""#).unwrap();
        assert_eq!(quoted.values(Field::QueueId).unwrap(), [r#"a "b" \c"#]);
        assert_eq!(
            Query::parse(&quoted.canonical()).unwrap(),
            Query {
                text: quoted.canonical(),
                ..quoted.clone()
            }
        );
    }

    #[test]
    fn ranges_respect_inclusivity() {
        let q = Query::parse("timestamp:{2023-10-01T00:00:00Z TO 2023-10-02T00:00:00Z]").unwrap();
        let r = q.time_range().unwrap();
        assert!(!r.contains(datetime!(2023-10-01 00:00 UTC)));
        assert!(r.contains(datetime!(2023-10-01 00:00:00.001 UTC)));
        assert!(r.contains(datetime!(2023-10-02 00:00 UTC)));
        assert!(!r.contains(datetime!(2023-10-02 00:00:00.001 UTC)));
        assert_eq!(
            r.half_open_ms(),
            Some((
                datetime!(2023-10-01 00:00:00.001 UTC),
                datetime!(2023-10-02 00:00:00.001 UTC)
            ))
        );
    }

    fn err(q: &str) -> QueryError {
        Query::parse(q).unwrap_err()
    }

    #[test]
    fn everything_else_is_refused_at_its_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("colour:red", 1, "unknown field 'colour'"),
            ("conversationid:x", 1, "unknown field"),
            (
                "direction:inbound OR direction:outbound",
                19,
                "expected AND, found 'OR'",
            ),
            ("direction:inbound and ani:x", 19, "keywords are upper case"),
            ("NOT direction:inbound", 1, "not supported"),
            ("direction:sideways", 11, "inbound or outbound"),
            ("ani:x AND ani:y", 11, "appears twice"),
            ("ani:55*", 5, "wildcards"),
            ("ani: x", 5, "no space"),
            ("ani", 4, "expected ':'"),
            ("ani:\"open", 5, "unterminated"),
            ("queueId:[a TO b]", 9, "only supported on timestamp"),
            ("timestamp:2023-10-01T00:00:00Z", 1, "takes a range"),
            (
                "timestamp:[2023-10-01 TO 2023-10-02T00:00:00Z]",
                12,
                "RFC 3339",
            ),
            (
                "timestamp:[2023-10-02T00:00:00Z 2023-10-03T00:00:00Z]",
                33,
                "expected TO",
            ),
            (
                "timestamp:[2023-10-02T00:00:00Z TO 2023-10-01T00:00:00Z]",
                36,
                "ends before it starts",
            ),
            (
                "timestamp:[2023-10-01T00:00:00Z TO 2023-10-02T00:00:00Z",
                56,
                "to close the range",
            ),
            ("timestamp:[* TO *]", 11, "at least one bound"),
            ("ani:x AND", 10, "after AND"),
            ("mediaType:fax", 11, "unknown mediaType"),
            ("ani:(a OR b", 12, "expected OR"),
            ("ani:\"a\u{7}\"", 5, "control characters"),
        ];
        for (q, col, needle) in cases {
            let e = err(q);
            assert!(e.message.contains(needle), "{q}: {}", e.message);
            assert_eq!(e.column, *col, "{q}: {}", e.message);
        }
        let shown = err("ani:x OR y").to_string();
        assert_eq!(
            shown,
            "invalid query at column 7: expected AND, found 'OR'\n  ani:x OR y\n        ^"
        );
    }

    #[test]
    fn recent_ranges_become_seven_day_sync_queries() {
        let q = Query::parse("timestamp:[2026-11-01T00:00:00Z TO 2026-11-20T00:00:00Z} AND userId:(u2 OR u1) AND direction:inbound").unwrap();
        let reqs = q
            .genesys_requests(datetime!(2026-11-26 12:00 UTC), 100)
            .unwrap();
        let intervals: Vec<&str> = reqs
            .iter()
            .map(|r| r.body["interval"].as_str().unwrap())
            .collect();
        assert_eq!(
            intervals,
            [
                "2026-11-01T00:00:00.000Z/2026-11-08T00:00:00.000Z",
                "2026-11-08T00:00:00.000Z/2026-11-15T00:00:00.000Z",
                "2026-11-15T00:00:00.000Z/2026-11-20T00:00:00.000Z"
            ]
        );
        let body = &reqs[0].body;
        assert_eq!(reqs[0].path, DETAILS_QUERY);
        assert_eq!(body["paging"], json!({"pageSize": 100, "pageNumber": 1}));
        assert_eq!(body["order"], "asc");
        assert_eq!(body["segmentFilters"][0]["predicates"][0]["value"], "u1");
        assert_eq!(body["segmentFilters"][0]["predicates"][1]["value"], "u2");
        assert_eq!(
            body["conversationFilters"][0]["predicates"][0]["dimension"],
            "originatingDirection"
        );
    }

    #[test]
    fn old_ranges_become_one_async_job_and_open_ranges_are_refused() {
        let q = Query::parse(GUIDE).unwrap();
        let reqs = q
            .genesys_requests(datetime!(2026-11-26 12:00 UTC), 100)
            .unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, DETAILS_JOBS);
        assert_eq!(
            reqs[0].body["interval"],
            "2023-10-01T00:00:00.000Z/2023-10-02T00:00:00.000Z"
        );
        assert!(reqs[0].body.get("paging").is_none());
        assert_eq!(
            reqs[0].body["segmentFilters"][0]["predicates"][0]["dimension"],
            "userId"
        );

        let open = Query::parse("timestamp:[2023-10-01T00:00:00Z TO *]").unwrap();
        assert!(
            open.genesys_requests(datetime!(2026-11-26 12:00 UTC), 100)
                .unwrap_err()
                .contains("both ends")
        );
        let none = Query::parse("ani:x").unwrap();
        assert!(
            none.genesys_requests(datetime!(2026-11-26 12:00 UTC), 100)
                .unwrap_err()
                .contains("needs a timestamp range")
        );
    }
}
