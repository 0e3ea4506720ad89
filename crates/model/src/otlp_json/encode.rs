//! OTLP/JSON encoding: protobuf messages to [`serde_json::Value`] following the OTLP/JSON
//! rules (lowerCamelCase keys, hex ids, 64-bit integers as decimal strings, enums as
//! integers, non-finite doubles as `"NaN"`/`"Infinity"`/`"-Infinity"`).
//!
//! Like protobuf's JSON printer, fields holding their default value are left out, except
//! where presence carries meaning: members of a oneof (an `intValue` of 0 is a value) and
//! proto3 `optional` fields (a histogram `min` of 0 is a minimum). A set message field that
//! is empty is written as `{}` so that decoding gives back the same message.

use serde_json::{Map, Number, Value};

use crate::otlp::proto;
use proto::collector::logs::v1 as cl;
use proto::collector::metrics::v1 as cm;
use proto::collector::trace::v1 as ct;
use proto::common::v1 as pc;
use proto::logs::v1 as pl;
use proto::metrics::v1 as pm;
use proto::resource::v1 as pr;
use proto::trace::v1 as pt;

/// A JSON object under construction, with one method per kind of protobuf field that
/// leaves defaults out.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(&mut self, key: &str, v: Value) {
        self.0.insert(key.to_string(), v);
    }

    fn string(&mut self, key: &str, s: &str) {
        if !s.is_empty() {
            self.put(key, Value::String(s.to_string()));
        }
    }

    fn boolean(&mut self, key: &str, b: bool) {
        if b {
            self.put(key, Value::Bool(true));
        }
    }

    fn u32(&mut self, key: &str, n: u32) {
        if n != 0 {
            self.put(key, Value::from(n));
        }
    }

    fn i32(&mut self, key: &str, n: i32) {
        if n != 0 {
            self.put(key, Value::from(n));
        }
    }

    fn u64(&mut self, key: &str, n: u64) {
        if n != 0 {
            self.put(key, Value::String(n.to_string()));
        }
    }

    fn i64(&mut self, key: &str, n: i64) {
        if n != 0 {
            self.put(key, Value::String(n.to_string()));
        }
    }

    fn f64(&mut self, key: &str, f: f64) {
        // -0.0 is a distinct value on the protobuf wire, so only +0.0 is the default.
        if f.to_bits() != 0 {
            self.put(key, double(f));
        }
    }

    fn opt_f64(&mut self, key: &str, f: Option<f64>) {
        if let Some(f) = f {
            self.put(key, double(f));
        }
    }

    fn hex(&mut self, key: &str, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.put(key, Value::String(hex::encode(bytes)));
        }
    }

    fn list<T>(&mut self, key: &str, items: &[T], f: impl Fn(&T) -> Value) {
        if !items.is_empty() {
            self.put(key, Value::Array(items.iter().map(f).collect()));
        }
    }

    fn msg<T>(&mut self, key: &str, m: Option<&T>, f: impl Fn(&T) -> Value) {
        if let Some(m) = m {
            self.put(key, f(m));
        }
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn double(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn int64_string(n: i64) -> Value {
    Value::String(n.to_string())
}

// ---------------------------------------------------------------------------------------
// Top level

pub(super) fn traces(resource_spans: &[pt::ResourceSpans]) -> Value {
    let mut o = Obj::default();
    o.list("resourceSpans", resource_spans, encode_resource_spans);
    o.done()
}

pub(super) fn metrics(resource_metrics: &[pm::ResourceMetrics]) -> Value {
    let mut o = Obj::default();
    o.list("resourceMetrics", resource_metrics, encode_resource_metrics);
    o.done()
}

pub(super) fn logs(resource_logs: &[pl::ResourceLogs]) -> Value {
    let mut o = Obj::default();
    o.list("resourceLogs", resource_logs, encode_resource_logs);
    o.done()
}

pub(super) fn traces_response(resp: &ct::ExportTraceServiceResponse) -> Value {
    let mut o = Obj::default();
    o.msg("partialSuccess", resp.partial_success.as_ref(), |ps| {
        let mut o = Obj::default();
        o.i64("rejectedSpans", ps.rejected_spans);
        o.string("errorMessage", &ps.error_message);
        o.done()
    });
    o.done()
}

pub(super) fn metrics_response(resp: &cm::ExportMetricsServiceResponse) -> Value {
    let mut o = Obj::default();
    o.msg("partialSuccess", resp.partial_success.as_ref(), |ps| {
        let mut o = Obj::default();
        o.i64("rejectedDataPoints", ps.rejected_data_points);
        o.string("errorMessage", &ps.error_message);
        o.done()
    });
    o.done()
}

pub(super) fn logs_response(resp: &cl::ExportLogsServiceResponse) -> Value {
    let mut o = Obj::default();
    o.msg("partialSuccess", resp.partial_success.as_ref(), |ps| {
        let mut o = Obj::default();
        o.i64("rejectedLogRecords", ps.rejected_log_records);
        o.string("errorMessage", &ps.error_message);
        o.done()
    });
    o.done()
}

// ---------------------------------------------------------------------------------------
// common.proto and resource.proto

fn any_value(v: &pc::AnyValue) -> Value {
    use pc::any_value::Value as V;
    let mut o = Obj::default();
    // Oneof members are written even when they hold their type's default.
    match &v.value {
        None => {}
        Some(V::StringValue(s)) => o.put("stringValue", Value::String(s.clone())),
        Some(V::BoolValue(b)) => o.put("boolValue", Value::Bool(*b)),
        Some(V::IntValue(n)) => o.put("intValue", int64_string(*n)),
        Some(V::DoubleValue(f)) => o.put("doubleValue", double(*f)),
        Some(V::ArrayValue(a)) => {
            let mut inner = Obj::default();
            inner.list("values", &a.values, any_value);
            o.put("arrayValue", inner.done());
        }
        Some(V::KvlistValue(l)) => {
            let mut inner = Obj::default();
            inner.list("values", &l.values, key_value);
            o.put("kvlistValue", inner.done());
        }
        Some(V::BytesValue(b)) => {
            use base64::Engine as _;
            let s = base64::engine::general_purpose::STANDARD.encode(b);
            o.put("bytesValue", Value::String(s));
        }
        Some(V::StringValueStrindex(n)) => o.put("stringValueStrindex", Value::from(*n)),
    }
    o.done()
}

fn key_value(kv: &pc::KeyValue) -> Value {
    let mut o = Obj::default();
    o.string("key", &kv.key);
    o.msg("value", kv.value.as_ref(), any_value);
    o.i32("keyStrindex", kv.key_strindex);
    o.done()
}

fn scope(s: &pc::InstrumentationScope) -> Value {
    let mut o = Obj::default();
    o.string("name", &s.name);
    o.string("version", &s.version);
    o.list("attributes", &s.attributes, key_value);
    o.u32("droppedAttributesCount", s.dropped_attributes_count);
    o.done()
}

fn entity_ref(e: &pc::EntityRef) -> Value {
    let mut o = Obj::default();
    o.string("schemaUrl", &e.schema_url);
    o.string("type", &e.r#type);
    o.list("idKeys", &e.id_keys, |s| Value::String(s.clone()));
    o.list("descriptionKeys", &e.description_keys, |s| {
        Value::String(s.clone())
    });
    o.done()
}

fn resource(r: &pr::Resource) -> Value {
    let mut o = Obj::default();
    o.list("attributes", &r.attributes, key_value);
    o.u32("droppedAttributesCount", r.dropped_attributes_count);
    o.list("entityRefs", &r.entity_refs, entity_ref);
    o.done()
}

// ---------------------------------------------------------------------------------------
// trace.proto

fn encode_resource_spans(rs: &pt::ResourceSpans) -> Value {
    let mut o = Obj::default();
    o.msg("resource", rs.resource.as_ref(), resource);
    o.list("scopeSpans", &rs.scope_spans, scope_spans);
    o.string("schemaUrl", &rs.schema_url);
    o.done()
}

fn scope_spans(ss: &pt::ScopeSpans) -> Value {
    let mut o = Obj::default();
    o.msg("scope", ss.scope.as_ref(), scope);
    o.list("spans", &ss.spans, span);
    o.string("schemaUrl", &ss.schema_url);
    o.done()
}

fn span(s: &pt::Span) -> Value {
    let mut o = Obj::default();
    o.hex("traceId", &s.trace_id);
    o.hex("spanId", &s.span_id);
    o.string("traceState", &s.trace_state);
    o.hex("parentSpanId", &s.parent_span_id);
    o.u32("flags", s.flags);
    o.string("name", &s.name);
    o.i32("kind", s.kind);
    o.u64("startTimeUnixNano", s.start_time_unix_nano);
    o.u64("endTimeUnixNano", s.end_time_unix_nano);
    o.list("attributes", &s.attributes, key_value);
    o.u32("droppedAttributesCount", s.dropped_attributes_count);
    o.list("events", &s.events, event);
    o.u32("droppedEventsCount", s.dropped_events_count);
    o.list("links", &s.links, link);
    o.u32("droppedLinksCount", s.dropped_links_count);
    o.msg("status", s.status.as_ref(), status);
    o.done()
}

fn event(e: &pt::span::Event) -> Value {
    let mut o = Obj::default();
    o.u64("timeUnixNano", e.time_unix_nano);
    o.string("name", &e.name);
    o.list("attributes", &e.attributes, key_value);
    o.u32("droppedAttributesCount", e.dropped_attributes_count);
    o.done()
}

fn link(l: &pt::span::Link) -> Value {
    let mut o = Obj::default();
    o.hex("traceId", &l.trace_id);
    o.hex("spanId", &l.span_id);
    o.string("traceState", &l.trace_state);
    o.list("attributes", &l.attributes, key_value);
    o.u32("droppedAttributesCount", l.dropped_attributes_count);
    o.u32("flags", l.flags);
    o.done()
}

fn status(s: &pt::Status) -> Value {
    let mut o = Obj::default();
    o.string("message", &s.message);
    o.i32("code", s.code);
    o.done()
}

// ---------------------------------------------------------------------------------------
// logs.proto

fn encode_resource_logs(rl: &pl::ResourceLogs) -> Value {
    let mut o = Obj::default();
    o.msg("resource", rl.resource.as_ref(), resource);
    o.list("scopeLogs", &rl.scope_logs, scope_logs);
    o.string("schemaUrl", &rl.schema_url);
    o.done()
}

fn scope_logs(sl: &pl::ScopeLogs) -> Value {
    let mut o = Obj::default();
    o.msg("scope", sl.scope.as_ref(), scope);
    o.list("logRecords", &sl.log_records, log_record);
    o.string("schemaUrl", &sl.schema_url);
    o.done()
}

fn log_record(r: &pl::LogRecord) -> Value {
    let mut o = Obj::default();
    o.u64("timeUnixNano", r.time_unix_nano);
    o.u64("observedTimeUnixNano", r.observed_time_unix_nano);
    o.i32("severityNumber", r.severity_number);
    o.string("severityText", &r.severity_text);
    o.msg("body", r.body.as_ref(), any_value);
    o.list("attributes", &r.attributes, key_value);
    o.u32("droppedAttributesCount", r.dropped_attributes_count);
    o.u32("flags", r.flags);
    o.hex("traceId", &r.trace_id);
    o.hex("spanId", &r.span_id);
    o.string("eventName", &r.event_name);
    o.done()
}

// ---------------------------------------------------------------------------------------
// metrics.proto

fn encode_resource_metrics(rm: &pm::ResourceMetrics) -> Value {
    let mut o = Obj::default();
    o.msg("resource", rm.resource.as_ref(), resource);
    o.list("scopeMetrics", &rm.scope_metrics, scope_metrics);
    o.string("schemaUrl", &rm.schema_url);
    o.done()
}

fn scope_metrics(sm: &pm::ScopeMetrics) -> Value {
    let mut o = Obj::default();
    o.msg("scope", sm.scope.as_ref(), scope);
    o.list("metrics", &sm.metrics, metric);
    o.string("schemaUrl", &sm.schema_url);
    o.done()
}

fn metric(m: &pm::Metric) -> Value {
    use pm::metric::Data;
    let mut o = Obj::default();
    o.string("name", &m.name);
    o.string("description", &m.description);
    o.string("unit", &m.unit);
    o.list("metadata", &m.metadata, key_value);
    match &m.data {
        None => {}
        Some(Data::Gauge(g)) => {
            let mut d = Obj::default();
            d.list("dataPoints", &g.data_points, number_point);
            o.put("gauge", d.done());
        }
        Some(Data::Sum(s)) => {
            let mut d = Obj::default();
            d.list("dataPoints", &s.data_points, number_point);
            d.i32("aggregationTemporality", s.aggregation_temporality);
            d.boolean("isMonotonic", s.is_monotonic);
            o.put("sum", d.done());
        }
        Some(Data::Histogram(h)) => {
            let mut d = Obj::default();
            d.list("dataPoints", &h.data_points, histogram_point);
            d.i32("aggregationTemporality", h.aggregation_temporality);
            o.put("histogram", d.done());
        }
        Some(Data::ExponentialHistogram(h)) => {
            let mut d = Obj::default();
            d.list("dataPoints", &h.data_points, exp_histogram_point);
            d.i32("aggregationTemporality", h.aggregation_temporality);
            o.put("exponentialHistogram", d.done());
        }
        Some(Data::Summary(s)) => {
            let mut d = Obj::default();
            d.list("dataPoints", &s.data_points, summary_point);
            o.put("summary", d.done());
        }
    }
    o.done()
}

fn number_point(d: &pm::NumberDataPoint) -> Value {
    use pm::number_data_point::Value as V;
    let mut o = Obj::default();
    o.list("attributes", &d.attributes, key_value);
    o.u64("startTimeUnixNano", d.start_time_unix_nano);
    o.u64("timeUnixNano", d.time_unix_nano);
    match d.value {
        None => {}
        Some(V::AsDouble(f)) => o.put("asDouble", double(f)),
        Some(V::AsInt(n)) => o.put("asInt", int64_string(n)),
    }
    o.list("exemplars", &d.exemplars, exemplar);
    o.u32("flags", d.flags);
    o.done()
}

fn exemplar(e: &pm::Exemplar) -> Value {
    use pm::exemplar::Value as V;
    let mut o = Obj::default();
    o.list("filteredAttributes", &e.filtered_attributes, key_value);
    o.u64("timeUnixNano", e.time_unix_nano);
    match e.value {
        None => {}
        Some(V::AsDouble(f)) => o.put("asDouble", double(f)),
        Some(V::AsInt(n)) => o.put("asInt", int64_string(n)),
    }
    o.hex("spanId", &e.span_id);
    o.hex("traceId", &e.trace_id);
    o.done()
}

fn histogram_point(d: &pm::HistogramDataPoint) -> Value {
    let mut o = Obj::default();
    o.list("attributes", &d.attributes, key_value);
    o.u64("startTimeUnixNano", d.start_time_unix_nano);
    o.u64("timeUnixNano", d.time_unix_nano);
    o.u64("count", d.count);
    o.opt_f64("sum", d.sum);
    o.list("bucketCounts", &d.bucket_counts, |n| {
        Value::String(n.to_string())
    });
    o.list("explicitBounds", &d.explicit_bounds, |f| double(*f));
    o.list("exemplars", &d.exemplars, exemplar);
    o.u32("flags", d.flags);
    o.opt_f64("min", d.min);
    o.opt_f64("max", d.max);
    o.done()
}

fn buckets(b: &pm::exponential_histogram_data_point::Buckets) -> Value {
    let mut o = Obj::default();
    o.i32("offset", b.offset);
    o.list("bucketCounts", &b.bucket_counts, |n| {
        Value::String(n.to_string())
    });
    o.done()
}

fn exp_histogram_point(d: &pm::ExponentialHistogramDataPoint) -> Value {
    let mut o = Obj::default();
    o.list("attributes", &d.attributes, key_value);
    o.u64("startTimeUnixNano", d.start_time_unix_nano);
    o.u64("timeUnixNano", d.time_unix_nano);
    o.u64("count", d.count);
    o.opt_f64("sum", d.sum);
    o.i32("scale", d.scale);
    o.u64("zeroCount", d.zero_count);
    o.msg("positive", d.positive.as_ref(), buckets);
    o.msg("negative", d.negative.as_ref(), buckets);
    o.u32("flags", d.flags);
    o.list("exemplars", &d.exemplars, exemplar);
    o.opt_f64("min", d.min);
    o.opt_f64("max", d.max);
    o.f64("zeroThreshold", d.zero_threshold);
    o.done()
}

fn summary_point(d: &pm::SummaryDataPoint) -> Value {
    let mut o = Obj::default();
    o.list("attributes", &d.attributes, key_value);
    o.u64("startTimeUnixNano", d.start_time_unix_nano);
    o.u64("timeUnixNano", d.time_unix_nano);
    o.u64("count", d.count);
    o.f64("sum", d.sum);
    o.list("quantileValues", &d.quantile_values, |q| {
        let mut o = Obj::default();
        o.f64("quantile", q.quantile);
        o.f64("value", q.value);
        o.done()
    });
    o.u32("flags", d.flags);
    o.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doubles_that_json_cannot_hold_become_strings() {
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::INFINITY), json!("Infinity"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(double(1.5), json!(1.5));
    }

    #[test]
    fn oneof_members_are_written_even_when_default() {
        let v = pc::AnyValue {
            value: Some(pc::any_value::Value::IntValue(0)),
        };
        assert_eq!(any_value(&v,), json!({"intValue": "0"}));
        let v = pc::AnyValue {
            value: Some(pc::any_value::Value::BoolValue(false)),
        };
        assert_eq!(any_value(&v), json!({"boolValue": false}));
        let v = pc::AnyValue {
            value: Some(pc::any_value::Value::BytesValue(vec![0xfb, 0xff])),
        };
        assert_eq!(any_value(&v), json!({"bytesValue": "+/8="}));
    }

    #[test]
    fn defaults_are_left_out_and_ids_are_lowercase_hex() {
        let s = pt::Span {
            trace_id: vec![0xAB; 16],
            span_id: vec![0xCD; 8],
            ..Default::default()
        };
        assert_eq!(
            span(&s),
            json!({"traceId": "abababababababababababababababab", "spanId": "cdcdcdcdcdcdcdcd"})
        );
    }

    #[test]
    fn partial_success_counts_are_strings() {
        let resp = ct::ExportTraceServiceResponse {
            partial_success: Some(ct::ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "bad span id".into(),
            }),
        };
        assert_eq!(
            traces_response(&resp),
            json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad span id"}})
        );
        assert_eq!(
            traces_response(&ct::ExportTraceServiceResponse::default()),
            json!({})
        );
    }
}
