//! OTLP protobuf messages to and from Lookout's model.
//!
//! Decoding validates the whole request before anything is returned, so a receiver either
//! stores all of a request or none of it. Each error names the offending field by its path
//! in the request (`resource_spans[0].scope_spans[1].spans[7].trace_id`), which is what a
//! developer needs to find the bug in their exporter.

use std::sync::Arc;

pub use opentelemetry_proto::tonic as proto;
use prost::Message;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1 as pc;
use proto::trace::v1 as pt;

use crate::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId,
};

/// The latest timestamp Lookout accepts: 2262-04-11, the last instant that fits an `i64` of
/// nanoseconds, which is what Jaeger, Prometheus and Parquet's timestamp types can carry.
pub const MAX_UNIX_NANOS: u64 = i64::MAX as u64;

/// Why an OTLP request was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {reason}")]
pub struct OtlpError {
    /// Where in the request: `resource_spans[0].scope_spans[0].spans[3].span_id`.
    pub path: String,
    /// What is wrong, and what was expected.
    pub reason: String,
}

impl OtlpError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> OtlpError {
        OtlpError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Converts a trace export request into spans, validating every id, enum and timestamp.
pub fn spans_from_request(req: &ExportTraceServiceRequest) -> Result<Vec<Span>, OtlpError> {
    let headers = validate(req)?;
    Ok(convert(req, &headers))
}

/// The column values of one validated span: what a store indexes, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanHeader {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span (empty or all-zero `parent_span_id`).
    pub parent_span_id: Option<SpanId>,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status_code: StatusCode,
}

/// A resource of a valid request, converted once, with the scopes under it.
#[derive(Debug, Clone)]
pub struct ResourceGroup {
    pub resource: Arc<Resource>,
    pub scopes: Vec<ScopeGroup>,
}

/// A scope of a valid request, converted once, and which spans it holds.
#[derive(Debug, Clone)]
pub struct ScopeGroup {
    pub scope: Arc<Scope>,
    /// Indices of its spans in [`ValidTraces::headers`] (request order).
    pub spans: std::ops::Range<usize>,
}

/// One span of a [`ValidTraces`], in the form it arrived in.
#[derive(Debug, Clone, Copy)]
pub enum SpanBody<'a> {
    /// Decoded by prost (OTLP/JSON, or protobuf the zero-copy pass left to prost).
    Decoded(&'a pt::Span),
    /// The span's protobuf bytes as received, checked by the zero-copy pass: they decode,
    /// and every attribute list in them survives conversion to the model unchanged (no
    /// missing values, no profiles-only string-table references, nesting of at most four
    /// levels), so the bytes themselves are the span's canonical form.
    Encoded {
        /// The `Span` message.
        bytes: &'a [u8],
        /// `status.message`, empty when there is none.
        status_message: &'a str,
        /// Its fields other than the [`SpanHeader`] columns and the name.
        rest: EncodedRest<'a>,
    },
}

impl SpanBody<'_> {
    /// `status.message`, empty when the span has none.
    pub fn status_message(&self) -> &str {
        match self {
            SpanBody::Decoded(span) => span.status.as_ref().map_or("", |st| st.message.as_str()),
            SpanBody::Encoded { status_message, .. } => status_message,
        }
    }
}

/// The fields of an encoded span other than its [`SpanHeader`] columns and its name:
/// trace state, attributes, dropped counts, events, links and flags as received, and the
/// status reduced to its message (its code is a column).
#[derive(Debug, Clone, Copy)]
pub struct EncodedRest<'a> {
    raw: &'a [u8],
    runs: &'a [std::ops::Range<usize>],
    status_at: usize,
    /// `status.message`; the scan checked it is UTF-8.
    status_message: &'a [u8],
}

