//! Preservation at the source: deletion protection (a legal hold on conversations, `PUT|POST
//! /api/v2/recordings/deletionprotection`) and the restore of archived recordings (`PUT
//! /api/v2/conversations/{cid}/recordings/{rid}` with a new `archiveDate`), as the SDK models
//! them (`ConversationDeletionProtectionQuery`, `ManageDeleteProtectionResult`, `Recording`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::catalog::FileState;
use crate::recordings::{conversation_or_404, recording_json, recording_or_404};
use crate::state::{Inner, Restore};
use crate::wire::{error, json_body, ok, parse_ts};

/// "The list cannot exceed 100 conversationids" (ConversationDeletionProtectionQuery).
const MAX_IDS: usize = 100;

/// The permission each action needs, as the simulator names them.
pub const APPLY: &str = "recording:deletionProtection:apply";
/// Revoking protection.
pub const REVOKE: &str = "recording:deletionProtection:revoke";
/// Restoring an archived recording.
pub const RESTORE: &str = "recording:recording:restore";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProtectionQuery {
    conversation_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub struct ProtectParams {
    protect: Option<String>,
}

/// 403 if the scenario withholds `permission` from its clients.
pub(crate) fn denied(inner: &Inner, permission: &str) -> Option<Response> {
    inner
        .scenario
        .denied_permissions
        .iter()
        .any(|p| p == permission)
        .then(|| {
            error(
                inner,
                StatusCode::FORBIDDEN,
                "missing.any.permissions",
                &format!(
                    "Unable to perform the requested action. You are missing the following permission(s): [{permission}]"
                ),
            )
        })
}

/// The body's `conversationIds`: 1 to 100 of them.
fn conversation_ids(
    inner: &Inner,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<String>, Response> {
    let q: ProtectionQuery = json_body(inner, headers, body)?;
    let ids = q.conversation_ids.unwrap_or_default();
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!("conversationIds must hold 1 to {MAX_IDS} conversation ids"),
        ));
    }
    Ok(ids)
}

fn failed(id: &str, code: &str, message: String) -> Value {
    json!({
        "conversation": {"id": id, "selfUri": format!("/api/v2/conversations/{id}")},
        "errorCode": code,
        "errorMessage": message,
    })
}

/// `PUT /api/v2/recordings/deletionprotection?protect=true|false`: applies or revokes
/// protection; conversations it could not update are listed in `failedUpdates` (unknown ids,
/// and those past the org's limit).
pub async fn put_protection(
    State(sim): State<Sim>,
    Query(p): Query<ProtectParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let protect = match p.protect.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return error(
                inner,
                StatusCode::BAD_REQUEST,
                "bad.request",
                "The query parameter protect must be true or false",
            );
        }
    };
    if let Some(r) = denied(inner, if protect { APPLY } else { REVOKE }) {
        return r;
    }
    let ids = match conversation_ids(inner, &headers, &body) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let limit = inner.scenario.protect_limit;
    let now = inner.clock.utc();
    let mut st = inner.state();
    let mut failures = Vec::new();
    for id in ids {
        let Some(c) = inner.catalog.conversation(&id) else {
            failures.push(failed(
                &id,
                "conversation.not.found",
                format!("Conversation {id} not found"),
            ));
            continue;
        };
        if !protect {
            st.protected.remove(&c);
        } else if st.protected.contains_key(&c) {
            // Protecting a protected conversation changes nothing.
        } else if st.protected.len() >= limit {
            failures.push(failed(
                &id,
                "recording.deletion.protection.limit.exceeded",
                format!("The organization already protects {limit} conversations, its limit"),
            ));
        } else {
            st.protected.insert(c, now);
        }
    }
    ok(json!({"failedUpdates": failures}))
}

/// `POST /api/v2/recordings/deletionprotection`: which of the given conversations are
/// protected (`list[AddressableEntityRef]`).
pub async fn post_protection(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &sim.0;
    let ids = match conversation_ids(inner, &headers, &body) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let st = inner.state();
    let out: Vec<Value> = ids
        .iter()
        .filter(|id| {
            inner
                .catalog
                .conversation(id)
                .is_some_and(|c| st.protected.contains_key(&c))
        })
        .map(|id| json!({"id": id, "selfUri": format!("/api/v2/conversations/{id}")}))
        .collect();
    ok(Value::Array(out))
}

/// `PUT /api/v2/conversations/{cid}/recordings/{rid}`: "Updates the retention records on a
/// recording… A request to change the archival date of an archived recording will result in a
/// restoration of the recording until the new date set." Only `archiveDate` is modelled.
pub async fn put_recording(
    State(sim): State<Sim>,
    Path((cid, rid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let rec = match conversation_or_404(inner, &cid).and_then(|c| recording_or_404(inner, c, &rid))
    {
        Ok(r) => r,
        Err(e) => return e,
    };
    let v: Value = match json_body(inner, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = inner.clock.utc();
    let Some(until) = v["archiveDate"]
        .as_str()
        .and_then(parse_ts)
        .filter(|t| *t > now)
    else {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "archiveDate must be an ISO-8601 date-time in the future",
        );
    };
    let mut st = inner.state();
    match inner.file_state(&st, rec) {
        FileState::Deleted => {
            drop(st);
            return error(
                inner,
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("Recording {rid} not found"),
            );
        }
        FileState::Available => {
            // A retention change of a live recording: not modelled (custos never asks one).
        }
        state @ (FileState::Archived | FileState::Restoring | FileState::Restored) => {
            if let Some(r) = denied(inner, RESTORE) {
                return r;
            }
            let ready = now + time::Duration::milliseconds(inner.scenario.restore_ms as i64);
            let r = st.restores.entry(rec).or_insert(Restore {
                requested: now,
                ready,
                until,
                requests: 0,
            });
            r.requests += 1;
            r.until = until;
            if state == FileState::Archived {
                // Archived again after an earlier restore ran out: a new restore.
                r.requested = now;
                r.ready = ready;
            }
        }
    }
    ok(recording_json(inner, &st, rec, None))
}
