//! OTLP/JSON codec tests against real payloads: the OpenTelemetry protocol repository's
//! example files (read from the shared conformance folder, never copied), a hand-written body
//! that uses every field and every accepted spelling, one case per kind of bad input, and a
//! randomised round trip plus a byte-mutation run that must never panic.
//!
//! The conformance check compares JSON semantically: both the source file and our
//! re-encoding are normalised (64-bit integers as strings or numbers, numbers as doubles,
//! enum names as numbers, hex case, defaults that protobuf JSON may omit) and must then be
//! equal, so a field the source carries that we drop fails the test.

use std::path::PathBuf;

use model::otlp::proto;
use model::otlp_json::{self, JsonError};
use prost::Message;
use serde_json::{json, Value};

use proto::collector::logs::v1::ExportLogsServiceRequest;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1 as pc;
use proto::logs::v1 as pl;
use proto::metrics::v1 as pm;
use proto::trace::v1 as pt;

fn conformance(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/otlp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Semantic normalisation

/// Keys whose value is a 64-bit integer (or a list of them), which may be a string or a
/// number on input.
const INT64_KEYS: &[&str] = &[
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "observedTimeUnixNano",
    "intValue",
    "asInt",
    "count",
    "zeroCount",
    "bucketCounts",
];

/// Keys holding ids, compared without regard to hex case.
const ID_KEYS: &[&str] = &["traceId", "spanId", "parentSpanId"];

/// Fields with explicit presence (oneof members, proto3 `optional`): their default value
/// is still a value and must come back.
const PRESENCE_KEYS: &[&str] = &[
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "bytesValue",
    "arrayValue",
    "kvlistValue",
    "asDouble",
    "asInt",
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
    "min",
    "max",
    "resource",
    "scope",
    "status",
    "value",
    "body",
    "positive",
    "negative",
];

fn enum_number(key: &str, name: &str) -> Option<i32> {
    match key {
        "kind" => pt::span::SpanKind::from_str_name(name).map(|e| e as i32),
        "code" => pt::status::StatusCode::from_str_name(name).map(|e| e as i32),
        "severityNumber" => pl::SeverityNumber::from_str_name(name).map(|e| e as i32),
        "aggregationTemporality" => {
            pm::AggregationTemporality::from_str_name(name).map(|e| e as i32)
        }
        _ => None,
    }
}

fn normalise_scalar(key: &str, v: &Value) -> Value {
    match v {
        Value::String(s) if INT64_KEYS.contains(&key) => Value::String(
            s.parse::<i128>()
                .map(|n| n.to_string())
                .unwrap_or(s.clone()),
        ),
        Value::Number(n) if INT64_KEYS.contains(&key) => {
            let n = n
                .as_i64()
                .map(i128::from)
                .or(n.as_u64().map(i128::from))
                .unwrap_or_else(|| n.as_f64().unwrap() as i128);
            Value::String(n.to_string())
        }
        Value::String(s) if ID_KEYS.contains(&key) => Value::String(s.to_ascii_lowercase()),
        Value::String(s) => match enum_number(key, s) {
            Some(n) => json!(f64::from(n)),
            None => v.clone(),
        },
        Value::Number(n) => json!(n.as_f64().unwrap()),
        _ => v.clone(),
    }
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn normalise(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, x) in map {
                let x = normalise(k, x);
                if !PRESENCE_KEYS.contains(&k.as_str()) && is_default(&x) {
                    continue;
                }
                out.insert(k.clone(), x);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| normalise(key, x)).collect()),
        _ => normalise_scalar(key, v),
    }
}