impl EncodedRest<'_> {
    /// The number of bytes [`EncodedRest::write_to`] appends, so a caller can size its buffer
    /// once instead of growing it (and copying what it holds) as blobs arrive.
    pub fn encoded_len(&self) -> usize {
        use prost::encoding::encoded_len_varint;
        let runs: usize = self.runs.iter().map(|r| r.len()).sum();
        let m = self.status_message.len();
        if m == 0 {
            return runs;
        }
        let inner = 1 + encoded_len_varint(m as u64) + m;
        // Field 15's key is one byte.
        runs + 1 + encoded_len_varint(inner as u64) + inner
    }

    /// Appends them to `out` as a protobuf `Span` message with only those fields set, in
    /// the order received: the byte-exact form a store can keep and decode later.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
        let (before, after) = self.runs.split_at(self.status_at.min(self.runs.len()));
        for r in before {
            out.extend_from_slice(&self.raw[r.clone()]);
        }
        if !self.status_message.is_empty() {
            // A `Status` with only its message: field 2, a string.
            let m = self.status_message;
            let inner = 1 + encoded_len_varint(m.len() as u64) + m.len();
            encode_key(15, WireType::LengthDelimited, out);
            encode_varint(inner as u64, out);
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint(m.len() as u64, out);
            out.extend_from_slice(m);
        }
        for r in after {
            out.extend_from_slice(&self.raw[r.clone()]);
        }
    }
}

fn encoded_rest<'a>(
    raw: &'a [u8],
    runs: &'a [std::ops::Range<usize>],
    pos: &crate::otlp_wire::SpanPos,
) -> EncodedRest<'a> {
    EncodedRest {
        raw,
        runs: &runs[pos.runs.clone()],
        status_at: pos.status_at,
        status_message: &raw[pos.status_message.clone()],
    }
}

/// A span of a [`ValidTraces`]: its parsed columns, name and body.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    pub header: &'a SpanHeader,
    pub name: &'a str,
    pub body: SpanBody<'a>,
}

/// Why [`ValidTraces::from_protobuf`] refused a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeTracesError {
    /// The bytes are not an `ExportTraceServiceRequest` (what prost reported).
    #[error("{0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The request decodes but carries invalid data.
    #[error("{error}")]
    Invalid {
        error: OtlpError,
        /// How many spans the refused request held (for self-metrics).
        spans: usize,
    },
}

/// A trace export request that passed the same validation as [`spans_from_request`], with
/// each span's parsed columns beside it and its resources and scopes converted once.
///
/// This is the cheap way into a store: a store builds its rows from it without going
/// through [`Span`]'s `String`s and `Vec`s. Built from protobuf bytes
/// ([`ValidTraces::from_protobuf`]) it usually holds no decoded message at all, only the
/// bytes and where each span sits in them. It can only be built by the constructors here,
/// so holding one proves validity.
#[derive(Debug, Clone)]
pub struct ValidTraces {
    /// One per span, in request order (resource, then scope, then span).
    headers: Vec<SpanHeader>,
    groups: Vec<ResourceGroup>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Decoded {
        request: ExportTraceServiceRequest,
        /// `(resource, scope, span)` indices of each span in `request`.
        index: Vec<(u32, u32, u32)>,
        /// The protobuf bytes the request was decoded from, if it came as protobuf.
        encoded: Option<bytes::Bytes>,
    },
    Encoded {
        raw: bytes::Bytes,
        spans: Vec<crate::otlp_wire::SpanPos>,
        runs: Vec<std::ops::Range<usize>>,
    },
}

impl ValidTraces {
    /// Validates every span of `request` (ids, enums, timestamps); on error nothing is kept
    /// and the error names the offending field by its path, as [`spans_from_request`] does.
    pub fn new(request: ExportTraceServiceRequest) -> Result<ValidTraces, OtlpError> {
        let headers = validate(&request)?;
        let mut groups = Vec::with_capacity(request.resource_spans.len());
        let mut index = Vec::with_capacity(headers.len());
        for (ri, rs) in request.resource_spans.iter().enumerate() {
            let resource = Arc::new(resource_from_proto(rs.resource.as_ref(), &rs.schema_url));
            let mut scopes = Vec::with_capacity(rs.scope_spans.len());
            for (si, ss) in rs.scope_spans.iter().enumerate() {
                let first = index.len();
                for pi in 0..ss.spans.len() {
                    index.push((ri as u32, si as u32, pi as u32));
                }
                scopes.push(ScopeGroup {
                    scope: Arc::new(scope_from_proto(ss.scope.as_ref(), &ss.schema_url)),
                    spans: first..index.len(),
                });
            }
            groups.push(ResourceGroup { resource, scopes });
        }
        Ok(ValidTraces {
            headers,
            groups,
            body: Body::Decoded {
                request,
                index,
                encoded: None,
            },
        })
    }

