//! The command line: every subcommand and flag, with the help text users read.
//!
//! Flags that mirror config-file keys are `Option`s so that "not given" can fall through to
//! the file (see [`crate::config`]); clap resolves flag-over-`LOOKOUT_*`-environment itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lookout",
    version,
    about = "A complete, local-first observability stack in one binary",
    long_about = "Lookout receives OpenTelemetry traces over OTLP (gRPC and HTTP), keeps them \
                  durably on local disk, and answers Jaeger's query API, so Grafana, the Jaeger \
                  UI and your scripts work against it unchanged.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Lookout in the foreground until interrupted.
    Serve(ServeArgs),
    /// Generate telemetry load against an OTLP endpoint and report what was acknowledged.
    #[command(subcommand)]
    Loadgen(LoadgenCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: ./lookout.toml, then ~/.config/lookout/lookout.toml.
    #[arg(long, env = "LOOKOUT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where WAL and blocks live. Default: the user's data dir (~/.local/share/lookout).
    #[arg(long, env = "LOOKOUT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTP API and UI. Default: 127.0.0.1:46686.
    #[arg(long, env = "LOOKOUT_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Address of the OTLP/gRPC receiver (also accepts OTLP/HTTP). Default: 127.0.0.1:4317.
    #[arg(long, env = "LOOKOUT_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,

    /// Address of the OTLP/HTTP receiver (also accepts OTLP/gRPC). Default: 127.0.0.1:4318.
    #[arg(long, env = "LOOKOUT_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum LoadgenCommand {
    /// Send realistic traces (several services, nested spans, attributes, some errors) over
    /// OTLP/gRPC at a steady rate.
    Traces(LoadgenTracesArgs),
}

#[derive(Debug, Args)]
pub struct LoadgenTracesArgs {
    /// Spans per second to send; 0 sends as fast as the server acknowledges.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,

    /// How long to send, e.g. 30s, 5m.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub duration: std::time::Duration,

    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,

    /// Spans per export request.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,

    /// Export requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Instead of sending, measure how fast this machine merely decodes the same payloads
    /// with prost (the baseline for the ingest benchmark).
    #[arg(long)]
    pub decode_only: bool,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s)
}