fn assert_same_json(source: &[u8], encoded: &[u8]) {
    let source: Value = serde_json::from_slice(source).unwrap();
    let encoded: Value = serde_json::from_slice(encoded).unwrap();
    let (a, b) = (normalise("", &source), normalise("", &encoded));
    assert_eq!(
        a,
        b,
        "re-encoded JSON differs\nsource:  {}\nencoded: {}",
        serde_json::to_string_pretty(&a).unwrap(),
        serde_json::to_string_pretty(&b).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// Conformance files

#[test]
fn conformance_trace_json_round_trips_with_nothing_dropped() {
    let body = conformance("trace.json");
    let req = otlp_json::decode_traces(&body).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(span.kind, pt::span::SpanKind::Server as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    let encoded = otlp_json::encode_traces(&req);
    assert_same_json(&body, &encoded);

    // Through protobuf and back gives the same JSON.
    let wire = req.encode_to_vec();
    let again = ExportTraceServiceRequest::decode(wire.as_slice()).unwrap();
    assert_eq!(otlp_json::encode_traces(&again), encoded);

    // And the model layer accepts what we decoded.
    let spans = model::otlp::spans_from_request(&req).unwrap();
    assert_eq!(spans.len(), 1);
}

#[test]
fn conformance_metrics_json_round_trips_with_nothing_dropped() {
    let body = conformance("metrics.json");
    let req = otlp_json::decode_metrics(&body).unwrap();
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 4);
    match &metrics[2].data {
        Some(pm::metric::Data::Histogram(h)) => {
            assert_eq!(h.data_points[0].bucket_counts, vec![1, 1]);
            assert_eq!(h.data_points[0].min, Some(0.0));
        }
        other => panic!("expected a histogram, got {other:?}"),
    }
    let encoded = otlp_json::encode_metrics(&req);
    assert_same_json(&body, &encoded);

    let wire = req.encode_to_vec();
    let again = ExportMetricsServiceRequest::decode(wire.as_slice()).unwrap();
    assert_eq!(otlp_json::encode_metrics(&again), encoded);
}

#[test]
fn conformance_logs_json_round_trips_with_nothing_dropped() {
    for name in ["logs.json", "events.json"] {
        let body = conformance(name);
        let req = otlp_json::decode_logs(&body).unwrap();
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 1);
        let encoded = otlp_json::encode_logs(&req);
        assert_same_json(&body, &encoded);

        let wire = req.encode_to_vec();
        let again = ExportLogsServiceRequest::decode(wire.as_slice()).unwrap();
        assert_eq!(otlp_json::encode_logs(&again), encoded, "{name}");
    }
    let events = otlp_json::decode_logs(&conformance("events.json")).unwrap();
    let record = &events.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.event_name, "browser.page_view");
    // `"intValue": "0"` inside the body is a value, not an absent field.
    let Some(pc::any_value::Value::KvlistValue(kv)) = record.body.as_ref().unwrap().value.as_ref()
    else {
        panic!("expected a kvlist body")
    };
    assert_eq!(
        kv.values[0].value.as_ref().unwrap().value,
        Some(pc::any_value::Value::IntValue(0))
    );
}

#[test]
fn the_normaliser_notices_a_dropped_field() {
    // Guards the conformance tests: they must be able to fail.
    let body = conformance("logs.json");
    let mut req = otlp_json::decode_logs(&body).unwrap();
    req.resource_logs[0].scope_logs[0].log_records[0]
        .severity_text
        .clear();
    let encoded = otlp_json::encode_logs(&req);
    let result = std::panic::catch_unwind(|| assert_same_json(&body, &encoded));
    assert!(result.is_err());
}

#[test]
fn traces_value_is_the_traces_data_object() {
    let req = otlp_json::decode_traces(&conformance("trace.json")).unwrap();
    let value = otlp_json::traces_to_json_value(&req.resource_spans);
    assert_eq!(
        value["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"],
        json!("eee19b7ec3c1b174")
    );
    assert_eq!(
        otlp_json::traces_to_json_value(&[]),
        json!({}),
        "an empty TracesData has no fields"
    );
}

// ---------------------------------------------------------------------------------------
// Every field, every accepted spelling

const EVERYTHING_TRACES: &str = r#"{
  "resource_spans": [{
    "resource": {
      "attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "bytes", "value": {"bytes_value": "-_8"}},
        {"key": "nested", "value": {"arrayValue": {"values": [
          {"intValue": 7}, {"doubleValue": "NaN"}, {"boolValue": false},
          {"kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": "-Infinity"}}]}},
          {}
        ]}}}
      ],
      "droppedAttributesCount": 1,
      "entityRefs": [{"schemaUrl": "s", "type": "service", "idKeys": ["service.name"], "descriptionKeys": ["d"]}]
    },
    "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
    "scopeSpans": [{
      "scope": {"name": "lib", "version": "2", "droppedAttributesCount": "3"},
      "schema_url": "scope-schema",
      "spans": [{
        "trace_id": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "",
        "traceState": "a=b",
        "flags": 257,
        "name": "GET /cart",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": 1544712660000000000,
        "end_time_unix_nano": "1544712661000000000",
        "attributes": [{"key": "http.status_code", "value": {"intValue": "-9223372036854775808"}}],
        "droppedAttributesCount": 2,
        "events": [{"timeUnixNano": "1544712660500000000", "name": "retry", "attributes": [], "droppedAttributesCount": 4}],
        "droppedEventsCount": 5,
        "links": [{"traceId": "00000000000000000000000000000001", "spanId": "0000000000000002", "traceState": "x=y", "droppedAttributesCount": 6, "flags": 1}],
        "droppedLinksCount": 7,
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        "someFutureField": {"anything": [1, 2, 3]}
      }, null]
    }]
  }],
  "unknownTopLevel": true
}"#;

