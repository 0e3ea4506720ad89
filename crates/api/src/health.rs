//! Liveness, readiness and self-metrics: `GET /-/healthy`, `GET /-/ready`, `GET /metrics`.
//!
//! The bodies copy Prometheus's (`Prometheus Server is Healthy.` becomes `Lookout is
//! Healthy.`), so scripts and container health checks written for Prometheus work unchanged.
//! Readiness is a flag the binary flips; liveness is always true while the process answers.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::ApiState;

/// The content type of Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Routes of this module (GET also answers HEAD, as Prometheus's do).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn healthy() -> Response {
    ([(header::CONTENT_TYPE, TEXT)], "Lookout is Healthy.\n").into_response()
}

async fn ready(State(state): State<ApiState>) -> Response {
    if state.is_ready() {
        ([(header::CONTENT_TYPE, TEXT)], "Lookout is Ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, TEXT)],
            "Service Unavailable",
        )
            .into_response()
    }
}

async fn metrics() -> Response {
    // Rendering calls gauge callbacks owned by other parts; keep them off the async threads.
    let body = tokio::task::spawn_blocking(|| selfmon::global().render()).await;
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed ({e}); see the Lookout log\n"),
        )
            .into_response(),
    }
}