    /// Validates the protobuf encoding of an `ExportTraceServiceRequest`, accepting and
    /// refusing exactly what decoding it with prost and then [`ValidTraces::new`] would, with
    /// the same errors.
    ///
    /// Requests as SDKs send them are checked in place without decoding them into messages
    /// (see `otlp_wire`); anything that pass does not handle is decoded with prost.
    pub fn from_protobuf(raw: bytes::Bytes) -> Result<ValidTraces, DecodeTracesError> {
        if let Some(v) = Self::from_scan(&raw) {
            return Ok(v);
        }
        let request = ExportTraceServiceRequest::decode(raw.clone())?;
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter())
            .map(|ss| ss.spans.len())
            .sum();
        let mut v = ValidTraces::new(request)
            .map_err(|error| DecodeTracesError::Invalid { error, spans })?;
        if let Body::Decoded { encoded, .. } = &mut v.body {
            *encoded = Some(raw);
        }
        Ok(v)
    }

    /// The zero-copy path of [`ValidTraces::from_protobuf`]; `None` means "use prost".
    fn from_scan(raw: &bytes::Bytes) -> Option<ValidTraces> {
        let scan = crate::otlp_wire::scan(raw).ok()?;
        let text = |r: &std::ops::Range<usize>| std::str::from_utf8(&raw[r.clone()]).ok();
        let mut groups = Vec::with_capacity(scan.resources.len());
        for rp in &scan.resources {
            let resource = match &rp.resource {
                Some(r) => Some(proto::resource::v1::Resource::decode(&raw[r.clone()]).ok()?),
                None => None,
            };
            let resource = resource_from_proto(resource.as_ref(), text(&rp.schema_url)?);
            let mut scopes = Vec::with_capacity(rp.scopes.len());
            for sp in &rp.scopes {
                let scope = match &sp.scope {
                    Some(r) => Some(pc::InstrumentationScope::decode(&raw[r.clone()]).ok()?),
                    None => None,
                };
                scopes.push(ScopeGroup {
                    scope: Arc::new(scope_from_proto(scope.as_ref(), text(&sp.schema_url)?)),
                    spans: sp.spans.clone(),
                });
            }
            groups.push(ResourceGroup {
                resource: Arc::new(resource),
                scopes,
            });
        }
        Some(ValidTraces {
            headers: scan.headers,
            groups,
            body: Body::Encoded {
                raw: raw.clone(),
                spans: scan.spans,
                runs: scan.runs,
            },
        })
    }

    /// The parsed columns of every span, in request order.
    pub fn headers(&self) -> &[SpanHeader] {
        &self.headers
    }

    /// The request's resources and scopes, in request order.
    pub fn groups(&self) -> &[ResourceGroup] {
        &self.groups
    }

    /// Span `i` (request order); panics if `i >= self.len()`, like slice indexing.
    pub fn span(&self, i: usize) -> SpanRef<'_> {
        let header = &self.headers[i];
        match &self.body {
            Body::Decoded { request, index, .. } => {
                let (r, s, p) = index[i];
                let span =
                    &request.resource_spans[r as usize].scope_spans[s as usize].spans[p as usize];
                SpanRef {
                    header,
                    name: &span.name,
                    body: SpanBody::Decoded(span),
                }
            }
            Body::Encoded { raw, spans, runs } => {
                let pos = &spans[i];
                // Both were checked to be UTF-8 by the scan.
                let text = |r: &std::ops::Range<usize>| {
                    std::str::from_utf8(&raw[r.clone()]).unwrap_or_default()
                };
                SpanRef {
                    header,
                    name: text(&pos.name),
                    body: SpanBody::Encoded {
                        bytes: &raw[pos.span.clone()],
                        status_message: text(&pos.status_message),
                        rest: encoded_rest(raw, runs, pos),
                    },
                }
            }
        }
    }

    /// The rest fields of span `i` when it is read in place (`None` when prost decoded the
    /// request): what `span(i)` gives in [`SpanBody::Encoded`], without checking its name and
    /// status message for UTF-8 once more (the scan did), which a caller that only copies the
    /// rest fields would pay for every span. Panics if `i >= self.len()`.
    pub fn encoded_rest(&self, i: usize) -> Option<EncodedRest<'_>> {
        match &self.body {
            Body::Decoded { .. } => None,
            Body::Encoded { raw, spans, runs } => Some(encoded_rest(raw, runs, &spans[i])),
        }
    }

    /// The request's protobuf encoding, when it was built from one.
    pub fn encoded(&self) -> Option<&bytes::Bytes> {
        match &self.body {
            Body::Decoded { encoded, .. } => encoded.as_ref(),
            Body::Encoded { raw, .. } => Some(raw),
        }
    }

    /// The request's protobuf encoding: the received bytes when there are some, otherwise
    /// freshly encoded.
    pub fn to_protobuf(&self) -> bytes::Bytes {
        match &self.body {
            Body::Decoded {
                encoded: Some(raw), ..
            }
            | Body::Encoded { raw, .. } => raw.clone(),
            Body::Decoded { request, .. } => request.encode_to_vec().into(),
        }
    }

    /// How many spans the request holds.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the request holds no span.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The spans as [`Span`]s, exactly what [`spans_from_request`] returns for the request.
    pub fn to_spans(&self) -> Vec<Span> {
        let mut out = Vec::with_capacity(self.len());
        for g in &self.groups {
            for sg in &g.scopes {
                for i in sg.spans.clone() {
                    let s = self.span(i);
                    let decoded;
                    let span = match s.body {
                        SpanBody::Decoded(span) => span,
                        SpanBody::Encoded { bytes, .. } => {
                            // The scan proved these bytes decode; the default is unreachable.
                            decoded = pt::Span::decode(bytes).unwrap_or_default();
                            &decoded
                        }
                    };
                    out.push(span_from_proto(span, s.header, &g.resource, &sg.scope));
                }
            }
        }
        out
    }
}