#[test]
fn every_trace_field_and_spelling_decodes() {
    let req = otlp_json::decode_traces(EVERYTHING_TRACES.as_bytes()).unwrap();
    let rs = &req.resource_spans[0];
    let res = rs.resource.as_ref().unwrap();
    assert_eq!(res.dropped_attributes_count, 1);
    assert_eq!(res.entity_refs[0].id_keys, vec!["service.name"]);
    assert_eq!(
        res.attributes[1].value.as_ref().unwrap().value,
        Some(pc::any_value::Value::BytesValue(vec![0xfb, 0xff]))
    );
    let Some(pc::any_value::Value::ArrayValue(arr)) =
        res.attributes[2].value.as_ref().unwrap().value.as_ref()
    else {
        panic!("expected an array")
    };
    assert_eq!(arr.values[0].value, Some(pc::any_value::Value::IntValue(7)));
    assert!(
        matches!(arr.values[1].value, Some(pc::any_value::Value::DoubleValue(f)) if f.is_nan())
    );
    assert_eq!(arr.values[4].value, None);
    assert_eq!(rs.schema_url, "https://opentelemetry.io/schemas/1.24.0");
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.schema_url, "scope-schema");
    assert_eq!(ss.scope.as_ref().unwrap().dropped_attributes_count, 3);
    assert_eq!(ss.spans.len(), 2, "a null span is an empty span");
    let s = &ss.spans[0];
    assert_eq!(
        s.trace_id,
        hex::decode("5b8efff798038103d269b633813fc60c").unwrap()
    );
    assert!(s.parent_span_id.is_empty());
    assert_eq!(s.flags, 257);
    assert_eq!(s.kind, 3);
    assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(
        s.attributes[0].value.as_ref().unwrap().value,
        Some(pc::any_value::Value::IntValue(i64::MIN))
    );
    assert_eq!(s.events[0].dropped_attributes_count, 4);
    assert_eq!(s.dropped_events_count, 5);
    assert_eq!(s.links[0].span_id, vec![0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(s.links[0].flags, 1);
    assert_eq!(s.dropped_links_count, 7);
    assert_eq!(s.status.as_ref().unwrap().code, 2);

    // Encoding uses the canonical spellings, and decodes back to the same message.
    let encoded = otlp_json::encode_traces(&req);
    let v: Value = serde_json::from_slice(&encoded).unwrap();
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], json!("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span["kind"], json!(3));
    assert_eq!(span["startTimeUnixNano"], json!("1544712660000000000"));
    assert_eq!(span["status"], json!({"code": 2, "message": "boom"}));
    assert!(span.get("parentSpanId").is_none());
    let again = otlp_json::decode_traces(&encoded).unwrap();
    assert_eq!(again.encode_to_vec(), req.encode_to_vec());
}

const EVERYTHING_METRICS: &str = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [
  {"name": "g", "metadata": [{"key": "m", "value": {"stringValue": "v"}}],
   "gauge": {"dataPoints": [
     {"asInt": "-5", "timeUnixNano": "1", "flags": 1,
      "exemplars": [{"filteredAttributes": [{"key": "f", "value": {"boolValue": true}}],
                     "timeUnixNano": "2", "asDouble": 1.5,
                     "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"},
                    {"asInt": 9}]},
     {"asDouble": "Infinity"}]}},
  {"name": "s", "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                        "isMonotonic": true, "dataPoints": [{"asInt": 0}]}},
  {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [
     {"count": 3, "sum": 0, "bucketCounts": [1, "2", 0], "explicitBounds": [0.5, "1e1"],
      "min": -1, "max": "NaN"}]}},
  {"name": "e", "exponentialHistogram": {"dataPoints": [
     {"scale": -3, "zeroCount": "4", "zeroThreshold": 1e-9,
      "positive": {"offset": -2, "bucketCounts": ["1"]}, "negative": {}}]}},
  {"name": "q", "summary": {"dataPoints": [
     {"count": "10", "sum": 99.5, "quantileValues": [{"quantile": 0.5, "value": 1}, {"quantile": 1, "value": "Infinity"}]}]}}
]}]}]}"#;

