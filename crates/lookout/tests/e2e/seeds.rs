//! The seeds scenario: one trace across three services, each exporting a different way (the
//! SDK's OTLP/gRPC exporter, its OTLP/HTTP protobuf exporter, and OTLP/JSON posted by hand),
//! all namespaced `shop-slot-2`, read back through Jaeger's API (v1 and v3).
//!
//! The Python side (`tests/python/seed.py`) prints what it made (ids, parents, kinds, exact
//! nanosecond times, events, status), so every assertion here compares the server's answer
//! with what the SDK really sent, field by field, in the shape Jaeger's own query service
//! gives: microsecond times, `CHILD_OF` references, processes with the resource as tags,
//! `span.kind`/`error`/`otel.status_code` tags, events as logs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::harness::{id_value, run_python_env, run_python_json, DataDir, Server};

const NAMESPACE: &str = "shop-slot-2";

/// A server with the seeds trace in it, and what `seed.py` says it sent.
fn seeded() -> (DataDir, Server, Value) {
    let dir = DataDir::new();
    let server = dir.start();
    let seed = run_python_json(
        "seed.py",
        &[
            "--grpc",
            &server.grpc_endpoint(),
            "--http",
            &server.http_endpoint(),
            "--namespace",
            NAMESPACE,
        ],
    );
    assert_eq!(
        seed["spans"].as_array().unwrap().len(),
        7,
        "seed.py made 7 spans: 3 of test-app, 2 each of api-gateway and worker"
    );
    (dir, server, seed)
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved characters).
fn qs(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.as_array()
        .expect("tags is an array")
        .iter()
        .find(|t| t["key"] == key)
}

/// Asserts a Jaeger tag `{key, type, value}` is present with exactly this type and value.
fn assert_tag(tags: &Value, key: &str, ty: &str, value: Value, what: &str) {
    let t = tag(tags, key).unwrap_or_else(|| panic!("{what}: no tag {key:?} in {tags}"));
    assert_eq!(t["type"], ty, "{what}: type of tag {key}: {t}");
    assert_eq!(t["value"], value, "{what}: value of tag {key}: {t}");
}

fn nanos(v: &Value) -> u64 {
    v.as_u64().expect("nanosecond timestamp")
}

