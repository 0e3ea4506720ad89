//! Stored spans → what Jaeger's query service would answer for them.
//!
//! Jaeger v2 reads a trace as OTLP, runs its standard adjusters over it, then (for the v1 JSON
//! API) translates it with the collector-contrib `ProtoFromTraces` translator and marshals the
//! result with its `uimodel` converter. This module does the same three steps over
//! [`model::Span`]s so a trace looks identical whether Jaeger or Lookout stored it:
//!
//! 1. [`group`]: spans are nested by resource and scope in first-seen order (the same grouping
//!    as [`model::otlp::request_from_spans`]), which fixes span order and `p1`, `p2`, … keys.
//! 2. [`adjust`]: Jaeger's adjusters that matter for OTLP data — attributes sorted by key and
//!    events by name (`SortCollections`), exact duplicate spans dropped (`DeduplicateSpans`),
//!    numeric `ip`/`peer.ipv4` rendered dotted (`NormalizeIPAttributes`), `telemetry.sdk.*`
//!    span attributes moved to the resource (`MoveLibraryAttributes`), links without a trace id
//!    removed with a warning (`RemoveEmptySpanLinks`). Clock-skew correction and Zipkin
//!    shared-span-id deduplication are not done: OTLP spans carry their own ids and times.
//! 3. [`to_jaeger_trace`]: the translator's tag layout (scope tags, attributes, `span.kind`,
//!    `otel.status_code`, `error`, `otel.status_description`, `w3c.tracestate`), references
//!    (parent as `CHILD_OF` first, links as `FOLLOWS_FROM` unless `opentracing.ref_type` says
//!    `child_of`), events as logs with an `event` field, and one process per distinct resource.
//!
//! The API v3 handler reuses steps 1–2 and encodes the adjusted groups as OTLP JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use model::{AnyValue, KeyValue, Resource, Scope, Span, SpanKind, StatusCode, TraceId};

use super::model as wire;
use crate::gocompat;

/// The attribute under which Jaeger v2 keeps a span's warnings while it is OTLP.
pub const WARNINGS_ATTRIBUTE: &str = "@jaeger@warnings";

/// A span with the warnings adjusters attached to it.
#[derive(Debug, Clone)]
pub struct AdjustedSpan {
    pub span: Span,
    pub warnings: Vec<String>,
}

/// Spans of one instrumentation scope within a [`ResourceGroup`].
#[derive(Debug, Clone)]
pub struct ScopeGroup {
    pub scope: Scope,
    pub spans: Vec<AdjustedSpan>,
}

/// Spans of one resource, like an OTLP `ResourceSpans`.
#[derive(Debug, Clone)]
pub struct ResourceGroup {
    pub resource: Resource,
    pub scopes: Vec<ScopeGroup>,
}