/// Checks every span of a request and parses its columns, without cloning anything.
fn validate(req: &ExportTraceServiceRequest) -> Result<Vec<SpanHeader>, OtlpError> {
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum();
    let mut out = Vec::with_capacity(total);
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (pi, span) in ss.spans.iter().enumerate() {
                let path = || format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]");
                out.push(span_header(span, &path)?);
            }
        }
    }
    Ok(out)
}

/// Builds [`Span`]s from a request whose `headers` came from [`validate`].
fn convert(req: &ExportTraceServiceRequest, headers: &[SpanHeader]) -> Vec<Span> {
    let mut out = Vec::with_capacity(headers.len());
    let mut headers = headers.iter();
    for rs in &req.resource_spans {
        let resource = Arc::new(resource_from_proto(rs.resource.as_ref(), &rs.schema_url));
        for ss in &rs.scope_spans {
            let scope = Arc::new(scope_from_proto(ss.scope.as_ref(), &ss.schema_url));
            for (span, h) in ss.spans.iter().zip(headers.by_ref()) {
                out.push(span_from_proto(span, h, &resource, &scope));
            }
        }
    }
    out
}

/// Validates one span: ids, kind, times, status code and event times and link ids.
fn span_header(s: &pt::Span, path: &dyn Fn() -> String) -> Result<SpanHeader, OtlpError> {
    let at = |field: &str| format!("{}.{field}", path());
    let trace_id = parse_trace_id(&s.trace_id).map_err(|r| OtlpError::new(at("trace_id"), r))?;
    let span_id = parse_span_id(&s.span_id).map_err(|r| OtlpError::new(at("span_id"), r))?;
    let parent_span_id =
        parse_parent(&s.parent_span_id).map_err(|r| OtlpError::new(at("parent_span_id"), r))?;
    let kind = SpanKind::from_i32(s.kind)
        .ok_or_else(|| OtlpError::new(at("kind"), format!("unknown span kind {}", s.kind)))?;
    check_time(s.start_time_unix_nano)
        .map_err(|r| OtlpError::new(at("start_time_unix_nano"), r))?;
    check_time(s.end_time_unix_nano).map_err(|r| OtlpError::new(at("end_time_unix_nano"), r))?;
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err(OtlpError::new(
            at("end_time_unix_nano"),
            format!(
                "{} is before start_time_unix_nano {}",
                s.end_time_unix_nano, s.start_time_unix_nano
            ),
        ));
    }
    let status_code = match &s.status {
        None => StatusCode::Unset,
        Some(st) => StatusCode::from_i32(st.code).ok_or_else(|| {
            OtlpError::new(
                at("status.code"),
                format!("unknown status code {}", st.code),
            )
        })?,
    };
    for (ei, e) in s.events.iter().enumerate() {
        check_time(e.time_unix_nano)
            .map_err(|r| OtlpError::new(at(&format!("events[{ei}].time_unix_nano")), r))?;
    }
    for (li, l) in s.links.iter().enumerate() {
        parse_trace_id(&l.trace_id)
            .map_err(|r| OtlpError::new(at(&format!("links[{li}].trace_id")), r))?;
        parse_span_id(&l.span_id)
            .map_err(|r| OtlpError::new(at(&format!("links[{li}].span_id")), r))?;
    }
    Ok(SpanHeader {
        trace_id,
        span_id,
        parent_span_id,
        kind,
        start_unix_nano: s.start_time_unix_nano,
        end_unix_nano: s.end_time_unix_nano,
        status_code,
    })
}

