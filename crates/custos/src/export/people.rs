//! Before anything is written: every person a genesys query names (`userId:`, `participantId:`)
//! must be a user of the organization, by id. The analytics API matches ids only, so a name or
//! an email there (`userId:"Jon Agent"`) matches nothing, and the export would seal an empty
//! answer as if nobody had spoken. Each value is looked up in the Users API (`GET
//! /api/v2/users?id=…`); a value that is not a user's id is refused, naming the user whose name
//! or email it is (the id to write instead), or saying that no user has it. Where the API
//! refuses the lookup (no `directory:user:view`), the export goes on and its custody log says
//! the people were not checked.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::Api;
use crate::query::{Condition, Field, Query};

/// Ids per request (Genesys' cap on `id` lists).
const IDS_PER_REQUEST: usize = 100;
/// Users per page when looking for a name or an email.
const PAGE: usize = 500;
/// At most this many pages are read to suggest an id (250,000 users).
const MAX_PAGES: usize = 500;

/// What the check found: the custody log's `query-people-checked` event.
pub(super) struct Checked(pub(super) Value);

/// The people `query` names, each checked against the Users API; `None` when it names nobody.
pub(super) async fn check(api: &Api, query: &Query) -> Result<Option<Checked>> {
    let named: BTreeSet<&str> = query
        .terms()
        .iter()
        .filter(|(f, _)| matches!(f, Field::UserId | Field::ParticipantId))
        .flat_map(|(_, c)| match c {
            Condition::OneOf(v) => v.iter().map(String::as_str).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    if named.is_empty() {
        return Ok(None);
    }
    let named: Vec<&str> = named.into_iter().collect();
    let mut known = BTreeSet::new();
    for chunk in named.chunks(IDS_PER_REQUEST) {
        let mut path = format!("/api/v2/users?pageSize={IDS_PER_REQUEST}");
        for id in chunk {
            path.push_str("&id=");
            path.push_str(&crate::source::url_path(id));
        }
        let v = match api.send_ok(Method::GET, &path, None).await {
            Ok(r) => r.json(&Method::GET, &api.url(&path))?,
            Err(e @ Error::Refused { .. }) => {
                return Ok(Some(Checked(json!({
                    "named": named, "checked": false,
                    "why": format!("the Users API refused the lookup: {e}"),
                }))));
            }
            Err(e) => return Err(e),
        };
        for u in v["entities"].as_array().into_iter().flatten() {
            if let Some(id) = u["id"].as_str().filter(|id| chunk.contains(id)) {
                known.insert(id.to_owned());
            }
        }
    }
    let unknown: Vec<&str> = named
        .iter()
        .copied()
        .filter(|v| !known.contains(*v))
        .collect();
    if unknown.is_empty() {
        return Ok(Some(Checked(
            json!({"named": named, "checked": true, "allUserIds": true}),
        )));
    }
    let users = every_user(api).await?;
    let said: Vec<String> = unknown
        .iter()
        .map(|v| {
            let lower = v.to_lowercase();
            let matches: Vec<String> = users
                .iter()
                .filter(|u| {
                    ["name", "email", "username"]
                        .iter()
                        .any(|k| u[*k].as_str().is_some_and(|s| s.to_lowercase() == lower))
                })
                .map(|u| {
                    format!(
                        "userId:\"{}\" ({})",
                        u["id"].as_str().unwrap_or(""),
                        crate::shown::text(u["name"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            if matches.is_empty() {
                format!(
                    "\"{}\" is no user of this organization (neither an id, a name nor an email)",
                    crate::shown::text(v)
                )
            } else {
                format!(
                    "\"{}\" is not a user id; write {}",
                    crate::shown::text(v),
                    matches.join(" or ")
                )
            }
        })
        .collect();
    Err(Error::Config(format!(
        "the query names people by what the analytics API cannot match, so it would select nothing for them: {}",
        said.join("; ")
    )))
}

/// Every user of the organization (at most [`MAX_PAGES`] pages), to find a name or an email.
async fn every_user(api: &Api) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 1..=MAX_PAGES {
        let path = format!("/api/v2/users?pageSize={PAGE}&pageNumber={page}");
        let v = match api.send_ok(Method::GET, &path, None).await {
            Ok(r) => r.json(&Method::GET, &api.url(&path))?,
            Err(Error::Refused { .. }) => break,
            Err(e) => return Err(e),
        };
        out.extend(v["entities"].as_array().into_iter().flatten().cloned());
        if v["nextUri"].as_str().is_none_or(str::is_empty) {
            break;
        }
    }
    Ok(out)
}

/// One custodian as given (`--custodian`), and the user the Users API says it is.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Custodian {
    /// As the operator gave it.
    pub given: String,
    /// The user's id.
    pub user_id: String,
    /// The user's name, as the Users API states it.
    pub name: String,
    /// The user's email.
    pub email: String,
    /// What matched: `id`, `name`, `email` or `username`.
    pub matched_by: &'static str,
}

/// Resolves every custodian (a user id, a name, an email or a username) to one user of the
/// organization through the Users API, or refuses: a value that matches no user, or more than
/// one (two people of one name), is an error naming what to give instead. Never a silent zero.
pub(super) async fn custodians(api: &Api, given: &[String]) -> Result<Vec<Custodian>> {
    let text = |u: &Value, k: &str| u[k].as_str().unwrap_or("").to_owned();
    let mut by_id: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let plausible: Vec<&String> = given.iter().filter(|g| crate::model::safe_id(g)).collect();
    for chunk in plausible.chunks(IDS_PER_REQUEST) {
        let mut path = format!("/api/v2/users?pageSize={IDS_PER_REQUEST}");
        for id in chunk {
            path.push_str("&id=");
            path.push_str(&crate::source::url_path(id));
        }
        let v = api
            .send_ok(Method::GET, &path, None)
            .await
            .map_err(|e| match e {
                Error::Refused { .. } => Error::Config(format!(
                    "--custodian needs the Users API (directory:user:view), which refused: {e}"
                )),
                e => e,
            })?
            .json(&Method::GET, &api.url(&path))?;
        for u in v["entities"].as_array().into_iter().flatten() {
            if let Some(id) = u["id"].as_str().filter(|id| chunk.iter().any(|c| c == id)) {
                by_id.insert(id.to_owned(), u.clone());
            }
        }
    }
    let mut users: Option<Vec<Value>> = None;
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for g in given {
        if let Some(u) = by_id.get(g) {
            out.push(Custodian {
                given: g.clone(),
                user_id: g.clone(),
                name: text(u, "name"),
                email: text(u, "email"),
                matched_by: "id",
            });
            continue;
        }
        if users.is_none() {
            users = Some(every_user(api).await?);
        }
        let lower = g.trim().to_lowercase();
        let matches: Vec<(&Value, &'static str)> = users
            .iter()
            .flatten()
            .filter_map(|u| {
                ["email", "username", "name"]
                    .into_iter()
                    .find(|k| u[*k].as_str().is_some_and(|s| s.to_lowercase() == lower))
                    .map(|k| (u, k))
            })
            .collect();
        match matches.as_slice() {
            [(u, by)] => out.push(Custodian {
                given: g.clone(),
                user_id: text(u, "id"),
                name: text(u, "name"),
                email: text(u, "email"),
                matched_by: by,
            }),
            [] => refused.push(format!(
                "\"{}\" is no user of this organization (neither an id, a name, an email nor a username)",
                crate::shown::text(g)
            )),
            many => refused.push(format!(
                "\"{}\" matches {} users ({}); give the id of the one you mean",
                crate::shown::text(g),
                many.len(),
                many.iter()
                    .map(|(u, _)| format!(
                        "{} <{}> {}",
                        crate::shown::text(u["name"].as_str().unwrap_or("")),
                        crate::shown::text(u["email"].as_str().unwrap_or("")),
                        crate::shown::text(u["id"].as_str().unwrap_or(""))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if !refused.is_empty() {
        return Err(Error::Config(format!(
            "custodians that are no one, or more than one, would select nothing or the wrong person: {}",
            refused.join("; ")
        )));
    }
    Ok(out)
}
