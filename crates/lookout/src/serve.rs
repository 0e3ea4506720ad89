//! `lookout serve`: open the stores, bind every port, run until SIGINT/SIGTERM, then stop
//! accepting, flush, and exit.
//!
//! Ports are bound before anything slow happens so a port in use fails in milliseconds with
//! a message naming the flag that moves it. Readiness is announced on stdout with the real
//! bound addresses (tests bind port 0 and read them back) only once every listener accepts and
//! the store has replayed its WAL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::config::{self, Config};

/// Everything `serve` needs, resolved from defaults, file, environment and flags.
pub struct Settings {
    pub config: Config,
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// The `prometheus.yml` to scrape by, from the flag or `[metrics] prometheus_config`.
    pub prometheus_config: Option<PathBuf>,
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let config_file = config::find_config_file(args.config.as_deref());
        let mut config = config::load(config_file.as_deref())?;
        if let Some(a) = args.http_addr {
            config.server.http_addr = a;
        }
        if let Some(a) = args.otlp_grpc_addr {
            config.server.otlp_grpc_addr = a;
        }
        if let Some(a) = args.otlp_http_addr {
            config.server.otlp_http_addr = a;
        }
        let data_dir = match (&args.data_dir, &config.server.data_dir) {
            (Some(d), _) | (None, Some(d)) => d.clone(),
            (None, None) => config::default_data_dir()?,
        };
        // A path in the config file is relative to that file, as Prometheus's own are.
        let prometheus_config = args.prometheus_config.clone().or_else(|| {
            let p = config.metrics.prometheus_config.clone()?;
            let base = config_file.as_deref().and_then(std::path::Path::parent);
            Some(match base {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            })
        });
        Ok(Settings {
            config,
            config_file,
            data_dir,
            prometheus_config,
        })
    }
}

/// Binds `addr`, turning "address in use" into one line that names the port and the flag.
async fn bind(addr: SocketAddr, flag: &str, env: &str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {} is already in use ({addr}); stop the other process or choose another address with {flag} or {env}",
            addr.port()
        ),
        Err(e) => Err(e).with_context(|| {
            format!("cannot listen on {addr}; choose another address with {flag} or {env}")
        }),
    }
}

