//! The notifier: Prometheus's notification manager (`notifier/manager.go`).
//!
//! [`AlertSender::send`] adds the external labels an alert lacks, runs
//! `alert_relabel_configs`, and appends to a bounded queue (full: the oldest alerts go and
//! are counted in `prometheus_notifications_dropped_total`); it never waits on the network.
//! One task takes batches of at most `max_batch_size` from the front and posts each to
//! every Alertmanager at once. A batch counts as delivered when, in every `alertmanagers`
//! entry that has Alertmanagers, at least one accepted it; otherwise its alerts are counted
//! as dropped. Nothing is retried: the rules engine resends firing alerts on its resend
//! interval, as Prometheus relies on. Alertmanagers are discovered from `static_configs`
//! when a configuration is applied, with `relabel_configs` run over `__address__`,
//! `__scheme__` and `__alerts_path__` as in Prometheus's `AlertmanagerFromGroup`.
//!
//! [`Notifier::shutdown`] stops taking new batches and drains the queue, bounded by
//! `drain_timeout`; what is left then is counted as dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use ingest::scrape::config::check_target_address;
use ingest::scrape::relabel::{process, LabelSet, RelabelConfig};
use model::labels::Labels;
use parking_lot::{Mutex, RwLock};
use selfmon::{Counter, Histogram, Registry};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client::AmClient;
use super::config::{AlertmanagerConfig, NotifierConfig};
use super::wire::encode_alerts;
use super::{Alert, AlertSender};

/// The Alertmanagers `/api/v1/alertmanagers` lists: URLs alerts are posted to, and those
/// `relabel_configs` dropped (with their URL before relabeling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertmanagersSnapshot {
    pub active: Vec<String>,
    pub dropped: Vec<String>,
}

/// One discovered Alertmanager and its counters.
struct Am {
    url: String,
    sent: Counter,
    errors: Counter,
    latency: Histogram,
}

/// One `alertmanagers` entry, its client and what it discovered.
struct AmSet {
    client: AmClient,
    alert_relabel_configs: Vec<RelabelConfig>,
    ams: Vec<Am>,
    dropped: Vec<String>,
}

/// What a configuration gives the sender; swapped whole on [`Notifier::apply`].
struct Routing {
    sets: Vec<AmSet>,
    alert_relabel_configs: Vec<RelabelConfig>,
    external_labels: BTreeMap<String, String>,
}

struct Inner {
    queue: Mutex<VecDeque<Alert>>,
    capacity: usize,
    max_batch: usize,
    drain_timeout: std::time::Duration,
    routing: RwLock<Arc<Routing>>,
    /// Wakes the send loop: something was queued.
    more: Notify,
    /// Wakes the send loop: shut down.
    stop: Notify,
    stopping: AtomicBool,
    dropped: Counter,
    registry: &'static Registry,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The alert notifier. Cheap to clone: clones share the queue and the send loop.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

const HELP_SENT: &str = "Total number of alerts sent.";
const HELP_ERRORS: &str = "Total number of sent alerts affected by errors.";
const HELP_LATENCY: &str = "Latency histogram for sending alert notifications.";

impl Notifier {
    /// A notifier for `cfg` with self-metrics in [`selfmon::global`]; its send loop runs
    /// from [`Notifier::start`]. Queued alerts wait until then.
    pub fn new(cfg: NotifierConfig) -> Notifier {
        Notifier::with_registry(cfg, selfmon::global())
    }

