//! Compact byte encodings of the parts of a span that are not query columns.
//!
//! The head and the Parquet blocks keep the fields every query filters on (ids, times, names,
//! kind, status) as plain values, and everything else (attributes, events, links, trace state,
//! flags, dropped counts) as one opaque "rest" blob: the OTLP protobuf `Span` message with only
//! those fields set. Protobuf is what clients send anyway, so the encoding is exact for every
//! field OTLP carries, and the same blob serves the head (memory) and the block (disk) without
//! re-encoding at flush time. Resources and scopes are encoded the same way and stored once
//! per distinct value (interned in the head, dictionary-encoded in blocks).

use std::sync::Arc;

use bytes::Bytes;
use model::otlp::proto::common::v1 as pc;
use model::otlp::proto::trace::v1 as pt;
use model::otlp::{
    attrs_from_proto, attrs_to_proto, events_to_proto, links_to_proto, resource_from_proto,
    scope_from_proto,
};
use model::{Event, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId, UnixNanos};
use prost::Message;

/// Encodes a resource (with its schema URL) as an OTLP `ResourceSpans` without spans.
pub(crate) fn encode_resource(r: &Resource) -> Bytes {
    let msg = pt::ResourceSpans {
        resource: Some(model::otlp::proto::resource::v1::Resource {
            attributes: attrs_to_proto(&r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            ..Default::default()
        }),
        scope_spans: Vec::new(),
        schema_url: r.schema_url.clone(),
    };
    Bytes::from(msg.encode_to_vec())
}

/// Decodes what [`encode_resource`] wrote.
pub(crate) fn decode_resource(b: &[u8]) -> Result<Resource, String> {
    let msg = pt::ResourceSpans::decode(b).map_err(|e| format!("bad resource: {e}"))?;
    Ok(resource_from_proto(msg.resource.as_ref(), &msg.schema_url))
}

/// Encodes a scope (with its schema URL) as an OTLP `ScopeSpans` without spans.
pub(crate) fn encode_scope(s: &Scope) -> Bytes {
    let msg = pt::ScopeSpans {
        scope: Some(pc::InstrumentationScope {
            name: s.name.clone(),
            version: s.version.clone(),
            attributes: attrs_to_proto(&s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
        }),
        spans: Vec::new(),
        schema_url: s.schema_url.clone(),
    };
    Bytes::from(msg.encode_to_vec())
}

/// Decodes what [`encode_scope`] wrote.
pub(crate) fn decode_scope(b: &[u8]) -> Result<Scope, String> {
    let msg = pt::ScopeSpans::decode(b).map_err(|e| format!("bad scope: {e}"))?;
    Ok(scope_from_proto(msg.scope.as_ref(), &msg.schema_url))
}

/// Encodes the non-column fields of a span. The status message rides along (with code 0)
/// because it is rare and free-form; the status code is a column.
pub(crate) fn encode_rest(s: &Span) -> Box<[u8]> {
    let msg = pt::Span {
        trace_state: s.trace_state.clone(),
        flags: s.flags,
        attributes: attrs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: events_to_proto(&s.events),
        dropped_events_count: s.dropped_events_count,
        links: links_to_proto(&s.links),
        dropped_links_count: s.dropped_links_count,
        status: if s.status_message.is_empty() {
            None
        } else {
            Some(pt::Status {
                message: s.status_message.clone(),
                code: 0,
            })
        },
        ..Default::default()
    };
    msg.encode_to_vec().into_boxed_slice()
}

/// Encodes the non-column fields of an OTLP span straight from its protobuf form into
/// `buf`, byte for byte what [`encode_rest`] writes for the same span after
/// `model::otlp` conversion, but without building a [`Span`] or cloning its strings.
///
/// The fields are written in tag order, as prost's derived encoder does. Attribute lists
/// that conversion would change (a missing value, which conversion turns into an empty
/// one; profiles-only string-table references) take the conversion's path so the bytes
/// stay identical; clients practically never send those.
pub(crate) fn encode_rest_proto(s: &pt::Span, buf: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, fixed32, message, string, uint32, WireType};
    if !s.trace_state.is_empty() {
        string::encode(3, &s.trace_state, buf);
    }
    encode_attrs(9, &s.attributes, buf);
    if s.dropped_attributes_count != 0 {
        uint32::encode(10, &s.dropped_attributes_count, buf);
    }
    for e in &s.events {
        if attrs_clean(&e.attributes) {
            message::encode(11, e, buf);
        } else {
            let e = pt::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: attrs_to_proto(&attrs_from_proto(&e.attributes)),
                dropped_attributes_count: e.dropped_attributes_count,
            };
            message::encode(11, &e, buf);
        }
    }
    if s.dropped_events_count != 0 {
        uint32::encode(12, &s.dropped_events_count, buf);
    }
    for l in &s.links {
        if attrs_clean(&l.attributes) {
            message::encode(13, l, buf);
        } else {
            let l = pt::span::Link {
                attributes: attrs_to_proto(&attrs_from_proto(&l.attributes)),
                ..l.clone()
            };
            message::encode(13, &l, buf);
        }
    }
    if s.dropped_links_count != 0 {
        uint32::encode(14, &s.dropped_links_count, buf);
    }
    // Only the message rides along, with code 0: the code is a column.
    if let Some(st) = s.status.as_ref().filter(|st| !st.message.is_empty()) {
        encode_key(15, WireType::LengthDelimited, buf);
        encode_varint(string::encoded_len(2, &st.message) as u64, buf);
        string::encode(2, &st.message, buf);
    }
    if s.flags != 0 {
        fixed32::encode(16, &s.flags, buf);
    }
}

