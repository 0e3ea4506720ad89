//! Lookout's span store.
//!
//! SKELETON: the public API below is the contract the API and ingest parts build on; the
//! bodies are being written by the trace-store work item.

use std::path::PathBuf;
use std::time::Duration;

use model::{Span, SpanKind, TraceId, UnixNanos};

/// What a store read or write can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    #[error("trace block {path}: {reason}")]
    Block { path: PathBuf, reason: String },
    #[error("trace store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A trace search, Jaeger's `/api/traces` parameters in store terms.
#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    /// `service.name` of at least one span of the trace.
    pub service: Option<String>,
    /// Span name; with `service`, the same span must match both.
    pub operation: Option<String>,
    pub span_kind: Option<SpanKind>,
    /// `key=value` pairs; one span must carry all of them, each among its own attributes, its
    /// resource's attributes (e.g. `service.namespace`), its event attributes, or the
    /// synthetic tags Jaeger derives (`span.kind`, `otel.status_code`, `error`, ...).
    pub tags: Vec<(String, String)>,
    /// The matching span starts at or after this time.
    pub start_min: Option<UnixNanos>,
    /// The matching span starts at or before this time.
    pub start_max: Option<UnixNanos>,
    pub duration_min: Option<Duration>,
    pub duration_max: Option<Duration>,
    /// At most this many traces, newest first (by the newest matching span).
    pub limit: usize,
}

/// An operation of a service, as `/api/operations` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub span_kind: SpanKind,
}

/// One edge of the service dependency graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// Read access to stored traces: what the query APIs need, as a trait so the HTTP layer
/// does not depend on how the store is built.
pub trait TraceReader: Send + Sync + 'static {
    /// Every span of the trace (head and blocks), or `None` when nothing is stored for it.
    fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, TraceError>;
    /// Whole traces that have a span matching `q`.
    fn search(&self, q: &TraceQuery) -> Result<Vec<Vec<Span>>, TraceError>;
    /// Every service name stored, sorted.
    fn services(&self) -> Result<Vec<String>, TraceError>;
    /// The operations of a service, optionally of one span kind, sorted.
    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, TraceError>;
    /// Caller→callee service edges from parent/child spans that started in `[start, end]`.
    fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<DependencyLink>, TraceError>;
}
