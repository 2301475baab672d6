//! `/_standin/...`: test-only control and inspection API. Not part of any
//! Azure protocol; unauthenticated because it only listens on loopback.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    Shared,
    state::{Faults, FaultsPatch, State as StandInState},
};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/faults", get(get_faults).post(set_faults))
        .route("/reset", post(reset))
        .route("/state", get(state))
        .route("/state/{section}", get(section))
        .route("/writes", get(writes))
}

async fn get_faults(State(shared): State<Shared>) -> Json<Faults> {
    Json(shared.with_state(|s| s.faults.clone()))
}

async fn set_faults(State(shared): State<Shared>, Json(patch): Json<FaultsPatch>) -> Json<Faults> {
    Json(shared.mutate(|s| {
        s.faults.apply(patch);
        s.faults.clone()
    }))
}

async fn reset(State(shared): State<Shared>) -> StatusCode {
    shared.mutate(|s| *s = StandInState::default());
    StatusCode::NO_CONTENT
}

async fn state(State(shared): State<Shared>) -> Json<StandInState> {
    Json(shared.snapshot())
}

async fn section(State(shared): State<Shared>, Path(section): Path<String>) -> Response {
    let full = serde_json::to_value(shared.snapshot()).unwrap_or(Value::Null);
    let key = section.replace('-', "_");
    match full.get(&key) {
        Some(v) => Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown section '{section}'")})),
        )
            .into_response(),
    }
}

async fn writes(State(shared): State<Shared>) -> Response {
    Json(shared.with_state(|s| s.writes.clone())).into_response()
}