/// The byte range of every span message in an encoded `ExportTraceServiceRequest`, in
/// request order (the order prost decodes them in), or `None` if the bytes do not walk
/// cleanly (then the caller encodes instead of copying).
pub(crate) fn span_ranges(raw: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut out = Vec::new();
    for_each_field(
        raw,
        0,
        &mut |tag, rs, _| {
            if tag == 1 {
                for_each_field(
                    raw,
                    rs.start,
                    &mut |tag, ss, _| {
                        if tag == 2 {
                            for_each_field(
                                raw,
                                ss.start,
                                &mut |tag, span, _| {
                                    if tag == 2 {
                                        out.push(span);
                                    }
                                    Some(())
                                },
                                ss.end,
                            )?;
                        }
                        Some(())
                    },
                    rs.end,
                )?;
            }
            Some(())
        },
        raw.len(),
    )?;
    Some(out)
}

/// Calls `f(tag, value, whole_field)` for each field of the message in `raw[start..end]`;
/// `value` is the payload range of length-delimited fields (empty otherwise).
fn for_each_field(
    raw: &[u8],
    start: usize,
    f: &mut dyn FnMut(u32, std::ops::Range<usize>, std::ops::Range<usize>) -> Option<()>,
    end: usize,
) -> Option<()> {
    use prost::encoding::decode_varint;
    let mut pos = start;
    while pos < end {
        let field_start = pos;
        let mut b = raw.get(pos..end)?;
        let key = decode_varint(&mut b).ok()?;
        pos = end - b.len();
        let tag = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => {
                decode_varint(&mut b).ok()?;
                pos = end - b.len();
                pos..pos
            }
            1 => {
                pos = pos.checked_add(8)?;
                pos..pos
            }
            2 => {
                let len = usize::try_from(decode_varint(&mut b).ok()?).ok()?;
                let from = end - b.len();
                pos = from.checked_add(len)?;
                from..pos
            }
            5 => {
                pos = pos.checked_add(4)?;
                pos..pos
            }
            // Groups (deprecated) and invalid wire types: let the caller encode instead.
            _ => return None,
        };
        if pos > end {
            return None;
        }
        f(tag, value, field_start..pos)?;
    }
    Some(())
}

/// [`encode_rest_proto`] by copying the rest fields of the span's received bytes `raw`
/// instead of encoding them again. `s` is the same span decoded. Returns `false` (with
/// `buf` in an unspecified state) when the span needs [`encode_rest_proto`]: attributes
/// that conversion changes, or bytes that do not walk cleanly.
///
/// For spans encoded in field order (what SDKs and prost send) the bytes are exactly
/// those [`encode_rest_proto`] writes; otherwise they differ only in order or in explicit
/// default values, and decode to the same span.
pub(crate) fn copy_rest_proto(raw: &[u8], s: &pt::Span, buf: &mut Vec<u8>) -> bool {
    let clean = attrs_clean(&s.attributes)
        && s.events.iter().all(|e| attrs_clean(&e.attributes))
        && s.links.iter().all(|l| attrs_clean(&l.attributes));
    if !clean {
        return false;
    }
    let message = s.status.as_ref().map_or("", |st| st.message.as_str());
    copy_rest_fields(raw, message, buf)
}

