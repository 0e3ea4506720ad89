//! `otlp-sink`: the peers that `bench/traces.py` measures Lookout's CPU share at a steady 10k
//! spans/s against, in the same run.
//!
//! Why peers of our own: the figure the 10k target was set against is the OpenTelemetry
//! Collector's load test (about 6% of a core for forwarding alone), measured on other
//! machines; neither the Collector nor Jaeger can be installed here. By default this program
//! does what the Collector's OTLP receiver does before forwarding: serve `TraceService/Export`
//! over HTTP/2, decode every request into messages, answer. It does it on the stack a Rust
//! service would take for that (tonic's server, the prost messages `opentelemetry-proto`
//! generates, tokio's multi-threaded runtime), with Lookout's allocator (mimalloc) and release
//! profile (without whole-program LTO it costs about a quarter more), and it stores nothing. So
//! it is a floor for any receiver built the usual way that looks at the spans, and "Lookout's
//! share ÷ its share" says what Lookout's storage and indexing cost beyond receiving, or save
//! by scanning requests in place instead of decoding them.
//!
//! With `--forward URL` it is the Collector's job itself, receive and forward: every request
//! is decoded, encoded again and exported to the OTLP/gRPC endpoint at `URL` (another
//! otlp-sink in the benchmark) over one HTTP/2 connection, and the client gets the
//! downstream's answer, or its error. That is the Collector's OTLP receiver and exporter with
//! no processors; unlike the Collector's exporter, whose default is gzip, it sends
//! uncompressed, which makes it cheaper, not dearer, than the Collector.
//!
//! With `--no-decode` it answers every export without decoding its spans: the message is
//! read as one with no fields, so decoding only steps over the payload. What is left is the
//! transport (tokio, hyper's HTTP/2, tonic's framing and the body's copy into one buffer), the
//! floor under any receiver on this stack: the benchmark reports it so that a share can be
//! read as transport plus what the receiver does with the spans.
//!
//! Usage: `otlp-sink [--addr HOST:PORT] [--forward URL | --no-decode]` (default address
//! `127.0.0.1:0`).
//! Once listening it prints `otlp-sink is ready: otlp-grpc=ADDR` on one line.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What happens to a request once tonic has decoded it.
enum Sink {
    /// Answered and dropped.
    Drop,
    /// Exported downstream; the client gets the downstream's answer.
    Forward(TraceServiceClient<tonic::transport::Channel>),
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self {
            Sink::Drop => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Sink::Forward(client) => {
                let answer = client.clone().export(request.into_inner()).await?;
                Ok(tonic::Response::new(answer.into_inner()))
            }
        }
    }
}

/// `TraceService/Export` answered without decoding the spans (`--no-decode`).
#[derive(Clone)]
struct Undecoded;

/// The request as `--no-decode` reads it: a message with no fields, so decoding steps over
/// every field of the payload without looking inside.
#[derive(Clone, PartialEq, prost::Message)]
struct Skipped {}

impl tonic::server::NamedService for Undecoded {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The unary handler behind [`Undecoded`]: answers success.
struct Acknowledge;

impl tonic::server::UnaryService<Skipped> for Acknowledge {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<Skipped>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(
            ExportTraceServiceResponse::default(),
        )))
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for Undecoded
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    /// The service's only method is `Export`, so every call is taken for one: the path is
    /// not what this peer measures.
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<ExportTraceServiceResponse, Skipped>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(Acknowledge, request).await)
        })
    }
}

/// What the program does with each export.
enum Mode {
    /// Decode and drop.
    Drop,
    /// Decode and export to the URL.
    Forward(String),
    /// Answer without decoding.
    NoDecode,
}

const USAGE: &str = "usage: otlp-sink [--addr HOST:PORT] [--forward URL | --no-decode]";

/// The listening address and the mode.
fn parse_args() -> Result<(SocketAddr, Mode), String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:0".to_string();
    let mut mode = Mode::Drop;
    while let Some(arg) = args.next() {
        let next = match arg.as_str() {
            "--addr" => {
                addr = args.next().ok_or("--addr needs a HOST:PORT value")?;
                continue;
            }
            "--forward" => Mode::Forward(args.next().ok_or("--forward needs a URL")?),
            "--no-decode" => Mode::NoDecode,
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}")),
        };
        if !matches!(mode, Mode::Drop) {
            return Err(format!(
                "give at most one of --forward URL and --no-decode; {USAGE}"
            ));
        }
        mode = next;
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("--addr {addr:?} is not a HOST:PORT socket address: {e}"))?;
    Ok((addr, mode))
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
    let (addr, mode) = parse_args()?;
    let sink = match mode {
        Mode::Drop => Some(Sink::Drop),
        // Connected on the first export, so the downstream may start later.
        Mode::Forward(url) => Some(Sink::Forward(TraceServiceClient::new(
            tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|e| format!("--forward {url:?} is not a URL: {e}"))?
                .connect_lazy(),
        ))),
        Mode::NoDecode => None,
    };
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
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut server = tonic::transport::Server::builder();
    match sink {
        Some(sink) => {
            server
                .add_service(TraceServiceServer::new(sink))
                .serve_with_incoming(incoming)
                .await
        }
        None => {
            server
                .add_service(Undecoded)
                .serve_with_incoming(incoming)
                .await
        }
    }
    .map_err(|e| format!("the gRPC server failed: {e}"))
}