    /// Like [`Notifier::new`] with self-metrics in `registry` (tests use their own).
    pub fn with_registry(cfg: NotifierConfig, registry: &'static Registry) -> Notifier {
        let capacity = cfg.queue_capacity.max(1);
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            max_batch: cfg.max_batch_size.max(1),
            drain_timeout: cfg.drain_timeout,
            routing: RwLock::new(Arc::new(routing(&cfg, registry))),
            more: Notify::new(),
            stop: Notify::new(),
            stopping: AtomicBool::new(false),
            dropped: registry.counter(
                "prometheus_notifications_dropped_total",
                "Total number of alerts dropped due to errors when sending to Alertmanager.",
                &[],
            ),
            registry,
            task: Mutex::new(None),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        registry.gauge_fn(
            "prometheus_notifications_queue_length",
            "The number of alert notifications in the queue.",
            &[],
            move || weak.upgrade().map_or(0.0, |i| i.queue.lock().len() as f64),
        );
        registry.gauge_fn(
            "prometheus_notifications_queue_capacity",
            "The capacity of the alert notifications queue.",
            &[],
            move || capacity as f64,
        );
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        registry.gauge_fn(
            "prometheus_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active.",
            &[],
            move || {
                weak.upgrade().map_or(0.0, |i| {
                    i.routing
                        .read()
                        .sets
                        .iter()
                        .map(|s| s.ams.len())
                        .sum::<usize>() as f64
                })
            },
        );
        Notifier { inner }
    }

    /// Starts the send loop (inside a tokio runtime); a second call does nothing.
    pub fn start(&self) {
        let mut task = self.inner.task.lock();
        if task.is_none() && !self.inner.stopping.load(Ordering::SeqCst) {
            let inner = self.inner.clone();
            *task = Some(tokio::spawn(send_loop(inner)));
        }
    }

    /// Replaces where alerts go (a reloaded configuration). The queue, its capacity and the
    /// batch size stay as they were.
    pub fn apply(&self, cfg: &NotifierConfig) {
        let r = routing(cfg, self.inner.registry);
        *self.inner.routing.write() = Arc::new(r);
    }

    /// The Alertmanagers alerts go to and those relabeling dropped, in configuration
    /// order (`GET /api/v1/alertmanagers`).
    pub fn alertmanagers(&self) -> AlertmanagersSnapshot {
        let routing = self.inner.routing.read().clone();
        let mut snap = AlertmanagersSnapshot::default();
        for set in &routing.sets {
            snap.active.extend(set.ams.iter().map(|a| a.url.clone()));
            snap.dropped.extend(set.dropped.iter().cloned());
        }
        snap
    }

    /// Alerts waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.inner.queue.lock().len()
    }

    /// Stops the send loop after sending what is queued (for at most `drain_timeout`;
    /// the rest is dropped and counted). Alerts sent afterwards are dropped.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.stop.notify_one();
        let task = self.inner.task.lock().take();
        match task {
            Some(t) => {
                let _ = t.await;
            }
            // Never started: nothing could be sent, so what is queued is dropped.
            None => {
                let n = std::mem::take(&mut *self.inner.queue.lock()).len();
                self.inner.dropped.add(n as u64);
            }
        }
    }
}

impl AlertSender for Notifier {
    fn send(&self, alerts: Vec<Alert>) {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::SeqCst) {
            inner.dropped.add(alerts.len() as u64);
            return;
        }
        let routing = inner.routing.read().clone();
        let mut alerts = relabel_alerts(
            alerts,
            &routing.alert_relabel_configs,
            &routing.external_labels,
        );
        if alerts.is_empty() {
            return;
        }
        // A single batch larger than the whole queue keeps its newest alerts.
        if alerts.len() > inner.capacity {
            let d = alerts.len() - inner.capacity;
            alerts.drain(..d);
            tracing::warn!(
                num_dropped = d,
                "alert batch larger than the notification queue capacity, dropping alerts"
            );
            inner.dropped.add(d as u64);
        }
        {
            let mut queue = inner.queue.lock();
            let over = (queue.len() + alerts.len()).saturating_sub(inner.capacity);
            if over > 0 {
                queue.drain(..over);
                tracing::warn!(
                    num_dropped = over,
                    "alert notification queue full, dropping the oldest alerts"
                );
                inner.dropped.add(over as u64);
            }
            queue.extend(alerts);
        }
        inner.more.notify_one();
    }
}

