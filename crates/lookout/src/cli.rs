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
    /// Start Lookout in the background unless it already runs; wait until it is ready and
    /// print its endpoints.
    Up(ServeArgs),
    /// Stop the background Lookout gracefully (it flushes first); warns about sandboxes that
    /// still run.
    Down,
    /// Show whether Lookout runs and the health of its parts; exits 1 when it does not run.
    Status(StatusArgs),
    /// Print the OTEL_* environment that makes an app export to Lookout, namespaced
    /// `<project>-slot-<N>` (e.g. `eval "$(lookout env --slot 2)"`).
    Env(EnvArgs),
    /// Run a command with the OTEL_* environment of a sandbox, starting Lookout first if needed;
    /// exits with the command's exit code.
    Run(RunArgs),
    /// Write a Docker Compose override giving services the OTEL_* environment of a sandbox,
    /// pointing at Lookout as containers reach it.
    ComposeOverride(ComposeOverrideArgs),
    /// List registered sandboxes, marking those whose process is gone.
    Sandboxes(SandboxesArgs),
    /// Print a shell completion script, e.g. `lookout completions bash > /etc/bash_completion.d/lookout`.
    Completions(CompletionsArgs),
    /// Run test files: Prometheus's PromQL test scripts and rule unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Check files without running them: Prometheus rule files.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Evaluate a PromQL expression on the running Lookout: a table for an instant query, a
    /// terminal chart per series for a range (`--start`/`--end`/`--step`).
    Query(QueryArgs),
}

/// `lookout query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The PromQL expression, e.g. 'sum by (job) (rate(http_requests_total[5m]))'.
    #[arg(value_name = "EXPR")]
    pub expr: String,

    /// Evaluation time of an instant query: Unix seconds, RFC 3339, `now` or `now-DURATION`
    /// (default: now).
    #[arg(long, value_name = "T", conflicts_with_all = ["start", "end", "step"])]
    pub time: Option<String>,

    /// Start of a range query (same forms as --time; default: an hour before --end).
    #[arg(long, value_name = "S")]
    pub start: Option<String>,

    /// End of a range query (same forms as --time; default: now).
    #[arg(long, value_name = "E")]
    pub end: Option<String>,

    /// Step of a range query, e.g. 30s or 1m (default: the range in 240 steps).
    #[arg(long, value_name = "D")]
    pub step: Option<String>,

    /// Print the server's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,

    /// The Lookout (or Prometheus) HTTP address to ask.
    #[arg(
        long,
        value_name = "URL",
        env = "LOOKOUT_SERVER",
        default_value = "http://127.0.0.1:46686"
    )]
    pub server: String,

    /// Seconds to wait for the answer.
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 120)]
    pub timeout_secs: u64,
}

/// `lookout test` subcommands.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run PromQL test scripts (Prometheus's promqltest format) against Lookout's engine;
    /// prints each failing case with file:line and ends with `N passed, M failed`.
    Promql(TestPromqlArgs),
    /// Run unit tests for alerting and recording rules, in promtool's format (`rule_files`,
    /// `tests` with `input_series`, `alert_rule_test` and `promql_expr_test`): the same files
    /// `promtool test rules` runs. Prints `SUCCESS` or `FAILED:` with what differed per file;
    /// exits 1 when any test failed.
    #[command(
        long_about = "Run unit tests for alerting and recording rules, in promtool's format: \
                      the same files `promtool test rules` runs.\n\n\
                      Each test group loads its input_series (e.g. '1+2x10 _ stale'), then \
                      evaluates the rule groups of rule_files every evaluation_interval from \
                      time 0 to its largest eval_time, so recording rules feed later rules and \
                      alerts go pending and firing as they would on a server. alert_rule_test \
                      compares the firing alerts of one name (labels and expanded annotations), \
                      promql_expr_test the result of a query after the evaluations.\n\n\
                      Prints `Unit Testing:  FILE` and `SUCCESS`, or `FAILED:` with what was \
                      expected and what came out; exits 1 when any test failed."
    )]
    Rules(TestRulesArgs),
}

/// `lookout test rules` arguments.
#[derive(Debug, Args)]
pub struct TestRulesArgs {
    /// Unit test files (YAML); rule_files in them are relative to each file.
    #[arg(required = true, value_name = "TEST_FILE")]
    pub files: Vec<std::path::PathBuf>,
}

/// `lookout check` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check Prometheus rule files as `promtool check rules` does: prints `SUCCESS: N rules
    /// found` or each problem as `file:line:col: message`, and warns about duplicate rules;
    /// exits 1 when a file is invalid.
    Rules(CheckRulesArgs),
}

/// `lookout check rules` arguments.
#[derive(Debug, Args)]
pub struct CheckRulesArgs {
    /// Rule files (YAML, Prometheus's format).
    #[arg(required = true, value_name = "RULE_FILE")]
    pub files: Vec<std::path::PathBuf>,

    /// Lint checks: `duplicate-rules` (or `all`) reports rules of one name with the same
    /// labels, `none` skips it.
    #[arg(long, value_enum, default_value = "duplicate-rules")]
    pub lint: LintArg,