#[test]
fn every_metric_kind_decodes_and_round_trips() {
    use pm::metric::Data;
    let req = otlp_json::decode_metrics(EVERYTHING_METRICS.as_bytes()).unwrap();
    let ms = &req.resource_metrics[0].scope_metrics[0].metrics;
    let Some(Data::Gauge(g)) = &ms[0].data else {
        panic!("gauge")
    };
    assert_eq!(ms[0].metadata[0].key, "m");
    assert_eq!(
        g.data_points[0].value,
        Some(pm::number_data_point::Value::AsInt(-5))
    );
    let ex = &g.data_points[0].exemplars;
    assert_eq!(ex[0].value, Some(pm::exemplar::Value::AsDouble(1.5)));
    assert_eq!(ex[0].trace_id.len(), 16);
    assert_eq!(ex[1].value, Some(pm::exemplar::Value::AsInt(9)));
    assert_eq!(
        g.data_points[1].value,
        Some(pm::number_data_point::Value::AsDouble(f64::INFINITY))
    );
    let Some(Data::Sum(s)) = &ms[1].data else {
        panic!("sum")
    };
    assert_eq!(s.aggregation_temporality, 2);
    assert!(s.is_monotonic);
    assert_eq!(
        s.data_points[0].value,
        Some(pm::number_data_point::Value::AsInt(0))
    );
    let Some(Data::Histogram(h)) = &ms[2].data else {
        panic!("histogram")
    };
    let hp = &h.data_points[0];
    assert_eq!((hp.count, hp.sum, hp.min), (3, Some(0.0), Some(-1.0)));
    assert_eq!(hp.bucket_counts, vec![1, 2, 0]);
    assert_eq!(hp.explicit_bounds, vec![0.5, 10.0]);
    assert!(hp.max.unwrap().is_nan());
    let Some(Data::ExponentialHistogram(e)) = &ms[3].data else {
        panic!("exp")
    };
    let ep = &e.data_points[0];
    assert_eq!((ep.scale, ep.zero_count), (-3, 4));
    assert_eq!(ep.positive.as_ref().unwrap().offset, -2);
    assert_eq!(ep.negative, Some(Default::default()));
    let Some(Data::Summary(q)) = &ms[4].data else {
        panic!("summary")
    };
    assert_eq!(q.data_points[0].quantile_values[1].value, f64::INFINITY);

    let encoded = otlp_json::encode_metrics(&req);
    let v: Value = serde_json::from_slice(&encoded).unwrap();
    let metrics = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    assert_eq!(metrics[1]["sum"]["dataPoints"][0], json!({"asInt": "0"}));
    assert_eq!(metrics[2]["histogram"]["dataPoints"][0]["sum"], json!(0.0));
    assert_eq!(
        metrics[2]["histogram"]["dataPoints"][0]["max"],
        json!("NaN")
    );
    assert_eq!(
        metrics[3]["exponentialHistogram"]["dataPoints"][0]["negative"],
        json!({})
    );
    let again = otlp_json::decode_metrics(&encoded).unwrap();
    assert_eq!(again.encode_to_vec(), req.encode_to_vec());
}

#[test]
fn log_fields_decode_including_enum_names() {
    let body = r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "severityNumber": "SEVERITY_NUMBER_WARN", "flags": 1, "droppedAttributesCount": 2,
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "body": {"bytesValue": "aGVsbG8="}, "event_name": "e"}]}]}]}"#;
    let req = otlp_json::decode_logs(body.as_bytes()).unwrap();
    let r = &req.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(r.severity_number, 13);
    assert_eq!((r.flags, r.dropped_attributes_count), (1, 2));
    assert_eq!(r.event_name, "e");
    assert_eq!(
        r.body.as_ref().unwrap().value,
        Some(pc::any_value::Value::BytesValue(b"hello".to_vec()))
    );
    let encoded = otlp_json::encode_logs(&req);
    let v: Value = serde_json::from_slice(&encoded).unwrap();
    let rec = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(rec["severityNumber"], json!(13));
    assert_eq!(rec["body"], json!({"bytesValue": "aGVsbG8="}));
}

#[test]
fn responses_encode_and_decode() {
    use proto::collector::logs::v1 as cl;
    use proto::collector::metrics::v1 as cm;
    use proto::collector::trace::v1 as ct;
    let t = ct::ExportTraceServiceResponse {
        partial_success: Some(ct::ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "2 spans had invalid ids".into(),
        }),
    };
    let body = otlp_json::encode_traces_response(&t);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 spans had invalid ids"}})
    );
    assert_eq!(otlp_json::decode_traces_response(&body).unwrap(), t);
    let m = cm::ExportMetricsServiceResponse {
        partial_success: Some(cm::ExportMetricsPartialSuccess {
            rejected_data_points: 1,
            error_message: String::new(),
        }),
    };
    let body = otlp_json::encode_metrics_response(&m);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"partialSuccess": {"rejectedDataPoints": "1"}})
    );
    assert_eq!(otlp_json::decode_metrics_response(&body).unwrap(), m);
    let l = cl::ExportLogsServiceResponse::default();
    assert_eq!(otlp_json::encode_logs_response(&l), b"{}");
    assert_eq!(otlp_json::decode_logs_response(b"{}").unwrap(), l);
}

// ---------------------------------------------------------------------------------------
// Bad input: one test per kind, each checking the message says where and what

fn trace_error(body: &[u8]) -> String {
    otlp_json::decode_traces(body).unwrap_err().to_string()
}

