//! Delivery of alerts to Alertmanager: Prometheus's notifier.
//!
//! [`Alert`] is what the rules engine hands over: Prometheus's `notifier.Alert`, the body of
//! Alertmanager's `POST /api/v2/alerts`. The engine calls [`AlertSender::send`], which the
//! [`Notifier`] implements with a bounded queue and one send loop.
//!
//! - [`config`]: the `alerting` section of `prometheus.yml` and `lookout.toml`'s
//!   `[alerting]` URLs into one [`NotifierConfig`].
//! - [`wire`]: the JSON body, key for key as Prometheus writes it.
//! - `client`: the POST, over the scrape side's hyper/rustls stack and TLS settings.
//! - `manager`: the queue, batches, Alertmanager discovery, self-metrics, shutdown.
//!
//! How the binary uses it:
//!
//! ```ignore
//! let mut cfg = NotifierConfig::load_prometheus_file(path)?; // or toml.to_config()?
//! cfg.extend(toml_alerting.to_config()?);                   // both, if both are given
//! for w in &cfg.warnings { tracing::warn!("{w}") }
//! let notifier = Notifier::new(cfg);
//! notifier.start();                                         // inside the tokio runtime
//! engine.set_sender(Arc::new(notifier.clone()));            // AlertSender
//! notifier.apply(&reloaded_cfg);                            // SIGHUP, POST /-/reload
//! let snapshot = notifier.alertmanagers();                  // GET /api/v1/alertmanagers
//! notifier.shutdown().await;                                // drains the queue
//! ```

use model::labels::Labels;

mod client;
pub mod config;
mod manager;
pub mod wire;

pub use config::{
    alertmanager_from_url, AlertmanagerConfig, ConfigError, NotifierConfig, TomlAlertingConfig,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_BATCH_SIZE, DEFAULT_QUEUE_CAPACITY, DEFAULT_TIMEOUT,
};
pub use manager::{discover, AlertmanagersSnapshot, Notifier};

/// One alert as Alertmanager receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The alert's identity: the rule's output labels, `alertname`, and the external labels.
    pub labels: Labels,
    /// Expanded annotations, sorted by name.
    pub annotations: Vec<(String, String)>,
    /// When the alert became active (milliseconds since the epoch).
    pub starts_at_ms: i64,
    /// When it resolved, or, while it fires, how long the alert stays valid without a resend
    /// (Prometheus's `ValidUntil`, four resend intervals ahead).
    pub ends_at_ms: i64,
    /// A link back to the expression in Lookout's UI.
    pub generator_url: String,
}

/// Where the rules engine sends alerts; implemented by the notifier's queue. Never blocks:
/// a full queue drops the oldest alerts and counts them.
pub trait AlertSender: Send + Sync {
    fn send(&self, alerts: Vec<Alert>);
}
