//! OTLP/JSON decoding: a walk over a parsed [`serde_json::Value`] that fills the protobuf
//! messages field by field.
//!
//! The walk is written out per message (rather than derived) because OTLP/JSON differs from
//! protobuf's canonical JSON in ways a derive cannot express (hex ids, but base64 for
//! `bytesValue`), and because every error must carry its JSON path. The path lives on the
//! stack as a chain of borrowed segments and is only rendered into a string when an error is
//! reported, so the happy path allocates nothing for it. Keys are matched in lowerCamelCase;
//! a key in the proto's snake_case is converted first (protobuf JSON parsers accept both),
//! and unknown keys are skipped, as the OTLP specification requires of receivers. A `null`
//! value anywhere means "the field's default".

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{JsonError, MAX_VALUE_DEPTH};
use crate::otlp::proto;
use proto::collector::logs::v1 as cl;
use proto::collector::metrics::v1 as cm;
use proto::collector::trace::v1 as ct;
use proto::common::v1 as pc;
use proto::logs::v1 as pl;
use proto::metrics::v1 as pm;
use proto::resource::v1 as pr;
use proto::trace::v1 as pt;

type R<T> = Result<T, JsonError>;

/// Trace ids are 16 bytes, written as 32 hex digits.
const TRACE_ID_DIGITS: usize = 32;
/// Span ids are 8 bytes, written as 16 hex digits.
const SPAN_ID_DIGITS: usize = 16;
/// How much of an offending string value an error message quotes.
const QUOTE_LIMIT: usize = 64;

// `bytesValue` is base64 in protobuf JSON; parsers must accept both the standard and the
// URL-safe alphabet, with or without padding.
const BASE64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, BASE64_CONFIG);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, BASE64_CONFIG);

/// A JSON path as a chain of borrowed segments, rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn field(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }

    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                Path::Root => break,
                Path::Field(parent, name) => {
                    segments.push(Err(*name));
                    cur = parent;
                }
                Path::Index(parent, i) => {
                    segments.push(Ok(*i));
                    cur = parent;
                }
            }
        }
        let mut out = String::new();
        for seg in segments.iter().rev() {
            match seg {
                Err(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Ok(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push_str("(top level)");
        }
        out
    }

    fn error(&self, reason: impl Into<String>) -> JsonError {
        JsonError::Field {
            path: self.render(),
            reason: reason.into(),
        }
    }
}

/// A short description of a JSON value for error messages: strings quoted (and cut short),
/// numbers as written, containers by kind.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.chars().count() <= QUOTE_LIMIT {
                format!("{s:?}")
            } else {
                let cut: String = s.chars().take(QUOTE_LIMIT).collect();
                format!("{cut:?}... ({} bytes)", s.len())
            }
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Top level

/// Parses the body into the top-level object, with errors for each way it can be unusable.
fn parse(body: &[u8], expected: &'static str) -> R<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty { expected });
    }
    let text = std::str::from_utf8(body).map_err(|e| JsonError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    // Some Windows tools write a byte-order mark; it carries no meaning in UTF-8.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(syntax_error)?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(JsonError::NotObject {
            expected,
            got: match other {
                Value::Array(_) | Value::Object(_) => describe(&other),
                _ => format!("the value {}", describe(&other)),
            },
        }),
    }
}

fn syntax_error(e: serde_json::Error) -> JsonError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    // serde_json appends the position to its message; we report it in our own words.
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    let message = if message.contains("recursion limit") {
        format!("{message}: the JSON nests too deeply")
    } else {
        message
    };
    JsonError::Syntax {
        line,
        column,
        message,
    }
}

/// Walks the fields of a top-level object the same way [`message`] walks nested ones.
fn top<T: Default>(
    map: &Map<String, Value>,
    mut field: impl FnMut(&mut T, &str, &Value, &Path<'_>) -> R<()>,
) -> R<T> {
    let mut out = T::default();
    let root = Path::Root;
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        field(&mut out, &camel(key), value, &root.field(key))?;
    }
    Ok(out)
}

pub(super) fn traces(body: &[u8]) -> R<ct::ExportTraceServiceRequest> {
    let map = parse(body, "resourceSpans")?;
    top(&map, |req: &mut ct::ExportTraceServiceRequest, k, v, p| {
        if k == "resourceSpans" {
            req.resource_spans = list(v, p, resource_spans)?;
        }
        Ok(())
    })
}

pub(super) fn metrics(body: &[u8]) -> R<cm::ExportMetricsServiceRequest> {
    let map = parse(body, "resourceMetrics")?;
    top(
        &map,
        |req: &mut cm::ExportMetricsServiceRequest, k, v, p| {
            if k == "resourceMetrics" {
                req.resource_metrics = list(v, p, resource_metrics)?;
            }
            Ok(())
        },
    )
}

