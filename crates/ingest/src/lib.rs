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
    AppendError, AppendOutcome, MetadataRegistry, MetricMetadata, MetricType, MetricsSink, Sample,
};
pub use otlp::{
    otlp_router, prometheus_otlp_router, serve, BoxFuture, ExportError, OtlpConfig, OtlpState,
    SinkError, SinkFuture, TraceSink, PROMETHEUS_OTLP_PATH,
};
