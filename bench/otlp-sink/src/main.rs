//! `otlp-sink`: the peer that `bench/traces.py` measures Lookout's CPU share at a steady 10k
//! spans/s against, in the same run.
//!
//! Why a peer of our own: the figure the 10k target was set against is the OpenTelemetry
//! Collector's load test (about 6% of a core for forwarding alone), measured on other
//! machines; neither the Collector nor Jaeger can be installed here. What the Collector's OTLP
//! receiver does before forwarding is this program's whole job: serve `TraceService/Export`
//! over HTTP/2, decode every request into messages, answer. It does it on the stack a Rust
//! service would take for that (tonic's server, the prost messages `opentelemetry-proto`
//! generates, tokio's multi-threaded runtime), with Lookout's allocator (mimalloc) and release
//! profile (without whole-program LTO it costs about a quarter more), and it stores nothing. So
//! it is a floor for any receiver built the usual way, and "Lookout's share ÷ its share" says
//! what Lookout's storage and indexing cost beyond receiving, or save by scanning requests in
//! place instead of decoding them.
//!
//! Usage: `otlp-sink [--addr HOST:PORT]` (default `127.0.0.1:0`). Once listening it prints
//! `otlp-sink is ready: otlp-grpc=ADDR` on one line.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every export once tonic has decoded it.
struct Sink;

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn parse_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:0".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a HOST:PORT value")?,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?}; usage: otlp-sink [--addr HOST:PORT]"
                ))
            }
        }
    }
    addr.parse()
        .map_err(|e| format!("--addr {addr:?} is not a HOST:PORT socket address: {e}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> Result<(), String> {
    let addr = parse_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let mut out = std::io::stdout();
    writeln!(out, "otlp-sink is ready: otlp-grpc={local}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Sink))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .map_err(|e| format!("the gRPC server failed: {e}"))
}
