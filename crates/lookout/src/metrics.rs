//! How the metrics parts are connected: the tsdb opened from config, the receivers
//! (remote_write, OTLP metrics and the scrape manager) writing into it through ingest's
//! `MetricsSink`, the Prometheus API reading it, configuration reloads (SIGHUP and
//! `POST /-/reload`: scrape configuration and rules together), the tsdb's maintenance (block cuts, compaction, retention) and its
//! self-metrics.
//!
//! The trace side of the same wiring lives in `wiring.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ingest::{AppendError, AppendOutcome, MetadataRegistry, MetricMetadata, MetricsSink, Sample};
use tokio::sync::watch;
use tsdb::{AppendReport, Tsdb, TsdbConfig, TsdbError};

use crate::serve::Settings;

/// How often the head is checked for block cuts, compaction and retention (Prometheus
/// compacts once a minute).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// What maintenance has done since start, for `/metrics` (Prometheus counts the same as
/// `prometheus_tsdb_compactions_total` and friends).
static MAINTENANCE: MaintenanceCounters = MaintenanceCounters {
    runs: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    blocks_written: AtomicU64::new(0),
    blocks_compacted: AtomicU64::new(0),
    blocks_deleted: AtomicU64::new(0),
};

struct MaintenanceCounters {
    runs: AtomicU64,
    failures: AtomicU64,
    blocks_written: AtomicU64,
    blocks_compacted: AtomicU64,
    blocks_deleted: AtomicU64,
}

impl MaintenanceCounters {
    fn record(&self, r: &tsdb::MaintenanceReport) {
        self.blocks_written
            .fetch_add(r.blocks_written as u64, Ordering::Relaxed);
        self.blocks_compacted
            .fetch_add(r.blocks_compacted as u64, Ordering::Relaxed);
        self.blocks_deleted
            .fetch_add(r.blocks_deleted as u64, Ordering::Relaxed);
        self.runs.fetch_add(1, Ordering::Relaxed);
    }
}

/// The metrics side of a running server.
pub struct Metrics {
    pub db: Arc<Tsdb>,
    pub metadata: Arc<MetadataRegistry>,
    pub sink: Arc<dyn MetricsSink>,
}

/// Opens (and replays) the tsdb under `<data-dir>/metrics`, off the async executor.
pub async fn open(settings: &Settings) -> anyhow::Result<Metrics> {
    let dir = settings.data_dir.join("metrics");
    let c = &settings.config;
    let mut cfg = TsdbConfig::new(dir.clone());
    cfg.wal = c.wal.options();
    cfg.retention = c.metrics.retention.0;
    cfg.max_block_bytes = c.metrics.max_size.map(|s| s.0);
    cfg.out_of_order_window = c.metrics.out_of_order_window.0;
    let db = tokio::task::spawn_blocking(move || Tsdb::open(cfg))
        .await
        .context("metrics store start-up task failed")?
        .with_context(|| format!("cannot open the metrics store in {}", dir.display()))?;
    let db = Arc::new(db);
    register_self_metrics(&db);
    let metadata = Arc::new(MetadataRegistry::new());
    let sink = Arc::new(TsdbSink {
        db: db.clone(),
        metadata: metadata.clone(),
    });
    Ok(Metrics { db, metadata, sink })
}

/// Where the scrape configuration comes from, kept to re-read it on reload.
pub struct ScrapeFiles {
    /// `--prometheus-config` / `[metrics] prometheus_config`.
    prometheus: Option<PathBuf>,
    /// The lookout.toml holding the `[scrape]` section, if any.
    lookout: Option<PathBuf>,
    /// Lookout's own HTTP address, for the self-scrape job.
    self_addr: String,
}

impl ScrapeFiles {
    pub fn new(settings: &Settings, http: std::net::SocketAddr) -> ScrapeFiles {
        ScrapeFiles {
            prometheus: settings.prometheus_config.clone(),
            lookout: settings.config_file.clone(),
            self_addr: crate::lifecycle::endpoint_url(http)
                .trim_start_matches("http://")
                .to_string(),
        }
    }

