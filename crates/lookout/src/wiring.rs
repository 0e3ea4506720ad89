//! How the parts are connected: the trace store opened from config, the receivers writing
//! into it through ingest's sink trait, the query API reading it through `TraceReader`, the
//! periodic maintenance (head cuts, retention), and the self-metrics each part exposes.
//!
//! This is the only place that knows every part; each part knows only the traits it needs.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{watch, Notify};
use traces::{TraceStore, TraceStoreConfig};

use crate::serve::Settings;

/// How often the head is checked for cutting and retention is applied.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

/// Opens (and replays) the trace store under `<data-dir>/traces`, off the async executor.
pub async fn open_trace_store(settings: &Settings) -> anyhow::Result<Arc<TraceStore>> {
    let dir = settings.data_dir.join("traces");
    let c = &settings.config;
    let mut cfg = TraceStoreConfig::new(dir.clone());
    cfg.wal = c.wal.options();
    cfg.retention = c.traces.retention.0;
    cfg.max_bytes = c.traces.max_size.map(|s| s.0);
    cfg.head_max_spans = c.traces.head_max_spans;
    cfg.head_max_age = c.traces.head_max_age.0;
    let store = tokio::task::spawn_blocking(move || TraceStore::open(cfg))
        .await
        .context("trace store start-up task failed")?
        .with_context(|| format!("cannot open the trace store in {}", dir.display()))?;
    let store = Arc::new(store);
    register_store_metrics(&store);
    Ok(store)
}

fn register_store_metrics(store: &Arc<TraceStore>) {
    let r = selfmon::global();
    let s = Arc::downgrade(store);
    let stat = move |f: fn(&traces::TraceStoreStats) -> f64| {
        let s = s.clone();
        move || s.upgrade().map(|s| f(&s.stats())).unwrap_or(0.0)
    };
    r.counter_fn(
        "lookout_wal_written_bytes_total",
        "Bytes appended to the write-ahead log.",
        &[("signal", "traces")],
        stat(|st| st.wal.bytes_written as f64),
    );
    r.counter_fn(
        "lookout_wal_fsyncs_total",
        "fsync calls made by the write-ahead log.",
        &[("signal", "traces")],
        stat(|st| st.wal.fsyncs as f64),
    );
    r.gauge_fn(
        "lookout_wal_size_bytes",
        "Bytes of write-ahead log segments on disk.",
        &[("signal", "traces")],
        stat(|st| st.wal.bytes_on_disk as f64),
    );
    r.gauge_fn(
        "lookout_store_head_items",
        "Items held in the in-memory head.",
        &[("signal", "traces")],
        stat(|st| st.head_spans as f64),
    );
    r.gauge_fn(
        "lookout_store_blocks",
        "Immutable blocks on disk.",
        &[("signal", "traces")],
        stat(|st| st.blocks as f64),
    );
    r.gauge_fn(
        "lookout_store_block_items",
        "Items stored in blocks on disk.",
        &[("signal", "traces")],
        stat(|st| st.block_spans as f64),
    );
    r.gauge_fn(
        "lookout_store_size_bytes",
        "Bytes of blocks on disk.",
        &[("signal", "traces")],
        stat(|st| st.block_bytes as f64),
    );
}

/// Adapts the trace store to the receivers' sink trait.
struct StoreSink {
    store: Arc<TraceStore>,
    /// Wakes the maintenance task as soon as the head passes `head_max_spans`, so a fast
    /// sender cannot grow the head for a whole maintenance interval past its limit.
    head_full: Arc<Notify>,
}

impl StoreSink {
    fn after_write(&self) {
        if self.store.stats().head_spans >= self.store.config().head_max_spans as u64 {
            self.head_full.notify_one();
        }
    }
}

impl ingest::TraceSink for StoreSink {
    fn write(&self, spans: Vec<model::Span>, otlp: Option<bytes::Bytes>) -> ingest::SinkFuture<'_> {
        Box::pin(async move {
            let written = match otlp {
                Some(raw) => self.store.write_encoded(spans, Vec::from(raw)).await,
                None => self.store.write(spans).await,
            };
            written.map_err(store_error)?;
            self.after_write();
            Ok(())
        })
    }

    fn write_request(
        &self,
        traces: model::otlp::ValidTraces,
        otlp: Option<bytes::Bytes>,
    ) -> ingest::SinkFuture<'_> {
        Box::pin(async move {
            self.store
                .write_request(traces, otlp)
                .await
                .map_err(store_error)?;
            self.after_write();
            Ok(())
        })
    }
}

/// How long clients wait after the trace head was full: about what writing a block of a
/// million spans takes.
const HEAD_FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

fn store_error(e: traces::TraceError) -> ingest::SinkError {
    if let traces::TraceError::Overloaded { .. } = e {
        tracing::debug!(error = %e, "trace write refused");
        return ingest::SinkError::Overloaded {
            retry_after: HEAD_FULL_RETRY_AFTER,
        };
    }
    tracing::error!(error = %e, "trace store write failed");
    ingest::SinkError::Unavailable(e.to_string())
}

/// The OTLP receivers' shared state: spans into the trace store, metric points into
/// `metrics`. One state serves both OTLP ports and Prometheus's OTLP path, so they share
/// one memory budget.
pub fn otlp_state(
    settings: &Settings,
    store: Arc<TraceStore>,
    head_full: Arc<Notify>,
    metrics: Arc<dyn ingest::MetricsSink>,
) -> ingest::OtlpState {
    let cfg = ingest::OtlpConfig {
        max_body_bytes: settings.config.otlp.max_body_size.0 as usize,
        max_inflight_bytes: settings.config.otlp.max_inflight_size.0 as usize,
        ..Default::default()
    };
    ingest::OtlpState::new(cfg, Arc::new(StoreSink { store, head_full })).with_metrics_sink(metrics)
}

/// The HTTP API router (Jaeger APIs, health, `/metrics`).
pub fn api_router(store: Arc<TraceStore>, ready: Arc<AtomicBool>) -> axum::Router {
    let build = api::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    api::router(api::ApiState::new(store, ready, build))
}

/// Runs store maintenance every few seconds, and at once when the head is full, until
/// `stop` flips.
pub fn spawn_maintenance(
    store: Arc<TraceStore>,
    head_full: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = head_full.notified() => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            // The store moves block building and deletion onto blocking threads itself.
            if let Err(e) = store.maintain(SystemTime::now()).await {
                tracing::error!(error = %e, "trace store maintenance failed");
            }
        }
    })
}

/// Writes the head out and syncs the WAL before exit.
pub async fn close_trace_store(store: Arc<TraceStore>) -> anyhow::Result<()> {
    store
        .flush()
        .await
        .context("cannot write the trace head to disk at shutdown")?;
    Ok(())
}
