//! OTLP/JSON codec throughput on a realistic 1 MiB trace export: many spans with the
//! attributes an HTTP server instrumentation sets. The receiver decodes one such body per
//! request, so decode time per MiB is the number to watch (the target is well under 50 ms).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use model::otlp::proto;
use model::otlp_json;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1 as pc;
use proto::trace::v1 as pt;

fn attr(key: &str, value: pc::any_value::Value) -> pc::KeyValue {
    pc::KeyValue {
        key: key.into(),
        value: Some(pc::AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

/// A trace export of about `target` bytes of JSON.
fn request(target: usize) -> ExportTraceServiceRequest {
    use pc::any_value::Value as V;
    let mut spans = Vec::new();
    let mut size = 0;
    let mut i: u64 = 0;
    while size < target {
        let span = pt::Span {
            trace_id: (i / 8 + 1).to_be_bytes().repeat(2),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: if i & 7 == 0 {
                vec![]
            } else {
                i.to_be_bytes().to_vec()
            },
            name: format!("GET /api/items/{}", i % 50),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000,
            end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000 + 250_000,
            attributes: vec![
                attr("http.request.method", V::StringValue("GET".into())),
                attr("http.route", V::StringValue("/api/items/{id}".into())),
                attr("http.response.status_code", V::IntValue(200)),
                attr("server.address", V::StringValue("localhost".into())),
                attr("network.protocol.version", V::StringValue("1.1".into())),
                attr("sampled.ratio", V::DoubleValue(0.25)),
            ],
            status: Some(pt::Status {
                message: String::new(),
                code: 1,
            }),
            ..Default::default()
        };
        size += otlp_json::traces_to_json_value(&[pt::ResourceSpans {
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![span.clone()],
                ..Default::default()
            }],
            ..Default::default()
        }])
        .to_string()
        .len();
        spans.push(span);
        i += 1;
    }
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(proto::resource::v1::Resource {
                attributes: vec![attr("service.name", V::StringValue("shop".into()))],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn bench(c: &mut Criterion) {
    let req = request(1 << 20);
    let body = otlp_json::encode_traces(&req);
    let mut group = c.benchmark_group("otlp_json_traces_1mib");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| otlp_json::decode_traces(std::hint::black_box(&body)).unwrap())
    });
    group.bench_function("encode", |b| {
        b.iter(|| otlp_json::encode_traces(std::hint::black_box(&req)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