pub(super) fn logs(body: &[u8]) -> R<cl::ExportLogsServiceRequest> {
    let map = parse(body, "resourceLogs")?;
    top(&map, |req: &mut cl::ExportLogsServiceRequest, k, v, p| {
        if k == "resourceLogs" {
            req.resource_logs = list(v, p, resource_logs)?;
        }
        Ok(())
    })
}

pub(super) fn traces_response(body: &[u8]) -> R<ct::ExportTraceServiceResponse> {
    let map = parse(body, "partialSuccess")?;
    top(
        &map,
        |resp: &mut ct::ExportTraceServiceResponse, k, v, p| {
            if k == "partialSuccess" {
                resp.partial_success = Some(message(
                    v,
                    p,
                    |ps: &mut ct::ExportTracePartialSuccess, k, v, p| {
                        match k {
                            "rejectedSpans" => ps.rejected_spans = int64(v, p)?,
                            "errorMessage" => ps.error_message = string(v, p)?,
                            _ => {}
                        }
                        Ok(())
                    },
                )?);
            }
            Ok(())
        },
    )
}

pub(super) fn metrics_response(body: &[u8]) -> R<cm::ExportMetricsServiceResponse> {
    let map = parse(body, "partialSuccess")?;
    top(
        &map,
        |resp: &mut cm::ExportMetricsServiceResponse, k, v, p| {
            if k == "partialSuccess" {
                resp.partial_success = Some(message(
                    v,
                    p,
                    |ps: &mut cm::ExportMetricsPartialSuccess, k, v, p| {
                        match k {
                            "rejectedDataPoints" => ps.rejected_data_points = int64(v, p)?,
                            "errorMessage" => ps.error_message = string(v, p)?,
                            _ => {}
                        }
                        Ok(())
                    },
                )?);
            }
            Ok(())
        },
    )
}

pub(super) fn logs_response(body: &[u8]) -> R<cl::ExportLogsServiceResponse> {
    let map = parse(body, "partialSuccess")?;
    top(&map, |resp: &mut cl::ExportLogsServiceResponse, k, v, p| {
        if k == "partialSuccess" {
            resp.partial_success = Some(message(
                v,
                p,
                |ps: &mut cl::ExportLogsPartialSuccess, k, v, p| {
                    match k {
                        "rejectedLogRecords" => ps.rejected_log_records = int64(v, p)?,
                        "errorMessage" => ps.error_message = string(v, p)?,
                        _ => {}
                    }
                    Ok(())
                },
            )?);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Structure helpers

/// The lowerCamelCase form of a key: protobuf JSON accepts the proto field name
/// (`trace_id`) as well as the JSON name (`traceId`). Allocates only for snake_case keys.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Walks a JSON object into a message: `field` is called with the camelCase key for every
/// non-null member. `null` for the whole message means the default message.
fn message<T: Default>(
    v: &Value,
    path: &Path<'_>,
    mut field: impl FnMut(&mut T, &str, &Value, &Path<'_>) -> R<()>,
) -> R<T> {
    let mut out = T::default();
    match v {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                if value.is_null() {
                    continue;
                }
                field(&mut out, &camel(key), value, &path.field(key))?;
            }
        }
        other => {
            return Err(path.error(format!("expected an object, got {}", describe(other))));
        }
    }
    Ok(out)
}

/// Walks a JSON array with `item` for each element; `null` means an empty list.
fn list<T>(
    v: &Value,
    path: &Path<'_>,
    mut item: impl FnMut(&Value, &Path<'_>) -> R<T>,
) -> R<Vec<T>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                out.push(item(x, &path.index(i))?);
            }
            Ok(out)
        }
        other => Err(path.error(format!("expected an array, got {}", describe(other)))),
    }
}

