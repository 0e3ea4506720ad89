//! Spans, resources, scopes and attribute values.
//!
//! Attribute lists stay `Vec<KeyValue>` in the order the client sent them: Jaeger and OTLP
//! output both preserve order, and lists are short enough that a linear scan beats a map.

use std::fmt;
use std::sync::Arc;

use crate::UnixNanos;

/// A 16-byte trace id. The all-zero id is invalid in OTLP and never constructed by [`crate::otlp`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. The all-zero id is invalid in OTLP and never constructed by [`crate::otlp`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// Lower-case hex, 32 characters, as Jaeger and OTLP/JSON print it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses hex. Like Jaeger, accepts fewer than 32 digits (left-padded with zeros), so
    /// `/api/traces/abc` finds trace `000…0abc`.
    pub fn from_hex(s: &str) -> Option<TraceId> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let padded = format!("{s:0>32}");
        let mut out = [0u8; 16];
        hex::decode_to_slice(padded, &mut out).ok()?;
        Some(TraceId(out))
    }
}

impl SpanId {
    /// Lower-case hex, 16 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 16 hex digits (or fewer, left-padded, as for [`TraceId::from_hex`]).
    pub fn from_hex(s: &str) -> Option<SpanId> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let padded = format!("{s:0>16}");
        let mut out = [0u8; 8];
        hex::decode_to_slice(padded, &mut out).ok()?;
        Some(SpanId(out))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An OTLP `AnyValue`. `Empty` is a value with no field set, which OTLP allows.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum AnyValue {
    #[default]
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AnyValue>),
    Map(Vec<KeyValue>),
}

impl AnyValue {
    /// The string inside a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text form used for tag matching (`k=v` search) and for Jaeger string tags of
    /// compound values: strings verbatim, booleans `true`/`false`, integers in decimal, doubles
    /// in their shortest round-trip form, bytes in lower-case hex, arrays and maps as JSON.
    pub fn to_tag_string(&self) -> String {
        match self {
            AnyValue::Empty => String::new(),
            AnyValue::Str(s) => s.clone(),
            AnyValue::Bool(b) => b.to_string(),
            AnyValue::Int(i) => i.to_string(),
            AnyValue::Double(d) => format_f64(*d),
            AnyValue::Bytes(b) => hex::encode(b),
            AnyValue::Array(_) | AnyValue::Map(_) => self.to_json().to_string(),
        }
    }

    /// The value as plain JSON (arrays as arrays, maps as objects), the way Jaeger's OTLP
    /// translator flattens compound attribute values into string tags.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AnyValue::Empty => Value::Null,
            AnyValue::Str(s) => Value::String(s.clone()),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Int(i) => Value::from(*i),
            AnyValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(format_f64(*d))),
            AnyValue::Bytes(b) => Value::String(hex::encode(b)),
            AnyValue::Array(items) => Value::Array(items.iter().map(AnyValue::to_json).collect()),
            AnyValue::Map(kvs) => Value::Object(
                kvs.iter()
                    .map(|kv| (kv.key.clone(), kv.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Formats a double the way Go's `strconv.FormatFloat(f, 'g', -1, 64)` would for ordinary
/// values, which is what Jaeger prints; non-finite values use Go's spellings.
pub fn format_f64(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{d}")
    }
}

/// One attribute.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
        }
    }

    pub fn string(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue::new(key, AnyValue::Str(value.into()))
    }
}

/// Finds an attribute by key.
pub fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// The entity that produced telemetry (a process, a container), identified by attributes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    /// OTLP's `schema_url` of the `ResourceSpans`/`ResourceLogs`/`ResourceMetrics` that carried it.
    pub schema_url: String,
}

/// The name OTLP's semantic conventions give a service when `service.name` is missing.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

impl Resource {
    /// `service.name`, or [`UNKNOWN_SERVICE`] when it is absent or not a non-empty string.
    pub fn service_name(&self) -> &str {
        match find_attr(&self.attributes, "service.name") {
            Some(AnyValue::Str(s)) if !s.is_empty() => s,
            _ => UNKNOWN_SERVICE,
        }
    }
}

/// The instrumentation scope (library) that produced a span or log record.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    /// OTLP's `schema_url` of the `ScopeSpans` that carried it.
    pub schema_url: String,
}

/// OTLP's span kind; the numbers are OTLP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_i32(v: i32) -> Option<SpanKind> {
        Some(match v {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => return None,
        })
    }

    /// The lower-case name Jaeger uses in its `span.kind` tag and `spanKind` query parameter
    /// (empty for unspecified, which Jaeger omits).
    pub fn jaeger_name(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Parses Jaeger's lower-case names (and OTLP's `SPAN_KIND_SERVER` spelling).
    pub fn from_name(s: &str) -> Option<SpanKind> {
        let s = s.strip_prefix("SPAN_KIND_").unwrap_or(s);
        Some(match s.to_ascii_lowercase().as_str() {
            "unspecified" | "" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

/// OTLP's status code; the numbers are OTLP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_i32(v: i32) -> Option<StatusCode> {
        Some(match v {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return None,
        })
    }
}

/// A timed event inside a span (Jaeger calls these logs).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    pub time_unix_nano: UnixNanos,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span, possibly in another trace.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// One span with everything OTLP carries for it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: UnixNanos,
    pub end_unix_nano: UnixNanos,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status_code: StatusCode,
    pub status_message: String,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    /// `end - start`, zero when a client sent an end before its start.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// The service that emitted the span (its resource's `service.name`).
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }
}
