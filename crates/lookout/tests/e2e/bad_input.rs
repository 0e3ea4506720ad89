//! Hostile and broken OTLP input, one test per case, each sent every way it can arrive
//! (OTLP/HTTP protobuf, OTLP/HTTP JSON, OTLP/gRPC through grpcio), checking the exact status,
//! that the message names the problem, that nothing of the request was stored, and that the
//! server still accepts a good request afterwards.
//!
//! "Nothing stored" is checked with a canary: every malformed request built by `payload.py`
//! starts with a valid resource (service `bad-input-canary`) and only then carries the bad
//! span, so a receiver that writes part of a request before validating the rest leaves the
//! canary service behind.

use serde_json::Value;

use super::harness::{payload, payload_dir, run_python_json, DataDir, Reply, Server};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// The trace id every payload.py span carries.
const PAYLOAD_TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

/// What a rejection must look like: status, gRPC code, and text each message must contain.
struct Rejected<'a> {
    http_status: u16,
    grpc_code: &'a str,
    /// Every one of these must appear in the protobuf/gRPC message.
    proto_needles: &'a [&'a str],
    /// Every one of these must appear in the JSON message.
    json_needles: &'a [&'a str],
}

/// `google.rpc.Status.code` as the protobuf encoding starts: field 1, varint.
fn status_code_prefix(code: u8) -> [u8; 2] {
    [0x08, code]
}

fn grpc_code_number(name: &str) -> u8 {
    match name {
        "INVALID_ARGUMENT" => 3,
        "RESOURCE_EXHAUSTED" => 8,
        other => panic!("add {other} to grpc_code_number"),
    }
}

fn assert_contains_all(text: &str, needles: &[&str], what: &str) {
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: message should contain {n:?}: {text:?}"
        );
    }
}

/// POSTs to the OTLP/HTTP port; a connection torn down before the client could read the
/// answer fails the test with what the server must do instead.
fn post_for_answer(server: &Server, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    server
        .try_post_traces(server.otlp_http, body, headers)
        .unwrap_or_else(|e| {
            panic!(
                "POST of {} bytes ({headers:?}) got no answer: {e}. A server that answers \
                 before reading the body and then closes the connection makes the client's \
                 write fail (EPIPE/ECONNRESET), so it never sees the status; read and drop the \
                 body (bounded) before answering, as net/http does\nserver stderr:\n{}",
                body.len(),
                server.stderr()
            )
        })
}

/// Sends `case.pb` over OTLP/HTTP protobuf and asserts the rejection.
fn check_http_protobuf(server: &Server, body: &[u8], want: &Rejected, extra: &[(&str, &str)]) {
    let mut headers = vec![("content-type", PROTOBUF)];
    headers.extend_from_slice(extra);
    let reply = post_for_answer(server, body, &headers);
    assert_eq!(
        reply.status,
        want.http_status,
        "HTTP protobuf: {}",
        reply.text()
    );
    assert_eq!(
        reply.content_type, PROTOBUF,
        "HTTP protobuf answers in protobuf"
    );
    // The body is a google.rpc.Status; its message is a plain UTF-8 field inside it.
    assert!(
        reply
            .body
            .starts_with(&status_code_prefix(grpc_code_number(want.grpc_code))),
        "HTTP protobuf: Status.code should be {}: {:?}",
        want.grpc_code,
        reply.body
    );
    assert_contains_all(&reply.text(), want.proto_needles, "HTTP protobuf");
}

/// Sends `body` as OTLP/HTTP JSON and asserts the rejection.
fn check_http_json(server: &Server, body: &[u8], want: &Rejected, extra: &[(&str, &str)]) {
    let mut headers = vec![("content-type", JSON)];
    headers.extend_from_slice(extra);
    let reply = post_for_answer(server, body, &headers);
    assert_eq!(
        reply.status,
        want.http_status,
        "HTTP JSON: {}",
        reply.text()
    );
    assert!(
        reply.content_type.starts_with(JSON),
        "HTTP JSON answers in JSON: {}",
        reply.content_type
    );
    let doc = reply.json();
    assert_eq!(
        doc["code"].as_u64(),
        Some(u64::from(grpc_code_number(want.grpc_code))),
        "HTTP JSON: {doc}"
    );
    assert_contains_all(
        doc["message"].as_str().unwrap_or(""),
        want.json_needles,
        "HTTP JSON",
    );
}

