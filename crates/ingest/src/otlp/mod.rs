//! The OTLP receivers: OTLP/gRPC and OTLP/HTTP (binary protobuf and JSON) on one listener.
//!
//! Both protocols share everything after decoding: a request is read within a byte budget,
//! decoded, validated as a whole by [`model::otlp`] and only then handed to a sink, whose
//! write resolves once the data is durable. So an OK answer means "acknowledged", and a
//! refused request left nothing behind. Failures map to the codes the OTLP specification
//! gives them: bad data is permanent (HTTP 400, gRPC INVALID_ARGUMENT), back-pressure is
//! retryable with a delay (HTTP 429/503 with `Retry-After`, gRPC UNAVAILABLE with
//! `RetryInfo`).
//!
//! One axum router serves both protocols because their paths never collide (gRPC's are
//! `/<package>.<Service>/<Method>`), which lets both the 4317 and the 4318 port accept every
//! exporter. [`serve`] speaks HTTP/1.1 and cleartext HTTP/2 (what gRPC clients use) on the
//! same socket.
//!
//! The stores stay behind [`TraceSink`] and [`MetricsSink`], so this module never imports
//! storage code and its tests run against recording sinks. Metrics are translated to
//! Prometheus series by [`metrics_translate`] (as Prometheus's own OTLP receiver names them)
//! and answered with OTLP partial success when some data points are refused; the same
//! translation serves Prometheus's `POST /api/v1/otlp/v1/metrics` ([`prometheus_otlp_router`]).
//! Without a metrics sink, and always for logs (no store yet), the endpoints answer
//! UNIMPLEMENTED / 501.

mod config;
mod grpc;
mod http;
mod metrics;
pub mod metrics_translate;
mod rpc;
mod server;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use model::otlp::OtlpError;
use model::otlp_json::JsonError;
use model::Span;
use selfmon::{Counter, Registry};

use crate::metrics::MetricsSink;

pub use config::{OtlpConfig, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INFLIGHT_BYTES};
pub use rpc::{ProtoAny, ProtoDuration, RetryInfo, RpcStatus, RETRY_INFO_TYPE_URL};
pub use server::serve;

/// The gRPC path of `TraceService/Export`.
pub const GRPC_TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The gRPC path of `MetricsService/Export`.
pub const GRPC_METRICS_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// The gRPC path of `LogsService/Export`.
pub const GRPC_LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// A boxed, sendable future, as sink methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`TraceSink::write`] returns.
pub type SinkFuture<'a> = BoxFuture<'a, Result<(), SinkError>>;

/// Where accepted spans go: the binary implements this over the trace store.
///
/// The receiver calls [`TraceSink::write`] only with a fully validated request, and runs the
/// returned future to completion on its own task even if the client hangs up meanwhile, so a
/// write is never abandoned halfway.
pub trait TraceSink: Send + Sync + 'static {
    /// Stores `spans`. The future must resolve only once the spans are durable (in the WAL):
    /// its `Ok` is what the client receives as acknowledgement.
    ///
    /// `otlp` is, when the request arrived as protobuf, its exact (decompressed) encoding: an
    /// `ExportTraceServiceRequest` that decodes to `spans`, which a store can log verbatim
    /// instead of encoding the spans again.
    fn write(&self, spans: Vec<Span>, otlp: Option<bytes::Bytes>) -> SinkFuture<'_>;

    /// Stores a validated request, like [`TraceSink::write`] with its spans; a store that
    /// can build its rows from the protobuf message directly overrides this to skip the
    /// conversion to [`Span`]s. `otlp` is as for [`TraceSink::write`].
    fn write_request(
        &self,
        traces: model::otlp::ValidTraces,
        otlp: Option<bytes::Bytes>,
    ) -> SinkFuture<'_> {
        self.write(traces.to_spans(), otlp)
    }
}

/// Why a sink could not take a write. Both cases are retryable for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The store is at a limit (memory, queue) and expects to recover: the client is told
    /// to retry after `retry_after` (HTTP 429, gRPC UNAVAILABLE with `RetryInfo`).
    #[error("the store is overloaded: retry after {retry_after:?}")]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The store cannot write at all right now (disk full, WAL failure): HTTP 503, gRPC
    /// UNAVAILABLE, with the configured retry delay.
    /// The string says what failed, for the client's error log and ours.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// The telemetry signal a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records (and events).
    Logs,
}