/// The conformance trace with one span field replaced.
fn trace_with_span_field(key: &str, value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&conformance("trace.json")).unwrap();
    let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap();
    let template = spans[0].clone();
    spans.push(template.clone());
    spans.push(template);
    spans[2][key] = value;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn bad_invalid_json_reports_line_and_column() {
    let err = otlp_json::decode_traces(b"{\n  \"resourceSpans\": [}\n").unwrap_err();
    let JsonError::Syntax { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*line, *column), (2, 21));
    assert!(
        err.to_string()
            .starts_with("invalid JSON at line 2, column 21: "),
        "{err}"
    );
}

#[test]
fn bad_truncated_body() {
    let body = conformance("metrics.json");
    let err = otlp_json::decode_metrics(&body[..body.len() / 2]).unwrap_err();
    assert!(matches!(err, JsonError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().contains("EOF while parsing"), "{err}");
}

#[test]
fn bad_empty_body_and_non_object_top_level() {
    assert_eq!(
        trace_error(b"  \n"),
        r#"the request body is empty: send a JSON object such as {"resourceSpans":[]}"#
    );
    assert_eq!(
        trace_error(b"[]"),
        r#"the top level must be a JSON object such as {"resourceSpans":[]}, got an array"#
    );
    assert_eq!(
        otlp_json::decode_logs(b"\"hi\"").unwrap_err().to_string(),
        r#"the top level must be a JSON object such as {"resourceLogs":[]}, got the value "hi""#
    );
    // An empty object is an empty (valid) request.
    assert_eq!(otlp_json::decode_traces(b"{}").unwrap(), Default::default());
}

#[test]
fn bad_wrong_type_names_the_field() {
    assert_eq!(
        trace_error(br#"{"resourceSpans": {}}"#),
        "resourceSpans: expected an array, got an object"
    );
    assert_eq!(
        trace_error(&trace_with_span_field("name", json!(5))),
        "resourceSpans[0].scopeSpans[0].spans[2].name: expected a string, got 5"
    );
    assert_eq!(
        trace_error(&trace_with_span_field("kind", json!("SERVER"))),
        "resourceSpans[0].scopeSpans[0].spans[2].kind: expected an enum number or name such as \"SPAN_KIND_SERVER\", got \"SERVER\""
    );
    assert_eq!(
        trace_error(&trace_with_span_field("status", json!([]))),
        "resourceSpans[0].scopeSpans[0].spans[2].status: expected an object, got an array"
    );
    let err = otlp_json::decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"isMonotonic":"yes"}}]}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic: expected true or false, got "yes""#
    );
}

#[test]
fn bad_hex_id() {
    assert_eq!(
        trace_error(&trace_with_span_field("traceId", json!("abc"))),
        r#"resourceSpans[0].scopeSpans[0].spans[2].traceId: expected a hex string of 32 digits, got "abc""#
    );
    assert_eq!(
        trace_error(&trace_with_span_field(
            "parentSpanId",
            json!("zzzzzzzzzzzzzzzz")
        )),
        r#"resourceSpans[0].scopeSpans[0].spans[2].parentSpanId: expected a hex string of 16 digits, got "zzzzzzzzzzzzzzzz""#
    );
    // base64 (protobuf's canonical JSON for bytes) is not OTLP/JSON's id encoding.
    assert!(
        trace_error(&trace_with_span_field("spanId", json!("7uGbfsPBsXQ="))).contains("spanId")
    );
    // A wrong length is decoded as given; the model layer refuses it with its own path.
    let req = otlp_json::decode_traces(&trace_with_span_field("traceId", json!("ABCD"))).unwrap();
    assert_eq!(
        req.resource_spans[0].scope_spans[0].spans[2].trace_id,
        vec![0xab, 0xcd]
    );
    let err = model::otlp::spans_from_request(&req).unwrap_err();
    assert!(err.to_string().contains("spans[2].trace_id"), "{err}");
}

#[test]
fn bad_base64_bytes_value() {
    let body =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"@@@"}}]}]}]}"#;
    let err = otlp_json::decode_logs(body).unwrap_err().to_string();
    assert!(
        err.starts_with(
            r#"resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: expected a base64 string, got "@@@""#
        ),
        "{err}"
    );
}

#[test]
fn bad_deep_nesting_is_an_error_not_a_crash() {
    // Plain JSON nesting far beyond serde_json's parse limit.
    let deep = format!(
        "{{\"resourceSpans\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = otlp_json::decode_traces(deep.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("nests too deeply"), "{err}");

    // Attribute values nested through arrayValue until the parser's limit trips.
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..200 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let body = trace_with_span_field("attributes", json!([]));
    let body = String::from_utf8(body).unwrap().replacen(
        r#""attributes":[]"#,
        &format!(r#""attributes":[{{"key":"k","value":{value}}}]"#),
        1,
    );
    let err = otlp_json::decode_traces(body.as_bytes()).unwrap_err();
    assert!(matches!(err, JsonError::Syntax { .. }), "{err:?}");

    // Moderate nesting that the parser allows is accepted.
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..20 {
        value = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{value}}}]}}}}"#);
    }
    let body =
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{value}}}]}}]}}]}}"#);
    assert!(otlp_json::decode_logs(body.as_bytes()).is_ok());
}