/// Builds what `cfg` routes to: each entry's client and its discovered Alertmanagers.
fn routing(cfg: &NotifierConfig, registry: &Registry) -> Routing {
    let sets = cfg
        .alertmanagers
        .iter()
        .map(|am| {
            let (active, dropped) = discover(am);
            let ams = active
                .into_iter()
                .map(|url| Am {
                    sent: registry.counter(
                        "prometheus_notifications_sent_total",
                        HELP_SENT,
                        &[("alertmanager", &url)],
                    ),
                    errors: registry.counter(
                        "prometheus_notifications_errors_total",
                        HELP_ERRORS,
                        &[("alertmanager", &url)],
                    ),
                    latency: registry.histogram(
                        "prometheus_notifications_latency_histogram_seconds",
                        HELP_LATENCY,
                        &[("alertmanager", &url)],
                    ),
                    url,
                })
                .collect();
            AmSet {
                client: AmClient::new(&am.tls, am.auth.clone(), am.timeout),
                alert_relabel_configs: am.alert_relabel_configs.clone(),
                ams,
                dropped,
            }
        })
        .collect();
    Routing {
        sets,
        alert_relabel_configs: cfg.alert_relabel_configs.clone(),
        external_labels: cfg.external_labels.clone(),
    }
}

/// The URL Go's `url.URL{Scheme, Host, Path}.String()` gives an Alertmanager's labels.
fn am_url(labels: &LabelSet) -> String {
    let path = labels.get("__alerts_path__");
    let slash = if path.is_empty() || path.starts_with('/') {
        ""
    } else {
        "/"
    };
    format!(
        "{}://{}{slash}{path}",
        labels.get("__scheme__"),
        labels.get("__address__")
    )
}

/// Prometheus's `AlertmanagerFromGroup` over every static group: the URLs of the
/// Alertmanagers to post to (deduplicated) and of those relabeling dropped. A group
/// whose relabeled address is not one is skipped whole and logged, as in Prometheus.
pub fn discover(cfg: &AlertmanagerConfig) -> (Vec<String>, Vec<String>) {
    let mut active: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    let path = cfg.alerts_path();
    'groups: for group in &cfg.static_configs {
        let mut found = Vec::new();
        for target in &group.targets {
            let mut lb = LabelSet::new();
            lb.set("__address__".into(), target.clone());
            lb.set("__scheme__".into(), cfg.scheme.clone());
            lb.set("__alerts_path__".into(), path.clone());
            for (k, v) in &group.labels {
                if k != "__address__" {
                    lb.set(k.clone(), v.clone());
                }
            }
            let before = lb.clone();
            if !process(&mut lb, &cfg.relabel_configs) {
                dropped.push(am_url(&before));
                continue;
            }
            if let Err(e) = check_target_address(lb.get("__address__")) {
                tracing::error!(err = %e, "creating discovered Alertmanagers failed");
                continue 'groups;
            }
            found.push(am_url(&lb));
        }
        for url in found {
            if !active.contains(&url) {
                active.push(url);
            }
        }
    }
    (active, dropped)
}

/// Prometheus's `relabelAlerts`: external labels an alert lacks, then `rules`; an alert
/// a rule drops, or left without labels, is not sent.
fn relabel_alerts(
    alerts: Vec<Alert>,
    rules: &[RelabelConfig],
    external_labels: &BTreeMap<String, String>,
) -> Vec<Alert> {
    if rules.is_empty() && external_labels.is_empty() {
        return alerts;
    }
    alerts
        .into_iter()
        .filter_map(|mut a| {
            let mut lb = LabelSet::from_pairs(a.labels.iter().map(|l| (l.name, l.value)));
            for (k, v) in external_labels {
                if !lb.has(k) {
                    lb.set(k.clone(), v.clone());
                }
            }
            if !process(&mut lb, rules) || lb.is_empty() {
                return None;
            }
            match Labels::new(lb.iter()) {
                Ok(l) => {
                    a.labels = l;
                    Some(a)
                }
                Err(e) => {
                    tracing::warn!(err = %e, "alert relabeling left invalid labels, dropping the alert");
                    None
                }
            }
        })
        .collect()
}

/// Takes up to `max_batch` alerts from the front of the queue.
fn next_batch(inner: &Inner) -> Vec<Alert> {
    let mut queue = inner.queue.lock();
    let n = queue.len().min(inner.max_batch);
    queue.drain(..n).collect()
}

