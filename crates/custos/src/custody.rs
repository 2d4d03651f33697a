//! The custody log, `data/custody_log.jsonl`: one JSON object per line, appended and fsynced as
//! things happen, each line carrying the SHA-256 of the line before it, so that removing,
//! reordering or editing any line breaks the chain from there on.
//!
//! Every line has `seq`, `time` (UTC, ms), `event`, `actor`, `tool` and `prev`; events add their
//! own fields (docs/formats.md lists them). After a crash the last line may be torn: on reopening
//! it is cut off (and the cut recorded), and the chain continues from the last whole line.
//!
//! The log is payload: the bag seals it, and the signature's trusted comment names its head (the
//! hash of its last line). What happens after sealing (the signature itself) cannot be logged
//! inside what it signs; the signature records it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::lines::LineError;
use crate::query::format_ms;

/// The hash of "no previous line".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Inner {
    file: std::fs::File,
    seq: u64,
    prev: String,
}

/// Where a log's lines go: a file this process appends to, or a store that sequences the lines
/// of many processes into one chain (a distributed job's PostgreSQL state, docs/scale.md).
enum Sink {
    File { path: PathBuf, inner: Mutex<Inner> },
    Shared(std::sync::Arc<dyn LineStore>),
}

/// A log line before it is placed in the chain: everything but its `seq` and `prev`.
#[derive(Clone, Debug)]
pub struct Draft {
    time: String,
    event: String,
    actor: Value,
    tool: Value,
    fields: Map<String, Value>,
}

impl Draft {
    /// The line's bytes (no newline) at `seq`, after the line whose hash is `prev`. Every line
    /// of every log is made here, whichever sink keeps it.
    pub fn line(&self, seq: u64, prev: &str) -> Vec<u8> {
        let mut line = Map::new();
        line.insert("seq".into(), json!(seq));
        line.insert("time".into(), json!(self.time));
        line.insert("event".into(), json!(self.event));
        line.insert("actor".into(), self.actor.clone());
        line.insert("tool".into(), self.tool.clone());
        for (k, v) in &self.fields {
            line.insert(k.clone(), v.clone());
        }
        line.insert("prev".into(), json!(prev));
        serde_json::to_vec(&Value::Object(line)).expect("json")
    }

    /// The event's name.
    pub fn event(&self) -> &str {
        &self.event
    }
}

/// A store that places lines in one chain for every process writing to it: each append takes
/// the chain's head under a lock, writes the line after it and moves the head, durably.
pub trait LineStore: Send + Sync {
    /// Appends the line `draft` makes at the next place in the chain; returns its hash.
    fn append(&self, draft: &Draft) -> Result<String>;
    /// The hash of the last line ([`GENESIS`] for none).
    fn head(&self) -> Result<String>;
    /// Every line in order, each followed by a newline: the log as a file holds it.
    fn write_out(&self, to: &mut dyn Write) -> Result<()>;
}

/// This tool's name, as the custody records state it.
pub const TOOL: &str = "custos";
/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this build was made from.
pub const COMMIT: &str = env!("CUSTOS_GIT_COMMIT");

/// `{name, version, commit}` of this build, as the custody log records it.
pub fn tool() -> serde_json::Value {
    json!({"name": TOOL, "version": VERSION, "commit": COMMIT})
}

/// `user@host` of the account the process runs as (its real uid, named from the password
/// database; never `$USER`, which anyone can set).
pub fn os_identity() -> String {
    let user = account()
        .or_else(env_user)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// `$USER` (or `$LOGNAME`), when it names someone other than the account: recorded beside it.
pub fn env_user_if_different() -> Option<String> {
    let env = env_user()?;
    (account().as_deref() != Some(env.as_str())).then_some(env)
}

fn env_user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// The name of the process's real uid (Linux: /proc/self/status and /etc/passwd), or
/// `uid N` when the database does not name it.
fn account() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
        })
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// Who does what a custody log records (each line's `actor`): the account the process runs as
/// (`osUser`; `envUser` beside it when `$USER` names someone else), the operator the person
/// named, and the OAuth client acting at the source, when one does.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// The OAuth client acting at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// `user@host` of the process's account ([`os_identity`]).
    pub os_user: String,
    /// The operator (`--operator`, config or environment), as given.
    pub operator: Option<String>,
    /// `$USER`, when it names someone other than the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_user: Option<String>,
    /// The worker of a distributed job (its epoch, the fencing token the job state gave it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<i64>,
}