#[test]
fn bad_huge_numbers() {
    assert_eq!(
        trace_error(&trace_with_span_field(
            "startTimeUnixNano",
            json!("99999999999999999999")
        )),
        r#"resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: expected an unsigned 64-bit integer as a decimal string or number, got "99999999999999999999", which is out of range"#
    );
    assert!(
        trace_error(&trace_with_span_field("startTimeUnixNano", json!(-1)))
            .contains("out of range")
    );
    assert!(
        trace_error(&trace_with_span_field("flags", json!(4294967296u64)))
            .contains("spans[2].flags: expected an unsigned 32-bit integer")
    );
    // A JSON number too large for a double is refused by the parser itself.
    let body = String::from_utf8(conformance("trace.json"))
        .unwrap()
        .replace(r#""kind": 2"#, r#""kind": 1e400"#);
    let err = otlp_json::decode_traces(body.as_bytes()).unwrap_err();
    assert!(matches!(err, JsonError::Syntax { .. }), "{err:?}");
    let err = otlp_json::decode_logs(
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"9223372036854775808"}}]}]}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("body.intValue: expected a signed 64-bit integer"),
        "{err}"
    );
    let err = otlp_json::decode_logs(
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"doubleValue":"1e400"}}]}]}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("body.doubleValue: expected a number"),
        "{err}"
    );
}

#[test]
fn bad_non_utf8() {
    let mut body = br#"{"resourceSpans":[{"schemaUrl":"x"#.to_vec();
    let offset = body.len();
    body.extend_from_slice(b"\xff\xfe\"}]}");
    assert_eq!(
        otlp_json::decode_traces(&body).unwrap_err(),
        JsonError::NotUtf8 { offset }
    );
}