/// Converts a span that [`span_header`] accepted (as `h`).
fn span_from_proto(
    s: &pt::Span,
    h: &SpanHeader,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Span {
    Span {
        trace_id: h.trace_id,
        span_id: h.span_id,
        parent_span_id: h.parent_span_id,
        trace_state: s.trace_state.clone(),
        flags: s.flags,
        name: s.name.clone(),
        kind: h.kind,
        start_unix_nano: h.start_unix_nano,
        end_unix_nano: h.end_unix_nano,
        attributes: attrs_from_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: attrs_from_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| Link {
                // Validated by `span_header`, so these cannot fail; the defaults are unreachable.
                trace_id: parse_trace_id(&l.trace_id).unwrap_or_default(),
                span_id: parse_span_id(&l.span_id).unwrap_or_default(),
                trace_state: l.trace_state.clone(),
                attributes: attrs_from_proto(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status_code: h.status_code,
        status_message: s
            .status
            .as_ref()
            .map(|st| st.message.clone())
            .unwrap_or_default(),
        resource: resource.clone(),
        scope: scope.clone(),
    }
}

pub(crate) fn parse_parent(bytes: &[u8]) -> Result<Option<SpanId>, String> {
    match bytes.len() {
        0 => Ok(None),
        8 if bytes.iter().all(|b| *b == 0) => Ok(None),
        8 => Ok(Some(SpanId(bytes.try_into().map_err(|_| "bad length")?))),
        n => Err(format!("must be empty or 8 bytes, got {n} bytes")),
    }
}

pub(crate) fn parse_trace_id(bytes: &[u8]) -> Result<TraceId, String> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| format!("must be 16 bytes, got {} bytes", bytes.len()))?;
    if arr == [0; 16] {
        return Err("must not be all zeros".into());
    }
    Ok(TraceId(arr))
}

pub(crate) fn parse_span_id(bytes: &[u8]) -> Result<SpanId, String> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("must be 8 bytes, got {} bytes", bytes.len()))?;
    if arr == [0; 8] {
        return Err("must not be all zeros".into());
    }
    Ok(SpanId(arr))
}

pub(crate) fn check_time(t: u64) -> Result<(), String> {
    if t == 0 {
        return Err("is missing (zero)".into());
    }
    if t > MAX_UNIX_NANOS {
        return Err(format!(
            "{t} is past 2262-04-11, the latest time Lookout can store"
        ));
    }
    Ok(())
}

