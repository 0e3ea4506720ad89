//! `ValidTraces::from_protobuf` must accept and refuse exactly what decoding with prost and
//! then `ValidTraces::new` would, with the same spans and the same errors; requests as SDKs
//! send them must take the in-place path.

use model::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use model::otlp::proto::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use model::otlp::proto::resource::v1::Resource;
use model::otlp::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use model::otlp::{DecodeTracesError, SpanBody, ValidTraces};
use prost::Message;

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn str_kv(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn rich_span(n: u8) -> Span {
    Span {
        trace_id: vec![n + 1; 16],
        span_id: vec![n + 2; 8],
        trace_state: "k=v".into(),
        parent_span_id: if n.is_multiple_of(2) {
            vec![7; 8]
        } else {
            vec![]
        },
        flags: 0x101,
        name: format!("GET /item/{n} ü"),
        kind: i32::from(n % 6),
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_700_000_000_005_000_000,
        attributes: vec![
            str_kv("http.route", "/item/{id}"),
            kv("http.status_code", Value::IntValue(200)),
            kv("ok", Value::BoolValue(true)),
            kv("ratio", Value::DoubleValue(0.25)),
            kv("raw", Value::BytesValue(vec![0, 1, 2])),
            kv(
                "list",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::StringValue("a".into())),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![str_kv("inner", "x")],
                }),
            ),
        ],
        dropped_attributes_count: 2,
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_001_000_000,
            name: "exception".into(),
            attributes: vec![str_kv("exception.message", "boom")],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            trace_state: "a=b".into(),
            attributes: vec![str_kv("link", "yes")],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        dropped_links_count: 4,
        status: Some(Status {
            message: if n.is_multiple_of(3) {
                "bad".into()
            } else {
                String::new()
            },
            code: i32::from(n % 3),
        }),
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![str_kv("service.name", "cart"), str_kv("host", "h")],
                    dropped_attributes_count: 1,
                    ..Default::default()
                }),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "lib".into(),
                            version: "1.0".into(),
                            attributes: vec![str_kv("s", "t")],
                            dropped_attributes_count: 0,
                        }),
                        spans: spans.clone(),
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                    },
                    ScopeSpans {
                        scope: None,
                        spans: spans[..1].to_vec(),
                        schema_url: String::new(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.20.0".into(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: spans[1..].to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

/// What the prost path says about `raw`: the spans, or the error's text.
fn via_prost(raw: &[u8]) -> Result<(Vec<model::Span>, Vec<model::otlp::SpanHeader>), String> {
    let req = ExportTraceServiceRequest::decode(raw).map_err(|e| e.to_string())?;
    let v = ValidTraces::new(req).map_err(|e| e.to_string())?;
    Ok((v.to_spans(), v.headers().to_vec()))
}

fn via_scan(raw: &[u8]) -> Result<(Vec<model::Span>, Vec<model::otlp::SpanHeader>), String> {
    let v = ValidTraces::from_protobuf(bytes::Bytes::copy_from_slice(raw))
        .map_err(|e| e.to_string())?;
    Ok((v.to_spans(), v.headers().to_vec()))
}

fn in_place(raw: &[u8]) -> bool {
    let v = ValidTraces::from_protobuf(bytes::Bytes::copy_from_slice(raw)).unwrap();
    (0..v.len()).all(|i| matches!(v.span(i).body, SpanBody::Encoded { .. }))
}

/// Each in-place span's rest decodes to the span without its columns, the status reduced
/// to its message.
fn rest_matches_span(raw: &[u8]) {
    let v = ValidTraces::from_protobuf(bytes::Bytes::copy_from_slice(raw)).unwrap();
    for i in 0..v.len() {
        let SpanBody::Encoded { bytes, rest, .. } = v.span(i).body else {
            continue;
        };
        let mut want = Span::decode(bytes).unwrap();
        want.trace_id.clear();
        want.span_id.clear();
        want.parent_span_id.clear();
        want.name.clear();
        want.kind = 0;
        want.start_time_unix_nano = 0;
        want.end_time_unix_nano = 0;
        want.status = want
            .status
            .filter(|s| !s.message.is_empty())
            .map(|s| Status {
                message: s.message,
                code: 0,
            });
        let mut out = Vec::new();
        rest.write_to(&mut out);
        assert_eq!(Span::decode(&out[..]).unwrap(), want, "span {i}");
        assert_eq!(rest.encoded_len(), out.len(), "span {i}");
        // The shortcut that skips the name gives the same fields.
        let mut again = Vec::new();
        v.encoded_rest(i)
            .expect("read in place")
            .write_to(&mut again);
        assert_eq!(again, out, "span {i}");
    }
}

#[test]
fn sdk_shaped_requests_are_read_in_place_and_equal_prost() {
    let raw = request((0..6).map(rich_span).collect()).encode_to_vec();
    assert!(in_place(&raw));
    rest_matches_span(&raw);
    let (spans, headers) = via_scan(&raw).unwrap();
    assert_eq!(spans.len(), 12);
    assert_eq!(Ok((spans, headers)), via_prost(&raw));
    let v = ValidTraces::from_protobuf(raw.clone().into()).unwrap();
    assert_eq!(v.span(0).name, "GET /item/0 ü");
    assert_eq!(&v.to_protobuf()[..], &raw[..]);
    match v.span(3).body {
        SpanBody::Encoded {
            bytes,
            status_message,
            ..
        } => {
            assert_eq!(status_message, "bad");
            assert_eq!(Span::decode(bytes).unwrap(), rich_span(3));
        }
        SpanBody::Decoded(_) => unreachable!(),
    }
}

#[test]
fn rest_length_is_known_before_writing_it() {
    // Status messages whose lengths (and the length of the status around them) take one,
    // two and three varint bytes.
    let spans = [0, 1, 126, 127, 200, 16_380, 20_000]
        .into_iter()
        .map(|len| {
            let mut span = rich_span(3);
            span.status.as_mut().unwrap().message = "m".repeat(len);
            span
        })
        .collect();
    let raw = request(spans).encode_to_vec();
    assert!(in_place(&raw));
    rest_matches_span(&raw);
}

#[test]
fn invalid_spans_get_prosts_and_validations_exact_errors() {
    type Edit = fn(&mut Span);
    let cases: Vec<(&str, Edit)> = vec![
        ("short trace id", |s| s.trace_id.truncate(5)),
        ("zero span id", |s| s.span_id = vec![0; 8]),
        ("long parent", |s| s.parent_span_id = vec![1; 9]),
        ("unknown kind", |s| s.kind = 9),
        ("negative kind", |s| s.kind = -1),
        ("no start", |s| s.start_time_unix_nano = 0),
        ("far end", |s| s.end_time_unix_nano = u64::MAX),
        ("end before start", |s| s.end_time_unix_nano = 5),
        ("status code", |s| s.status.as_mut().unwrap().code = 7),
        ("event time", |s| s.events[0].time_unix_nano = 0),
        ("link trace id", |s| s.links[0].trace_id = vec![0; 16]),
        ("link span id", |s| s.links[0].span_id.clear()),
    ];
    for (what, edit) in cases {
        let mut spans: Vec<Span> = (0..3).map(rich_span).collect();
        edit(&mut spans[2]);
        let raw = request(spans).encode_to_vec();
        let want = via_prost(&raw).unwrap_err();
        assert_eq!(via_scan(&raw).unwrap_err(), want, "{what}");
        let err = ValidTraces::from_protobuf(raw.into()).unwrap_err();
        assert!(
            matches!(err, DecodeTracesError::Invalid { spans: 6, .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn unusual_but_valid_encodings_equal_prost() {
    let base = request((0..3).map(rich_span).collect()).encode_to_vec();
    let mut odd: Vec<Vec<u8>> = Vec::new();
    // A missing attribute value, a string-table key, a string-table value, deep nesting.
    let mut s = rich_span(1);
    s.attributes.push(KeyValue {
        key: "novalue".into(),
        value: None,
        ..Default::default()
    });
    odd.push(request(vec![s.clone(), rich_span(2)]).encode_to_vec());
    let mut s2 = rich_span(1);
    s2.attributes.push(KeyValue {
        key: String::new(),
        value: Some(AnyValue {
            value: Some(Value::StringValueStrindex(3)),
        }),
        key_strindex: 4,
    });
    odd.push(request(vec![s2, rich_span(2)]).encode_to_vec());
    let mut deep = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..6 {
        deep = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
        };
    }
    let mut s3 = rich_span(1);
    s3.attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(deep),
        ..Default::default()
    });
    odd.push(request(vec![s3, rich_span(2)]).encode_to_vec());
    // A span's status sent twice (prost merges the two), and unknown fields.
    let mut twice = request((0..3).map(rich_span).collect());
    twice.resource_spans[1].scope_spans[0].spans[0].status = Some(Status {
        message: "first".into(),
        code: 2,
    });
    let mut raw = twice.encode_to_vec();
    let extra_status = Status {
        message: String::new(),
        code: 1,
    };
    let mut tail = Vec::new();
    prost::encoding::message::encode(15, &extra_status, &mut tail);
    // Unknown varint field 99 and unknown length-delimited field 100 in the span.
    prost::encoding::uint64::encode(99, &5, &mut tail);
    prost::encoding::string::encode(100, &"x".to_string(), &mut tail);
    let spans = ScopeSpans {
        scope: None,
        spans: vec![],
        schema_url: String::new(),
    };
    let mut span_bytes = rich_span(4).encode_to_vec();
    span_bytes.extend_from_slice(&tail);
    let mut ss = spans.encode_to_vec();
    prost::encoding::bytes::encode(2, &span_bytes, &mut ss);
    let mut rs = Vec::new();
    prost::encoding::bytes::encode(2, &ss, &mut rs);
    prost::encoding::bytes::encode(1, &rs, &mut raw);
    odd.push(raw);
    for (i, raw) in odd.iter().enumerate() {
        let want = via_prost(raw);
        assert!(want.is_ok(), "case {i}: {want:?}");
        assert_eq!(via_scan(raw), want, "case {i}");
    }
    assert!(in_place(&base));
}

#[test]
fn corrupted_bytes_are_judged_as_prost_judges_them() {
    let raw = request((0..4).map(rich_span).collect()).encode_to_vec();
    // A small deterministic generator, so a failure reproduces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut accepted = 0;
    for round in 0..4000 {
        let mut m = raw.clone();
        match round % 4 {
            0 => m.truncate((next() as usize) % raw.len()),
            1 => {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            2 => {
                for _ in 0..3 {
                    let i = (next() as usize) % m.len();
                    m[i] ^= 1 << (next() % 8);
                }
            }
            _ => {
                let i = (next() as usize) % m.len();
                m.insert(i, next() as u8);
            }
        }
        let want = via_prost(&m);
        accepted += usize::from(want.is_ok());
        assert_eq!(via_scan(&m), want, "round {round}");
        if want.is_ok() {
            rest_matches_span(&m);
        }
    }
    // The mutations must exercise both outcomes.
    assert!(accepted > 100 && accepted < 3900, "{accepted}");
}

/// A request holding one span whose encoding is `span` followed by `extra`.
fn wrap(extra: &[u8]) -> Vec<u8> {
    let mut span = rich_span(1).encode_to_vec();
    span.extend_from_slice(extra);
    let mut ss = Vec::new();
    prost::encoding::bytes::encode(2, &span, &mut ss);
    let mut rs = Vec::new();
    prost::encoding::bytes::encode(2, &ss, &mut rs);
    let mut req = Vec::new();
    prost::encoding::bytes::encode(1, &rs, &mut req);
    req
}

#[test]
fn attribute_encodings_at_the_edges_are_judged_as_prost_judges_them() {
    let attr = |kv: &[u8]| {
        let mut out = Vec::new();
        prost::encoding::bytes::encode(9, &kv.to_vec(), &mut out);
        wrap(&out)
    };
    let mut ten = vec![0x0A, 1, b'k', 0x12, 11, 0x18];
    ten.extend_from_slice(&[0xFF; 9]);
    let mut cases = vec![
        // Ten-byte varints: a last byte of 1 is the largest prost reads, 2 overflows.
        [&ten[..], &[1]].concat(),
        [&ten[..], &[2]].concat(),
        // A string value that is not UTF-8, and one that is but not ASCII.
        vec![0x0A, 1, b'k', 0x12, 4, 0x0A, 2, 0xC3, 0x28],
        vec![0x0A, 1, b'k', 0x12, 4, 0x0A, 2, 0xC3, 0xA9],
        // A value length that runs past the attribute, and one that stops short.
        vec![0x0A, 1, b'k', 0x12, 5, 0x0A, 2, b'a', b'b'],
        vec![0x0A, 1, b'k', 0x12, 3, 0x0A, 2, b'a', b'b'],
        // Key after value, an unknown field after the value, a bool of 0.
        vec![0x12, 2, 0x10, 1, 0x0A, 1, b'k'],
        vec![0x0A, 1, b'k', 0x12, 2, 0x10, 1, 0x20, 7],
        vec![0x0A, 1, b'k', 0x12, 2, 0x10, 0],
        // A double cut short, and an empty value.
        vec![0x0A, 1, b'k', 0x12, 5, 0x21, 0, 0, 0, 0],
        vec![0x0A, 1, b'k', 0x12, 0],
    ];
    // A non-ASCII key.
    cases.push(vec![0x0A, 2, 0xC3, 0xA9, 0x12, 2, 0x18, 5]);
    let mut accepted = 0;
    for (i, kv) in cases.iter().enumerate() {
        let raw = attr(kv);
        let want = via_prost(&raw);
        accepted += usize::from(want.is_ok());
        assert_eq!(via_scan(&raw), want, "case {i}");
    }
    assert!(accepted >= 6, "{accepted}");
}