#[test]
fn bad_oneof_with_two_members() {
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{},"sum":{}}]}]}]}"#;
    let err = otlp_json::decode_metrics(body).unwrap_err().to_string();
    assert!(
        err.starts_with("resourceMetrics[0].scopeMetrics[0].metrics[0]."),
        "{err}"
    );
    assert!(err.contains("both gauge and sum are set"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Randomised: round trips of generated messages, and mutated bodies that must not panic

/// xorshift64*: enough randomness for test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn string(&mut self) -> String {
        let alphabet = ["", "a", "é", "\"", "\\", "\n", "☃", "\u{0}", "z9", "😀"];
        (0..self.below(4))
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
            .collect()
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        (0..self.below(max + 1))
            .map(|_| self.next() as u8)
            .collect()
    }
    fn f64(&mut self) -> f64 {
        match self.below(6) {
            0 => 0.0,
            1 => f64::NAN,
            2 => f64::INFINITY,
            3 => -1.5e300,
            4 => f64::from_bits(self.next()),
            _ => self.below(1000) as f64 / 7.0,
        }
    }
    fn any_value(&mut self, depth: u32) -> pc::AnyValue {
        use pc::any_value::Value as V;
        let kinds = if depth > 3 { 5 } else { 7 };
        let value = match self.below(kinds + 1) {
            0 => None,
            1 => Some(V::StringValue(self.string())),
            2 => Some(V::BoolValue(self.chance())),
            3 => Some(V::IntValue(self.next() as i64)),
            4 => Some(V::DoubleValue(self.f64())),
            5 => Some(V::BytesValue(self.bytes(8))),
            6 => Some(V::ArrayValue(pc::ArrayValue {
                values: (0..self.below(3))
                    .map(|_| self.any_value(depth + 1))
                    .collect(),
            })),
            _ => Some(V::KvlistValue(pc::KeyValueList {
                values: self.attrs(depth + 1),
            })),
        };
        pc::AnyValue { value }
    }
    fn attrs(&mut self, depth: u32) -> Vec<pc::KeyValue> {
        (0..self.below(3))
            .map(|_| pc::KeyValue {
                key: self.string(),
                value: self.chance().then(|| self.any_value(depth)),
                key_strindex: 0,
            })
            .collect()
    }
    fn span(&mut self) -> pt::Span {
        pt::Span {
            trace_id: self.bytes(16),
            span_id: self.bytes(8),
            trace_state: self.string(),
            parent_span_id: self.bytes(8),
            flags: self.next() as u32,
            name: self.string(),
            kind: self.below(6) as i32,
            start_time_unix_nano: self.next(),
            end_time_unix_nano: self.next(),
            attributes: self.attrs(0),
            dropped_attributes_count: self.below(3) as u32,
            events: (0..self.below(2))
                .map(|_| pt::span::Event {
                    time_unix_nano: self.next(),
                    name: self.string(),
                    attributes: self.attrs(0),
                    dropped_attributes_count: self.below(2) as u32,
                })
                .collect(),
            dropped_events_count: self.below(2) as u32,
            links: (0..self.below(2))
                .map(|_| pt::span::Link {
                    trace_id: self.bytes(16),
                    span_id: self.bytes(8),
                    trace_state: self.string(),
                    attributes: self.attrs(0),
                    dropped_attributes_count: self.below(2) as u32,
                    flags: self.next() as u32,
                })
                .collect(),
            dropped_links_count: self.below(2) as u32,
            status: self.chance().then(|| pt::Status {
                message: self.string(),
                code: self.below(3) as i32,
            }),
        }
    }
    fn number_point(&mut self) -> pm::NumberDataPoint {
        pm::NumberDataPoint {
            attributes: self.attrs(0),
            start_time_unix_nano: self.next(),
            time_unix_nano: self.next(),
            exemplars: (0..self.below(2))
                .map(|_| pm::Exemplar {
                    filtered_attributes: self.attrs(0),
                    time_unix_nano: self.next(),
                    span_id: self.bytes(8),
                    trace_id: self.bytes(16),
                    value: match self.below(3) {
                        0 => None,
                        1 => Some(pm::exemplar::Value::AsDouble(self.f64())),
                        _ => Some(pm::exemplar::Value::AsInt(self.next() as i64)),
                    },
                })
                .collect(),
            flags: self.below(2) as u32,
            value: match self.below(3) {
                0 => None,
                1 => Some(pm::number_data_point::Value::AsDouble(self.f64())),
                _ => Some(pm::number_data_point::Value::AsInt(self.next() as i64)),
            },
        }
    }
    fn opt_f64(&mut self) -> Option<f64> {
        self.chance().then(|| self.f64())
    }
    fn metric(&mut self) -> pm::Metric {
        use pm::metric::Data;
        let data = match self.below(6) {
            0 => None,
            1 => Some(Data::Gauge(pm::Gauge {
                data_points: (0..self.below(3)).map(|_| self.number_point()).collect(),
            })),
            2 => Some(Data::Sum(pm::Sum {
                data_points: (0..self.below(3)).map(|_| self.number_point()).collect(),
                aggregation_temporality: self.below(3) as i32,
                is_monotonic: self.chance(),
            })),
            3 => Some(Data::Histogram(pm::Histogram {
                data_points: vec![pm::HistogramDataPoint {
                    attributes: self.attrs(0),
                    start_time_unix_nano: self.next(),
                    time_unix_nano: self.next(),
                    count: self.next(),
                    sum: self.opt_f64(),
                    bucket_counts: (0..self.below(4)).map(|_| self.next()).collect(),
                    explicit_bounds: (0..self.below(4)).map(|_| self.f64()).collect(),
                    exemplars: vec![],
                    flags: self.below(2) as u32,
                    min: self.opt_f64(),
                    max: self.opt_f64(),
                }],
                aggregation_temporality: self.below(3) as i32,
            })),
            4 => {
                let mut buckets = || pm::exponential_histogram_data_point::Buckets {
                    offset: self.next() as i32,
                    bucket_counts: (0..self.below(4)).map(|_| self.next()).collect(),
                };
                let (positive, negative) = (Some(buckets()), None);
                Some(Data::ExponentialHistogram(pm::ExponentialHistogram {
                    data_points: vec![pm::ExponentialHistogramDataPoint {
                        attributes: self.attrs(0),
                        start_time_unix_nano: self.next(),
                        time_unix_nano: self.next(),
                        count: self.next(),
                        sum: self.opt_f64(),
                        scale: self.next() as i32,
                        zero_count: self.next(),
                        positive,
                        negative,
                        flags: 0,
                        exemplars: vec![],
                        min: self.opt_f64(),
                        max: self.opt_f64(),
                        zero_threshold: self.f64(),
                    }],
                    aggregation_temporality: 1,
                }))
            }
            _ => Some(Data::Summary(pm::Summary {
                data_points: vec![pm::SummaryDataPoint {
                    attributes: self.attrs(0),
                    start_time_unix_nano: self.next(),
                    time_unix_nano: self.next(),
                    count: self.next(),
                    sum: self.f64(),
                    quantile_values: (0..self.below(3))
                        .map(|_| pm::summary_data_point::ValueAtQuantile {
                            quantile: self.f64(),
                            value: self.f64(),
                        })
                        .collect(),
                    flags: 0,
                }],
            })),
        };
        pm::Metric {
            name: self.string(),
            description: self.string(),
            unit: self.string(),
            metadata: self.attrs(0),
            data,
        }
    }
    fn log_record(&mut self) -> pl::LogRecord {
        pl::LogRecord {
            time_unix_nano: self.next(),
            observed_time_unix_nano: self.next(),
            severity_number: self.below(25) as i32,
            severity_text: self.string(),
            body: self.chance().then(|| self.any_value(0)),
            attributes: self.attrs(0),
            dropped_attributes_count: self.below(2) as u32,
            flags: self.next() as u32,
            trace_id: self.bytes(16),
            span_id: self.bytes(8),
            event_name: self.string(),
        }
    }
}

