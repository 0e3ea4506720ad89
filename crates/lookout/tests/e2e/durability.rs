//! Durability: every span an exporter was told is stored (SUCCESS from the SDK's exporter,
//! 200 for OTLP/JSON) must be there after `kill -9` and a restart on the same data dir, exactly
//! once, whether it sat in the WAL, the head or a block, and retention must delete what is
//! old without the WAL bringing it back.
//!
//! `export_spans.py` reports what was acknowledged batch by batch, so the kill can also land
//! in the middle of an export: spans of batches that were never acknowledged may or may not
//! be stored, but every acknowledged one must be.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::harness::{eventually, id_value, python_command, run_python, DataDir, Server};

/// Acknowledged spans: trace id → span ids (hex, as the SDK made them).
type Acked = BTreeMap<String, BTreeSet<String>>;

/// How long maintenance (a head cut, retention) may take to happen: the server runs it every
/// few seconds.
const MAINTENANCE_WAIT: Duration = Duration::from_secs(40);

/// Parses export_spans.py's output lines into `acked`; returns whether it finished cleanly.
fn collect_acked(line: &str, acked: &mut Acked) -> Option<bool> {
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("export_spans.py printed non-JSON ({e}): {line}"));
    if let Some(pairs) = v["acked"].as_array() {
        for pair in pairs {
            let trace = pair[0].as_str().unwrap().to_string();
            let span = pair[1].as_str().unwrap().to_string();
            acked.entry(trace).or_default().insert(span);
        }
        None
    } else {
        Some(!v["failed"].as_bool().unwrap_or(true))
    }
}

/// Runs export_spans.py to completion and returns what it says was acknowledged (all of it,
/// or the test fails).
fn export(protocol: &str, endpoint: &str, args: &[&str]) -> Acked {
    let mut all = vec!["--protocol", protocol, "--endpoint", endpoint];
    all.extend_from_slice(args);
    let out = run_python("export_spans.py", &all);
    let mut acked = Acked::new();
    let mut finished = None;
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        finished = collect_acked(line, &mut acked).or(finished);
    }
    assert_eq!(
        finished,
        Some(true),
        "export_spans.py did not finish cleanly:\n{out}"
    );
    acked
}

fn span_count(acked: &Acked) -> usize {
    acked.values().map(BTreeSet::len).sum()
}

/// Span ids of the trace as the server returns it, asserting no id appears twice.
fn stored_span_ids(server: &Server, trace_id: &str) -> Option<BTreeSet<u128>> {
    let trace = server.trace(trace_id)?;
    let spans = trace["spans"].as_array().expect("spans array");
    let ids: BTreeSet<u128> = spans
        .iter()
        .map(|s| id_value(s["spanID"].as_str().expect("spanID")))
        .collect();
    assert_eq!(
        ids.len(),
        spans.len(),
        "trace {trace_id} holds a span twice: {trace}"
    );
    Some(ids)
}

/// Every acknowledged span is stored, once. With `exact`, nothing else is in those traces.
fn assert_stored(server: &Server, acked: &Acked, exact: bool) {
    for (trace_id, spans) in acked {
        let want: BTreeSet<u128> = spans.iter().map(|s| id_value(s)).collect();
        let got = stored_span_ids(server, trace_id)
            .unwrap_or_else(|| panic!("acknowledged trace {trace_id} is missing"));
        if exact {
            assert_eq!(got, want, "trace {trace_id}");
        } else {
            let missing: Vec<_> = want.difference(&got).collect();
            assert!(
                missing.is_empty(),
                "trace {trace_id} lost acknowledged spans {missing:x?}"
            );
        }
    }
}

#[test]
fn durability_acknowledged_spans_survive_sigkill() {
    let dir = DataDir::new();
    let server = dir.start();
    let common = ["--traces", "30", "--spans-per-trace", "5", "--batch", "40"];
    let mut acked = Acked::new();
    for (protocol, endpoint, service) in [
        ("grpc", server.grpc_endpoint(), "durable-grpc"),
        ("http-protobuf", server.http_endpoint(), "durable-http"),
        ("http-json", server.http_endpoint(), "durable-json"),
    ] {
        let mut args = common.to_vec();
        args.extend(["--service", service]);
        acked.extend(export(protocol, &endpoint, &args));
    }
    assert_eq!(span_count(&acked), 450);
    server.kill();

    let server = dir.start();
    assert_eq!(
        server.services(),
        ["durable-grpc", "durable-http", "durable-json"]
    );
    assert_stored(&server, &acked, true);

    // A graceful stop writes the head out; the next start must not replay it a second time.
    let status = server.graceful_stop();
    assert!(status.success(), "SIGTERM exit status {status}");
    let server = dir.start();
    assert_stored(&server, &acked, true);
}