/// Converts an OTLP resource; `None` becomes an empty resource.
pub fn resource_from_proto(
    r: Option<&proto::resource::v1::Resource>,
    schema_url: &str,
) -> Resource {
    match r {
        None => Resource {
            schema_url: schema_url.to_string(),
            ..Resource::default()
        },
        Some(r) => Resource {
            attributes: attrs_from_proto(&r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            schema_url: schema_url.to_string(),
        },
    }
}

/// Converts an OTLP instrumentation scope; `None` becomes an empty scope.
pub fn scope_from_proto(s: Option<&pc::InstrumentationScope>, schema_url: &str) -> Scope {
    match s {
        None => Scope {
            schema_url: schema_url.to_string(),
            ..Scope::default()
        },
        Some(s) => Scope {
            name: s.name.clone(),
            version: s.version.clone(),
            attributes: attrs_from_proto(&s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            schema_url: schema_url.to_string(),
        },
    }
}

/// Converts an OTLP attribute list.
pub fn attrs_from_proto(kvs: &[pc::KeyValue]) -> Vec<KeyValue> {
    kvs.iter()
        .map(|kv| KeyValue {
            key: kv.key.clone(),
            value: kv.value.as_ref().map(value_from_proto).unwrap_or_default(),
        })
        .collect()
}

/// Converts an OTLP `AnyValue`. String-table references (`string_value_strindex`, used only
/// by the profiles signal) carry no text of their own and become [`AnyValue::Empty`].
pub fn value_from_proto(v: &pc::AnyValue) -> AnyValue {
    use pc::any_value::Value as V;
    match &v.value {
        None => AnyValue::Empty,
        Some(V::StringValue(s)) => AnyValue::Str(s.clone()),
        Some(V::BoolValue(b)) => AnyValue::Bool(*b),
        Some(V::IntValue(i)) => AnyValue::Int(*i),
        Some(V::DoubleValue(d)) => AnyValue::Double(*d),
        Some(V::BytesValue(b)) => AnyValue::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => AnyValue::Array(a.values.iter().map(value_from_proto).collect()),
        Some(V::KvlistValue(l)) => AnyValue::Map(attrs_from_proto(&l.values)),
        Some(V::StringValueStrindex(_)) => AnyValue::Empty,
    }
}

/// Converts attributes back to OTLP.
pub fn attrs_to_proto(kvs: &[KeyValue]) -> Vec<pc::KeyValue> {
    kvs.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.clone(),
            value: Some(value_to_proto(&kv.value)),
            ..Default::default()
        })
        .collect()
}

/// Converts a value back to OTLP.
pub fn value_to_proto(v: &AnyValue) -> pc::AnyValue {
    use pc::any_value::Value as V;
    pc::AnyValue {
        value: match v {
            AnyValue::Empty => None,
            AnyValue::Str(s) => Some(V::StringValue(s.clone())),
            AnyValue::Bool(b) => Some(V::BoolValue(*b)),
            AnyValue::Int(i) => Some(V::IntValue(*i)),
            AnyValue::Double(d) => Some(V::DoubleValue(*d)),
            AnyValue::Bytes(b) => Some(V::BytesValue(b.clone())),
            AnyValue::Array(items) => Some(V::ArrayValue(pc::ArrayValue {
                values: items.iter().map(value_to_proto).collect(),
            })),
            AnyValue::Map(kvs) => Some(V::KvlistValue(pc::KeyValueList {
                values: attrs_to_proto(kvs),
            })),
        },
    }
}