    /// The configuration from `prometheus.yml` (if any) and `[scrape]`, plus the
    /// self-scrape job unless `[scrape] self_scrape = false`.
    fn build(
        &self,
        toml: &ingest::scrape::TomlScrapeConfig,
    ) -> Result<ingest::scrape::ScrapeConfig, String> {
        let from_toml = toml.to_config().map_err(|e| match &self.lookout {
            Some(f) => format!("{}: [scrape]: {e}", f.display()),
            None => format!("[scrape]: {e}"),
        })?;
        let mut cfg = match &self.prometheus {
            Some(p) => {
                let mut cfg = ingest::scrape::ScrapeConfig::load_prometheus_file(p)
                    .map_err(|e| e.to_string())?;
                cfg.extend(from_toml).map_err(|e| e.to_string())?;
                cfg
            }
            None => from_toml,
        };
        if toml.self_scrape_enabled() {
            cfg.ensure_self_scrape(&self.self_addr);
        }
        toml.apply_defaults(&mut cfg);
        for w in &cfg.warnings {
            tracing::warn!("scrape configuration: {w}");
        }
        Ok(cfg)
    }

    /// Re-reads both files.
    fn reread(&self) -> Result<ingest::scrape::ScrapeConfig, String> {
        let config = crate::config::load(self.lookout.as_deref()).map_err(|e| format!("{e:#}"))?;
        self.build(&config.scrape)
    }
}

/// The running scrape manager and how to reload it.
pub struct Scraping {
    pub manager: Arc<ingest::scrape::ScrapeManager>,
    files: ScrapeFiles,
}

/// Starts scraping by the configured files. A configuration error stops start-up, as in
/// Prometheus (a broken file at reload only keeps the old configuration).
pub fn start_scraping(
    settings: &Settings,
    http: std::net::SocketAddr,
    sink: Arc<dyn MetricsSink>,
) -> anyhow::Result<Arc<Scraping>> {
    let files = ScrapeFiles::new(settings, http);
    let cfg = files
        .build(&settings.config.scrape)
        .map_err(|e| anyhow::anyhow!("invalid scrape configuration: {e}"))?;
    tracing::info!(jobs = cfg.jobs.len(), "scraping");
    let manager = Arc::new(ingest::scrape::ScrapeManager::start(cfg, sink));
    Ok(Arc::new(Scraping { manager, files }))
}

impl Scraping {
    /// Re-reads the configuration and applies it; on error the old one stays.
    pub async fn reload(&self) -> Result<(), String> {
        match self.files.reread() {
            Ok(cfg) => {
                self.manager.apply(cfg).await;
                tracing::info!("scrape configuration reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "scrape configuration reload failed; keeping the running one");
                Err(e)
            }
        }
    }
}

/// One reload of everything configuration files drive: the scrape configuration and the
/// rules (with their Alertmanagers). Each part keeps its running configuration when its new
/// one is broken; the answer names every failure.
pub struct ReloadAll {
    pub scraping: Arc<Scraping>,
    pub rules: Arc<crate::rule_engine::Rules>,
}

impl ReloadAll {
    async fn run(&self) -> Result<(), String> {
        let scrape = self.scraping.reload().await;
        let rules = self.rules.reload().await;
        match (scrape, rules) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }
}

impl api::prometheus::Reload for ReloadAll {
    fn reload(&self) -> ingest::BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run())
    }
}

/// Reloads the configuration on every SIGHUP until `stop` flips.
pub fn spawn_sighup_reload(
    reload: Arc<ReloadAll>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload instead");
            return;
        };
        let stopped = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = reload.run().await; }
                _ = &mut stopped => return,
            }
        }
    })
}

