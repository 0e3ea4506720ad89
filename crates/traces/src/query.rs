//! Span predicates of a [`TraceQuery`], shared by the head scan and the block scan.
//!
//! A query is checked in two steps so scans stay cheap: first the column fields every span
//! has as plain values (service, name, kind, start, duration), then, only for spans that pass
//! and only when the query has tags, the decoded attributes. Tags that a resource satisfies are
//! computed once per distinct resource, since resources repeat across thousands of spans.

use model::otlp::proto::common::v1 as pc;
use model::otlp::proto::trace::v1 as pt;
use model::otlp::value_from_proto;
use model::{KeyValue, Resource, Scope, SpanKind, StatusCode, UnixNanos};

use crate::TraceQuery;

/// A [`TraceQuery`] prepared for matching spans.
pub(crate) struct Matcher<'q> {
    pub q: &'q TraceQuery,
    pub start_min: UnixNanos,
    pub start_max: UnixNanos,
    dur_min: u64,
    dur_max: u64,
}

impl<'q> Matcher<'q> {
    pub fn new(q: &'q TraceQuery) -> Matcher<'q> {
        Matcher {
            q,
            start_min: q.start_min.unwrap_or(0),
            start_max: q.start_max.unwrap_or(u64::MAX),
            dur_min: q
                .duration_min
                .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                .unwrap_or(0),
            dur_max: q
                .duration_max
                .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                .unwrap_or(u64::MAX),
        }
    }

    /// Whether the query has tags, i.e. whether spans' rest blobs must be decoded.
    pub fn has_tags(&self) -> bool {
        !self.q.tags.is_empty()
    }

    /// Whether a source whose spans start in `[min, max]` can hold a match.
    pub fn overlaps(&self, min: UnixNanos, max: UnixNanos) -> bool {
        min <= self.start_max && max >= self.start_min
    }

    /// The checks on plain column values.
    pub fn columns(
        &self,
        service: &str,
        name: &str,
        kind: SpanKind,
        start: UnixNanos,
        duration: u64,
    ) -> bool {
        if start < self.start_min || start > self.start_max {
            return false;
        }
        if duration < self.dur_min || duration > self.dur_max {
            return false;
        }
        if let Some(k) = self.q.span_kind {
            if k != kind {
                return false;
            }
        }
        if let Some(s) = &self.q.service {
            if s != service {
                return false;
            }
        }
        if let Some(o) = &self.q.operation {
            if o != name {
                return false;
            }
        }
        true
    }

    /// For each tag, whether the resource or scope alone satisfies it.
    pub fn tags_from_resource(&self, resource: &Resource, scope: &Scope) -> Vec<bool> {
        self.q
            .tags
            .iter()
            .map(|(k, v)| {
                model_attrs_match(&resource.attributes, k, v)
                    || (k == "otel.scope.name" && scope.name == *v)
                    || (k == "otel.scope.version" && scope.version == *v)
            })
            .collect()
    }

    /// Whether every tag matches this span, given what its resource already satisfies.
    pub fn tags(
        &self,
        from_resource: &[bool],
        kind: SpanKind,
        status: StatusCode,
        rest: &pt::Span,
    ) -> bool {
        self.q.tags.iter().zip(from_resource).all(|((k, v), hit)| {
            *hit || synthetic_match(k, v, kind, status, rest)
                || proto_attrs_match(&rest.attributes, k, v)
                || rest
                    .events
                    .iter()
                    .any(|e| proto_attrs_match(&e.attributes, k, v))
        })
    }
}

fn synthetic_match(k: &str, v: &str, kind: SpanKind, status: StatusCode, rest: &pt::Span) -> bool {
    match k {
        "span.kind" => kind != SpanKind::Unspecified && kind.jaeger_name() == v,
        "otel.status_code" => match status {
            StatusCode::Ok => v == "OK",
            StatusCode::Error => v == "ERROR",
            StatusCode::Unset => false,
        },
        "otel.status_description" => rest
            .status
            .as_ref()
            .is_some_and(|s| !s.message.is_empty() && s.message == v),
        "error" => status == StatusCode::Error && v == "true",
        _ => false,
    }
}

fn proto_attrs_match(attrs: &[pc::KeyValue], k: &str, v: &str) -> bool {
    attrs.iter().any(|kv| {
        kv.key == k
            && match kv.value.as_ref().and_then(|x| x.value.as_ref()) {
                Some(pc::any_value::Value::StringValue(s)) => s == v,
                None => v.is_empty(),
                Some(_) => kv
                    .value
                    .as_ref()
                    .map(|x| value_from_proto(x).to_tag_string() == v)
                    .unwrap_or(false),
            }
    })
}

fn model_attrs_match(attrs: &[KeyValue], k: &str, v: &str) -> bool {
    attrs.iter().any(|kv| {
        kv.key == k
            && match kv.value.as_str() {
                Some(s) => s == v,
                None => kv.value.to_tag_string() == v,
            }
    })
}