async fn send_loop(inner: Arc<Inner>) {
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        let batch = next_batch(&inner);
        if batch.is_empty() {
            tokio::select! {
                _ = inner.more.notified() => {}
                _ = inner.stop.notified() => {}
            }
            continue;
        }
        let len = batch.len();
        let send = send_one_batch(&inner, batch);
        tokio::pin!(send);
        tokio::select! {
            _ = &mut send => {}
            _ = inner.stop.notified() => {
                // Shut down while a batch is in flight: it gets the drain's time too.
                let deadline = tokio::time::Instant::now() + inner.drain_timeout;
                if tokio::time::timeout_at(deadline, send).await.is_err() {
                    give_up(&inner, len);
                } else {
                    drain(&inner, deadline).await;
                }
                return;
            }
        }
    }
    drain(&inner, tokio::time::Instant::now() + inner.drain_timeout).await;
}

/// Sends what is queued at shutdown until `deadline`.
async fn drain(inner: &Inner, deadline: tokio::time::Instant) {
    let n = inner.queue.lock().len();
    if n == 0 {
        return;
    }
    tracing::info!(count = n, "draining remaining alert notifications");
    loop {
        let batch = next_batch(inner);
        if batch.is_empty() {
            break;
        }
        let len = batch.len();
        if tokio::time::timeout_at(deadline, send_one_batch(inner, batch))
            .await
            .is_err()
        {
            give_up(inner, len);
            return;
        }
    }
    tracing::info!("remaining alert notifications drained");
}

/// The drain timeout passed: the batch in flight (`in_flight` alerts) and the queue are
/// dropped and counted.
fn give_up(inner: &Inner, in_flight: usize) {
    let left = std::mem::take(&mut *inner.queue.lock()).len();
    tracing::warn!(
        count = in_flight + left,
        "alert notifications still unsent when the drain timeout passed were dropped"
    );
    inner.dropped.add((in_flight + left) as u64);
}

async fn send_one_batch(inner: &Inner, batch: Vec<Alert>) {
    let len = batch.len();
    if !send_all(inner, batch).await {
        inner.dropped.add(len as u64);
    }
}