/// The Prometheus API router (`/api/v1/...`, `/federate`, `/-/reload`).
pub fn api_router(settings: &Settings, m: &Metrics, reload: &Arc<ReloadAll>) -> axum::Router {
    let build = api::prometheus::PromBuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: option_env!("LOOKOUT_GIT_REVISION")
            .unwrap_or("")
            .to_string(),
        branch: String::new(),
        build_user: String::new(),
        build_date: String::new(),
        go_version: String::new(),
    };
    let limits = api::prometheus::PromLimits {
        max_write_bytes: settings.config.metrics.max_write_size.0 as usize,
        ..Default::default()
    };
    let scrape = api::prometheus::ScrapeApi {
        manager: reload.scraping.manager.clone(),
        reload: reload.clone(),
    };
    let rules = api::prometheus::RulesApi {
        manager: reload.rules.manager.clone(),
        notifier: Some(reload.rules.notifier.clone()),
    };
    api::prometheus::router(
        api::prometheus::PromState::new(
            m.db.clone(),
            m.sink.clone(),
            m.metadata.clone(),
            build,
            limits,
        )
        .with_scrape(scrape)
        .with_rules(rules),
    )
}

/// Runs tsdb maintenance at once and then every minute until `stop` flips. The first run
/// matters after a restart: a head replayed from a long WAL is cut into blocks (and its
/// memory freed) right away instead of a minute later.
pub fn spawn_maintenance(
    db: Arc<Tsdb>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            match db.maintain().await {
                Ok(r) => {
                    if r != tsdb::MaintenanceReport::default() {
                        tracing::info!(?r, "metrics store maintenance");
                    }
                    MAINTENANCE.record(&r);
                }
                Err(e) => {
                    MAINTENANCE.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "metrics store maintenance failed")
                }
            }
        }
    })
}

/// Syncs the WAL before exit (the head is rebuilt from it at the next start).
pub async fn close(db: &Tsdb) -> anyhow::Result<()> {
    db.sync()
        .await
        .context("cannot sync the metrics write-ahead log at shutdown")
}

/// Adapts the tsdb to the receivers' sink trait.
struct TsdbSink {
    db: Arc<Tsdb>,
    metadata: Arc<MetadataRegistry>,
}

fn outcome(r: AppendReport) -> AppendOutcome {
    AppendOutcome {
        appended: r.appended + r.duplicates_ignored,
        out_of_order: r.out_of_order,
        duplicate_timestamp: r.duplicate_timestamp,
        out_of_bounds: r.out_of_bounds,
        first_error: r.first_error().map(|e| e.to_string()),
    }
}

fn append_error(e: TsdbError) -> AppendError {
    match e {
        TsdbError::EmptyLabels | TsdbError::BatchTooLarge { .. } | TsdbError::Label(_) => {
            AppendError::Invalid(e.to_string())
        }
        other => {
            tracing::error!(error = %other, "metrics store write failed");
            AppendError::Sink(ingest::SinkError::Unavailable(other.to_string()))
        }
    }
}

impl MetricsSink for TsdbSink {
    fn append(
        &self,
        samples: Vec<Sample>,
    ) -> ingest::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(async move {
            self.db
                .append(samples)
                .await
                .map(outcome)
                .map_err(append_error)
        })
    }

    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> ingest::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(async move {
            self.db
                .append_all_or_nothing(samples)
                .await
                .map(outcome)
                .map_err(append_error)
        })
    }

    fn append_with_histograms(
        &self,
        samples: Vec<Sample>,
        histograms: Vec<ingest::HistogramSample>,
        all_or_nothing: bool,
    ) -> ingest::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(async move {
            let mut batch = Vec::with_capacity(samples.len() + histograms.len());
            batch.extend(
                samples
                    .into_iter()
                    .map(|(l, t, v)| (l, t, tsdb::SampleValue::Float(v))),
            );
            batch.extend(
                histograms
                    .into_iter()
                    .map(|(l, t, h)| (l, t, tsdb::SampleValue::Histogram(h))),
            );
            self.db
                .append_values(batch, all_or_nothing)
                .await
                .map(outcome)
                .map_err(append_error)
        })
    }

    fn record_metadata(&self, metadata: Vec<(String, MetricMetadata)>) {
        self.metadata.record(metadata);
    }
}

