//! Lookout's span store: a WAL-backed in-memory head, immutable Parquet blocks, search,
//! trace-by-id, retention and the service graph.
//!
//! The public contract other parts build on lives here ([`TraceReader`] and its types); the
//! store itself is [`TraceStore`] in `store.rs`. Writes go to the WAL first and into the
//! head once durable; the head is cut into a block by [`TraceStore::maintain`] (by size or
//! age), and the WAL segments a block covers are deleted only after the block is on disk.
//!
//! Module map: `codec` (byte encodings of span parts), `head` (the in-memory head), `block`
//! (Parquet blocks and their sidecars), `rest_chunk` and `dict_chunk` (the column chunks
//! blocks encode themselves, with `page` for their page headers), `query` (span predicates),
//! `store` (the store, its locking and its lifecycle).

mod block;
mod codec;
mod dict_chunk;
mod head;
mod page;
mod query;
mod rest_chunk;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use model::{Span, SpanKind, TraceId, UnixNanos};

pub use store::{MaintenanceReport, TraceStore, TraceStoreConfig, TraceStoreStats};

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
    /// Stored bytes that do not decode (a bug or disk corruption).
    #[error("corrupt span data in the trace store: {0}; delete the damaged block to recover")]
    Corrupt(String),
    /// A background task of the store died.
    #[error("trace store task failed: {0}")]
    Task(String),
    /// The head outgrew its bound while a block is being written; nothing was stored.
    #[error("the trace head holds {spans} spans, the most it may hold while a block is written; retry shortly")]
    Overloaded { spans: usize },
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
///
/// Every method may read block files and scan many spans: they are blocking calls. Call
/// them from `tokio::task::spawn_blocking` (or another blocking thread), never directly on
/// the async executor.
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