impl Actor {
    /// This process, for `operator`, acting through `oauth_client_id` if any.
    pub fn here(operator: Option<&str>, oauth_client_id: Option<&str>) -> Actor {
        Actor {
            oauth_client_id: oauth_client_id.map(str::to_owned),
            os_user: os_identity(),
            operator: operator.map(str::to_owned),
            env_user: env_user_if_different(),
            worker: None,
        }
    }
}

/// An open custody log.
pub struct CustodyLog {
    actor: Value,
    tool: Value,
    sink: Sink,
}

/// What checking a log found.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainCheck {
    /// Whole, chained lines.
    pub lines: u64,
    /// SHA-256 of the last whole line (the head), or [`GENESIS`].
    pub head: String,
    /// Bytes after the last whole line (a torn write), if any.
    pub torn_bytes: u64,
}

/// SHA-256 of a line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    crate::digest::Sha256::of(line).hex()
}

/// Why a log's chain does not hold (each names the first line that does not).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The log cannot be read.
    #[error("{path}: {source}")]
    Unreadable {
        /// The log.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// A line longer than the cap (never read whole).
    #[error("line {line} is longer than {cap} bytes; not read further")]
    TooLong {
        /// 1-based.
        line: u64,
        /// The cap.
        cap: usize,
    },
    /// A line that is not JSON.
    #[error("line {line}: not JSON ({why})")]
    NotJson {
        /// 1-based.
        line: u64,
        /// The parser's words.
        why: String,
    },
    /// A line whose `prev` is not the hash of the line before it.
    #[error(
        "line {line}: prev does not match the hash of line {} (a line was changed, removed or moved)",
        line - 1
    )]
    Unchained {
        /// 1-based.
        line: u64,
    },
    /// A line whose `seq` is not its number.
    #[error("line {line}: seq is {seq} (lines were removed or reordered)")]
    Sequence {
        /// 1-based.
        line: u64,
        /// What the line says.
        seq: String,
    },
}