/// Records that a member of a oneof was set, refusing a second one: protobuf JSON allows
/// at most one, and silently keeping either would drop data.
fn oneof(seen: &mut Option<&'static str>, name: &'static str, path: &Path<'_>) -> R<()> {
    if let Some(prev) = seen.replace(name) {
        return Err(path.error(format!(
            "both {prev} and {name} are set, but only one of them may be: send just one"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scalars

fn string(v: &Value, path: &Path<'_>) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(path.error(format!("expected a string, got {}", describe(other)))),
    }
}

fn boolean(v: &Value, path: &Path<'_>) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(path.error(format!("expected true or false, got {}", describe(other)))),
    }
}

/// An integral f64 as an i128, if it is one (protobuf JSON accepts `1e3` for integers).
fn integral(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e38).then_some(f as i128)
}

/// Reads an integer given as a JSON number or a decimal string, within `[min, max]`.
fn integer(v: &Value, path: &Path<'_>, what: &str, min: i128, max: i128) -> R<i128> {
    let parsed = match v {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
            .or_else(|| n.as_f64().and_then(integral)),
        Value::String(s) => s.parse::<i128>().ok().or_else(|| {
            if s.contains(['.', 'e', 'E']) {
                s.parse::<f64>().ok().and_then(integral)
            } else {
                None
            }
        }),
        _ => None,
    };
    let digits_only = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(path.error(format!(
            "expected {what} as a decimal string or number, got {}, which is out of range",
            describe(v)
        ))),
        None => {
            let out_of_range = match v {
                Value::Number(_) => true,
                Value::String(s) => digits_only(s),
                _ => false,
            };
            let tail = if out_of_range {
                ", which is out of range"
            } else {
                ""
            };
            Err(path.error(format!(
                "expected {what} as a decimal string or number, got {}{tail}",
                describe(v)
            )))
        }
    }
}

fn uint64(v: &Value, path: &Path<'_>) -> R<u64> {
    integer(v, path, "an unsigned 64-bit integer", 0, u64::MAX.into()).map(|n| n as u64)
}

fn int64(v: &Value, path: &Path<'_>) -> R<i64> {
    integer(
        v,
        path,
        "a signed 64-bit integer",
        i64::MIN.into(),
        i64::MAX.into(),
    )
    .map(|n| n as i64)
}

fn uint32(v: &Value, path: &Path<'_>) -> R<u32> {
    integer(v, path, "an unsigned 32-bit integer", 0, u32::MAX.into()).map(|n| n as u32)
}

fn int32(v: &Value, path: &Path<'_>) -> R<i32> {
    integer(
        v,
        path,
        "a signed 32-bit integer",
        i32::MIN.into(),
        i32::MAX.into(),
    )
    .map(|n| n as i32)
}

/// A double: a JSON number, or one of the strings protobuf JSON uses for what JSON numbers
/// cannot say (`"NaN"`, `"Infinity"`, `"-Infinity"`), or a decimal string.
fn double(v: &Value, path: &Path<'_>) -> R<f64> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            // Rust also parses "inf" and "nan"; requiring a finite result refuses those
            // spellings and overflowing decimals such as "1e400".
            _ => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        path.error(format!(
            "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got {}",
            describe(v)
        ))
    })
}

