//! Delivery of alerts to Alertmanager.
//!
//! [`Alert`] is what the rules engine hands over: Prometheus's `notifier.Alert`, the body of
//! Alertmanager's `POST /api/v2/alerts`.

use model::labels::Labels;

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