/// Walks a log and checks its chain. An error names the first line that does not chain.
pub fn check_chain(path: &Path) -> std::result::Result<ChainCheck, ChainError> {
    let f = std::fs::File::open(path).map_err(|source| ChainError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    check_chain_lines(std::io::BufReader::new(f), MAX_LINE, |_| {})
}

/// The longest line a log may hold (custos writes lines of a few KiB).
pub const MAX_LINE: usize = 4 << 20;

/// Checks the chain of the log `r` yields, line by line (never more than `cap` bytes of one
/// line in memory), calling `visit` with each whole line parsed. An error names the first line
/// that does not chain, or is longer than `cap`.
pub fn check_chain_lines(
    r: impl BufRead,
    cap: usize,
    mut visit: impl FnMut(&Value),
) -> std::result::Result<ChainCheck, ChainError> {
    let mut prev = GENESIS.to_owned();
    let mut lines = 0u64;
    let mut torn_bytes = 0u64;
    crate::lines::for_each_line(r, cap, |line, whole| {
        if !whole {
            torn_bytes = line.len() as u64;
            return Ok(());
        }
        let n = lines + 1;
        let v: Value = serde_json::from_slice(line).map_err(|e| ChainError::NotJson {
            line: n,
            why: e.to_string(),
        })?;
        if v["prev"].as_str() != Some(prev.as_str()) {
            return Err(ChainError::Unchained { line: n });
        }
        if v["seq"].as_u64() != Some(n) {
            return Err(ChainError::Sequence {
                line: n,
                seq: v["seq"].to_string(),
            });
        }
        visit(&v);
        prev = line_hash(line);
        lines = n;
        Ok(())
    })
    .map_err(|e| match e {
        LineError::Line(e) => e,
        LineError::Io(e) => ChainError::Io(e),
        LineError::TooLong { line, cap } => ChainError::TooLong { line, cap },
    })?;
    Ok(ChainCheck {
        lines,
        head: prev,
        torn_bytes,
    })
}

/// A value as a CSV cell of the custody record: control characters written as `\u{..}`, and a
/// leading `'` before a value a spreadsheet would run as a formula (`=`, `+`, `-`, `@`). The
/// value as received stays in the custody log and the metadata (docs/formats.md).
pub fn csv_cell(v: &str) -> std::borrow::Cow<'_, str> {
    let formula = v.starts_with(['=', '+', '-', '@']);
    if !formula && !v.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    if formula {
        out.push('\'');
    }
    for c in v.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl CustodyLog {
    /// Opens (creating, or continuing after a crash) the log at `path`.
    pub fn open(path: &Path, actor: &Actor) -> Result<CustodyLog> {
        let (actor, tool) = (serde_json::to_value(actor).expect("json"), tool());
        let mut torn = 0;
        let (seq, prev) = if path.exists() {
            let check = check_chain(path).map_err(|e| {
                Error::Config(format!(
                    "the custody log is damaged, refusing to continue it: {e}"
                ))
            })?;
            if check.torn_bytes > 0 {
                // A write cut short by a crash: drop the partial line, and say so below.
                let len = std::fs::metadata(path)
                    .map_err(|e| Error::io(path, e))?
                    .len();
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                f.set_len(len - check.torn_bytes)
                    .map_err(|e| Error::io(path, e))?;
                f.sync_all().map_err(|e| Error::io(path, e))?;
                torn = check.torn_bytes;
            }
            (check.lines, check.head)
        } else {
            (0, GENESIS.to_owned())
        };
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(crate::durable::WORKING_MODE);
        }
        let file = o.open(path).map_err(|e| Error::io(path, e))?;
        let log = CustodyLog {
            actor,
            tool,
            sink: Sink::File {
                path: path.to_owned(),
                inner: Mutex::new(Inner { file, seq, prev }),
            },
        };
        if torn > 0 {
            log.append(
                "log-repaired",
                json!({"droppedBytes": torn, "note": "a line torn by a crash was removed"}),
            )?;
        }
        Ok(log)
    }

    /// A log whose lines `store` places in the chain it keeps for every process of a
    /// distributed job; [`CustodyLog::write_out`] writes it out as the file.
    pub fn shared(store: std::sync::Arc<dyn LineStore>, actor: &Actor) -> CustodyLog {
        CustodyLog {
            actor: serde_json::to_value(actor).expect("json"),
            tool: tool(),
            sink: Sink::Shared(store),
        }
    }

    /// The line `event` with `fields` (merged into the line; nulls left out) would make, now,
    /// as this log's actor: for a store that writes it in a transaction of its own.
    pub fn draft(&self, event: &str, fields: Value) -> Draft {
        let mut kept = Map::new();
        if let Value::Object(m) = fields {
            for (k, v) in m {
                if !v.is_null() {
                    kept.insert(k, v);
                }
            }
        }
        Draft {
            time: format_ms(time::OffsetDateTime::now_utc()),
            event: event.to_owned(),
            actor: self.actor.clone(),
            tool: self.tool.clone(),
            fields: kept,
        }
    }

    /// Appends one event (fields merged into the line) and fsyncs it. Returns the line's hash.
    pub fn append(&self, event: &str, fields: Value) -> Result<String> {
        let draft = self.draft(event, fields);
        let (path, inner) = match &self.sink {
            Sink::Shared(store) => return store.append(&draft),
            Sink::File { path, inner } => (path, inner),
        };
        let mut inner = inner.lock().expect("custody log lock");
        let seq = inner.seq + 1;
        let bytes = draft.line(seq, &inner.prev);
        let mut with_nl = bytes.clone();
        with_nl.push(b'\n');
        inner
            .file
            .write_all(&with_nl)
            .map_err(|e| Error::io(path, e))?;
        inner.file.sync_data().map_err(|e| Error::io(path, e))?;
        let hash = line_hash(&bytes);
        inner.seq = seq;
        inner.prev = hash.clone();
        Ok(hash)
    }

    /// The hash of the last line.
    pub fn head(&self) -> Result<String> {
        match &self.sink {
            Sink::File { inner, .. } => Ok(inner.lock().expect("custody log lock").prev.clone()),
            Sink::Shared(store) => store.head(),
        }
    }

    /// The store that keeps a shared log's lines, if this log is one.
    pub fn store(&self) -> Option<&std::sync::Arc<dyn LineStore>> {
        match &self.sink {
            Sink::Shared(store) => Some(store),
            Sink::File { .. } => None,
        }
    }

    /// Writes a shared log out, whole, as the file `path` (a temporary name, fsync, rename):
    /// the log the bag seals, byte for byte the lines the store chained. Nothing for a file log,
    /// which is its file already.
    pub fn write_out(&self, path: &Path) -> Result<()> {
        let Sink::Shared(store) = &self.sink else {
            return Ok(());
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        {
            let f = crate::durable::create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut w = std::io::BufWriter::new(f);
            store.write_out(&mut w)?;
            let f = w
                .into_inner()
                .map_err(|e| Error::io(&tmp, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        crate::durable::sync_dir(path.parent().unwrap_or(Path::new(".")))
    }
}

/// A URL with its query string and userinfo removed (pre-signed URLs carry their signature in
/// the query; none of it belongs in a log).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.split('?').next().unwrap_or("").to_owned(),
    }
}

/// Lines of a log, parsed (for tests and verification).
pub fn read_events(path: &Path) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        out.push(serde_json::from_str(&line).unwrap_or(Value::Null));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("custos-log-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn chain_detects_edits_removals_and_reorders() {
        let p = tmp("chain");
        let log = CustodyLog::open(&p, &Actor::here(None, Some("c"))).unwrap();
        for i in 0..4 {
            log.append("test", json!({"i": i})).unwrap();
        }
        let ok = check_chain(&p).unwrap();
        assert_eq!((ok.lines, ok.torn_bytes), (4, 0));
        assert_eq!(ok.head, log.head().unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let edited = text.replacen("\"i\":2", "\"i\":7", 1);
        let removed = [lines[0], lines[1], lines[3]].join("\n") + "\n";
        let swapped = [lines[0], lines[2], lines[1], lines[3]].join("\n") + "\n";
        for (bad, at) in [(edited, "line 4"), (removed, "line 3"), (swapped, "line 2")] {
            std::fs::write(&p, bad).unwrap();
            assert!(check_chain(&p).unwrap_err().to_string().starts_with(at));
        }
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_chain_continues() {
        let p = tmp("torn");
        {
            let log = CustodyLog::open(&p, &Actor::here(None, None)).unwrap();
            log.append("a", json!({})).unwrap();
            log.append("b", json!({})).unwrap();
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":3,\"time\":\"20").unwrap();
        assert_eq!(check_chain(&p).unwrap().torn_bytes, 19);
        let log = CustodyLog::open(&p, &Actor::here(None, None)).unwrap();
        log.append("c", json!({})).unwrap();
        let check = check_chain(&p).unwrap();
        assert_eq!((check.lines, check.torn_bytes), (4, 0));
        let events = read_events(&p).unwrap();
        assert_eq!(events[2]["event"], "log-repaired");
        assert_eq!(events[3]["event"], "c");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn csv_cells_are_never_formulas_or_control_characters() {
        assert_eq!(csv_cell("abc-1"), "abc-1");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("bell\u{7}id"), "bell\\u{7}id");
        assert_eq!(csv_cell("a\r\nb"), "a\\u{d}\\u{a}b");
    }

    #[test]
    fn a_line_longer_than_the_cap_is_refused_not_read() {
        let big = format!("{}\n", "x".repeat(1000));
        let e = check_chain_lines(big.as_bytes(), 100, |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 100 bytes"), "{e}");
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("https://u:p@host/a/b?Signature=x&Expires=1"),
            "https://host/a/b"
        );
    }
}