/// Nests spans by resource, then scope, in first-seen order. Resources and scopes that are
/// equal by value share a group, as in [`model::otlp::request_from_spans`].
pub fn group(spans: Vec<Span>) -> Vec<ResourceGroup> {
    let mut groups: Vec<ResourceGroup> = Vec::new();
    let mut resource_keys: Vec<Arc<Resource>> = Vec::new();
    let mut scope_keys: Vec<Vec<Arc<Scope>>> = Vec::new();
    for span in spans {
        let ri = match resource_keys
            .iter()
            .position(|r| Arc::ptr_eq(r, &span.resource) || **r == *span.resource)
        {
            Some(i) => i,
            None => {
                resource_keys.push(span.resource.clone());
                scope_keys.push(Vec::new());
                groups.push(ResourceGroup {
                    resource: (*span.resource).clone(),
                    scopes: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let si = match scope_keys[ri]
            .iter()
            .position(|s| Arc::ptr_eq(s, &span.scope) || **s == *span.scope)
        {
            Some(i) => i,
            None => {
                scope_keys[ri].push(span.scope.clone());
                groups[ri].scopes.push(ScopeGroup {
                    scope: (*span.scope).clone(),
                    spans: Vec::new(),
                });
                scope_keys[ri].len() - 1
            }
        };
        groups[ri].scopes[si].spans.push(AdjustedSpan {
            span,
            warnings: Vec::new(),
        });
    }
    groups
}

/// Runs Jaeger's standard adjusters (those that apply to OTLP data) in Jaeger's order.
pub fn adjust(groups: &mut [ResourceGroup]) {
    for g in groups.iter_mut() {
        sort_attributes(&mut g.resource.attributes);
        for sg in &mut g.scopes {
            sort_attributes(&mut sg.scope.attributes);
            for s in &mut sg.spans {
                sort_attributes(&mut s.span.attributes);
                // pdata sorts with a stable sort, so events with equal names keep their order.
                s.span.events.sort_by(|a, b| a.name.cmp(&b.name));
                for e in &mut s.span.events {
                    sort_attributes(&mut e.attributes);
                }
                for l in &mut s.span.links {
                    sort_attributes(&mut l.attributes);
                }
            }
            dedupe_spans(&mut sg.spans);
        }
    }
    for g in groups.iter_mut() {
        normalize_ip_attributes(&mut g.resource.attributes);
        for sg in &mut g.scopes {
            for s in &mut sg.spans {
                normalize_ip_attributes(&mut s.span.attributes);
            }
        }
    }
    for g in groups.iter_mut() {
        let resource = &mut g.resource;
        for sg in &mut g.scopes {
            for s in &mut sg.spans {
                move_library_attributes(s, resource);
            }
        }
    }
    for g in groups.iter_mut() {
        for sg in &mut g.scopes {
            for s in &mut sg.spans {
                let before = s.span.links.len();
                s.span.links.retain(|l| l.trace_id != TraceId::default());
                for _ in s.span.links.len()..before {
                    s.warnings.push("Invalid span link removed".to_string());
                }
            }
        }
    }
}

/// Sorts attributes by key; keys are unique in OTLP maps, so stability does not matter, but a
/// stable sort keeps duplicate keys (which a client may send) in their sent order.
fn sort_attributes(attrs: &mut [KeyValue]) {
    attrs.sort_by(|a, b| a.key.cmp(&b.key));
}

/// Drops spans that are exact copies of an earlier span (a client retrying an export).
fn dedupe_spans(spans: &mut Vec<AdjustedSpan>) {
    if spans.len() < 2 {
        return;
    }
    let mut seen: HashMap<model::SpanId, Vec<usize>> = HashMap::new();
    let mut keep = vec![true; spans.len()];
    for i in 0..spans.len() {
        let candidates = seen.entry(spans[i].span.span_id).or_default();
        if candidates.iter().any(|&j| spans[j].span == spans[i].span) {
            keep[i] = false;
        } else {
            candidates.push(i);
        }
    }
    let mut idx = 0;
    spans.retain(|_| {
        idx += 1;
        keep[idx - 1]
    });
}

/// Jaeger renders numeric `ip` and `peer.ipv4` attributes (IPv4 packed in an integer) dotted.
fn normalize_ip_attributes(attrs: &mut [KeyValue]) {
    for kv in attrs.iter_mut() {
        if kv.key != "ip" && kv.key != "peer.ipv4" {
            continue;
        }
        let packed = match kv.value {
            AnyValue::Int(i) => i as u32,
            AnyValue::Double(d) => d as u32,
            _ => continue,
        };
        let [a, b, c, d] = packed.to_be_bytes();
        kv.value = AnyValue::Str(format!("{a}.{b}.{c}.{d}"));
    }
}

const LIBRARY_KEYS: [&str; 5] = [
    "telemetry.sdk.language",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
    "telemetry.distro.name",
    "telemetry.distro.version",
];

/// SDK identification belongs to the process, so Jaeger moves it there from spans; a value
/// that contradicts the resource stays on the span with a warning.
fn move_library_attributes(s: &mut AdjustedSpan, resource: &mut Resource) {
    let mut i = 0;
    while i < s.span.attributes.len() {
        let key = s.span.attributes[i].key.as_str();
        if !LIBRARY_KEYS.contains(&key) {
            i += 1;
            continue;
        }
        match resource.attributes.iter().find(|kv| kv.key == key) {
            Some(existing) if existing.value != s.span.attributes[i].value => {
                s.warnings.push(format!(
                    "conflicting values between Span and Resource for attribute {key}"
                ));
                i += 1;
            }
            Some(_) => {
                s.span.attributes.remove(i);
            }
            None => {
                let kv = s.span.attributes.remove(i);
                resource.attributes.push(kv);
            }
        }
    }
}

/// Spans back out of their groups, resources and scopes shared per group, with warnings kept
/// as Jaeger keeps them in OTLP: a string-array attribute `@jaeger@warnings`.
pub fn ungroup(groups: Vec<ResourceGroup>) -> Vec<Span> {
    let mut out = Vec::new();
    for g in groups {
        let resource = Arc::new(g.resource);
        for sg in g.scopes {
            let scope = Arc::new(sg.scope);
            for s in sg.spans {
                let mut span = s.span;
                span.resource = resource.clone();
                span.scope = scope.clone();
                if !s.warnings.is_empty() {
                    span.attributes.push(KeyValue::new(
                        WARNINGS_ATTRIBUTE,
                        AnyValue::Array(s.warnings.into_iter().map(AnyValue::Str).collect()),
                    ));
                }
                out.push(span);
            }
        }
    }
    out
}

/// Jaeger's (v1 model) spelling of a trace id: 16 hex digits when the high half is zero.
pub fn jaeger_trace_id(id: &TraceId) -> String {
    if id.0[..8].iter().all(|b| *b == 0) {
        hex::encode(&id.0[8..])
    } else {
        id.to_hex()
    }
}

/// Translates grouped (and usually adjusted) spans into Jaeger's JSON trace.
pub fn to_jaeger_trace(groups: &[ResourceGroup]) -> wire::Trace {
    let mut processes: Vec<wire::Process> = Vec::new();
    let mut spans = Vec::new();
    for g in groups {
        let process = to_process(&g.resource);
        let pid = match processes.iter().position(|p| *p == process) {
            Some(i) => i + 1,
            None => {
                processes.push(process);
                processes.len()
            }
        };
        for sg in &g.scopes {
            for s in &sg.spans {
                spans.push(to_span(s, &sg.scope, format!("p{pid}")));
            }
        }
    }
    wire::Trace {
        trace_id: spans
            .first()
            .map(|s| s.trace_id.clone())
            .unwrap_or_default(),
        spans,
        processes: processes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("p{}", i + 1), p))
            .collect::<BTreeMap<_, _>>(),
        warnings: None,
    }
}

fn to_process(resource: &Resource) -> wire::Process {
    wire::Process {
        service_name: resource.service_name().to_string(),
        tags: resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(to_tag)
            .collect(),
    }
}

fn to_span(s: &AdjustedSpan, scope: &Scope, process_id: String) -> wire::Span {
    let span = &s.span;
    let trace_id = jaeger_trace_id(&span.trace_id);
    wire::Span {
        trace_id: trace_id.clone(),
        span_id: span.span_id.to_hex(),
        // The translator does not carry W3C flags into Jaeger's flags.
        flags: 0,
        operation_name: span.name.clone(),
        references: references(span, trace_id),
        start_time: span.start_unix_nano / 1_000,
        duration: span.duration_nanos() / 1_000,
        tags: span_tags(span, scope),
        logs: span
            .events
            .iter()
            .map(|e| {
                let mut fields = Vec::with_capacity(e.attributes.len() + 1);
                if !e.name.is_empty() && !e.attributes.iter().any(|kv| kv.key == "event") {
                    fields.push(string_tag("event", &e.name));
                }
                fields.extend(e.attributes.iter().map(to_tag));
                wire::Log {
                    timestamp: e.time_unix_nano / 1_000,
                    fields,
                }
            })
            .collect(),
        process_id,
        warnings: (!s.warnings.is_empty()).then(|| s.warnings.clone()),
    }
}

fn references(span: &Span, trace_id: String) -> Vec<wire::Reference> {
    let parent = span
        .parent_span_id
        .filter(|p| *p != model::SpanId::default());
    let mut refs = Vec::with_capacity(span.links.len() + 1);
    if let Some(p) = parent {
        refs.push(wire::Reference {
            ref_type: wire::RefType::ChildOf,
            trace_id,
            span_id: p.to_hex(),
        });
    }
    for link in &span.links {
        let ref_type = match model::find_attr(&link.attributes, "opentracing.ref_type") {
            Some(AnyValue::Str(s)) if s == "child_of" => wire::RefType::ChildOf,
            _ => wire::RefType::FollowsFrom,
        };
        if parent == Some(link.span_id) && link.trace_id == span.trace_id {
            // A link to the parent only refines the parent reference's type.
            refs[0].ref_type = ref_type;
            continue;
        }
        refs.push(wire::Reference {
            ref_type,
            trace_id: jaeger_trace_id(&link.trace_id),
            span_id: link.span_id.to_hex(),
        });
    }
    refs
}

fn span_tags(span: &Span, scope: &Scope) -> Vec<wire::KeyValue> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 6);
    if !scope.name.is_empty() {
        tags.push(string_tag("otel.scope.name", &scope.name));
    }
    if !scope.version.is_empty() {
        tags.push(string_tag("otel.scope.version", &scope.version));
    }
    tags.extend(span.attributes.iter().map(to_tag));
    if span.kind != SpanKind::Unspecified {
        tags.push(string_tag("span.kind", span.kind.jaeger_name()));
    }
    match span.status_code {
        StatusCode::Ok => tags.push(string_tag("otel.status_code", "OK")),
        StatusCode::Error => {
            tags.push(string_tag("otel.status_code", "ERROR"));
            tags.push(wire::KeyValue {
                key: "error".into(),
                value_type: wire::ValueType::Bool,
                value: wire::TagValue::Bool(true),
            });
        }
        StatusCode::Unset => {}
    }
    if !span.status_message.is_empty() {
        tags.push(string_tag("otel.status_description", &span.status_message));
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    tags
}

fn string_tag(key: &str, value: &str) -> wire::KeyValue {
    wire::KeyValue {
        key: key.to_string(),
        value_type: wire::ValueType::String,
        value: wire::TagValue::Str(value.to_string()),
    }
}

/// One attribute as a typed tag, as the translator's `attributeToJaegerProtoTag` does it.
pub fn to_tag(kv: &KeyValue) -> wire::KeyValue {
    let (value_type, value) = match &kv.value {
        AnyValue::Str(s) => (wire::ValueType::String, wire::TagValue::Str(s.clone())),
        AnyValue::Bool(b) => (wire::ValueType::Bool, wire::TagValue::Bool(*b)),
        AnyValue::Int(i) => (wire::ValueType::Int64, wire::TagValue::Int(*i)),
        AnyValue::Double(d) => (wire::ValueType::Float64, wire::TagValue::Float(*d)),
        AnyValue::Bytes(b) => (wire::ValueType::Binary, wire::TagValue::Binary(b.clone())),
        AnyValue::Array(_) | AnyValue::Map(_) => (
            wire::ValueType::String,
            wire::TagValue::Str(gocompat::pdata_as_string(&kv.value)),
        ),
        // An empty value matches no case in the translator and keeps the zero tag: string "".
        AnyValue::Empty => (wire::ValueType::String, wire::TagValue::Str(String::new())),
    };
    wire::KeyValue {
        key: kv.key.clone(),
        value_type,
        value,
    }
}
