//! Jaeger's JSON wire types, ported field for field from Jaeger's `uimodel` (the Go structs the
//! query service marshals) and from the query HTTP handler's `structuredResponse` envelope.
//!
//! Field order, names and `omitempty` behaviour follow the Go struct tags, because clients
//! (Jaeger UI, Grafana, scripts diffing answers) see the bytes: `flags` disappears when zero,
//! `warnings` is `null` when absent, empty lists stay `[]`. Tag values keep Go's encoding:
//! floats in `strconv` form, integers beyond JavaScript's safe range as strings, binary as
//! base64. Serialized output still goes through [`crate::gocompat::go_html_escape`].

use std::collections::BTreeMap;

use serde::ser::{Serialize, Serializer};

use crate::gocompat;

/// The envelope of every `/api/...` answer: `{"data":…,"total":…,"limit":0,"offset":0,"errors":…}`.
#[derive(Debug, serde::Serialize)]
pub struct Envelope<T> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<StructuredError>>,
}

impl<T> Envelope<T> {
    /// An answer with `data` and `total` set, as the services and operations endpoints send.
    pub fn with_total(data: T, total: usize) -> Envelope<T> {
        Envelope {
            data,
            total,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

/// One entry of the envelope's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StructuredError {
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// A trace as the UI gets it: spans plus a table of the processes they point at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    /// Keyed `p1`, `p2`, …; Go marshals map keys sorted, which a `BTreeMap` reproduces.
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

/// One span.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub flags: u32,
    #[serde(rename = "operationName")]
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// Microseconds since the Unix epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Jaeger's reference types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RefType {
    #[serde(rename = "CHILD_OF")]
    ChildOf,
    #[serde(rename = "FOLLOWS_FROM")]
    FollowsFrom,
}

/// A reference from a span to another span.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// The process (an OTLP resource) that emitted spans.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

/// A span log (an OTLP span event).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Log {
    /// Microseconds since the Unix epoch.
    pub timestamp: u64,
    pub fields: Vec<KeyValue>,
}

/// A typed tag: `{"key":…,"type":"string|bool|int64|float64|binary","value":…}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    pub value: TagValue,
}

/// The `type` of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Bool,
    Int64,
    Float64,
    Binary,
}

/// The `value` of a tag, serialized the way Jaeger's Go code does.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Binary(Vec<u8>),
}

/// Jaeger writes int64 tags outside ±(2^53−1) as strings so JavaScript does not round them.
const JS_MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

impl Serialize for TagValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TagValue::Str(v) => s.serialize_str(v),
            TagValue::Bool(v) => s.serialize_bool(*v),
            TagValue::Int(v) if (-JS_MAX_SAFE_INTEGER..=JS_MAX_SAFE_INTEGER).contains(v) => {
                s.serialize_i64(*v)
            }
            TagValue::Int(v) => s.serialize_str(&v.to_string()),
            // Go cannot marshal NaN or infinities at all (Jaeger fails the whole answer); a
            // string keeps the answer valid JSON and the value readable.
            TagValue::Float(v) if !v.is_finite() => s.serialize_str(&model::format_f64(*v)),
            TagValue::Float(v) => {
                let raw = serde_json::value::RawValue::from_string(gocompat::go_float(*v))
                    .map_err(serde::ser::Error::custom)?;
                raw.serialize(s)
            }
            TagValue::Binary(v) => s.serialize_str(&gocompat::base64_std(v)),
        }
    }
}

/// One service dependency edge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    #[serde(rename = "callCount")]
    pub call_count: u64,
}

/// One operation of `/api/operations`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    pub name: String,
    #[serde(rename = "spanKind")]
    pub span_kind: String,
}
