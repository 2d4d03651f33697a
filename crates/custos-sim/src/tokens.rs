//! `GET /api/v2/tokens/me` ("Fetch information about the current token"): `TokenInfo`, naming
//! the organization the token belongs to (`organization`, `homeOrganization`) and the OAuth
//! client (`OAuthClient {id, name, organization}`), so that an exporter can record which org and
//! which client it collected from. Any valid token may ask; no permission is needed.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::Sim;
use crate::gate::Caller;
use crate::wire::ok;

/// `GET /api/v2/tokens/me`.
pub async fn me(State(sim): State<Sim>, Extension(caller): Extension<Caller>) -> Response {
    let s = &sim.0.scenario;
    let org = json!({
        "id": s.org_id,
        "name": s.org_name,
        "selfUri": format!("/api/v2/organizations/{}", s.org_id),
    });
    ok(json!({
        "organization": org,
        "homeOrganization": org,
        "authorizedScope": ["recordings", "analytics"],
        "OAuthClient": {
            "id": caller.client_id,
            "name": format!("OAuth client {}", caller.client_id),
            "organization": org,
        },
    }))
}
