//! `/_standin/...`: test-only control and inspection. Not part of any
//! Kubernetes protocol; unauthenticated because it only listens on loopback.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{Shared, store::Settings};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/settings", get(get_settings).post(set_settings))
        .route("/objects", get(objects))
        .route("/releases", get(releases))
        .route("/requests", get(requests))
}

async fn get_settings(State(shared): State<Shared>) -> Json<Settings> {
    Json(shared.with(|s| s.settings.clone()))
}

/// Replaces the settings (send the whole document; absent fields take defaults).
async fn set_settings(
    State(shared): State<Shared>,
    Json(settings): Json<Settings>,
) -> Json<Settings> {
    Json(shared.with(|s| {
        s.settings = settings;
        s.settings.clone()
    }))
}

/// `?kind=Deployment&namespace=apps`: the stored objects of a kind.
async fn objects(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(kind) = q.get("kind") else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "kind is required"})),
        )
            .into_response();
    };
    let items = shared.with(|s| {
        s.find_by_name(kind).map(|rt| {
            s.list(
                &rt,
                q.get("namespace").map(String::as_str),
                &Default::default(),
                &Default::default(),
            )
        })
    });
    match items {
        Some(items) => Json(json!({"items": items})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown kind {kind}")})),
        )
            .into_response(),
    }
}

/// `?namespace=apps`: helm release revisions and their status.
async fn releases(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let secrets = shared.with(|s| {
        let rt = s.find("", "v1", "secrets").expect("secrets are built in");
        s.list(
            &rt,
            q.get("namespace").map(String::as_str),
            &Default::default(),
            &Default::default(),
        )
    });
    Json(json!({"releases": super::helm_releases(&secrets)})).into_response()
}

async fn requests(State(shared): State<Shared>) -> Response {
    Json(json!({"requests": shared.with(|s| s.requests.iter().cloned().collect::<Vec<_>>())}))
        .into_response()
}
