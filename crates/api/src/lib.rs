//! Lookout's HTTP query APIs: Prometheus's HTTP API (`prometheus`), Jaeger's query API v1 and
//! v3, health checks and self-metrics.
//!
//! [`router`] builds one axum [`Router`] from one router per API (`jaeger::handler`,
//! `jaeger::v3`, `health`), each with full paths so the binary can merge it beside other APIs
//! (Prometheus also lives under `/api/v1/`). Handlers reach stored traces only through the
//! [`traces::TraceReader`] trait held in [`ApiState`], so the whole crate is tested without a
//! store, and never import storage internals. Reader calls block, so every query runs inside
//! `tokio::task::spawn_blocking`, together with the CPU work of shaping its answer.
//!
//! Answers are meant to be byte-compatible with the peers' own: Go's JSON spellings live in
//! `gocompat`, Jaeger's wire types in `jaeger::model`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use traces::{TraceError, TraceReader};

mod gocompat;
mod health;
pub mod jaeger;
pub mod prometheus;

#[cfg(test)]
mod tests;

/// What a query endpoint can fail with; each API renders it in its own error shape.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request parameter is malformed; the message is the peer's own wording.
    #[error("{0}")]
    BadRequest(String),
    /// The requested trace is not stored.
    #[error("trace not found")]
    TraceNotFound,
    /// The store failed to answer.
    #[error(transparent)]
    Store(#[from] TraceError),
    /// The blocking query task died (a panic in the store); the server log has the cause.
    #[error("query task failed ({0}); see the Lookout log for the cause")]
    Task(String),
}

/// Version information of the running binary.
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    /// The release version, e.g. `0.1.0`.
    pub version: String,
}

/// Everything the handlers share: the trace reader, the readiness flag, build information and
/// the query-duration histograms.
#[derive(Clone)]
pub struct ApiState {
    reader: Arc<dyn TraceReader>,
    ready: Arc<AtomicBool>,
    build: Arc<BuildInfo>,
    metrics: Arc<QueryMetrics>,
}

impl ApiState {
    /// `ready` is the flag `GET /-/ready` reports; the binary sets it once startup (WAL replay)
    /// is done and clears it when shutting down.
    pub fn new(reader: Arc<dyn TraceReader>, ready: Arc<AtomicBool>, build: BuildInfo) -> ApiState {
        ApiState {
            reader,
            ready,
            build: Arc::new(build),
            metrics: Arc::new(QueryMetrics::register()),
        }
    }

    /// Whether the server reports itself ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The binary's version information.
    pub fn build(&self) -> &BuildInfo {
        &self.build
    }

    /// Runs `f` against the reader on the blocking pool (reader calls block).
    pub(crate) async fn query<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn TraceReader) -> Result<T, ApiError> + Send + 'static,
    {
        let reader = self.reader.clone();
        match tokio::task::spawn_blocking(move || f(reader.as_ref())).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "query task failed");
                Err(ApiError::Task(e.to_string()))
            }
        }
    }

    /// Starts timing a request to `endpoint`; the duration is recorded when the guard drops.
    pub(crate) fn timer(&self, endpoint: &'static str) -> QueryTimer {
        QueryTimer {
            histogram: self.metrics.by_endpoint.get(endpoint).cloned(),
            start: Instant::now(),
        }
    }
}

/// Builds the HTTP router for every API this crate serves.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(jaeger::handler::routes())
        .merge(jaeger::v3::routes())
        .with_state(state)
}

/// The endpoints whose durations `lookout_query_duration_seconds` records, by route.
pub(crate) const JAEGER_ENDPOINTS: [&str; 10] = [
    "/api/services",
    "/api/services/{service}/operations",
    "/api/operations",
    "/api/traces",
    "/api/traces/{traceID}",
    "/api/dependencies",
    "/api/v3/services",
    "/api/v3/operations",
    "/api/v3/traces",
    "/api/v3/traces/{trace_id}",
];

/// Query-duration histograms, registered up front so every series exists from the start.
struct QueryMetrics {
    by_endpoint: HashMap<&'static str, selfmon::Histogram>,
}

impl QueryMetrics {
    fn register() -> QueryMetrics {
        let registry = selfmon::global();
        let by_endpoint = JAEGER_ENDPOINTS
            .iter()
            .map(|e| {
                let h = registry.histogram(
                    "lookout_query_duration_seconds",
                    "Time to answer a query API request, by API and endpoint.",
                    &[("api", "jaeger"), ("endpoint", e)],
                );
                (*e, h)
            })
            .collect();
        QueryMetrics { by_endpoint }
    }
}

/// Records the time since its creation into a histogram when dropped.
pub(crate) struct QueryTimer {
    histogram: Option<selfmon::Histogram>,
    start: Instant,
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        if let Some(h) = &self.histogram {
            h.observe(self.start.elapsed());
        }
    }
}

/// Nanoseconds since the Unix epoch now.
pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}