impl Signal {
    /// The label value in self-metrics and the word in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The SDK environment variable that turns this signal's exporter off.
    fn exporter_env(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_TRACES_EXPORTER",
            Signal::Metrics => "OTEL_METRICS_EXPORTER",
            Signal::Logs => "OTEL_LOGS_EXPORTER",
        }
    }
}

/// How a request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a binary protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with an OTLP/JSON body.
    HttpJson,
}

impl Protocol {
    /// The label value in self-metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
        }
    }
}

/// Why an export request was refused. Each variant knows its HTTP status, gRPC code and
/// self-metric reason, so both protocols answer the same failure the same way.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `Content-Type` is missing or not an OTLP encoding.
    #[error(
        "content type {0:?} is not supported: send application/x-protobuf or application/json"
    )]
    UnsupportedContentType(String),
    /// `Content-Encoding` is not one we decode.
    #[error("content encoding {0:?} is not supported: send the body uncompressed or with gzip")]
    UnsupportedEncoding(String),
    /// The body, as sent or after decompression, is over [`OtlpConfig::max_body_bytes`].
    #[error("the request body is larger than the limit of {limit} bytes{}: send smaller batches (the exporter's max batch size) or raise the receiver's max body size", if *.decompressed { " after decompression" } else { "" })]
    TooLarge {
        /// The configured limit.
        limit: usize,
        /// Whether the body grew past the limit while being decompressed.
        decompressed: bool,
    },
    /// The connection failed while the body was being read.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// `Content-Encoding: gzip` but the body does not inflate.
    #[error("the body is not valid gzip ({0}): compress the whole body or drop the Content-Encoding header")]
    BadGzip(String),
    /// The body is not the protobuf message the endpoint expects.
    #[error("the body is not a valid protobuf {message} ({error}): send the binary protobuf encoding of the request, or JSON with Content-Type: application/json")]
    BadProtobuf {
        /// The expected message, `ExportTraceServiceRequest`.
        message: &'static str,
        /// What prost reported.
        error: String,
    },
    /// The body is not valid OTLP/JSON.
    #[error("{0}")]
    BadJson(#[from] JsonError),
    /// The request decodes but carries invalid data (a wrong id length, a bad timestamp).
    #[error("{0}")]
    Invalid(#[from] OtlpError),
    /// The store refused a metrics batch as a whole (a retry would fail the same way).
    #[error("the metrics store refused the batch: {0}")]
    Refused(String),
    /// The metric series a request translates into would not fit in memory.
    #[error("{0}")]
    TooManySeries(#[from] metrics_translate::TranslateError),
    /// Lookout or its store is at a limit and expects to recover.
    #[error("{what}: retry after {} s", retry_after_secs(*.retry_after))]
    Overloaded {
        /// Which limit was hit.
        what: String,
        /// How long the client should wait.
        retry_after: Duration,
    },
    /// The store cannot write right now.
    #[error("{reason}: retry after {} s", retry_after_secs(*.retry_after))]
    Unavailable {
        /// What failed.
        reason: String,
        /// How long the client should wait.
        retry_after: Duration,
    },
    /// The signal has no store yet.
    #[error("lookout does not store {} yet: stop exporting {} here (set {}=none)", .0.as_str(), .0.as_str(), .0.exporter_env())]
    NotStored(Signal),
    /// OTLP/HTTP endpoints accept only POST.
    #[error("method {0} is not allowed: OTLP/HTTP exports use POST")]
    MethodNotAllowed(String),
    /// No OTLP endpoint at this path.
    #[error("no OTLP endpoint at {0}: OTLP/HTTP uses POST /v1/traces, /v1/metrics and /v1/logs")]
    NotFound(String),
    /// A bug on our side (a decoding task panicked).
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

fn retry_after_secs(d: Duration) -> u64 {
    // Retry-After carries whole seconds; round up so the client never retries early, and
    // never say 0, which some clients read as "retry immediately in a loop".
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl ExportError {
    /// The label of `lookout_otlp_rejected_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ExportError::UnsupportedContentType(_) => "unsupported_media_type",
            ExportError::UnsupportedEncoding(_) => "unsupported_encoding",
            ExportError::TooLarge { .. } => "too_large",
            ExportError::BodyRead(_) => "body_read",
            ExportError::BadGzip(_) => "bad_gzip",
            ExportError::BadProtobuf { .. } => "bad_protobuf",
            ExportError::BadJson(_) => "bad_json",
            ExportError::Invalid(_) | ExportError::Refused(_) => "invalid",
            ExportError::TooManySeries(_) => "too_large",
            ExportError::Overloaded { .. } => "overloaded",
            ExportError::Unavailable { .. } => "unavailable",
            ExportError::NotStored(_) => "not_stored",
            ExportError::MethodNotAllowed(_) => "method_not_allowed",
            ExportError::NotFound(_) => "not_found",
            ExportError::Internal(_) => "internal",
        }
    }

    /// The OTLP/HTTP status code.
    pub fn http_status(&self) -> ::http::StatusCode {
        use ::http::StatusCode as S;
        match self {
            ExportError::UnsupportedContentType(_) | ExportError::UnsupportedEncoding(_) => {
                S::UNSUPPORTED_MEDIA_TYPE
            }
            ExportError::TooLarge { .. } | ExportError::TooManySeries(_) => S::PAYLOAD_TOO_LARGE,
            ExportError::BodyRead(_)
            | ExportError::BadGzip(_)
            | ExportError::BadProtobuf { .. }
            | ExportError::BadJson(_)
            | ExportError::Invalid(_)
            | ExportError::Refused(_) => S::BAD_REQUEST,
            ExportError::Overloaded { .. } => S::TOO_MANY_REQUESTS,
            ExportError::Unavailable { .. } => S::SERVICE_UNAVAILABLE,
            ExportError::NotStored(_) => S::NOT_IMPLEMENTED,
            ExportError::MethodNotAllowed(_) => S::METHOD_NOT_ALLOWED,
            ExportError::NotFound(_) => S::NOT_FOUND,
            ExportError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code. Back-pressure is UNAVAILABLE, which the OTLP specification makes the
    /// retryable throttling signal (RESOURCE_EXHAUSTED is retried only with `RetryInfo`,
    /// and some clients never retry it).
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            ExportError::UnsupportedContentType(_)
            | ExportError::UnsupportedEncoding(_)
            | ExportError::BodyRead(_)
            | ExportError::BadGzip(_)
            | ExportError::BadProtobuf { .. }
            | ExportError::BadJson(_)
            | ExportError::Invalid(_)
            | ExportError::Refused(_) => C::InvalidArgument,
            ExportError::TooLarge { .. } | ExportError::TooManySeries(_) => C::ResourceExhausted,
            ExportError::Overloaded { .. } | ExportError::Unavailable { .. } => C::Unavailable,
            ExportError::NotStored(_) | ExportError::MethodNotAllowed(_) => C::Unimplemented,
            ExportError::NotFound(_) => C::NotFound,
            ExportError::Internal(_) => C::Internal,
        }
    }

    /// The delay a retryable failure suggests.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExportError::Overloaded { retry_after, .. }
            | ExportError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `google.rpc.Status` describing this failure, with `RetryInfo` when retryable.
    pub fn rpc_status(&self) -> RpcStatus {
        RpcStatus {
            code: self.grpc_code() as i32,
            message: self.to_string(),
            details: self.retry_after().map(RetryInfo::any).into_iter().collect(),
        }
    }

    /// The gRPC status. When retryable it carries the retry delay twice, because clients
    /// look in different places: as `RetryInfo` in the `google.rpc.Status` details
    /// (`grpc-status-details-bin`, read by Go and Java exporters) and as the
    /// `google.rpc.retryinfo-bin` trailer (read by Python's exporter).
    pub fn to_grpc_status(&self) -> tonic::Status {
        use prost::Message as _;
        let Some(delay) = self.retry_after() else {
            return tonic::Status::new(self.grpc_code(), self.to_string());
        };
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration::from(delay)),
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert_bin(
            "google.rpc.retryinfo-bin",
            tonic::metadata::MetadataValue::from_bytes(&info.encode_to_vec()),
        );
        tonic::Status::with_details_and_metadata(
            self.grpc_code(),
            self.to_string(),
            self.rpc_status().encode_to_vec().into(),
            metadata,
        )
    }
}

/// A refused request with the number of items it carried, when known (0 when it could not
/// be decoded), for the self-metrics.
#[derive(Debug)]
struct Rejection {
    error: ExportError,
    items: u64,
}

impl From<ExportError> for Rejection {
    fn from(error: ExportError) -> Self {
        Rejection { error, items: 0 }
    }
}

/// How much of the in-flight memory budget decoded structures are assumed to take, per
/// byte of (decompressed) protobuf: the prost messages and the model spans each hold about
/// as much as the wire form.
const DECODED_OVERHEAD: usize = 2;

/// The in-flight memory budget shared by every request on every listener of one state.
#[derive(Clone)]
struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

/// Bytes of the budget held by one request, given back on drop.
struct Reservation {
    used: Arc<AtomicUsize>,
    bytes: usize,
}

impl Budget {
    fn reservation(&self) -> Reservation {
        Reservation {
            used: self.used.clone(),
            bytes: 0,
        }
    }

    /// Adds `n` bytes to `r` if the budget allows. A request alone in the budget is always
    /// admitted, so a limit smaller than one large request slows clients down but never
    /// refuses them forever.
    fn grow(&self, r: &mut Reservation, n: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(n);
            if next > self.limit && cur != r.bytes {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    r.bytes += n;
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];
const PROTOCOLS: [Protocol; 3] = [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson];

/// Self-metric handles, resolved once so the hot path pays one atomic add.
#[derive(Clone)]
struct Counters {
    registry: &'static Registry,
    received: Vec<Counter>,
    rejected: Vec<Counter>,
}

fn slot(signal: Signal, protocol: Protocol) -> usize {
    let s = SIGNALS.iter().position(|x| *x == signal).unwrap_or(0);
    let p = PROTOCOLS.iter().position(|x| *x == protocol).unwrap_or(0);
    s * PROTOCOLS.len() + p
}

impl Counters {
    fn new(registry: &'static Registry) -> Counters {
        let mut received = Vec::new();
        let mut rejected = Vec::new();
        for s in SIGNALS {
            for p in PROTOCOLS {
                let labels = [("signal", s.as_str()), ("protocol", p.as_str())];
                received.push(registry.counter(
                    "lookout_otlp_received_items_total",
                    "Spans, data points and log records acknowledged by the OTLP receivers.",
                    &labels,
                ));
                rejected.push(registry.counter(
                    "lookout_otlp_rejected_items_total",
                    "Spans, data points and log records in OTLP requests that were refused.",
                    &labels,
                ));
            }
        }
        Counters {
            registry,
            received,
            rejected,
        }
    }

    fn rejected_request(&self, signal: Signal, protocol: Protocol, reason: &str) {
        self.registry
            .counter(
                "lookout_otlp_rejected_requests_total",
                "OTLP requests refused, by reason.",
                &[
                    ("signal", signal.as_str()),
                    ("protocol", protocol.as_str()),
                    ("reason", reason),
                ],
            )
            .inc();
    }
}

struct Inner {
    config: OtlpConfig,
    traces: Arc<dyn TraceSink>,
    /// Where metric samples go; `None` answers metrics exports with UNIMPLEMENTED / 501.
    metrics: Option<Arc<dyn MetricsSink>>,
    budget: Budget,
    counters: Counters,
}

/// Everything the receivers share: limits, sinks, the in-flight budget and self-metrics.
/// Cheap to clone; give the same state to the routers of both OTLP ports so they share one
/// memory budget.
#[derive(Clone)]
pub struct OtlpState {
    inner: Arc<Inner>,
}

impl OtlpState {
    /// A receiver state writing spans to `traces`, with self-metrics in
    /// [`selfmon::global`] (including the gauge `lookout_otlp_inflight_bytes`).
    pub fn new(config: OtlpConfig, traces: Arc<dyn TraceSink>) -> OtlpState {
        OtlpState::with_registry(config, traces, selfmon::global())
    }

    /// Like [`OtlpState::new`] with self-metrics in `registry` (tests use their own).
    pub fn with_registry(
        config: OtlpConfig,
        traces: Arc<dyn TraceSink>,
        registry: &'static Registry,
    ) -> OtlpState {
        let budget = Budget {
            used: Arc::new(AtomicUsize::new(0)),
            limit: config.max_inflight_bytes,
        };
        let used = budget.used.clone();
        registry.gauge_fn(
            "lookout_otlp_inflight_bytes",
            "Bytes of memory held by OTLP requests being read, decoded and written.",
            &[],
            move || used.load(Ordering::Relaxed) as f64,
        );
        OtlpState {
            inner: Arc::new(Inner {
                config,
                traces,
                metrics: None,
                budget,
                counters: Counters::new(registry),
            }),
        }
    }

    /// This state with metrics exports (OTLP gRPC and HTTP, and Prometheus's
    /// `/api/v1/otlp/v1/metrics`) translated and written to `sink`. The returned state shares
    /// the in-flight budget and self-metrics of `self`.
    pub fn with_metrics_sink(self, sink: Arc<dyn MetricsSink>) -> OtlpState {
        let inner = &self.inner;
        OtlpState {
            inner: Arc::new(Inner {
                config: inner.config.clone(),
                traces: inner.traces.clone(),
                metrics: Some(sink),
                budget: inner.budget.clone(),
                counters: inner.counters.clone(),
            }),
        }
    }

    /// The limits this state enforces.
    pub fn config(&self) -> &OtlpConfig {
        &self.inner.config
    }

    /// Bytes of the in-flight budget held right now.
    pub fn inflight_bytes(&self) -> usize {
        self.inner.budget.used.load(Ordering::Relaxed)
    }

    fn reservation(&self) -> Reservation {
        self.inner.budget.reservation()
    }

    /// Grows `r` by `n` bytes or says the receiver is overloaded.
    fn reserve(&self, r: &mut Reservation, n: usize) -> Result<(), ExportError> {
        if self.inner.budget.grow(r, n) {
            Ok(())
        } else {
            Err(ExportError::Overloaded {
                what: format!(
                    "lookout is already processing its limit of {} bytes of OTLP requests",
                    self.inner.budget.limit
                ),
                retry_after: self.inner.config.retry_after,
            })
        }
    }

    /// Hands validated spans (and their protobuf encoding, when they came as protobuf) to
    /// the sink on a task of their own, so the write finishes even if the client
    /// disconnects; `reservation` is released when it does.
    async fn write_request(
        &self,
        traces: model::otlp::ValidTraces,
        reservation: Reservation,
    ) -> Result<(), Rejection> {
        let items = traces.len() as u64;
        if items == 0 {
            // The specification asks for success on empty requests; there is nothing to log.
            return Ok(());
        }
        let sink = self.inner.traces.clone();
        let otlp = traces.encoded().cloned();
        let task = tokio::spawn(async move {
            let result = sink.write_request(traces, otlp).await;
            drop(reservation);
            result
        });
        let error = match task.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(SinkError::Overloaded { retry_after })) => ExportError::Overloaded {
                what: "the trace store is overloaded".to_string(),
                retry_after,
            },
            Ok(Err(SinkError::Unavailable(reason))) => {
                tracing::warn!(%reason, "trace store unavailable, refusing OTLP export");
                ExportError::Unavailable {
                    reason: format!("the trace store is unavailable ({reason})"),
                    retry_after: self.inner.config.retry_after,
                }
            }
            Err(e) => ExportError::Internal(format!("the trace write task failed: {e}")),
        };
        Err(Rejection { error, items })
    }

    /// Records the outcome of one request in the self-metrics.
    fn record(&self, signal: Signal, protocol: Protocol, outcome: Result<u64, &Rejection>) {
        let c = &self.inner.counters;
        match outcome {
            Ok(items) => c.received[slot(signal, protocol)].add(items),
            Err(r) => {
                c.rejected[slot(signal, protocol)].add(r.items);
                c.rejected_request(signal, protocol, r.error.reason());
                tracing::debug!(
                    signal = signal.as_str(),
                    protocol = protocol.as_str(),
                    items = r.items,
                    "refused OTLP export: {}",
                    r.error
                );
            }
        }
    }
}

/// Reads a whole request body of at most `limit` bytes, charging what it holds to
/// `reservation` as it grows. A declared length over the limit is refused before reading a
/// byte, and one within it is reserved up front, so the client learns of overload at once.
async fn read_body(
    state: &OtlpState,
    declared: Option<u64>,
    mut body: axum::body::Body,
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, ExportError> {
    use http_body_util::BodyExt as _;
    let too_large = || ExportError::TooLarge {
        limit: state.config().max_body_bytes,
        decompressed: false,
    };
    let mut reserved = 0usize;
    let mut buf = Vec::new();
    if let Some(n) = declared {
        let n = usize::try_from(n).map_err(|_| too_large())?;
        if n > limit {
            drain_body(body, DRAIN_CAP).await;
            return Err(too_large());
        }
        state.reserve(reservation, n)?;
        reserved = n;
        buf.reserve_exact(n);
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ExportError::BodyRead(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > limit {
            drop(buf);
            drain_body(body, DRAIN_CAP).await;
            return Err(too_large());
        }
        if len > reserved {
            state.reserve(reservation, len - reserved)?;
            reserved = len;
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Reads a unary gRPC request body of at most `limit` bytes as the chunks it arrived in,
/// charging them to `reservation` as they come, like [`read_body`]. The chunks are not
/// joined: tonic copies them into its own buffer (sized from the frame header) anyway, so
/// joining them first would copy every byte twice.
async fn read_grpc_body(
    state: &OtlpState,
    mut body: axum::body::Body,
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Chunks, ExportError> {
    use http_body_util::BodyExt as _;
    let too_large = || ExportError::TooLarge {
        limit: state.config().max_body_bytes,
        decompressed: false,
    };
    let mut chunks = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ExportError::BodyRead(e.to_string()))?;
        // HTTP/2 clients often end the stream with an empty DATA frame: kept, it would make
        // a one-frame body two chunks, and joining them copied the whole body once more.
        let Some(data) = frame.into_data().ok().filter(|d| !d.is_empty()) else {
            continue;
        };
        // The frame header (compressed flag, big-endian length) declares the message's
        // size: one past the limit is refused before the rest is read.
        let declared = (len == 0 && data.len() >= 5)
            .then(|| u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize + 5);
        len += data.len();
        if len > limit || declared.is_some_and(|n| n > limit) {
            drop(chunks);
            drain_body(body, DRAIN_CAP).await;
            return Err(too_large());
        }
        state.reserve(reservation, data.len())?;
        chunks.push(data);
    }
    Ok(Chunks {
        remaining: len as u64,
        chunks: chunks.into_iter(),
    })
}

/// A request body already in memory, replayed chunk by chunk.
struct Chunks {
    chunks: std::vec::IntoIter<bytes::Bytes>,
    remaining: u64,
}

impl Chunks {
    /// The whole body in one buffer: the chunk itself when there is one (no copy).
    fn into_bytes(mut self) -> bytes::Bytes {
        if self.chunks.len() == 1 {
            return self.chunks.next().unwrap_or_default();
        }
        let mut out = bytes::BytesMut::with_capacity(self.remaining as usize);
        for c in self.chunks {
            out.extend_from_slice(&c);
        }
        out.freeze()
    }
}

impl axum::body::HttpBody for Chunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = self.chunks.next();
        if let Some(b) = &next {
            self.remaining -= b.len() as u64;
        }
        std::task::Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// How much of a refused request body is read and discarded before answering. Answering
/// while a client is still uploading makes many HTTP clients report a broken pipe instead of
/// the status; past this much, or after [`DRAIN_TIME`], the connection is closed instead.
pub(super) const DRAIN_CAP: usize = 64 << 20;

/// How long draining a refused body may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops up to `cap` bytes of `body`, chunk by chunk, holding no memory.
pub(super) async fn drain_body(mut body: axum::body::Body, cap: usize) {
    use http_body_util::BodyExt as _;
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > cap {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// Validates the protobuf encoding of a trace request (see
/// [`model::otlp::ValidTraces::from_protobuf`]: requests as SDKs send them are read in place,
/// without decoding them into messages).
fn decode_protobuf_traces(raw: bytes::Bytes) -> Result<model::otlp::ValidTraces, Rejection> {
    use model::otlp::DecodeTracesError as E;
    model::otlp::ValidTraces::from_protobuf(raw).map_err(|e| match e {
        E::Protobuf(e) => ExportError::BadProtobuf {
            message: "ExportTraceServiceRequest",
            error: e.to_string(),
        }
        .into(),
        E::Invalid { error, spans } => Rejection {
            error: ExportError::Invalid(error),
            items: spans as u64,
        },
    })
}

/// Counts the spans in a trace request, for the self-metrics of refused requests.
fn count_spans(req: &model::otlp::proto::collector::trace::v1::ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

/// The router serving OTLP/gRPC (`TraceService`, `MetricsService`, `LogsService` Export)
/// and OTLP/HTTP (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`). Mount it on both OTLP
/// ports; it has no other routes.
pub fn otlp_router(state: OtlpState) -> Router {
    Router::new()
        .route(
            "/v1/traces",
            post(http::traces).fallback(http::method_not_allowed),
        )
        .route(
            "/v1/metrics",
            post(metrics::http_export).fallback(http::method_not_allowed),
        )
        .route(
            "/v1/logs",
            post(http::logs).fallback(http::method_not_allowed),
        )
        .route(GRPC_TRACES_PATH, post(grpc::traces))
        .route(GRPC_METRICS_PATH, post(metrics::grpc_export))
        .route(GRPC_LOGS_PATH, post(grpc::logs))
        .fallback(fallback)
        .with_state(state)
}

/// The router for Prometheus's own OTLP endpoint, `POST /api/v1/otlp/v1/metrics`, to merge
/// into the Prometheus HTTP API router. It takes what OTLP/HTTP takes (protobuf or JSON,
/// optionally gzip) under the same limits and answers as Prometheus does: 200 with an empty
/// body when the batch was stored (translation problems are logged, not answered), 400 with a
/// plain-text message for undecodable bodies and samples the store refused (out of order,
/// duplicate, out of bounds), 413 for oversized requests and 429/503 with `Retry-After` when
/// the store pushes back. Without a metrics sink it answers 501.
pub fn prometheus_otlp_router(state: OtlpState) -> Router {
    Router::new()
        .route(
            PROMETHEUS_OTLP_PATH,
            post(metrics::prometheus_export).fallback(metrics::prometheus_method_not_allowed),
        )
        .with_state(state)
}

/// Prometheus's OTLP metrics path.
pub const PROMETHEUS_OTLP_PATH: &str = "/api/v1/otlp/v1/metrics";

/// Unknown paths: a gRPC UNIMPLEMENTED for gRPC clients (so they report "unknown method"
/// rather than a transport error), otherwise 404 with an OTLP Status body.
async fn fallback(req: axum::extract::Request) -> axum::response::Response {
    let is_grpc = req
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let path = req.uri().path().to_string();
    if is_grpc {
        let status = tonic::Status::unimplemented(format!(
            "lookout serves no gRPC method {path}: it implements the OTLP TraceService, MetricsService and LogsService"
        ));
        return status.into_http::<axum::body::Body>();
    }
    http::error_response(http::Encoding::Protobuf, &ExportError::NotFound(path))
}

/// Whether decoding a body of `len` bytes should leave the async runtime: large bodies take
/// milliseconds to inflate and decode, which would stall every other connection on the
/// worker thread.
fn decode_off_runtime(len: usize) -> bool {
    len > 128 << 10
}

/// Runs `f` inline for small inputs and on the blocking pool for large ones.
async fn run_decode<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> Result<T, Rejection> + Send + 'static,
) -> Result<T, Rejection> {
    if !decode_off_runtime(len) {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ExportError::Internal(format!("the decoding task failed: {e}")).into()),
    }
}

/// A flag a handler sets when it ran, so a wrapper can tell failures before it apart.
#[derive(Clone, Default)]
struct Ran(Arc<AtomicBool>);

impl Ran {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