/// Copies the rest fields of the span bytes `raw` and writes `status_message` (if not
/// empty) where the status was; `false` if the bytes do not walk cleanly.
fn copy_rest_fields(raw: &[u8], status_message: &str, buf: &mut Vec<u8>) -> bool {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let mut status_done = false;
    for_each_field(
        raw,
        0,
        &mut |tag, _, field| {
            match tag {
                3 | 9..=14 | 16 => buf.extend_from_slice(&raw[field]),
                // The status rides along as its message only (the code is a column), once
                // however many times it was sent (prost merged them).
                15 if !status_done => {
                    status_done = true;
                    if !status_message.is_empty() {
                        // A `Status` with only its message: field 2, a string.
                        let m = status_message.as_bytes();
                        let inner = 1 + encoded_len_varint(m.len() as u64) + m.len();
                        encode_key(15, WireType::LengthDelimited, buf);
                        encode_varint(inner as u64, buf);
                        encode_key(2, WireType::LengthDelimited, buf);
                        encode_varint(m.len() as u64, buf);
                        buf.extend_from_slice(m);
                    }
                }
                _ => {}
            }
            Some(())
        },
        raw.len(),
    )
    .is_some()
}

/// Writes a repeated attribute field as conversion to the model and back would.
fn encode_attrs(tag: u32, kvs: &[pc::KeyValue], buf: &mut Vec<u8>) {
    if attrs_clean(kvs) {
        for kv in kvs {
            prost::encoding::message::encode(tag, kv, buf);
        }
    } else {
        for kv in attrs_to_proto(&attrs_from_proto(kvs)) {
            prost::encoding::message::encode(tag, &kv, buf);
        }
    }
}

/// Whether converting `kvs` to the model and back leaves them as they are.
fn attrs_clean(kvs: &[pc::KeyValue]) -> bool {
    kvs.iter()
        .all(|kv| kv.key_strindex == 0 && kv.value.as_ref().is_some_and(|v| value_clean(v, 0)))
}

fn value_clean(v: &pc::AnyValue, depth: usize) -> bool {
    use pc::any_value::Value as V;
    match &v.value {
        Some(V::StringValueStrindex(_)) => false,
        // Deeply nested values are rare; past a few levels take the converting path rather
        // than recurse further.
        Some(V::ArrayValue(_)) | Some(V::KvlistValue(_)) if depth >= 4 => false,
        Some(V::ArrayValue(a)) => a.values.iter().all(|x| value_clean(x, depth + 1)),
        Some(V::KvlistValue(l)) => l.values.iter().all(|kv| {
            kv.key_strindex == 0 && kv.value.as_ref().is_some_and(|x| value_clean(x, depth + 1))
        }),
        _ => true,
    }
}

/// Decodes a rest blob into its protobuf form (what tag matching reads).
pub(crate) fn decode_rest(b: &[u8]) -> Result<pt::Span, String> {
    pt::Span::decode(b).map_err(|e| format!("bad span attributes: {e}"))
}

/// The column fields of a span, as the head and blocks keep them.
pub(crate) struct SpanColumns {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start: UnixNanos,
    pub end: UnixNanos,
    pub status_code: StatusCode,
}

/// Rebuilds a full span from its columns, its decoded rest, its resource and its scope.
pub(crate) fn assemble(
    c: SpanColumns,
    rest: pt::Span,
    resource: Arc<Resource>,
    scope: Arc<Scope>,
) -> Result<Span, String> {
    let mut links = Vec::with_capacity(rest.links.len());
    for l in rest.links {
        let trace_id: [u8; 16] = l
            .trace_id
            .as_slice()
            .try_into()
            .map_err(|_| "bad link trace id".to_string())?;
        let span_id: [u8; 8] = l
            .span_id
            .as_slice()
            .try_into()
            .map_err(|_| "bad link span id".to_string())?;
        links.push(Link {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            trace_state: l.trace_state,
            attributes: attrs_from_proto(&l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        });
    }
    Ok(Span {
        trace_id: c.trace_id,
        span_id: c.span_id,
        parent_span_id: c.parent_span_id,
        trace_state: rest.trace_state,
        flags: rest.flags,
        name: c.name,
        kind: c.kind,
        start_unix_nano: c.start,
        end_unix_nano: c.end,
        attributes: attrs_from_proto(&rest.attributes),
        dropped_attributes_count: rest.dropped_attributes_count,
        events: rest
            .events
            .into_iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: attrs_from_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: rest.dropped_events_count,
        links,
        dropped_links_count: rest.dropped_links_count,
        status_code: c.status_code,
        status_message: rest.status.map(|s| s.message).unwrap_or_default(),
        resource,
        scope,
    })
}
