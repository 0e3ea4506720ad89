//! `lookout env`, `run`, `compose-override` and `sandboxes`: the command-line face of the
//! `sandbox` crate, which owns the rules (namespaces, variables, registry, overrides).
//!
//! Where Lookout listens is taken from the running server when there is one (its real bound
//! addresses, from `server.json`), else from configuration (flags, `LOOKOUT_*`, the config
//! file), so `env` printed before `up` still names the port `up` will bind. `run` must never
//! stop a developer's app from starting: if Lookout cannot be started it warns and runs the
//! command anyway. Bad input (a project name that cannot be a namespace, a compose file that is
//! not Compose YAML, an unknown service) is a usage error: one line, exit 2, nothing started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sandbox::compose::{ComposeFile, OverrideSpec, HOST_ALIAS, MAX_COMPOSE_BYTES};
use sandbox::process::{self, ProcessId};
use sandbox::registry::{Liveness, SandboxEntry, SandboxKind};
use sandbox::{EnvFormat, Namespace, OtelEnv};

use crate::cli::{
    ComposeOverrideArgs, EnvArgs, EnvFormatArg, RunArgs, SandboxArgs, SandboxesArgs, ServeArgs,
};
use crate::config::{self, Config};
use crate::lifecycle::{self, Exit, StatePaths};

/// The namespace the flags ask for; a bad name is a usage error.
fn namespace(args: &SandboxArgs) -> anyhow::Result<Namespace> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Namespace::resolve(args.project.as_deref(), args.slot, &cwd)
        .map_err(|e| Exit::usage(e.to_string()))
}

/// The config file `serve` would read with these flags.
fn load_config(serve: &ServeArgs) -> anyhow::Result<Config> {
    config::load(config::find_config_file(serve.config.as_deref()).as_deref())
}

/// The OTLP/HTTP address: the running server's, else the configured one.
fn otlp_http_addr(serve: &ServeArgs, cfg: &Config) -> SocketAddr {
    if let Some(s) = StatePaths::locate().ok().and_then(|p| p.running()) {
        return s.otlp_http;
    }
    serve.otlp_http_addr.unwrap_or(cfg.server.otlp_http_addr)
}

/// The full environment for a process on this host.
fn process_env(ns: &Namespace, endpoint: &str, cfg: &Config) -> OtelEnv {
    let existing = std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok();
    let mut env = OtelEnv::new(endpoint, ns, existing.as_deref());
    if let Some(v) = &cfg.sandbox.otel.endpoint_var {
        env.set(v, endpoint);
    }
    if let Some(v) = &cfg.sandbox.otel.namespace_var {
        if v != sandbox::env::RESOURCE_ATTRIBUTES_VAR {
            env.set(v, &ns.to_string());
        }
    }
    env
}

/// `lookout env`.
pub fn env(args: EnvArgs) -> anyhow::Result<()> {
    let ns = namespace(&args.sandbox)?;
    let cfg = load_config(&args.serve)?;
    let endpoint = lifecycle::endpoint_url(otlp_http_addr(&args.serve, &cfg));
    let format = match args.format {
        EnvFormatArg::Sh => EnvFormat::Sh,
        EnvFormatArg::Dotenv => EnvFormat::Dotenv,
        EnvFormatArg::Json => EnvFormat::Json,
    };
    print!("{}", process_env(&ns, &endpoint, &cfg).render(format));
    Ok(())
}

/// `lookout run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let ns = namespace(&args.sandbox)?;
    let cfg = load_config(&args.serve)?;
    let paths = StatePaths::locate()?;
    let serve = args.serve.clone();
    let started = tokio::task::spawn_blocking(move || {
        let paths = StatePaths::locate()?;
        lifecycle::ensure_running(&paths, &serve)
    })
    .await
    .context("the start-up task failed")?;
    let endpoint = match started {
        Ok((state, true)) => {
            eprintln!(
                "lookout: started (pid {}, UI {}/, log {})",
                state.process.pid,
                lifecycle::endpoint_url(state.http),
                state.log.display()
            );
            state.otlp_endpoint()
        }
        Ok((state, false)) => state.otlp_endpoint(),
        Err(e) => {
            eprintln!(
                "warning: lookout could not be started, running the command anyway (its telemetry will be lost): {e:#}"
            );
            lifecycle::endpoint_url(
                args.serve
                    .otlp_http_addr
                    .unwrap_or(cfg.server.otlp_http_addr),
            )
        }
    };
    let env = process_env(&ns, &endpoint, &cfg);

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Exit::usage("missing the command to run after `--`"))?;
    let shown = args
        .command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .envs(env.vars().iter().map(|(k, v)| (k, v)))
        .spawn()
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            eprintln!("error: cannot run {}: {e}", program.to_string_lossy());
            Exit::silent(code)
        })?;
    let pid = child.id().unwrap_or(0);
    let identity = ProcessId::of(pid).unwrap_or(ProcessId {
        pid,
        start_ticks: None,
    });
    let registration = paths
        .registry()
        .register(&SandboxEntry::new(
            &ns,
            SandboxKind::Run,
            Some(identity),
            shown,
        ))
        .map_err(|e| eprintln!("warning: cannot register the sandbox: {e}"))
        .ok();

    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let status = loop {
        // Signals are passed on rather than acted on: the command decides how to stop, and
        // its exit code is what this process reports.
        tokio::select! {
            s = child.wait() => break s.context("cannot wait for the command")?,
            _ = sigint.recv() => {
                if !process::interrupt_comes_from_terminal() {
                    process::signal_child(pid, rustix::process::Signal::INT);
                }
            }
            _ = sigterm.recv() => { process::signal_child(pid, rustix::process::Signal::TERM); }
            _ = sighup.recv() => { process::signal_child(pid, rustix::process::Signal::HUP); }
        }
    };
    drop(registration);
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    if code == 0 {
        Ok(())
    } else {
        Err(Exit::silent(u8::try_from(code & 0xff).unwrap_or(1)))
    }
}