/// Checks one Jaeger trace object against everything seed.py sent.
fn assert_seed_trace(trace: &Value, seed: &Value) {
    let want_trace = id_value(seed["trace_id"].as_str().unwrap());
    assert_eq!(
        id_value(trace["traceID"].as_str().expect("traceID")),
        want_trace,
        "traceID"
    );
    let processes = trace["processes"].as_object().expect("processes object");
    let spans = trace["spans"].as_array().expect("spans array");
    let records = seed["spans"].as_array().unwrap();
    assert_eq!(spans.len(), records.len(), "span count: {trace}");

    let by_id: BTreeMap<u128, &Value> = spans
        .iter()
        .map(|s| (id_value(s["spanID"].as_str().expect("spanID")), s))
        .collect();
    assert_eq!(by_id.len(), spans.len(), "duplicate span ids in {trace}");

    for rec in records {
        let name = rec["name"].as_str().unwrap();
        let what = format!("span {name:?}");
        let span = by_id
            .get(&id_value(rec["span_id"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{what} missing from {trace}"));
        assert_eq!(
            id_value(span["traceID"].as_str().unwrap()),
            want_trace,
            "{what}"
        );
        assert_eq!(span["operationName"], name, "{what}");

        // Jaeger times are microseconds: start truncated, duration = (end - start) / 1000.
        let (start, end) = (nanos(&rec["start_unix_nano"]), nanos(&rec["end_unix_nano"]));
        assert_eq!(
            span["startTime"].as_u64(),
            Some(start / 1000),
            "{what}: startTime"
        );
        assert_eq!(
            span["duration"].as_u64(),
            Some((end - start) / 1000),
            "{what}: duration"
        );

        let refs = span["references"].as_array().expect("references array");
        match rec["parent_span_id"].as_str() {
            None => assert!(
                refs.is_empty(),
                "{what}: a root has no references: {refs:?}"
            ),
            Some(parent) => {
                assert_eq!(refs.len(), 1, "{what}: one reference: {refs:?}");
                assert_eq!(refs[0]["refType"], "CHILD_OF", "{what}");
                assert_eq!(id_value(refs[0]["traceID"].as_str().unwrap()), want_trace);
                assert_eq!(
                    id_value(refs[0]["spanID"].as_str().unwrap()),
                    id_value(parent),
                    "{what}: parent"
                );
            }
        }

        let pid = span["processID"].as_str().expect("processID");
        let process = &processes
            .get(pid)
            .unwrap_or_else(|| panic!("{what}: process {pid} not in {processes:?}"));
        assert_eq!(
            process["serviceName"], rec["service"],
            "{what}: serviceName"
        );
        assert_tag(
            &process["tags"],
            "service.namespace",
            "string",
            json!(NAMESPACE),
            &format!("{what}: process"),
        );

        let tags = &span["tags"];
        assert_tag(tags, "span.kind", "string", rec["kind"].clone(), &what);
        if rec["status_code"] == "ERROR" {
            assert_tag(tags, "error", "bool", json!(true), &what);
            assert_tag(tags, "otel.status_code", "string", json!("ERROR"), &what);
            assert_tag(
                tags,
                "otel.status_description",
                "string",
                rec["status_message"].clone(),
                &what,
            );
        } else {
            assert!(
                tag(tags, "error").is_none(),
                "{what}: not an error span: {tags}"
            );
        }

        let logs = span["logs"].as_array().expect("logs array");
        let events = rec["events"].as_array().unwrap();
        assert_eq!(
            logs.len(),
            events.len(),
            "{what}: one log per event: {logs:?}"
        );
        for ev in events {
            let ts = nanos(&ev["time_unix_nano"]) / 1000;
            let log = logs
                .iter()
                .find(|l| l["timestamp"].as_u64() == Some(ts))
                .unwrap_or_else(|| panic!("{what}: no log at {ts} in {logs:?}"));
            assert_tag(&log["fields"], "event", "string", ev["name"].clone(), &what);
        }
    }

    // Typed attributes keep their Jaeger types.
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s["operationName"] == n)
            .unwrap_or_else(|| panic!("no span {n}"))
    };
    let root = by_name("GET /checkout");
    assert_tag(
        &root["tags"],
        "http.response.status_code",
        "int64",
        json!(200),
        "root",
    );
    assert_tag(
        &root["tags"],
        "http.route",
        "string",
        json!("/checkout"),
        "root",
    );
    let load = by_name("load-cart");
    assert_tag(&load["tags"], "cache.hit", "bool", json!(true), "load-cart");
    let fields = &load["logs"][0]["fields"];
    assert_tag(fields, "cart.items", "int64", json!(3), "cart loaded event");
    assert_tag(
        fields,
        "cart.total",
        "float64",
        json!(42.5),
        "cart loaded event",
    );
    let charge = by_name("charge card");
    let exception = &charge["logs"][0]["fields"];
    assert_tag(
        exception,
        "event",
        "string",
        json!("exception"),
        "exception event",
    );
    assert_tag(
        exception,
        "exception.message",
        "string",
        json!("card declined"),
        "exception event",
    );

    // One process per service, each named once.
    let services: BTreeSet<&str> = processes
        .values()
        .map(|p| p["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["api-gateway", "test-app", "worker"]),
        "processes: {processes:?}"
    );
}

#[test]
fn seeds_trace_has_all_three_services_in_jaeger_shape() {
    let (_dir, server, seed) = seeded();
    let doc = server.get_json("/api/traces?service=test-app&limit=1", 200);
    assert!(doc["errors"].is_null(), "errors: {doc}");
    let data = doc["data"].as_array().expect("data array");
    assert_eq!(data.len(), 1, "exactly one trace: {doc}");
    assert_seed_trace(&data[0], &seed);

    // Searching by any of the services finds the whole trace, not just that service's spans.
    let doc = server.get_json("/api/traces?service=worker&limit=20", 200);
    let data = doc["data"].as_array().expect("data array");
    assert_eq!(data.len(), 1, "worker's search: {doc}");
    assert_seed_trace(&data[0], &seed);
}

#[test]
fn seeds_trace_by_id_and_missing_id() {
    let (_dir, server, seed) = seeded();
    let id = seed["trace_id"].as_str().unwrap();
    let trace = server.trace(id).expect("the seeds trace by id");
    assert_seed_trace(&trace, &seed);
    // Jaeger accepts ids in any case.
    let trace = server.trace(&id.to_uppercase()).expect("upper-case id");
    assert_seed_trace(&trace, &seed);

    let missing = server.get("/api/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404, "{}", missing.text());
    let doc = missing.json();
    assert!(doc["data"].is_null(), "{doc}");
    assert_eq!(doc["errors"][0]["code"], 404, "{doc}");
    assert!(
        doc["errors"][0]["msg"]
            .as_str()
            .unwrap_or("")
            .contains("not found"),
        "{doc}"
    );

    let bad = server.get("/api/traces/not-hex");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["errors"][0]["code"], 400);
}

#[test]
fn seeds_search_by_namespace_tag() {
    let (_dir, server, seed) = seeded();
    let tags = qs(&format!(r#"{{"service.namespace":"{NAMESPACE}"}}"#));
    let doc = server.get_json(
        &format!("/api/traces?service=test-app&limit=20&tags={tags}"),
        200,
    );
    let data = doc["data"].as_array().expect("data array");
    assert_eq!(data.len(), 1, "namespace search: {doc}");
    assert_seed_trace(&data[0], &seed);

    let other = qs(r#"{"service.namespace":"shop-slot-3"}"#);
    let doc = server.get_json(
        &format!("/api/traces?service=test-app&limit=20&tags={other}"),
        200,
    );
    assert_eq!(
        doc["data"],
        json!([]),
        "another namespace finds nothing: {doc}"
    );

    // A span tag and a resource tag together, on the same span, still match.
    let both = qs(&format!(
        r#"{{"service.namespace":"{NAMESPACE}","error":"true"}}"#
    ));
    let doc = server.get_json(
        &format!("/api/traces?service=worker&limit=20&tags={both}"),
        200,
    );
    assert_eq!(
        doc["data"].as_array().map(Vec::len),
        Some(1),
        "error search: {doc}"
    );
    let doc = server.get_json(
        &format!("/api/traces?service=test-app&limit=20&tags={both}"),
        200,
    );
    assert_eq!(doc["data"], json!([]), "test-app has no error span: {doc}");

    // Jaeger's other search parameters: operation, time window (microseconds), duration.
    let start_us = seed["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| nanos(&r["start_unix_nano"]) / 1000)
        .min()
        .unwrap();
    let hour_us = 3_600_000_000u64;
    for (query, want) in [
        ("operation=load-cart".to_string(), 1),
        ("operation=no-such-operation".to_string(), 0),
        (
            format!("start={}&end={}", start_us - hour_us, start_us + hour_us),
            1,
        ),
        (
            format!(
                "start={}&end={}",
                start_us - 2 * hour_us,
                start_us - hour_us
            ),
            0,
        ),
        ("minDuration=1h".to_string(), 0),
        ("maxDuration=1h".to_string(), 1),
    ] {
        let doc = server.get_json(&format!("/api/traces?service=test-app&{query}"), 200);
        assert_eq!(
            doc["data"].as_array().map(Vec::len),
            Some(want),
            "{query}: {doc}"
        );
    }
}

#[test]
fn seeds_services_operations_and_dependencies() {
    let (_dir, server, _seed) = seeded();
    assert_eq!(server.services(), ["api-gateway", "test-app", "worker"]);

    let doc = server.get_json("/api/services/test-app/operations", 200);
    let mut ops: Vec<&str> = doc["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|v| v.as_str().expect("operation names are strings"))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        ["GET /checkout", "call api-gateway", "load-cart"],
        "{doc}"
    );

    let doc = server.get_json("/api/operations?service=api-gateway", 200);
    let ops: BTreeSet<(String, String)> = doc["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["spanKind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        BTreeSet::from([
            ("POST /api/orders".to_string(), "server".to_string()),
            ("orders publish".to_string(), "producer".to_string()),
        ]),
        "{doc}"
    );
    let doc = server.get_json("/api/operations?service=api-gateway&spanKind=server", 200);
    assert_eq!(
        doc["data"],
        json!([{"name": "POST /api/orders", "spanKind": "server"}]),
        "{doc}"
    );

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let doc = server.get_json(
        &format!("/api/dependencies?endTs={now_ms}&lookback=3600000"),
        200,
    );
    let mut links: Vec<(String, String, u64)> = doc["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|l| {
            (
                l["parent"].as_str().unwrap().to_string(),
                l["child"].as_str().unwrap().to_string(),
                l["callCount"].as_u64().unwrap(),
            )
        })
        .collect();
    links.sort();
    assert_eq!(
        links,
        [
            ("api-gateway".to_string(), "worker".to_string(), 1),
            ("test-app".to_string(), "api-gateway".to_string(), 1),
        ],
        "{doc}"
    );
}

#[test]
fn seeds_v3_trace_is_otlp_json() {
    let (_dir, server, seed) = seeded();
    let id = seed["trace_id"].as_str().unwrap();
    let doc = server.get_json(&format!("/api/v3/traces/{id}"), 200);
    let resource_spans = doc["result"]["resourceSpans"]
        .as_array()
        .unwrap_or_else(|| panic!("no result.resourceSpans: {doc}"));
    let mut seen = BTreeMap::new();
    for rs in resource_spans {
        let service = rs["resource"]["attributes"]
            .as_array()
            .expect("resource attributes")
            .iter()
            .find(|kv| kv["key"] == "service.name")
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .expect("service.name")
            .to_string();
        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
            for span in ss["spans"].as_array().expect("spans") {
                // OTLP/JSON ids are lower-case hex of the full width, never base64.
                assert_eq!(span["traceId"], id, "{span}");
                let span_id = span["spanId"].as_str().unwrap().to_string();
                assert_eq!(span_id.len(), 16, "{span}");
                assert!(span["kind"].is_u64(), "enums are integers: {span}");
                seen.insert(span_id, (service.clone(), span["name"].clone()));
            }
        }
    }
    let want: BTreeMap<String, (String, Value)> = seed["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["span_id"].as_str().unwrap().to_string(),
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["name"].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(seen, want, "{doc}");

    let missing = server.get("/api/v3/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404, "{}", missing.text());

    let doc = server.get_json("/api/v3/services", 200);
    assert_eq!(
        doc["services"],
        json!(["api-gateway", "test-app", "worker"]),
        "{doc}"
    );
    let doc = server.get_json("/api/v3/operations?service=worker", 200);
    let mut ops: Vec<(String, String)> = doc["operations"]
        .as_array()
        .unwrap_or_else(|| panic!("no operations: {doc}"))
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["spanKind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        [
            ("charge card".to_string(), "internal".to_string()),
            ("orders process".to_string(), "consumer".to_string()),
        ],
        "{doc}"
    );

    // Find by service within a time window around the trace, then in a window before it.
    let start = seed["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| nanos(&r["start_unix_nano"]))
        .min()
        .unwrap();
    let secs = start / 1_000_000_000;
    let window = |from: u64, to: u64| {
        format!(
            "/api/v3/traces?query.service_name=worker&query.start_time_min={}&query.start_time_max={}",
            qs(&rfc3339(from)),
            qs(&rfc3339(to))
        )
    };
    let doc = server.get_json(&window(secs - 60, secs + 60), 200);
    let found: usize = doc["result"]["resourceSpans"]
        .as_array()
        .unwrap_or_else(|| panic!("no result.resourceSpans: {doc}"))
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(found, 7, "the whole trace, all services: {doc}");
    let before = server.get(&window(secs - 7200, secs - 3600));
    // Jaeger answers "nothing found" with 404 in v3; an empty result is also acceptable.
    if before.status == 200 {
        let doc = before.json();
        assert!(
            doc["result"]["resourceSpans"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "nothing in an earlier window: {doc}"
        );
    } else {
        assert_eq!(before.status, 404, "{}", before.text());
    }
}

/// `secs` since the epoch as RFC 3339 UTC (`2026-11-23T12:00:00Z`), for Jaeger v3's
/// time parameters; days to civil date after Howard Hinnant's published algorithm.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn rfc3339_formats_known_instants() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_795_435_334), "2026-11-23T12:02:14Z");
}

#[test]
fn seeds_app_configured_only_by_otel_env_vars() {
    let dir = DataDir::new();
    let server = dir.start();
    let grpc = format!("http://{}", server.grpc_endpoint());
    let http = format!("http://{}", server.http_endpoint());
    let mut ids = Vec::new();
    for (exporter, endpoint, slot) in [("grpc", &grpc, "3"), ("http-protobuf", &http, "4")] {
        let attrs = format!("service.namespace=shop-slot-{slot},deployment.environment=dev");
        let out = run_python_env(
            "env_app.py",
            &[exporter],
            &[
                ("OTEL_SERVICE_NAME", "env-app"),
                ("OTEL_RESOURCE_ATTRIBUTES", &attrs),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ],
        );
        let doc: Value = serde_json::from_str(out.trim()).expect("env_app.py prints JSON");
        ids.push((slot, doc["trace_id"].as_str().unwrap().to_string()));
    }
    assert_eq!(server.services(), ["env-app"]);
    for (slot, id) in ids {
        let tags = qs(&format!(r#"{{"service.namespace":"shop-slot-{slot}"}}"#));
        let doc = server.get_json(&format!("/api/traces?service=env-app&tags={tags}"), 200);
        let data = doc["data"].as_array().expect("data array");
        assert_eq!(data.len(), 1, "slot {slot}: {doc}");
        assert_eq!(
            id_value(data[0]["traceID"].as_str().unwrap()),
            id_value(&id)
        );
        assert_eq!(
            data[0]["spans"].as_array().map(Vec::len),
            Some(2),
            "slot {slot}"
        );
    }
}
