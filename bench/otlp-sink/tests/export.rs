//! otlp-sink answers a real OTLP/gRPC client, so the benchmark's baselines measure a receiver
//! that works rather than one that fails every request cheaply; and with `--forward` it
//! really sends every request on.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Kills the sink when the test ends, however it ends.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Sink, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otlp-sink"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("otlp-sink starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let sink = Sink(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a ready line");
    let addr = line
        .strip_prefix("otlp-sink is ready: otlp-grpc=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_string();
    (sink, addr)
}

fn request() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span; 3],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn export(addr: &str) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    client.export(request()).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn acknowledges_an_export() {
    let (_sink, addr) = start(&[]);
    let response = export(&addr).await.expect("acknowledged");
    assert!(response.partial_success.is_none());
}

#[tokio::test]
async fn forwards_each_export_and_answers_with_the_downstream_result() {
    // A downstream that is not listening (port 1 needs privileges to listen on): the
    // forwarder must fail the export, which it only can by trying to send it on.
    let (_fwd, addr) = start(&["--forward", "http://127.0.0.1:1"]);
    let err = export(&addr).await.expect_err("no downstream");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let (_down, down_addr) = start(&[]);
    let (_fwd, addr) = start(&["--forward", &format!("http://{down_addr}")]);
    let response = export(&addr).await.expect("acknowledged downstream");
    assert!(response.partial_success.is_none());
}

#[test]
fn rejects_an_unknown_argument() {
    let out = Command::new(env!("CARGO_BIN_EXE_otlp-sink"))
        .arg("--port")
        .output()
        .expect("otlp-sink runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown argument \"--port\""), "{stderr}");
}