/// Posts `alerts` to every Alertmanager at once. True when every entry with
/// Alertmanagers (and alerts left after its relabeling) had one accept them.
async fn send_all(inner: &Inner, alerts: Vec<Alert>) -> bool {
    if alerts.is_empty() {
        return true;
    }
    let begin = Instant::now();
    let routing = inner.routing.read().clone();
    let mut shared: Option<Bytes> = None;
    let mut covered: Vec<Option<bool>> = vec![None; routing.sets.len()];
    let mut sends = tokio::task::JoinSet::new();
    for (i, set) in routing.sets.iter().enumerate() {
        if set.ams.is_empty() {
            continue;
        }
        let (payload, count) = if set.alert_relabel_configs.is_empty() {
            let body = shared
                .get_or_insert_with(|| Bytes::from(encode_alerts(&alerts)))
                .clone();
            (body, alerts.len())
        } else {
            let own = relabel_alerts(alerts.clone(), &set.alert_relabel_configs, &BTreeMap::new());
            if own.is_empty() {
                continue;
            }
            (Bytes::from(encode_alerts(&own)), own.len())
        };
        covered[i] = Some(false);
        for (j, am) in set.ams.iter().enumerate() {
            let client = set.client.clone();
            let url = am.url.clone();
            let payload = payload.clone();
            sends.spawn(async move {
                let r = client.post(&url, payload).await;
                (i, j, count, r)
            });
        }
    }
    while let Some(done) = sends.join_next().await {
        let Ok((i, j, count, result)) = done else {
            continue;
        };
        let am = &routing.sets[i].ams[j];
        match result {
            Ok(()) => covered[i] = Some(true),
            Err(e) => {
                tracing::error!(alertmanager = %am.url, count, err = %e, "error sending alerts");
                am.errors.add(count as u64);
            }
        }
        am.latency.observe(begin.elapsed());
        am.sent.add(count as u64);
    }
    covered.iter().all(|c| *c != Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::scrape::config::TargetGroup;
    use ingest::scrape::relabel::RawRelabelConfig;

    fn rule(
        source: &[&str],
        regex: &str,
        action: &str,
        target: &str,
        replacement: &str,
    ) -> RelabelConfig {
        RelabelConfig::new(RawRelabelConfig {
            source_labels: Some(source.iter().map(|s| s.to_string()).collect()),
            regex: Some(regex.into()),
            action: Some(action.into()),
            target_label: (!target.is_empty()).then(|| target.into()),
            replacement: (!replacement.is_empty()).then(|| replacement.into()),
            ..RawRelabelConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn discovery_builds_urls_and_lists_dropped() {
        let mut cfg = AlertmanagerConfig::new();
        cfg.path_prefix = "/prefix/".into();
        cfg.static_configs = vec![
            TargetGroup {
                targets: vec!["a:9093".into(), "b:9093".into(), "a:9093".into()],
                labels: BTreeMap::new(),
            },
            TargetGroup {
                targets: vec!["c:9093".into()],
                labels: BTreeMap::from([("__scheme__".to_string(), "https".to_string())]),
            },
        ];
        cfg.relabel_configs = vec![rule(&["__address__"], "b:.*", "drop", "", "")];
        let (active, dropped) = discover(&cfg);
        assert_eq!(
            active,
            vec![
                "http://a:9093/prefix/api/v2/alerts".to_string(),
                "https://c:9093/prefix/api/v2/alerts".to_string(),
            ]
        );
        assert_eq!(
            dropped,
            vec!["http://b:9093/prefix/api/v2/alerts".to_string()]
        );
    }

    #[test]
    fn relabeling_can_move_an_alertmanager() {
        let mut cfg = AlertmanagerConfig::new();
        cfg.static_configs = vec![TargetGroup {
            targets: vec!["http://am.example:9093".into(), "bad".into()],
            labels: BTreeMap::new(),
        }];
        cfg.relabel_configs = vec![
            rule(
                &["__address__"],
                "https?://(.*)",
                "replace",
                "__address__",
                "$1",
            ),
            rule(
                &["__address__"],
                "(.*)",
                "replace",
                "__alerts_path__",
                "/x/api/v2/alerts",
            ),
        ];
        let (active, _) = discover(&cfg);
        assert_eq!(
            active,
            vec![
                "http://am.example:9093/x/api/v2/alerts".to_string(),
                "http://bad/x/api/v2/alerts".to_string()
            ]
        );
        // An address relabeling leaves as a URL fails its whole group, as in Prometheus.
        cfg.relabel_configs.clear();
        cfg.relabel_configs.push(rule(
            &["__address__"],
            "(.*)",
            "replace",
            "__scheme__",
            "http",
        ));
        let (active, dropped) = discover(&cfg);
        assert!(active.is_empty() && dropped.is_empty(), "{active:?}");
    }

    #[test]
    fn alert_relabeling_adds_external_labels_and_drops() {
        let alert = |labels: &[(&str, &str)]| Alert {
            labels: Labels::new(labels.iter().copied()).unwrap(),
            annotations: vec![],
            starts_at_ms: 0,
            ends_at_ms: 0,
            generator_url: String::new(),
        };
        let ext = BTreeMap::from([
            ("cluster".to_string(), "eu".to_string()),
            ("alertname".to_string(), "ignored".to_string()),
        ]);
        let rules = vec![
            rule(&["severity"], "debug", "drop", "", ""),
            RelabelConfig::new(RawRelabelConfig {
                regex: Some("team".into()),
                action: Some("labeldrop".into()),
                ..RawRelabelConfig::default()
            })
            .unwrap(),
        ];
        let out = relabel_alerts(
            vec![
                alert(&[("alertname", "A"), ("team", "x")]),
                alert(&[("alertname", "B"), ("severity", "debug")]),
            ],
            &rules,
            &ext,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels,
            Labels::new([("alertname", "A"), ("cluster", "eu")]).unwrap()
        );
        // Dropping every label drops the alert.
        let all = vec![RelabelConfig::new(RawRelabelConfig {
            regex: Some(".*".into()),
            action: Some("labeldrop".into()),
            ..RawRelabelConfig::default()
        })
        .unwrap()];
        assert!(
            relabel_alerts(vec![alert(&[("alertname", "A")])], &all, &BTreeMap::new()).is_empty()
        );
    }
}