#[test]
fn durability_kill_during_export() {
    let dir = DataDir::new();
    let server = dir.start();
    let mut child = python_command("export_spans.py")
        .args(["--protocol", "grpc", "--endpoint", &server.grpc_endpoint()])
        .args([
            "--traces",
            "2000",
            "--spans-per-trace",
            "3",
            "--batch",
            "30",
        ])
        .args(["--timeout", "2", "--stop-on-failure"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn export_spans.py");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Kill the server once a few batches are acknowledged, while the rest are in flight.
    let mut acked = Acked::new();
    let mut batches = 0;
    let mut server = Some(server);
    let mut finished = None;
    for line in lines.by_ref() {
        let line = line.expect("read export_spans.py output");
        finished = collect_acked(&line, &mut acked);
        if finished.is_some() {
            break;
        }
        batches += 1;
        if batches == 8 {
            server.take().unwrap().kill();
        }
    }
    let status = child.wait().expect("wait for export_spans.py");
    assert!(status.success(), "export_spans.py: {status}");
    assert_eq!(
        finished,
        Some(false),
        "the export should have failed once the server was killed (acked {batches} batches)"
    );
    assert!(server.is_none(), "the server was killed mid-export");
    assert!(span_count(&acked) >= 8 * 30);

    let server = dir.start();
    assert_stored(&server, &acked, false);
}

#[test]
fn durability_blocks_and_retention_survive_sigkill() {
    // A tiny head so that blocks are cut within the test; the default 7-day retention.
    let dir = DataDir::with_config("[traces]\nhead_max_spans = 50\nretention = \"7d\"\n");
    let server = dir.start();

    // Ten days old: acknowledged, cut into a block, then deleted by retention.
    let old = export(
        "grpc",
        &server.grpc_endpoint(),
        &[
            "--service",
            "old-app",
            "--traces",
            "20",
            "--spans-per-trace",
            "5",
            "--batch",
            "50",
            "--age-seconds",
            "864000",
        ],
    );
    assert_eq!(span_count(&old), 100);
    eventually(MAINTENANCE_WAIT, || {
        let head = server_gauge(&server, "lookout_store_head_items");
        let gone = old.keys().filter(|t| server.trace(t).is_none()).count();
        if head == 0.0 && gone == old.len() {
            Ok(())
        } else {
            Err(format!(
                "head holds {head} spans, {gone} of {} old traces gone",
                old.len()
            ))
        }
    })
    .unwrap_or_else(|e| panic!("retention did not remove the 10-day-old spans: {e}"));

    // Recent spans: the first part is cut into a block, the second stays in the head and WAL.
    let in_block = export(
        "http-protobuf",
        &server.http_endpoint(),
        &[
            "--service",
            "recent-app",
            "--traces",
            "20",
            "--spans-per-trace",
            "5",
            "--batch",
            "50",
        ],
    );
    eventually(MAINTENANCE_WAIT, || {
        let head = server_gauge(&server, "lookout_store_head_items");
        let in_blocks = server_gauge(&server, "lookout_store_block_items");
        if head == 0.0 && in_blocks >= 100.0 {
            Ok(())
        } else {
            Err(format!("head holds {head} spans, blocks {in_blocks}"))
        }
    })
    .unwrap_or_else(|e| panic!("the head was not cut into a block: {e}"));
    let in_head = export(
        "grpc",
        &server.grpc_endpoint(),
        &[
            "--service",
            "recent-app",
            "--traces",
            "12",
            "--spans-per-trace",
            "5",
            "--batch",
            "20",
        ],
    );
    server.kill();

    let server = dir.start();
    assert_stored(&server, &in_block, true);
    assert_stored(&server, &in_head, true);
    for t in old.keys() {
        assert!(
            server.trace(t).is_none(),
            "trace {t} was deleted by retention but came back after a restart"
        );
    }
    assert_eq!(server.services(), ["recent-app"]);

    // Search merges the block and the replayed head: every recent trace once, each whole.
    let doc = server.get_json("/api/traces?service=recent-app&limit=1000", 200);
    let mut found = Acked::new();
    for trace in doc["data"].as_array().expect("data array") {
        let id = format!("{:032x}", id_value(trace["traceID"].as_str().unwrap()));
        let spans: BTreeSet<String> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{:016x}", id_value(s["spanID"].as_str().unwrap())))
            .collect();
        assert_eq!(
            spans.len(),
            trace["spans"].as_array().unwrap().len(),
            "{trace}"
        );
        assert!(
            found.insert(id.clone(), spans).is_none(),
            "trace {id} found twice"
        );
    }
    let mut want = in_block.clone();
    want.extend(in_head.clone());
    assert_eq!(found, want, "search after restart");
}

fn server_gauge(server: &Server, name: &str) -> f64 {
    server.metric(name, &["signal=\"traces\""])
}
