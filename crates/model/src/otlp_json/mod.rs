//! OTLP/JSON: the OTLP/HTTP JSON encoding, decoded into and encoded from the protobuf
//! messages in [`crate::otlp::proto`].
//!
//! OTLP/JSON is protobuf's JSON mapping with the OTLP specification's exceptions: trace and
//! span ids are hex strings (not base64), enums travel as integers, and receivers must ignore
//! unknown fields. We own this codec instead of enabling `opentelemetry-proto`'s serde feature
//! because that feature silently drops malformed data (a metric with a misspelled data field
//! simply vanishes), and a local stack that loses data without saying why is worse than one
//! that refuses it. Decoding parses the body into a [`serde_json::Value`] (serde_json bounds
//! the nesting depth while parsing) and then walks it with a path kept on the stack, so every
//! error names the exact field: `resourceSpans[0].scopeSpans[0].spans[2].traceId: ...`.
//! Encoding builds a [`serde_json::Value`] so that query APIs can embed the result in their own
//! envelopes (Jaeger v3 returns `{"result": {"resourceSpans": [...]}}`).
//!
//! Ids of the wrong length are kept as given: the model layer ([`crate::otlp`]) validates
//! lengths with the same path-style errors, and a proxy that only re-encodes must not reject
//! what it does not interpret.

mod decode;
mod encode;

use crate::otlp::proto;
use proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use proto::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use proto::logs::v1::ResourceLogs;
use proto::metrics::v1::ResourceMetrics;
use proto::trace::v1::ResourceSpans;

/// How deeply `arrayValue`/`kvlistValue` attribute values may nest. Real instrumentation
/// stays within a handful of levels; the bound keeps hostile input from costing stack.
pub const MAX_VALUE_DEPTH: usize = 64;

/// Why an OTLP/JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The body has no bytes at all.
    #[error("the request body is empty: send a JSON object such as {{\"{expected}\":[]}}")]
    Empty {
        /// The top-level field the body should carry (`resourceSpans`, ...).
        expected: &'static str,
    },
    /// The body is not UTF-8, which JSON requires.
    #[error("the request body is not valid UTF-8 (bad byte at offset {offset}): encode OTLP/JSON as UTF-8")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not well-formed JSON (or nests deeper than the parser allows).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The body is JSON but its top level is not an object.
    #[error("the top level must be a JSON object such as {{\"{expected}\":[]}}, got {got}")]
    NotObject {
        /// The top-level field the body should carry (`resourceSpans`, ...).
        expected: &'static str,
        /// What the top level was instead (`an array`, `a string`, ...).
        got: String,
    },
    /// A field has the wrong type or an invalid value.
    #[error("{path}: {reason}")]
    Field {
        /// Where in the body, with the field names as the client sent them:
        /// `resourceSpans[0].scopeSpans[0].spans[2].traceId`.
        path: String,
        /// What is wrong, and what was expected.
        reason: String,
    },
}

/// Decodes an OTLP/JSON trace export request (`{"resourceSpans":[...]}`), the body of
/// `POST /v1/traces` with `Content-Type: application/json`. The same shape is `TracesData`.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    decode::traces(body)
}

/// Decodes an OTLP/JSON metrics export request (`{"resourceMetrics":[...]}`).
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    decode::metrics(body)
}

/// Decodes an OTLP/JSON logs export request (`{"resourceLogs":[...]}`); events are log
/// records with an `eventName`, so this decodes them too.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    decode::logs(body)
}

/// Decodes an OTLP/JSON trace export response (`{"partialSuccess":{...}}`), as an upstream
/// OTLP/HTTP receiver answers.
pub fn decode_traces_response(body: &[u8]) -> Result<ExportTraceServiceResponse, JsonError> {
    decode::traces_response(body)
}

/// Decodes an OTLP/JSON metrics export response.
pub fn decode_metrics_response(body: &[u8]) -> Result<ExportMetricsServiceResponse, JsonError> {
    decode::metrics_response(body)
}

/// Decodes an OTLP/JSON logs export response.
pub fn decode_logs_response(body: &[u8]) -> Result<ExportLogsServiceResponse, JsonError> {
    decode::logs_response(body)
}

/// Encodes a trace export request as OTLP/JSON bytes.
pub fn encode_traces(req: &ExportTraceServiceRequest) -> Vec<u8> {
    traces_to_json_value(&req.resource_spans)
        .to_string()
        .into_bytes()
}

/// Encodes a metrics export request as OTLP/JSON bytes.
pub fn encode_metrics(req: &ExportMetricsServiceRequest) -> Vec<u8> {
    metrics_to_json_value(&req.resource_metrics)
        .to_string()
        .into_bytes()
}

/// Encodes a logs export request as OTLP/JSON bytes.
pub fn encode_logs(req: &ExportLogsServiceRequest) -> Vec<u8> {
    logs_to_json_value(&req.resource_logs)
        .to_string()
        .into_bytes()
}

/// The `TracesData`-shaped object `{"resourceSpans":[...]}` as a JSON value, for APIs that
/// embed it in an envelope (Jaeger v3's `{"result": ...}`).
pub fn traces_to_json_value(resource_spans: &[ResourceSpans]) -> serde_json::Value {
    encode::traces(resource_spans)
}

/// The `MetricsData`-shaped object `{"resourceMetrics":[...]}` as a JSON value.
pub fn metrics_to_json_value(resource_metrics: &[ResourceMetrics]) -> serde_json::Value {
    encode::metrics(resource_metrics)
}

/// The `LogsData`-shaped object `{"resourceLogs":[...]}` as a JSON value.
pub fn logs_to_json_value(resource_logs: &[ResourceLogs]) -> serde_json::Value {
    encode::logs(resource_logs)
}

/// Encodes the answer to an OTLP/HTTP JSON trace export: `{}` on full success, or
/// `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}`.
pub fn encode_traces_response(resp: &ExportTraceServiceResponse) -> Vec<u8> {
    encode::traces_response(resp).to_string().into_bytes()
}

/// Encodes the answer to an OTLP/HTTP JSON metrics export (`rejectedDataPoints`).
pub fn encode_metrics_response(resp: &ExportMetricsServiceResponse) -> Vec<u8> {
    encode::metrics_response(resp).to_string().into_bytes()
}

/// Encodes the answer to an OTLP/HTTP JSON logs export (`rejectedLogRecords`).
pub fn encode_logs_response(resp: &ExportLogsServiceResponse) -> Vec<u8> {
    encode::logs_response(resp).to_string().into_bytes()
}
