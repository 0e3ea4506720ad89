//! How the metrics parts are connected: the tsdb opened from config, the receivers
//! (remote_write, and the scrape manager and OTLP metrics as they land) writing into it
//! through ingest's `MetricsSink`, the Prometheus API reading it, its maintenance (block
//! cuts, compaction, retention) and its self-metrics.
//!
//! The trace side of the same wiring lives in `wiring.rs`.

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

/// The Prometheus API router (`/api/v1/...`, `/federate`).
pub fn api_router(settings: &Settings, m: &Metrics) -> axum::Router {
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
    api::prometheus::router(api::prometheus::PromState::new(
        m.db.clone(),
        m.sink.clone(),
        m.metadata.clone(),
        build,
        limits,
    ))
}

/// Runs tsdb maintenance every minute until `stop` flips.
pub fn spawn_maintenance(
    db: Arc<Tsdb>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            match db.maintain().await {
                Ok(r) if r != tsdb::MaintenanceReport::default() => {
                    tracing::info!(?r, "metrics store maintenance")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "metrics store maintenance failed"),
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
    r.counter_fn(
        "lookout_tsdb_rejected_samples_total",
        "Samples refused by the metrics store (out of order, out of bounds, duplicate timestamp).",
        &[],
        stat(|db| db.stats().rejected_samples as f64),
    );
}
