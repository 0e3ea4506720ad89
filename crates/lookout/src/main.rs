//! The `lookout` binary: command-line parsing, logging set-up and dispatch.
//!
//! Everything that does real work lives in library crates (see ARCHITECTURE.md); this crate
//! only reads configuration, wires the parts together ([`wiring`]) and maps failures to exit
//! codes: 0 on success, 1 when a command fails, 2 for usage errors (clap's convention).

mod allocator;
mod bridge;
mod cli;
mod config;
mod lifecycle;
mod loadgen;
mod loadgen_metrics;
mod metrics;
mod query_cmd;
mod rule_engine;
mod sandbox_cmd;
mod serve;
mod test_cmd;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOOKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .init();
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::usage_error(e),
    };
    // Test and check commands print their findings as promtool does; the rules engine's
    // warnings about failing rules would only repeat them.
    if !matches!(cli.command, cli::Command::Test(_) | cli::Command::Check(_)) {
        init_logging();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(args).await,
            cli::Command::Loadgen(cli::LoadgenCommand::Traces(args)) => loadgen::run(args).await,
            cli::Command::Loadgen(cli::LoadgenCommand::Metrics(args)) => {
                tokio::task::spawn_blocking(move || loadgen_metrics::run(args))
                    .await
                    .map_err(|e| anyhow::anyhow!("load generator task failed: {e}"))
                    .and_then(|r| r)
            }
            cli::Command::Up(args) => lifecycle::up(args),
            cli::Command::Down => lifecycle::down(),
            cli::Command::Status(args) => lifecycle::status(args),
            cli::Command::Env(args) => sandbox_cmd::env(args),
            cli::Command::Run(args) => sandbox_cmd::run(args).await,
            cli::Command::ComposeOverride(args) => sandbox_cmd::compose_override(args),
            cli::Command::Sandboxes(args) => sandbox_cmd::sandboxes(args),
            cli::Command::Completions(args) => cli::print_completions(args.shell),
            cli::Command::Test(cli::TestCommand::Promql(args)) => test_cmd::promql(args),
            // Rule tests block on their own tsdb runtime: off the async threads.
            cli::Command::Test(cli::TestCommand::Rules(args)) => {
                tokio::task::spawn_blocking(move || test_cmd::rules(args))
                    .await
                    .map_err(|e| anyhow::anyhow!("rule test task failed: {e}"))
                    .and_then(|r| r)
            }
            cli::Command::Check(cli::CheckCommand::Rules(args)) => test_cmd::check_rules(args),
            cli::Command::Query(args) => tokio::task::spawn_blocking(move || query_cmd::run(args))
                .await
                .map_err(|e| anyhow::anyhow!("query task failed: {e}"))
                .and_then(|r| r),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<lifecycle::Exit>() {
            Some(exit) => exit.report(),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
