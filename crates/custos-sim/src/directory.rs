//! The directory APIs that name what analytics records only by id: `GET /api/v2/users`,
//! `/api/v2/routing/queues`, `/api/v2/routing/skills`, `/api/v2/routing/wrapupcodes` and
//! `/api/v2/authorization/divisions`, each
//! an entity listing (`entities`, `pageSize`, `pageNumber`, `total`, `pageCount`, the URIs)
//! filtered by a repeated `id` parameter, as the SDK sends it (`id=a&id=b`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::Sim;
use crate::wire::{error, ok};

/// Genesys' own cap on ids per request for these listings.
pub const MAX_IDS: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

/// Which directory listing.
#[derive(Clone, Copy)]
enum Kind {
    Users,
    Queues,
    Skills,
    Wrapups,
    Divisions,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Users => "/api/v2/users",
            Kind::Queues => "/api/v2/routing/queues",
            Kind::Skills => "/api/v2/routing/skills",
            Kind::Wrapups => "/api/v2/routing/wrapupcodes",
            Kind::Divisions => "/api/v2/authorization/divisions",
        }
    }
}

/// `GET /api/v2/users`.
pub async fn users(state: State<Sim>, q: RawQuery) -> Response {
    listing(state, q, Kind::Users)
}

/// `GET /api/v2/routing/queues`.
pub async fn queues(state: State<Sim>, q: RawQuery) -> Response {
    listing(state, q, Kind::Queues)
}

/// `GET /api/v2/routing/skills`.
pub async fn skills(state: State<Sim>, q: RawQuery) -> Response {
    listing(state, q, Kind::Skills)
}

/// `GET /api/v2/routing/wrapupcodes`.
pub async fn wrapups(state: State<Sim>, q: RawQuery) -> Response {
    listing(state, q, Kind::Wrapups)
}

/// `GET /api/v2/authorization/divisions`.
pub async fn divisions(state: State<Sim>, q: RawQuery) -> Response {
    listing(state, q, Kind::Divisions)
}

fn listing(State(sim): State<Sim>, RawQuery(q): RawQuery, kind: Kind) -> Response {
    let inner = &sim.0;
    let permission = match kind {
        Kind::Users => "directory:user:view",
        Kind::Queues => "routing:queue:view",
        Kind::Skills => "routing:skill:view",
        Kind::Wrapups => "routing:wrapupCode:view",
        Kind::Divisions => "authorization:division:view",
    };
    if let Some(r) = crate::preserve::denied(inner, permission) {
        return r;
    }
    let bad = |m: &str| error(inner, StatusCode::BAD_REQUEST, "bad.request", m);
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
    {
        Ok(p) => p,
        Err(e) => return bad(&format!("malformed query string: {e}")),
    };
    let number = |k: &str, default: usize| -> Result<usize, Response> {
        match pairs.iter().find(|(n, _)| n == k) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(&format!("{k} must be a positive integer"))),
        }
    };
    let (page_size, page_number) = match (number("pageSize", 25), number("pageNumber", 1)) {
        (Ok(s), Ok(n)) => (s, n),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if page_size > MAX_PAGE_SIZE {
        return bad(&format!("pageSize must be at most {MAX_PAGE_SIZE}"));
    }
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == "id")
        .flat_map(|(_, v)| v.split(','))
        .filter(|v| !v.is_empty())
        .collect();
    if ids.len() > MAX_IDS {
        return bad(&format!("at most {MAX_IDS} ids per request"));
    }
    let dir = &inner.catalog.directory;
    let all = match kind {
        Kind::Users => &dir.users,
        Kind::Queues => &dir.queues,
        Kind::Skills => &dir.skills,
        Kind::Wrapups => &dir.wrapups,
        Kind::Divisions => &dir.divisions,
    };
    let matching: Vec<&(String, String)> = all
        .iter()
        .filter(|(id, _)| ids.is_empty() || ids.contains(&id.as_str()))
        .collect();
    let total = matching.len();
    let page_count = total.div_ceil(page_size).max(1);
    let entities: Vec<Value> = matching
        .into_iter()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .map(|(id, name)| entity(kind, id, name, dir))
        .collect();
    let uri = |n: usize| format!("{}?pageSize={page_size}&pageNumber={n}", kind.path());
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
        "lastUri": uri(page_count),
    });
    if page_number < page_count {
        body["nextUri"] = json!(uri(page_number + 1));
    }
    ok(body)
}

fn entity(kind: Kind, id: &str, name: &str, dir: &crate::catalog::Directory) -> Value {
    let (div_id, div_name) = dir
        .divisions
        .first()
        .map(|(i, n)| (i.as_str(), n.as_str()))
        .unwrap_or(("", ""));
    let division = json!({"id": div_id, "name": div_name, "selfUri": format!("/api/v2/authorization/divisions/{div_id}")});
    let self_uri = format!("{}/{id}", kind.path());
    match kind {
        Kind::Users => {
            let login = name.to_lowercase().replace(' ', ".");
            json!({
                "id": id, "name": name, "division": division, "email": format!("{login}@example.com"),
                "username": format!("{login}@example.com"), "state": "active", "version": 1, "selfUri": self_uri,
            })
        }
        Kind::Queues => json!({
            "id": id, "name": name, "division": division, "memberCount": 3, "selfUri": self_uri,
        }),
        Kind::Skills => json!({
            "id": id, "name": name, "state": "active", "version": "1", "selfUri": self_uri,
        }),
        Kind::Wrapups => json!({
            "id": id, "name": name, "division": division, "selfUri": self_uri,
        }),
        // AuthzDivision.
        Kind::Divisions => json!({
            "id": id, "name": name, "description": "", "homeDivision": dir.divisions.first().is_some_and(|(d, _)| d == id),
            "objectCounts": {}, "selfUri": self_uri,
        }),
    }
}
