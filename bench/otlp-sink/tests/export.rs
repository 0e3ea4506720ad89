//! otlp-sink answers a real OTLP/gRPC client, so the benchmark's baselines measure a receiver
//! that works rather than one that fails every request cheaply; with `--forward` it really
//! sends every request on, and with `--no-decode` it really leaves the spans undecoded.

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

/// A request whose field 1 (`resource_spans`, a message) comes as a number: wire format a
/// decoder of the real message refuses, and one that steps over fields does not.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    resource_spans: u64,
}

async fn export_wrong_wire_type(addr: &str) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<WrongWireType, ExportTraceServiceResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let request = tonic::Request::new(WrongWireType { resource_spans: 7 });
    grpc.unary(request, path, codec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn with_no_decode_acknowledges_exports_it_never_decoded() {
    let (_sink, addr) = start(&["--no-decode"]);
    let response = export(&addr).await.expect("acknowledged");
    assert!(response.partial_success.is_none());
    export_wrong_wire_type(&addr)
        .await
        .expect("acknowledged without decoding the spans");

    // The decoding sink refuses the same bytes: the request above is only accepted when
    // nothing decodes it.
    let (_sink, addr) = start(&[]);
    let err = export_wrong_wire_type(&addr)
        .await
        .expect_err("refused by a decoder");
    assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
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

#[test]
fn rejects_forward_with_no_decode() {
    let out = Command::new(env!("CARGO_BIN_EXE_otlp-sink"))
        .args(["--no-decode", "--forward", "http://127.0.0.1:1"])
        .output()
        .expect("otlp-sink runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most one of"), "{stderr}");
}