/// Sends `body` as a raw gRPC Export call and asserts the rejection.
fn check_grpc(server: &Server, file: &str, want: &Rejected) {
    let path = payload_dir().join(file);
    let out = run_python_json(
        "grpc_raw.py",
        &[&server.grpc_endpoint(), path.to_str().expect("utf-8 path")],
    );
    assert_eq!(out["code"], want.grpc_code, "gRPC: {out}");
    assert_contains_all(
        out["details"].as_str().unwrap_or(""),
        want.proto_needles,
        "gRPC",
    );
}

/// Nothing of any rejected request was stored, and a valid request is still accepted.
fn assert_nothing_stored_and_still_serving(server: &Server) {
    assert_eq!(
        server.services(),
        Vec::<String>::new(),
        "a rejected request must store nothing"
    );
    assert!(
        server.trace(PAYLOAD_TRACE_ID).is_none(),
        "the canary's trace was stored"
    );
    assert_eq!(server.get("/-/ready").status, 200);

    let ok = server.post_traces(
        server.otlp_http,
        &payload("valid.pb"),
        &[("content-type", PROTOBUF)],
    );
    assert_eq!(
        ok.status,
        200,
        "a valid request after bad ones: {}",
        ok.text()
    );
    let ok = server.post_traces(
        server.otlp_grpc,
        &payload("valid.json"),
        &[("content-type", JSON)],
    );
    assert_eq!(ok.status, 200, "valid JSON on the gRPC port: {}", ok.text());
    assert_eq!(server.services(), ["after-bad-input"]);
}

/// The full round for a case that has both a protobuf and a JSON form.
fn assert_rejected_everywhere(case: &str, want: &Rejected) {
    let dir = DataDir::new();
    let server = dir.start();
    let pb = payload(&format!("{case}.pb"));
    check_http_protobuf(&server, &pb, want, &[]);
    check_http_json(&server, &payload(&format!("{case}.json")), want, &[]);
    check_grpc(&server, &format!("{case}.pb"), want);
    // The gRPC port takes OTLP/HTTP too, and must answer the same.
    let reply = server.post_traces(server.otlp_grpc, &pb, &[("content-type", PROTOBUF)]);
    assert_eq!(
        reply.status,
        want.http_status,
        "HTTP on the gRPC port: {}",
        reply.text()
    );
    assert_nothing_stored_and_still_serving(&server);
    assert_rejections_counted(&server);
}

/// `/metrics` counts the refused requests.
fn assert_rejections_counted(server: &Server) {
    let text = server.get("/metrics").text();
    let refused: f64 = text
        .lines()
        .filter(|l| l.starts_with("lookout_otlp_rejected_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        refused >= 1.0,
        "rejected requests are counted in /metrics:\n{text}"
    );
}

const INVALID: &str = "INVALID_ARGUMENT";

#[test]
fn bad_input_garbage_protobuf_and_json() {
    assert_rejected_everywhere(
        "garbage",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &["not a valid protobuf ExportTraceServiceRequest"],
            json_needles: &["invalid JSON at line 1, column 2"],
        },
    );
}

#[test]
fn bad_input_truncated_protobuf_and_json() {
    assert_rejected_everywhere(
        "truncated",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &["not a valid protobuf ExportTraceServiceRequest"],
            json_needles: &["invalid JSON at line 1"],
        },
    );
}

#[test]
fn bad_input_trace_id_of_wrong_length() {
    assert_rejected_everywhere(
        "short-trace-id",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &[
                "resource_spans[1].scope_spans[0].spans[0].trace_id",
                "must be 16 bytes, got 15 bytes",
            ],
            json_needles: &["spans[0]", "trace", "16 bytes"],
        },
    );
}

#[test]
fn bad_input_span_id_of_wrong_length() {
    assert_rejected_everywhere(
        "short-span-id",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &[
                "resource_spans[1].scope_spans[0].spans[0].span_id",
                "must be 8 bytes, got 7 bytes",
            ],
            json_needles: &["spans[0]", "span", "8 bytes"],
        },
    );
}

#[test]
fn bad_input_span_ending_before_it_starts() {
    assert_rejected_everywhere(
        "end-before-start",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &[
                "resource_spans[1].scope_spans[0].spans[0].end_time_unix_nano",
                "before start_time_unix_nano",
            ],
            json_needles: &["spans[0]", "before start"],
        },
    );
}