/// An enum: its integer value (OTLP/JSON's form; unknown values are kept, as proto3 enums
/// are open) or its name, such as `"SPAN_KIND_SERVER"`.
fn enumeration(
    v: &Value,
    path: &Path<'_>,
    example: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> R<i32> {
    if let Value::String(s) = v {
        if let Some(n) = by_name(s) {
            return Ok(n);
        }
        if let Ok(n) = s.parse::<i32>() {
            return Ok(n);
        }
    }
    if let Value::Number(_) = v {
        return int32(v, path);
    }
    Err(path.error(format!(
        "expected an enum number or name such as {example:?}, got {}",
        describe(v)
    )))
}

/// A trace or span id: hex digits in either case (OTLP/JSON's exception to protobuf JSON's
/// base64). The length is not checked here; the model layer reports wrong lengths.
fn hex_id(v: &Value, path: &Path<'_>, digits: usize) -> R<Vec<u8>> {
    let bad = || {
        path.error(format!(
            "expected a hex string of {digits} digits, got {}",
            describe(v)
        ))
    };
    match v {
        Value::String(s) if s.len() % 2 == 0 => hex::decode(s).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A `bytes` field other than an id: base64, standard or URL-safe, padded or not.
fn base64_bytes(v: &Value, path: &Path<'_>) -> R<Vec<u8>> {
    let Value::String(s) = v else {
        return Err(path.error(format!("expected a base64 string, got {}", describe(v))));
    };
    let engine = if s.contains(['-', '_']) {
        &BASE64_URL_SAFE
    } else {
        &BASE64_STANDARD
    };
    engine.decode(s).map_err(|e| {
        path.error(format!(
            "expected a base64 string, got {} ({e})",
            describe(v)
        ))
    })
}

fn doubles(v: &Value, path: &Path<'_>) -> R<Vec<f64>> {
    list(v, path, double)
}

fn uint64s(v: &Value, path: &Path<'_>) -> R<Vec<u64>> {
    list(v, path, uint64)
}

fn strings(v: &Value, path: &Path<'_>) -> R<Vec<String>> {
    list(v, path, string)
}

// ---------------------------------------------------------------------------------------
// common.proto and resource.proto

fn any_value(v: &Value, path: &Path<'_>, depth: usize) -> R<pc::AnyValue> {
    use pc::any_value::Value as V;
    if depth > MAX_VALUE_DEPTH {
        return Err(path.error(format!(
            "values nest deeper than {MAX_VALUE_DEPTH} levels of arrayValue/kvlistValue: flatten the value"
        )));
    }
    let mut seen = None;
    message(v, path, |out: &mut pc::AnyValue, k, v, p| {
        let value = match k {
            "stringValue" => V::StringValue(string(v, p)?),
            "boolValue" => V::BoolValue(boolean(v, p)?),
            "intValue" => V::IntValue(int64(v, p)?),
            "doubleValue" => V::DoubleValue(double(v, p)?),
            "arrayValue" => V::ArrayValue(message(v, p, |a: &mut pc::ArrayValue, k, v, p| {
                if k == "values" {
                    a.values = list(v, p, |v, p| any_value(v, p, depth + 1))?;
                }
                Ok(())
            })?),
            "kvlistValue" => V::KvlistValue(message(v, p, |l: &mut pc::KeyValueList, k, v, p| {
                if k == "values" {
                    l.values = key_values_at(v, p, depth + 1)?;
                }
                Ok(())
            })?),
            "bytesValue" => V::BytesValue(base64_bytes(v, p)?),
            "stringValueStrindex" => V::StringValueStrindex(int32(v, p)?),
            _ => return Ok(()),
        };
        let name = match &value {
            V::StringValue(_) => "stringValue",
            V::BoolValue(_) => "boolValue",
            V::IntValue(_) => "intValue",
            V::DoubleValue(_) => "doubleValue",
            V::ArrayValue(_) => "arrayValue",
            V::KvlistValue(_) => "kvlistValue",
            V::BytesValue(_) => "bytesValue",
            V::StringValueStrindex(_) => "stringValueStrindex",
        };
        oneof(&mut seen, name, p)?;
        out.value = Some(value);
        Ok(())
    })
}

fn key_values_at(v: &Value, path: &Path<'_>, depth: usize) -> R<Vec<pc::KeyValue>> {
    list(v, path, |v, p| {
        message(v, p, |kv: &mut pc::KeyValue, k, v, p| {
            match k {
                "key" => kv.key = string(v, p)?,
                "value" => kv.value = Some(any_value(v, p, depth)?),
                "keyStrindex" => kv.key_strindex = int32(v, p)?,
                _ => {}
            }
            Ok(())
        })
    })
}

/// A list of attributes (`attributes`, `filteredAttributes`, `metadata`).
fn key_values(v: &Value, path: &Path<'_>) -> R<Vec<pc::KeyValue>> {
    key_values_at(v, path, 0)
}

fn scope(v: &Value, path: &Path<'_>) -> R<pc::InstrumentationScope> {
    message(v, path, |s: &mut pc::InstrumentationScope, k, v, p| {
        match k {
            "name" => s.name = string(v, p)?,
            "version" => s.version = string(v, p)?,
            "attributes" => s.attributes = key_values(v, p)?,
            "droppedAttributesCount" => s.dropped_attributes_count = uint32(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn entity_ref(v: &Value, path: &Path<'_>) -> R<pc::EntityRef> {
    message(v, path, |e: &mut pc::EntityRef, k, v, p| {
        match k {
            "schemaUrl" => e.schema_url = string(v, p)?,
            "type" => e.r#type = string(v, p)?,
            "idKeys" => e.id_keys = strings(v, p)?,
            "descriptionKeys" => e.description_keys = strings(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn resource(v: &Value, path: &Path<'_>) -> R<pr::Resource> {
    message(v, path, |r: &mut pr::Resource, k, v, p| {
        match k {
            "attributes" => r.attributes = key_values(v, p)?,
            "droppedAttributesCount" => r.dropped_attributes_count = uint32(v, p)?,
            "entityRefs" => r.entity_refs = list(v, p, entity_ref)?,
            _ => {}
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// trace.proto

fn resource_spans(v: &Value, path: &Path<'_>) -> R<pt::ResourceSpans> {
    message(v, path, |rs: &mut pt::ResourceSpans, k, v, p| {
        match k {
            "resource" => rs.resource = Some(resource(v, p)?),
            "scopeSpans" => rs.scope_spans = list(v, p, scope_spans)?,
            "schemaUrl" => rs.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn scope_spans(v: &Value, path: &Path<'_>) -> R<pt::ScopeSpans> {
    message(v, path, |ss: &mut pt::ScopeSpans, k, v, p| {
        match k {
            "scope" => ss.scope = Some(scope(v, p)?),
            "spans" => ss.spans = list(v, p, span)?,
            "schemaUrl" => ss.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn span(v: &Value, path: &Path<'_>) -> R<pt::Span> {
    message(v, path, |s: &mut pt::Span, k, v, p| {
        match k {
            "traceId" => s.trace_id = hex_id(v, p, TRACE_ID_DIGITS)?,
            "spanId" => s.span_id = hex_id(v, p, SPAN_ID_DIGITS)?,
            "traceState" => s.trace_state = string(v, p)?,
            "parentSpanId" => s.parent_span_id = hex_id(v, p, SPAN_ID_DIGITS)?,
            "flags" => s.flags = uint32(v, p)?,
            "name" => s.name = string(v, p)?,
            "kind" => {
                s.kind = enumeration(v, p, "SPAN_KIND_SERVER", |n| {
                    pt::span::SpanKind::from_str_name(n).map(|e| e as i32)
                })?
            }
            "startTimeUnixNano" => s.start_time_unix_nano = uint64(v, p)?,
            "endTimeUnixNano" => s.end_time_unix_nano = uint64(v, p)?,
            "attributes" => s.attributes = key_values(v, p)?,
            "droppedAttributesCount" => s.dropped_attributes_count = uint32(v, p)?,
            "events" => s.events = list(v, p, event)?,
            "droppedEventsCount" => s.dropped_events_count = uint32(v, p)?,
            "links" => s.links = list(v, p, link)?,
            "droppedLinksCount" => s.dropped_links_count = uint32(v, p)?,
            "status" => s.status = Some(status(v, p)?),
            _ => {}
        }
        Ok(())
    })
}

fn event(v: &Value, path: &Path<'_>) -> R<pt::span::Event> {
    message(v, path, |e: &mut pt::span::Event, k, v, p| {
        match k {
            "timeUnixNano" => e.time_unix_nano = uint64(v, p)?,
            "name" => e.name = string(v, p)?,
            "attributes" => e.attributes = key_values(v, p)?,
            "droppedAttributesCount" => e.dropped_attributes_count = uint32(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn link(v: &Value, path: &Path<'_>) -> R<pt::span::Link> {
    message(v, path, |l: &mut pt::span::Link, k, v, p| {
        match k {
            "traceId" => l.trace_id = hex_id(v, p, TRACE_ID_DIGITS)?,
            "spanId" => l.span_id = hex_id(v, p, SPAN_ID_DIGITS)?,
            "traceState" => l.trace_state = string(v, p)?,
            "attributes" => l.attributes = key_values(v, p)?,
            "droppedAttributesCount" => l.dropped_attributes_count = uint32(v, p)?,
            "flags" => l.flags = uint32(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn status(v: &Value, path: &Path<'_>) -> R<pt::Status> {
    message(v, path, |s: &mut pt::Status, k, v, p| {
        match k {
            "message" => s.message = string(v, p)?,
            "code" => {
                s.code = enumeration(v, p, "STATUS_CODE_ERROR", |n| {
                    pt::status::StatusCode::from_str_name(n).map(|e| e as i32)
                })?
            }
            _ => {}
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// logs.proto

fn resource_logs(v: &Value, path: &Path<'_>) -> R<pl::ResourceLogs> {
    message(v, path, |rl: &mut pl::ResourceLogs, k, v, p| {
        match k {
            "resource" => rl.resource = Some(resource(v, p)?),
            "scopeLogs" => rl.scope_logs = list(v, p, scope_logs)?,
            "schemaUrl" => rl.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn scope_logs(v: &Value, path: &Path<'_>) -> R<pl::ScopeLogs> {
    message(v, path, |sl: &mut pl::ScopeLogs, k, v, p| {
        match k {
            "scope" => sl.scope = Some(scope(v, p)?),
            "logRecords" => sl.log_records = list(v, p, log_record)?,
            "schemaUrl" => sl.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn log_record(v: &Value, path: &Path<'_>) -> R<pl::LogRecord> {
    message(v, path, |r: &mut pl::LogRecord, k, v, p| {
        match k {
            "timeUnixNano" => r.time_unix_nano = uint64(v, p)?,
            "observedTimeUnixNano" => r.observed_time_unix_nano = uint64(v, p)?,
            "severityNumber" => {
                r.severity_number = enumeration(v, p, "SEVERITY_NUMBER_INFO", |n| {
                    pl::SeverityNumber::from_str_name(n).map(|e| e as i32)
                })?
            }
            "severityText" => r.severity_text = string(v, p)?,
            "body" => r.body = Some(any_value(v, p, 0)?),
            "attributes" => r.attributes = key_values(v, p)?,
            "droppedAttributesCount" => r.dropped_attributes_count = uint32(v, p)?,
            "flags" => r.flags = uint32(v, p)?,
            "traceId" => r.trace_id = hex_id(v, p, TRACE_ID_DIGITS)?,
            "spanId" => r.span_id = hex_id(v, p, SPAN_ID_DIGITS)?,
            "eventName" => r.event_name = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// metrics.proto

fn resource_metrics(v: &Value, path: &Path<'_>) -> R<pm::ResourceMetrics> {
    message(v, path, |rm: &mut pm::ResourceMetrics, k, v, p| {
        match k {
            "resource" => rm.resource = Some(resource(v, p)?),
            "scopeMetrics" => rm.scope_metrics = list(v, p, scope_metrics)?,
            "schemaUrl" => rm.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn scope_metrics(v: &Value, path: &Path<'_>) -> R<pm::ScopeMetrics> {
    message(v, path, |sm: &mut pm::ScopeMetrics, k, v, p| {
        match k {
            "scope" => sm.scope = Some(scope(v, p)?),
            "metrics" => sm.metrics = list(v, p, metric)?,
            "schemaUrl" => sm.schema_url = string(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

fn temporality(v: &Value, path: &Path<'_>) -> R<i32> {
    enumeration(v, path, "AGGREGATION_TEMPORALITY_CUMULATIVE", |n| {
        pm::AggregationTemporality::from_str_name(n).map(|e| e as i32)
    })
}

fn metric(v: &Value, path: &Path<'_>) -> R<pm::Metric> {
    use pm::metric::Data;
    let mut seen = None;
    message(v, path, |m: &mut pm::Metric, k, v, p| {
        let (name, data) = match k {
            "name" => {
                m.name = string(v, p)?;
                return Ok(());
            }
            "description" => {
                m.description = string(v, p)?;
                return Ok(());
            }
            "unit" => {
                m.unit = string(v, p)?;
                return Ok(());
            }
            "metadata" => {
                m.metadata = key_values(v, p)?;
                return Ok(());
            }
            "gauge" => (
                "gauge",
                Data::Gauge(message(v, p, |g: &mut pm::Gauge, k, v, p| {
                    if k == "dataPoints" {
                        g.data_points = list(v, p, number_point)?;
                    }
                    Ok(())
                })?),
            ),
            "sum" => (
                "sum",
                Data::Sum(message(v, p, |s: &mut pm::Sum, k, v, p| {
                    match k {
                        "dataPoints" => s.data_points = list(v, p, number_point)?,
                        "aggregationTemporality" => s.aggregation_temporality = temporality(v, p)?,
                        "isMonotonic" => s.is_monotonic = boolean(v, p)?,
                        _ => {}
                    }
                    Ok(())
                })?),
            ),
            "histogram" => (
                "histogram",
                Data::Histogram(message(v, p, |h: &mut pm::Histogram, k, v, p| {
                    match k {
                        "dataPoints" => h.data_points = list(v, p, histogram_point)?,
                        "aggregationTemporality" => h.aggregation_temporality = temporality(v, p)?,
                        _ => {}
                    }
                    Ok(())
                })?),
            ),
            "exponentialHistogram" => (
                "exponentialHistogram",
                Data::ExponentialHistogram(message(
                    v,
                    p,
                    |h: &mut pm::ExponentialHistogram, k, v, p| {
                        match k {
                            "dataPoints" => h.data_points = list(v, p, exp_histogram_point)?,
                            "aggregationTemporality" => {
                                h.aggregation_temporality = temporality(v, p)?
                            }
                            _ => {}
                        }
                        Ok(())
                    },
                )?),
            ),
            "summary" => (
                "summary",
                Data::Summary(message(v, p, |s: &mut pm::Summary, k, v, p| {
                    if k == "dataPoints" {
                        s.data_points = list(v, p, summary_point)?;
                    }
                    Ok(())
                })?),
            ),
            _ => return Ok(()),
        };
        oneof(&mut seen, name, p)?;
        m.data = Some(data);
        Ok(())
    })
}

fn number_point(v: &Value, path: &Path<'_>) -> R<pm::NumberDataPoint> {
    use pm::number_data_point::Value as V;
    let mut seen = None;
    message(v, path, |d: &mut pm::NumberDataPoint, k, v, p| {
        match k {
            "attributes" => d.attributes = key_values(v, p)?,
            "startTimeUnixNano" => d.start_time_unix_nano = uint64(v, p)?,
            "timeUnixNano" => d.time_unix_nano = uint64(v, p)?,
            "exemplars" => d.exemplars = list(v, p, exemplar)?,
            "flags" => d.flags = uint32(v, p)?,
            "asDouble" => {
                d.value = Some(V::AsDouble(double(v, p)?));
                oneof(&mut seen, "asDouble", p)?;
            }
            "asInt" => {
                d.value = Some(V::AsInt(int64(v, p)?));
                oneof(&mut seen, "asInt", p)?;
            }
            _ => {}
        }
        Ok(())
    })
}

fn exemplar(v: &Value, path: &Path<'_>) -> R<pm::Exemplar> {
    use pm::exemplar::Value as V;
    let mut seen = None;
    message(v, path, |e: &mut pm::Exemplar, k, v, p| {
        match k {
            "filteredAttributes" => e.filtered_attributes = key_values(v, p)?,
            "timeUnixNano" => e.time_unix_nano = uint64(v, p)?,
            "spanId" => e.span_id = hex_id(v, p, SPAN_ID_DIGITS)?,
            "traceId" => e.trace_id = hex_id(v, p, TRACE_ID_DIGITS)?,
            "asDouble" => {
                e.value = Some(V::AsDouble(double(v, p)?));
                oneof(&mut seen, "asDouble", p)?;
            }
            "asInt" => {
                e.value = Some(V::AsInt(int64(v, p)?));
                oneof(&mut seen, "asInt", p)?;
            }
            _ => {}
        }
        Ok(())
    })
}

fn histogram_point(v: &Value, path: &Path<'_>) -> R<pm::HistogramDataPoint> {
    message(v, path, |d: &mut pm::HistogramDataPoint, k, v, p| {
        match k {
            "attributes" => d.attributes = key_values(v, p)?,
            "startTimeUnixNano" => d.start_time_unix_nano = uint64(v, p)?,
            "timeUnixNano" => d.time_unix_nano = uint64(v, p)?,
            "count" => d.count = uint64(v, p)?,
            "sum" => d.sum = Some(double(v, p)?),
            "bucketCounts" => d.bucket_counts = uint64s(v, p)?,
            "explicitBounds" => d.explicit_bounds = doubles(v, p)?,
            "exemplars" => d.exemplars = list(v, p, exemplar)?,
            "flags" => d.flags = uint32(v, p)?,
            "min" => d.min = Some(double(v, p)?),
            "max" => d.max = Some(double(v, p)?),
            _ => {}
        }
        Ok(())
    })
}

fn buckets(v: &Value, path: &Path<'_>) -> R<pm::exponential_histogram_data_point::Buckets> {
    message(
        v,
        path,
        |b: &mut pm::exponential_histogram_data_point::Buckets, k, v, p| {
            match k {
                "offset" => b.offset = int32(v, p)?,
                "bucketCounts" => b.bucket_counts = uint64s(v, p)?,
                _ => {}
            }
            Ok(())
        },
    )
}

fn exp_histogram_point(v: &Value, path: &Path<'_>) -> R<pm::ExponentialHistogramDataPoint> {
    message(
        v,
        path,
        |d: &mut pm::ExponentialHistogramDataPoint, k, v, p| {
            match k {
                "attributes" => d.attributes = key_values(v, p)?,
                "startTimeUnixNano" => d.start_time_unix_nano = uint64(v, p)?,
                "timeUnixNano" => d.time_unix_nano = uint64(v, p)?,
                "count" => d.count = uint64(v, p)?,
                "sum" => d.sum = Some(double(v, p)?),
                "scale" => d.scale = int32(v, p)?,
                "zeroCount" => d.zero_count = uint64(v, p)?,
                "positive" => d.positive = Some(buckets(v, p)?),
                "negative" => d.negative = Some(buckets(v, p)?),
                "flags" => d.flags = uint32(v, p)?,
                "exemplars" => d.exemplars = list(v, p, exemplar)?,
                "min" => d.min = Some(double(v, p)?),
                "max" => d.max = Some(double(v, p)?),
                "zeroThreshold" => d.zero_threshold = double(v, p)?,
                _ => {}
            }
            Ok(())
        },
    )
}

fn summary_point(v: &Value, path: &Path<'_>) -> R<pm::SummaryDataPoint> {
    message(v, path, |d: &mut pm::SummaryDataPoint, k, v, p| {
        match k {
            "attributes" => d.attributes = key_values(v, p)?,
            "startTimeUnixNano" => d.start_time_unix_nano = uint64(v, p)?,
            "timeUnixNano" => d.time_unix_nano = uint64(v, p)?,
            "count" => d.count = uint64(v, p)?,
            "sum" => d.sum = double(v, p)?,
            "quantileValues" => {
                d.quantile_values = list(v, p, |v, p| {
                    message(
                        v,
                        p,
                        |q: &mut pm::summary_data_point::ValueAtQuantile, k, v, p| {
                            match k {
                                "quantile" => q.quantile = double(v, p)?,
                                "value" => q.value = double(v, p)?,
                                _ => {}
                            }
                            Ok(())
                        },
                    )
                })?
            }
            "flags" => d.flags = uint32(v, p)?,
            _ => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_renders_fields_and_indexes() {
        let root = Path::Root;
        let a = root.field("resourceSpans");
        let b = a.index(0);
        let c = b.field("spans");
        let d = c.index(2);
        let e = d.field("traceId");
        assert_eq!(e.render(), "resourceSpans[0].spans[2].traceId");
        assert_eq!(root.render(), "(top level)");
    }

    #[test]
    fn camel_converts_snake_case_only() {
        assert_eq!(camel("traceId"), "traceId");
        assert_eq!(camel("trace_id"), "traceId");
        assert_eq!(camel("string_value_strindex"), "stringValueStrindex");
        assert!(matches!(camel("spans"), Cow::Borrowed(_)));
    }

    #[test]
    fn integers_accept_numbers_and_strings_within_range() {
        let p = Path::Root;
        assert_eq!(uint64(&json!("18446744073709551615"), &p), Ok(u64::MAX));
        assert_eq!(uint64(&json!(18446744073709551615u64), &p), Ok(u64::MAX));
        assert_eq!(int64(&json!("-9223372036854775808"), &p), Ok(i64::MIN));
        assert_eq!(int64(&json!(1e3), &p), Ok(1000));
        assert_eq!(int64(&json!("1e3"), &p), Ok(1000));
        assert!(uint64(&json!("18446744073709551616"), &p).is_err());
        assert!(uint64(&json!(-1), &p).is_err());
        assert!(uint64(&json!(1.5), &p).is_err());
        assert!(uint32(&json!(4294967296u64), &p).is_err());
        assert!(int32(&json!("x"), &p).is_err());
        assert!(int64(&json!(true), &p).is_err());
        let err = uint64(&json!("99999999999999999999999"), &p).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn doubles_accept_special_strings_but_not_rust_spellings() {
        let p = Path::Root;
        assert!(double(&json!("NaN"), &p).unwrap().is_nan());
        assert_eq!(double(&json!("Infinity"), &p), Ok(f64::INFINITY));
        assert_eq!(double(&json!("-Infinity"), &p), Ok(f64::NEG_INFINITY));
        assert_eq!(double(&json!("2.5"), &p), Ok(2.5));
        assert_eq!(double(&json!(7), &p), Ok(7.0));
        assert!(double(&json!("inf"), &p).is_err());
        assert!(double(&json!("nan"), &p).is_err());
        assert!(double(&json!("1e400"), &p).is_err());
        assert!(double(&json!([]), &p).is_err());
    }

    #[test]
    fn enums_accept_numbers_names_and_unknown_numbers() {
        let p = Path::Root;
        let kind = |v: &Value| {
            enumeration(v, &p, "SPAN_KIND_SERVER", |n| {
                pt::span::SpanKind::from_str_name(n).map(|e| e as i32)
            })
        };
        assert_eq!(kind(&json!(2)), Ok(2));
        assert_eq!(kind(&json!("SPAN_KIND_CLIENT")), Ok(3));
        assert_eq!(kind(&json!(42)), Ok(42));
        assert!(kind(&json!("SERVER")).is_err());
        assert!(kind(&json!(1.5)).is_err());
    }

    #[test]
    fn hex_ids_are_case_insensitive_and_keep_their_length() {
        let p = Path::Root;
        assert_eq!(hex_id(&json!("aBcD"), &p, 16), Ok(vec![0xab, 0xcd]));
        assert_eq!(hex_id(&json!(""), &p, 16), Ok(vec![]));
        assert!(hex_id(&json!("abc"), &p, 16).is_err());
        assert!(hex_id(&json!("zz"), &p, 16).is_err());
        assert!(hex_id(&json!(12), &p, 16).is_err());
    }

    #[test]
    fn base64_accepts_both_alphabets_with_or_without_padding() {
        let p = Path::Root;
        // 0xfb 0xff encodes as "+/8=" in the standard alphabet, "-_8=" in the URL-safe one.
        for s in ["+/8=", "+/8", "-_8=", "-_8"] {
            assert_eq!(base64_bytes(&json!(s), &p), Ok(vec![0xfb, 0xff]), "{s}");
        }
        assert_eq!(base64_bytes(&json!(""), &p), Ok(vec![]));
        assert!(base64_bytes(&json!("a"), &p).is_err());
        assert!(base64_bytes(&json!("!!!!"), &p).is_err());
    }

    #[test]
    fn nesting_deeper_than_the_bound_is_an_error_not_a_stack_overflow() {
        // Built directly (not parsed), so serde_json's own parse-time depth limit does not
        // apply and the walker's bound is what stops it.
        let mut v = json!({"stringValue": "leaf"});
        for _ in 0..(MAX_VALUE_DEPTH + 5) {
            v = json!({"arrayValue": {"values": [v]}});
        }
        let err = any_value(&v, &Path::Root, 0).unwrap_err();
        assert!(err.to_string().contains("nest deeper than 64"), "{err}");

        let mut ok = json!({"stringValue": "leaf"});
        for _ in 0..MAX_VALUE_DEPTH {
            ok = json!({"kvlistValue": {"values": [{"key": "k", "value": ok}]}});
        }
        assert!(any_value(&ok, &Path::Root, 0).is_ok());
    }

    #[test]
    fn a_oneof_takes_one_member() {
        let err =
            any_value(&json!({"stringValue": "a", "intValue": 1}), &Path::Root, 0).unwrap_err();
        // Which member is named first depends on the map's key order, so accept either.
        let msg = err.to_string();
        assert!(
            msg.contains("intValue") && msg.contains("stringValue") && msg.contains("are set"),
            "{msg}"
        );
        // A null member is the same as an absent one.
        let ok = any_value(
            &json!({"stringValue": "a", "intValue": null}),
            &Path::Root,
            0,
        );
        assert_eq!(
            ok,
            Ok(pc::AnyValue {
                value: Some(pc::any_value::Value::StringValue("a".into()))
            })
        );
    }
}