/// Protobuf bytes as the equality check: it treats NaN payloads and -0.0 exactly, which
/// `PartialEq` on the messages does not.
#[test]
fn random_messages_round_trip_through_json() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let traces = ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: rng.chance().then(|| proto::resource::v1::Resource {
                    attributes: rng.attrs(0),
                    dropped_attributes_count: rng.below(2) as u32,
                    entity_refs: vec![],
                }),
                scope_spans: vec![pt::ScopeSpans {
                    scope: None,
                    spans: (0..rng.below(3)).map(|_| rng.span()).collect(),
                    schema_url: rng.string(),
                }],
                schema_url: rng.string(),
            }],
        };
        let back = otlp_json::decode_traces(&otlp_json::encode_traces(&traces)).unwrap();
        assert_eq!(back.encode_to_vec(), traces.encode_to_vec());

        let metrics = ExportMetricsServiceRequest {
            resource_metrics: vec![pm::ResourceMetrics {
                resource: None,
                scope_metrics: vec![pm::ScopeMetrics {
                    scope: rng.chance().then(|| pc::InstrumentationScope {
                        name: rng.string(),
                        version: rng.string(),
                        attributes: rng.attrs(0),
                        dropped_attributes_count: 0,
                    }),
                    metrics: (0..rng.below(4)).map(|_| rng.metric()).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let back = otlp_json::decode_metrics(&otlp_json::encode_metrics(&metrics)).unwrap();
        assert_eq!(back.encode_to_vec(), metrics.encode_to_vec());

        let logs = ExportLogsServiceRequest {
            resource_logs: vec![pl::ResourceLogs {
                resource: None,
                scope_logs: vec![pl::ScopeLogs {
                    scope: None,
                    log_records: (0..rng.below(3)).map(|_| rng.log_record()).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let back = otlp_json::decode_logs(&otlp_json::encode_logs(&logs)).unwrap();
        assert_eq!(back.encode_to_vec(), logs.encode_to_vec());
    }
}

#[test]
fn mutated_bodies_never_panic() {
    let mut rng = Rng(42);
    let seeds = [
        conformance("trace.json"),
        conformance("metrics.json"),
        conformance("logs.json"),
        EVERYTHING_TRACES.as_bytes().to_vec(),
        EVERYTHING_METRICS.as_bytes().to_vec(),
    ];
    let tokens: [&[u8]; 12] = [
        b"null",
        b"[",
        b"]",
        b"{",
        b"}",
        b"\"",
        b"1e400",
        b"-",
        b"\"NaN\"",
        b"99999999999999999999",
        b"\xff",
        b",",
    ];
    for i in 0..3000 {
        let mut body = seeds[i % seeds.len()].clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(body.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 => body.truncate(at),
                1 if at < body.len() => body[at] = rng.next() as u8,
                2 => {
                    let t = tokens[rng.below(tokens.len() as u64) as usize];
                    body.splice(at..at, t.iter().copied());
                }
                _ => {
                    let end = (at + rng.below(8) as usize).min(body.len());
                    body.drain(at..end);
                }
            }
        }
        // Any of the three decoders may accept or refuse; none may panic.
        let _ = otlp_json::decode_traces(&body);
        let _ = otlp_json::decode_metrics(&body);
        let _ = otlp_json::decode_logs(&body);
    }
}

#[test]
fn the_deepest_accepted_body_decodes_on_a_small_stack() {
    // The deepest arrayValue nesting the parser lets through, decoded on a thread with a
    // quarter of tokio's default worker stack: the walk must fit comfortably.
    let mut depth = 0;
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    let body = loop {
        let deeper = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{deeper}}}]}}]}}]}}"#
        );
        if otlp_json::decode_logs(body.as_bytes()).is_err() {
            break format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{value}}}]}}]}}]}}"#
            );
        }
        value = deeper;
        depth += 1;
    };
    assert!(depth > 30, "only {depth} levels accepted");
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || otlp_json::decode_logs(body.as_bytes()).map(|r| r.resource_logs.len()))
        .unwrap();
    assert_eq!(handle.join().unwrap(), Ok(1));
}
