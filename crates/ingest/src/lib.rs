//! Lookout's receivers: how telemetry gets in.
//!
//! Only this crate knows wire protocols; it turns requests into [`model`] values, validates
//! them whole, and hands them to the stores through sink traits the binary implements, so
//! it never depends on storage code and its tests need no database.
//!
//! - [`metrics`]: the sink every metrics receiver writes to, and the metadata registry.
//! - [`otlp`]: OTLP over gRPC and HTTP (protobuf and JSON), both on each OTLP port; OTLP
//!   metrics translated to Prometheus series, also on Prometheus's `/api/v1/otlp/v1/metrics`.
//! - [`remote_write`]: Prometheus remote_write 1.0 request decoding.
//! - [`scrape`]: the Prometheus scrape manager (`prometheus.yml`, exposition parsers, loops).

pub mod metrics;
pub mod otlp;
pub mod remote_write;
pub mod scrape;

pub use metrics::{
    AppendError, AppendOutcome, HistogramSample, MetadataRegistry, MetricMetadata, MetricType,
    MetricsSink, Sample,
};
pub use otlp::{
    otlp_router, prometheus_otlp_router, serve, BoxFuture, ExportError, OtlpConfig, OtlpState,
    SinkError, SinkFuture, TraceSink, PROMETHEUS_OTLP_PATH,
};

/// An error answer the way Go's `http.Error` writes one, as Prometheus's and Jaeger's
/// handlers do: the text and a newline, `text/plain; charset=utf-8`, and
/// `X-Content-Type-Options: nosniff`. Here because both the receivers and the query APIs
/// answer this way and `api` builds on `ingest`.
pub fn http_error(status: http::StatusCode, mut text: String) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use http::{header, HeaderValue};
    text.push('\n');
    let mut resp = (status, text).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