#[test]
fn bad_input_timestamps_in_year_2300() {
    assert_rejected_everywhere(
        "year-2300",
        &Rejected {
            http_status: 400,
            grpc_code: INVALID,
            proto_needles: &[
                "resource_spans[1].scope_spans[0].spans[0].start_time_unix_nano",
                "2262-04-11",
            ],
            json_needles: &["spans[0]", "2262-04-11"],
        },
    );
}

#[test]
fn bad_input_wrong_content_type() {
    let dir = DataDir::new();
    let server = dir.start();
    for ct in ["text/plain", "application/xml", "application/grpc-web"] {
        let reply = server.post_traces(
            server.otlp_http,
            &payload("valid.pb"),
            &[("content-type", ct)],
        );
        assert_eq!(reply.status, 415, "{ct}: {}", reply.text());
        let text = reply.text();
        assert!(
            text.contains("application/x-protobuf") && text.contains("application/json"),
            "{ct}: the message says what to send: {text:?}"
        );
    }
    // No content type at all.
    let reply = server.post_traces(server.otlp_http, &payload("valid.pb"), &[]);
    assert_eq!(reply.status, 415, "no content type: {}", reply.text());
    assert_eq!(server.services(), Vec::<String>::new());
    assert_nothing_stored_and_still_serving(&server);
}

#[test]
fn bad_input_oversized_bodies() {
    // A small limit keeps the test fast; payload.py's "big" is about 200 KiB.
    let dir = DataDir::with_config("[otlp]\nmax_body_size = \"64KiB\"\n");
    let server = dir.start();
    let want = Rejected {
        http_status: 413,
        grpc_code: "RESOURCE_EXHAUSTED",
        proto_needles: &["larger than the limit of 65536 bytes"],
        json_needles: &["larger than the limit of 65536 bytes"],
    };
    // Several times each: whether a server that answers without reading the body loses the
    // race against the client's write varies per request, and the client must see the 413
    // every time, not usually.
    for _ in 0..3 {
        check_http_protobuf(&server, &payload("big.pb"), &want, &[]);
        check_http_json(&server, &payload("big.json"), &want, &[]);
    }
    check_grpc(&server, "big.pb", &want);

    // 1 KiB of gzip that inflates to 1 MiB: refused while inflating, not after.
    let bomb = payload("gzip-bomb.pb.gz");
    assert!(bomb.len() < 64 << 10);
    let want = Rejected {
        proto_needles: &["larger than the limit of 65536 bytes after decompression"],
        json_needles: &["larger than the limit of 65536 bytes after decompression"],
        ..want
    };
    check_http_protobuf(&server, &bomb, &want, &[("content-encoding", "gzip")]);
    check_http_json(&server, &bomb, &want, &[("content-encoding", "gzip")]);

    assert_nothing_stored_and_still_serving(&server);
}

#[test]
fn bad_input_gzip_declared_but_not_gzip() {
    let dir = DataDir::new();
    let server = dir.start();
    let want = Rejected {
        http_status: 400,
        grpc_code: INVALID,
        proto_needles: &["not valid gzip"],
        json_needles: &["not valid gzip"],
    };
    let gz = [("content-encoding", "gzip")];
    check_http_protobuf(&server, &payload("valid.pb"), &want, &gz);
    check_http_json(&server, &payload("valid.json"), &want, &gz);

    // An encoding we do not speak is 415, like an unknown content type.
    let reply = server.post_traces(
        server.otlp_http,
        &payload("valid.pb"),
        &[("content-type", PROTOBUF), ("content-encoding", "br")],
    );
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert_nothing_stored_and_still_serving(&server);
}

#[test]
fn bad_input_json_that_is_not_otlp() {
    let dir = DataDir::new();
    let server = dir.start();
    let cases: [(&[u8], &str); 3] = [
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"", "empty"),
        (
            br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].traceId",
        ),
    ];
    for (body, needle) in cases {
        let reply = server.post_traces(server.otlp_http, body, &[("content-type", JSON)]);
        assert_eq!(
            reply.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            reply.text()
        );
        let doc: Value = reply.json();
        assert_eq!(doc["code"], 3, "{doc}");
        let msg = doc["message"].as_str().unwrap_or("");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_nothing_stored_and_still_serving(&server);
}
