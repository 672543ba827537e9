//! The JSON API: the same operations as the pages, for scripts with a bearer token (or a
//! browser session plus `x-csrf-token`). Errors are `{"error": "…"}` with a fitting status.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::{Authed, CanDecide, CanOperate, Mutation};
use crate::pages::{decide_request, release_run, stop_run, DecideForm};
use crate::{blocking, AppError, ServerState};

#[derive(Serialize)]
struct RunRow {
    run_id: String,
    task: String,
    status: String,
    sealed: bool,
    outcome: Option<String>,
    created_ms: u64,
    pending_approvals: usize,
}

pub async fn runs(State(state): State<ServerState>, _a: Authed) -> Result<Response, AppError> {
    let audit = state.audit();
    let review = state.review();
    let (runs, pending) =
        blocking(move || -> Result<_, AppError> { Ok((audit.runs()?, review.pending()?)) })
            .await
            .and_then(|r| r)
            .map_err(AppError::json)?;
    let rows: Vec<RunRow> = runs
        .iter()
        .map(|r| {
            let facts = crate::view::RunFacts::from(r, &[]);
            RunRow {
                run_id: r.run_id.clone(),
                task: facts.task,
                status: r.status.clone(),
                sealed: r.sealed,
                outcome: facts.outcome,
                created_ms: r.created_ms,
                pending_approvals: pending.iter().filter(|p| p.run_id == r.run_id).count(),
            }
        })
        .collect();
    Ok(Json(rows).into_response())
}

pub async fn approvals(State(state): State<ServerState>, _a: Authed) -> Result<Response, AppError> {
    let review = state.review();
    let pending = blocking(move || review.pending())
        .await
        .map_err(AppError::json)?
        .map_err(|e| AppError::from(e).json())?;
    Ok(Json(pending).into_response())
}

pub async fn decide(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    m: Mutation<CanDecide, DecideForm>,
) -> Result<Response, AppError> {
    let done = decide_request(&state, id, m.who, m.input)
        .await
        .map_err(AppError::json)?;
    Ok(Json(done).into_response())
}

#[derive(Deserialize)]
pub struct StopInput {
    #[serde(default)]
    reason: String,
}

pub async fn stop(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    m: Mutation<CanOperate, StopInput>,
) -> Result<Response, AppError> {
    let stop = stop_run(&state, &run, m.who, m.input.reason)
        .await
        .map_err(AppError::json)?;
    Ok(Json(stop).into_response())
}

pub async fn release(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    m: Mutation<CanOperate, StopInput>,
) -> Result<Response, AppError> {
    let release = release_run(&state, &run, m.who, m.input.reason)
        .await
        .map_err(AppError::json)?;
    Ok(Json(release).into_response())
}