/// The compose files Compose itself looks for, in its order.
const COMPOSE_NAMES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// `lookout compose-override`.
pub fn compose_override(args: ComposeOverrideArgs) -> anyhow::Result<()> {
    let ns = namespace(&args.sandbox)?;
    let path: PathBuf = match &args.compose_file {
        Some(p) => p.clone(),
        None => COMPOSE_NAMES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Exit::usage("no compose file here (compose.yaml, docker-compose.yml, ...); pass --compose-file")
            })?,
    };
    let text = read_compose(&path)?;
    let file = ComposeFile::parse(&text, &path.display().to_string())
        .map_err(|e| Exit::usage(e.to_string()))?;
    let cfg = load_config(&args.serve)?;
    let port = otlp_http_addr(&args.serve, &cfg).port();
    let spec = OverrideSpec {
        namespace: &ns,
        endpoint: format!("http://{HOST_ALIAS}:{port}"),
        endpoint_var: cfg.sandbox.otel.endpoint_var.clone(),
        namespace_var: cfg.sandbox.otel.namespace_var.clone(),
        services: args.services.clone(),
    };
    let yaml = file
        .override_yaml(&spec)
        .map_err(|e| Exit::usage(e.to_string()))?;
    match &args.output {
        Some(out) => std::fs::write(out, &yaml)
            .with_context(|| format!("cannot write the override to {}", out.display()))?,
        None => print!("{yaml}"),
    }
    let what = std::fs::canonicalize(&path).unwrap_or(path);
    if let Ok(paths) = StatePaths::locate() {
        match paths.registry().register(&SandboxEntry::new(
            &ns,
            SandboxKind::Compose,
            None,
            what.display().to_string(),
        )) {
            Ok(r) => r.keep(),
            Err(e) => eprintln!("warning: cannot register the sandbox: {e}"),
        }
    }
    Ok(())
}

fn read_compose(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > MAX_COMPOSE_BYTES as u64 {
        return Err(Exit::usage(format!(
            "{}: larger than {} MiB; is this really a compose file?",
            path.display(),
            MAX_COMPOSE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| {
        Exit::usage(format!(
            "{}: not valid YAML: not UTF-8 text",
            path.display()
        ))
    })
}

/// `lookout sandboxes`.
pub fn sandboxes(args: SandboxesArgs) -> anyhow::Result<()> {
    let paths = StatePaths::locate()?;
    let registry = paths.registry();
    for ns in &args.forget {
        match registry.forget(ns)? {
            0 => {
                return Err(Exit::usage(format!(
                    "no sandbox {ns:?} is registered; `lookout sandboxes` lists them"
                )))
            }
            n => eprintln!("forgot {ns} ({n} entr{})", if n == 1 { "y" } else { "ies" }),
        }
    }
    if args.prune {
        let n = registry.prune()?;
        eprintln!("forgot {n} dead sandbox{}", if n == 1 { "" } else { "es" });
    }
    let list = registry.list()?;
    if args.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no sandboxes registered");
        return Ok(());
    }
    println!(
        "{:<28} {:<8} {:<8} {:<8} WHAT",
        "NAMESPACE", "KIND", "STATE", "PID"
    );
    for l in &list {
        let state = match l.liveness {
            Liveness::Alive => "running",
            Liveness::Dead => "dead",
            Liveness::Unknown => "unknown",
        };
        let kind = match l.entry.kind {
            SandboxKind::Run => "run",
            SandboxKind::Compose => "compose",
        };
        let pid = l
            .entry
            .process
            .map(|p| p.pid.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:<8} {:<8} {:<8} {}",
            l.entry.namespace, kind, state, pid, l.entry.what
        );
    }
    Ok(())
}