fn resource_to_proto(r: &Resource) -> proto::resource::v1::Resource {
    proto::resource::v1::Resource {
        attributes: attrs_to_proto(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        ..Default::default()
    }
}

fn scope_to_proto(s: &Scope) -> pc::InstrumentationScope {
    pc::InstrumentationScope {
        name: s.name.clone(),
        version: s.version.clone(),
        attributes: attrs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
    }
}

/// Converts span events back to OTLP.
pub fn events_to_proto(events: &[Event]) -> Vec<pt::span::Event> {
    events
        .iter()
        .map(|e| pt::span::Event {
            time_unix_nano: e.time_unix_nano,
            name: e.name.clone(),
            attributes: attrs_to_proto(&e.attributes),
            dropped_attributes_count: e.dropped_attributes_count,
        })
        .collect()
}

/// Converts span links back to OTLP.
pub fn links_to_proto(links: &[Link]) -> Vec<pt::span::Link> {
    links
        .iter()
        .map(|l| pt::span::Link {
            trace_id: l.trace_id.0.to_vec(),
            span_id: l.span_id.0.to_vec(),
            trace_state: l.trace_state.clone(),
            attributes: attrs_to_proto(&l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        })
        .collect()
}

/// Converts one span back to OTLP (without its resource and scope).
pub fn span_to_proto(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start_unix_nano,
        end_time_unix_nano: s.end_unix_nano,
        attributes: attrs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: events_to_proto(&s.events),
        dropped_events_count: s.dropped_events_count,
        links: links_to_proto(&s.links),
        dropped_links_count: s.dropped_links_count,
        status: match (s.status_code, s.status_message.is_empty()) {
            (StatusCode::Unset, true) => None,
            (code, _) => Some(pt::Status {
                message: s.status_message.clone(),
                code: code as i32,
            }),
        },
    }
}

/// Groups spans back into OTLP's resource/scope nesting. Spans that share a resource (or
/// scope) by value end up under one `ResourceSpans` (or `ScopeSpans`), in first-seen order.
pub fn request_from_spans(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut out: Vec<pt::ResourceSpans> = Vec::new();
    let mut keys: Vec<(Arc<Resource>, Vec<Arc<Scope>>)> = Vec::new();
    for s in spans {
        let ri = match keys
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(i) => i,
            None => {
                keys.push((s.resource.clone(), Vec::new()));
                out.push(pt::ResourceSpans {
                    resource: Some(resource_to_proto(&s.resource)),
                    scope_spans: Vec::new(),
                    schema_url: s.resource.schema_url.clone(),
                });
                keys.len() - 1
            }
        };
        let scopes = &mut keys[ri].1;
        let si = match scopes
            .iter()
            .position(|sc| Arc::ptr_eq(sc, &s.scope) || **sc == *s.scope)
        {
            Some(i) => i,
            None => {
                scopes.push(s.scope.clone());
                out[ri].scope_spans.push(pt::ScopeSpans {
                    scope: Some(scope_to_proto(&s.scope)),
                    spans: Vec::new(),
                    schema_url: s.scope.schema_url.clone(),
                });
                scopes.len() - 1
            }
        };
        out[ri].scope_spans[si].spans.push(span_to_proto(s));
    }
    ExportTraceServiceRequest {
        resource_spans: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(span: pt::Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(proto::resource::v1::Resource {
                    attributes: vec![pc::KeyValue {
                        key: "service.name".into(),
                        value: Some(value_to_proto(&AnyValue::Str("checkout".into()))),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![pt::ScopeSpans {
                    scope: None,
                    spans: vec![span],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn good_span() -> pt::Span {
        pt::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /cart".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_005_000_000,
            status: Some(pt::Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_a_span() {
        let req = request(good_span());
        let spans = spans_from_request(&req).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service_name(), "checkout");
        assert_eq!(spans[0].kind, SpanKind::Server);
        assert_eq!(spans[0].duration_nanos(), 5_000_000);
        let back = request_from_spans(&spans);
        assert_eq!(spans_from_request(&back).unwrap(), spans);
    }

    #[test]
    fn rejects_short_trace_id_with_its_path() {
        let mut s = good_span();
        s.trace_id = vec![1; 5];
        let err = spans_from_request(&request(s)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 5 bytes"
        );
    }

    #[test]
    fn valid_traces_accepts_and_refuses_like_spans_from_request() {
        let req = request(good_span());
        let v = ValidTraces::new(req.clone()).unwrap();
        assert_eq!(v.to_spans(), spans_from_request(&req).unwrap());
        assert_eq!(v.headers()[0].status_code, StatusCode::Error);
        let mut bad = good_span();
        bad.links.push(pt::span::Link {
            trace_id: vec![1; 16],
            span_id: vec![0; 8],
            ..Default::default()
        });
        let bad = request(bad);
        let err = ValidTraces::new(bad.clone()).unwrap_err();
        assert_eq!(err, spans_from_request(&bad).unwrap_err());
        assert!(err.path.ends_with("links[0].span_id"), "{err}");
    }

    #[test]
    fn rejects_end_before_start() {
        let mut s = good_span();
        s.end_time_unix_nano = s.start_time_unix_nano - 1;
        let err = spans_from_request(&request(s)).unwrap_err();
        assert!(err.path.ends_with("end_time_unix_nano"), "{err}");
    }

    #[test]
    fn rejects_times_past_2262() {
        let mut s = good_span();
        s.end_time_unix_nano = u64::MAX;
        assert!(spans_from_request(&request(s)).is_err());
    }

    #[test]
    fn zero_parent_is_root() {
        let mut s = good_span();
        s.parent_span_id = vec![0; 8];
        assert_eq!(
            spans_from_request(&request(s)).unwrap()[0].parent_span_id,
            None
        );
    }

    #[test]
    fn short_hex_trace_ids_are_left_padded() {
        assert_eq!(TraceId::from_hex("ab").unwrap().0[15], 0xab);
        assert!(TraceId::from_hex("xyz").is_none());
        assert!(TraceId::from_hex(&"a".repeat(33)).is_none());
    }
}