    /// Exit 3 when a lint check finds something (otherwise it is reported and exits 0).
    #[arg(long)]
    pub lint_fatal: bool,
}

/// `lookout check rules --lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintArg {
    /// Every lint check.
    All,
    /// Rules of one name with the same labels.
    DuplicateRules,
    /// No lint checks.
    None,
}

/// `lookout test promql` arguments.
#[derive(Debug, Args)]
pub struct TestPromqlArgs {
    /// Test script files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
}

/// `lookout completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Reports a command-line error as one line on stderr and exit code 2 (help and version
/// requests, and a bare `lookout`, print as clap prints them). clap's own rendering spreads one
/// error over a paragraph, a usage block and a hint; scripts and people both read one line
/// better, and the line still says where help is.
pub fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        e.exit();
    }
    let text = e.render().to_string();
    // The first paragraph is the error itself (sometimes with the offending names indented
    // on the following lines).
    let message = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    // Point at the help of the subcommand the user typed, if any.
    let cli = <Cli as clap::CommandFactory>::command();
    let command = std::env::args()
        .skip(1)
        .find(|a| cli.get_subcommands().any(|s| s.get_name() == a))
        .map(|sub| format!("lookout {sub}"))
        .unwrap_or_else(|| "lookout".to_string());
    eprintln!("{message} (see `{command} --help`)");
    std::process::ExitCode::from(2)
}

/// Writes the completion script for `shell` to stdout.
pub fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "lookout", &mut std::io::stdout());
    Ok(())
}

/// `lookout status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which sandbox: shared by `env`, `run` and `compose-override`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Project name. Default: the git repository's (or the current directory's) name.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,

    /// Sandbox slot number; the namespace becomes `<project>-slot-<N>`. Default: no slot.
    #[arg(long, value_name = "N")]
    pub slot: Option<u32>,
}

/// How `lookout env` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EnvFormatArg {
    /// `export K='v'` lines, for `eval`.
    Sh,
    /// `K=v` lines, for `.env` files and `docker run --env-file`.
    Dotenv,
    /// One JSON object.
    Json,
}

/// `lookout env` flags.
#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "sh")]
    pub format: EnvFormatArg,

    #[command(
        flatten,
        next_help_heading = "Server (where Lookout listens when it is not running)"
    )]
    pub serve: ServeArgs,
}

/// `lookout run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,

    #[command(
        flatten,
        next_help_heading = "Server (used when Lookout must be started)"
    )]
    pub serve: ServeArgs,
}

/// `lookout compose-override` flags.
#[derive(Debug, Args)]
pub struct ComposeOverrideArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// A service to configure (repeatable). Default: every service in the compose file.
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,

    /// The project's compose file. Default: compose.yaml, compose.yml, docker-compose.yaml or
    /// docker-compose.yml in the current directory.
    #[arg(long, value_name = "FILE")]
    pub compose_file: Option<PathBuf>,

    /// Write the override here instead of to standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten, next_help_heading = "Server (where Lookout listens)")]
    pub serve: ServeArgs,
}

/// `lookout sandboxes` flags.
#[derive(Debug, Args)]
pub struct SandboxesArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Forget sandboxes whose process is gone.
    #[arg(long)]
    pub prune: bool,

    /// Forget the sandbox registered as NAMESPACE (`<project>-slot-<N>`), e.g. a Compose
    /// project after `docker compose down`: Lookout cannot see containers stop. Repeatable.
    #[arg(long, value_name = "NAMESPACE")]
    pub forget: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
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

    /// A Prometheus configuration file whose scrape_configs Lookout runs as they are
    /// (re-read on SIGHUP and POST /-/reload).
    #[arg(long, env = "LOOKOUT_PROMETHEUS_CONFIG", value_name = "FILE")]
    pub prometheus_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LoadgenCommand {
    /// Send realistic traces (several services, nested spans, attributes, some errors) over
    /// OTLP/gRPC at a steady rate.
    Traces(LoadgenTracesArgs),
    /// Send Prometheus remote_write requests (node-exporter-like series), built before the
    /// clock starts so any receiver gets the same bytes at the generator's full speed.
    Metrics(LoadgenMetricsArgs),
}

#[derive(Debug, Args)]
pub struct LoadgenMetricsArgs {
    /// remote_write URL.
    #[arg(long, default_value = "http://127.0.0.1:46686/api/v1/write")]
    pub endpoint: String,

    /// Distinct series.
    #[arg(long, default_value_t = 10_000)]
    pub series: u64,

    /// Samples per series: every round sends one sample of each series.
    #[arg(long, default_value_t = 10)]
    pub rounds: u64,

    /// Series (so samples) per request; Prometheus sends up to 2000 by default.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,

    /// Requests in flight at once (Prometheus's shards).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,

    /// Time between a series' samples, e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
    pub interval: std::time::Duration,

    /// Timestamp of the first round in Unix milliseconds; default: rounds end at about now.
    #[arg(long)]
    pub start_ms: Option<i64>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