/// Listeners on the Docker bridge's gateway address for each loopback OTLP address, on the
/// same port, so containers reach Lookout as `host.docker.internal` without it listening on
/// the network. No bridge, or a port taken there, only costs a log line.
async fn bridge_listeners(otlp: &[SocketAddr]) -> Vec<TcpListener> {
    let Some(ip) = crate::bridge::interface_ipv4(crate::bridge::DOCKER_BRIDGE) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for addr in otlp.iter().filter(|a| a.ip().is_loopback()) {
        let on_bridge = SocketAddr::new(ip.into(), addr.port());
        match TcpListener::bind(on_bridge).await {
            Ok(l) => {
                tracing::info!(addr = %on_bridge, "OTLP also listening on the Docker bridge");
                out.push(l);
            }
            Err(e) => {
                tracing::warn!(addr = %on_bridge, error = %e, "cannot listen on the Docker bridge; containers will not reach this port")
            }
        }
    }
    out
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn register_build_info() {
    let version = env!("CARGO_PKG_VERSION");
    selfmon::global().gauge_fn(
        "lookout_build_info",
        "A metric with a constant '1' value labeled by version and the Rust target it was built for.",
        &[
            ("version", version),
            ("goos", std::env::consts::OS),
            ("goarch", std::env::consts::ARCH),
        ],
        || 1.0,
    );
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    selfmon::global().gauge_fn(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        &[],
        move || started,
    );
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    run_until(args, shutdown_signal()).await
}

/// Runs the server until `shutdown` resolves.
pub async fn run_until(
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let settings = Settings::resolve(&args)?;
    let cfg = &settings.config;
    let http = bind(cfg.server.http_addr, "--http-addr", "LOOKOUT_HTTP_ADDR").await?;
    let grpc = bind(
        cfg.server.otlp_grpc_addr,
        "--otlp-grpc-addr",
        "LOOKOUT_OTLP_GRPC_ADDR",
    )
    .await?;
    let otlp_http = bind(
        cfg.server.otlp_http_addr,
        "--otlp-http-addr",
        "LOOKOUT_OTLP_HTTP_ADDR",
    )
    .await?;
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data dir {}; choose another with --data-dir or LOOKOUT_DATA_DIR",
            settings.data_dir.display()
        )
    })?;
    register_build_info();
    match &settings.config_file {
        Some(f) => {
            tracing::info!(config = %f.display(), data_dir = %settings.data_dir.display(), "starting")
        }
        None => {
            tracing::info!(data_dir = %settings.data_dir.display(), "starting with default configuration")
        }
    }

    let store = crate::wiring::open_trace_store(&settings).await?;
    let metrics = crate::metrics::open(&settings).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let head_full = Arc::new(tokio::sync::Notify::new());
    let otlp_state = crate::wiring::otlp_state(
        &settings,
        store.clone(),
        head_full.clone(),
        metrics.sink.clone(),
    );
    let otlp_router = ingest::otlp_router(otlp_state.clone());
    let scraping =
        crate::metrics::start_scraping(&settings, http.local_addr()?, metrics.sink.clone())?;
    let rules =
        crate::rule_engine::start(&settings, http.local_addr()?, metrics.db.clone()).await?;
    let reload = Arc::new(crate::metrics::ReloadAll {
        scraping: scraping.clone(),
        rules: rules.clone(),
    });
    let api_router = crate::wiring::api_router(store.clone(), ready.clone())
        .merge(crate::metrics::api_router(&settings, &metrics, &reload))
        .merge(ingest::prometheus_otlp_router(otlp_state));
    let sighup = crate::metrics::spawn_sighup_reload(reload, stop_rx.clone());
    let addrs = (
        http.local_addr()?,
        grpc.local_addr()?,
        otlp_http.local_addr()?,
    );
    let mut servers = tokio::task::JoinSet::new();
    if cfg.server.docker_bridge {
        for listener in bridge_listeners(&[addrs.1, addrs.2]).await {
            servers.spawn(ingest::serve(
                listener,
                otlp_router.clone(),
                stopped(stop_rx.clone()),
            ));
        }
    }
    servers.spawn(ingest::serve(
        grpc,
        otlp_router.clone(),
        stopped(stop_rx.clone()),
    ));
    servers.spawn(ingest::serve(
        otlp_http,
        otlp_router,
        stopped(stop_rx.clone()),
    ));
    servers.spawn(ingest::serve(http, api_router, stopped(stop_rx.clone())));
    let maintenance = crate::wiring::spawn_maintenance(store.clone(), head_full, stop_rx.clone());
    let metrics_maintenance =
        crate::metrics::spawn_maintenance(metrics.db.clone(), stop_rx.clone());

    ready.store(true, Ordering::Release);
    println!(
        "lookout is ready: http={} otlp-grpc={} otlp-http={} data-dir={}",
        addrs.0,
        addrs.1,
        addrs.2,
        settings.data_dir.display()
    );
    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "ready");

    tokio::select! {
        _ = shutdown => {}
        Some(res) = servers.join_next() => {
            // A listener failing on its own is fatal: report it instead of half-running.
            let _ = stop_tx.send(true);
            match res {
                Ok(Ok(())) => bail!("a listener stopped unexpectedly"),
                Ok(Err(e)) => return Err(anyhow::Error::from(e).context("a listener failed")),
                Err(e) => bail!("a listener task failed: {e}"),
            }
        }
    }
    tracing::info!("shutting down: no new requests, flushing");
    ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    // Let in-flight requests finish, but never hang on a stuck client.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    scraping.manager.shutdown().await;
    rules.shutdown().await;
    let _ = sighup.await;
    let _ = maintenance.await;
    let _ = metrics_maintenance.await;
    crate::wiring::close_trace_store(store).await?;
    crate::metrics::close(&metrics.db).await?;
    tracing::info!("stopped");
    Ok(())
}