fn register_self_metrics(db: &Arc<Tsdb>) {
    let r = selfmon::global();
    let d = Arc::downgrade(db);
    let stat = move |f: fn(&Tsdb) -> f64| {
        let d = d.clone();
        move || d.upgrade().map(|db| f(&db)).unwrap_or(0.0)
    };
    r.counter_fn(
        "lookout_wal_written_bytes_total",
        "Bytes appended to the write-ahead log.",
        &[("signal", "metrics")],
        stat(|db| db.wal_stats().bytes_written as f64),
    );
    r.counter_fn(
        "lookout_wal_fsyncs_total",
        "fsync calls made by the write-ahead log.",
        &[("signal", "metrics")],
        stat(|db| db.wal_stats().fsyncs as f64),
    );
    r.gauge_fn(
        "lookout_wal_size_bytes",
        "Bytes of write-ahead log segments on disk.",
        &[("signal", "metrics")],
        stat(|db| db.wal_stats().bytes_on_disk as f64),
    );
    r.gauge_fn(
        "lookout_store_head_items",
        "Items held in the in-memory head.",
        &[("signal", "metrics")],
        stat(|db| db.stats().head_series as f64),
    );
    r.gauge_fn(
        "lookout_store_blocks",
        "Immutable blocks on disk.",
        &[("signal", "metrics")],
        stat(|db| db.blocks().len() as f64),
    );
    r.gauge_fn(
        "lookout_store_size_bytes",
        "Bytes of blocks on disk.",
        &[("signal", "metrics")],
        stat(|db| db.blocks().iter().map(|b| b.3).sum::<u64>() as f64),
    );
    r.counter_fn(
        "lookout_tsdb_head_samples_appended_total",
        "Samples appended to the metrics head since start (WAL replay included).",
        &[],
        stat(|db| db.stats().head_samples as f64),
    );
    let counter = |c: &'static AtomicU64| move || c.load(Ordering::Relaxed) as f64;
    r.counter_fn(
        "lookout_tsdb_maintenance_runs_total",
        "Completed maintenance passes of the metrics store (block cuts, compaction, retention).",
        &[],
        counter(&MAINTENANCE.runs),
    );
    r.counter_fn(
        "lookout_tsdb_maintenance_failures_total",
        "Maintenance passes of the metrics store that failed (see the log).",
        &[],
        counter(&MAINTENANCE.failures),
    );
    r.counter_fn(
        "lookout_tsdb_blocks_written_total",
        "Blocks cut from the metrics head.",
        &[],
        counter(&MAINTENANCE.blocks_written),
    );
    r.counter_fn(
        "lookout_tsdb_blocks_compacted_total",
        "Metrics blocks merged away into larger ones.",
        &[],
        counter(&MAINTENANCE.blocks_compacted),
    );
    r.counter_fn(
        "lookout_tsdb_blocks_deleted_total",
        "Metrics blocks deleted by retention (age or size).",
        &[],
        counter(&MAINTENANCE.blocks_deleted),
    );
    r.counter_fn(
        "lookout_tsdb_rejected_samples_total",
        "Samples refused by the metrics store (out of order, out of bounds, duplicate timestamp).",
        &[],
        stat(|db| db.stats().rejected_samples as f64),
    );
    r.counter_fn(
        "lookout_tsdb_head_histogram_samples_appended_total",
        "Native histogram samples appended to the metrics head since start (WAL replay included; also in lookout_tsdb_head_samples_appended_total).",
        &[],
        stat(|db| db.stats().head_histogram_samples as f64),
    );
    r.counter_fn(
        "lookout_tsdb_rejected_histogram_samples_total",
        "Native histogram samples refused by the metrics store (also in lookout_tsdb_rejected_samples_total).",
        &[],
        stat(|db| db.stats().rejected_histogram_samples as f64),
    );
}
