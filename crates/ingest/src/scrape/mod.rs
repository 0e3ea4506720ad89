//! The Prometheus scrape manager: pulls `/metrics` from targets into a [`MetricsSink`].
//!
//! - [`config`]: `prometheus.yml` and the `[scrape]` TOML section into one [`ScrapeConfig`].
//! - [`relabel`]: `relabel_configs` / `metric_relabel_configs`, every action.
//! - [`target`]: discovered targets into scrape targets (Prometheus's `PopulateLabels`).
//! - [`parse`]: text format 0.0.4 and OpenMetrics 1.0 parsers (owned: the hot path).
//! - [`proto`]: the protobuf exposition format (delimited `MetricFamily` messages), the one
//!   that carries native histograms.
//! - [`discovery`]: `static_configs`, `file_sd_configs` and `http_sd_configs`.
//! - [`proxy`]: which requests go through an HTTP proxy, and the connector that does it.
//! - [`scrape_loop`]: one loop per target: HTTP, parsing, labels, staleness, `up` & co.
//! - [`manager`]: the [`ScrapeManager`] that runs the loops, reloads and reports targets.
//!
//! How the binary uses it:
//!
//! ```ignore
//! let mut cfg = ScrapeConfig::load_prometheus_file(path)?; // or toml_section.to_config()?
//! cfg.extend(toml_section.to_config()?)?;                  // both, if both are given
//! cfg.ensure_self_scrape("127.0.0.1:46686");               // unless [scrape] self_scrape = false
//! toml_section.apply_defaults(&mut cfg);                   // [scrape] sample_limit for all jobs
//! for w in &cfg.warnings { tracing::warn!("{w}") }
//! let manager = ScrapeManager::start(cfg, sink);           // inside the tokio runtime
//! manager.apply(reloaded_cfg).await;                       // SIGHUP, POST /-/reload
//! let snapshot = manager.targets().await;                  // GET /api/v1/targets
//! manager.shutdown().await;
//! ```
//!
//! Behaviour follows Prometheus 3.x wherever the scraped data can be observed (series
//! names and labels, synthetic series, staleness markers, `lastError` texts); differences
//! from Prometheus 2.x are named where they happen.
//!
//! [`MetricsSink`]: crate::metrics::MetricsSink

pub mod config;
pub mod discovery;
mod http;
pub mod manager;
pub mod parse;
pub mod proto;
pub mod proxy;
pub mod relabel;
pub mod scrape_loop;
pub mod target;

pub use config::{
    accept_header, self_scrape_job, ConfigError, GlobalConfig, JobConfig, SampleLimitFrom,
    ScrapeConfig, ScrapeProtocol, TomlScrapeConfig, TomlScrapeJob, DEFAULT_SAMPLE_LIMIT,
    DEFAULT_SCRAPE_PROTOCOLS, PROTO_FIRST_SCRAPE_PROTOCOLS, SELF_SCRAPE_JOB,
};
pub use http::{auth_header, chain, https_connector, rustls_config, HttpClient, RequestSettings};
pub use manager::{ActiveTarget, DroppedTarget, Health, ScrapeManager, TargetsSnapshot};

/// The staleness marker: a NaN with this bit pattern marks a series as gone (the same
/// value as `tsdb::STALE_NAN_BITS`; duplicated so receivers do not depend on storage).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}
