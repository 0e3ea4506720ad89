//! The server's rule scheduler (Prometheus's `rules/manager.go` and `Group.run`): one tokio
//! task per group, evaluating at the group's slots ([`Group::eval_timestamp`]) on a blocking
//! thread, writing through the tsdb, sending alerts through the notifier, and publishing a
//! copy of the group after each evaluation for the API.
//!
//! - A group is evaluated by its own task only, so never twice at once; an evaluation that
//!   overruns its interval skips the slots it missed and counts them
//!   (`prometheus_rule_group_iterations_missed_total`).
//! - Groups loaded at start restore their alerts' `for` state after their second
//!   evaluation, as Prometheus does.
//! - [`RuleManager::update`] (reload) stops every task after its running evaluation, hands
//!   the old groups and the new ones to [`crate::group::reload`] (unchanged groups keep
//!   their state, changed ones take over their predecessors'), restarts the tasks at their
//!   next slot, and marks the series of removed groups stale two of their intervals later.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::labels::Labels;
use parking_lot::RwLock;
use selfmon::{Counter, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tsdb::Tsdb;

use crate::group::{
    reload, write_stale_markers, Group, DEFAULT_FOR_GRACE_PERIOD, DEFAULT_OUTAGE_TOLERANCE,
    DEFAULT_RESEND_DELAY,
};
use crate::notifier::AlertSender;
use crate::rule::EvalContext;
use crate::writer::TsdbWriter;

/// What every group's evaluation shares besides the stores.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// `global.external_labels`.
    pub external_labels: Labels,
    /// Base of alerts' generator links and `$externalURL`.
    pub external_url: String,
    /// Prometheus's `--rules.alert.resend-delay`.
    pub resend_delay: Duration,
    /// Prometheus's `--rules.alert.for-outage-tolerance`.
    pub outage_tolerance: Duration,
    /// Prometheus's `--rules.alert.for-grace-period`.
    pub grace_period: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            external_labels: Labels::default(),
            external_url: String::new(),
            resend_delay: DEFAULT_RESEND_DELAY,
            outage_tolerance: DEFAULT_OUTAGE_TOLERANCE,
            grace_period: DEFAULT_FOR_GRACE_PERIOD,
        }
    }
}

/// Per-group self-metrics; gauges read these atomics at scrape time.
#[derive(Default)]
struct GroupStats {
    last_eval_seconds: AtomicU64,
    last_duration_seconds: AtomicU64,
    interval_seconds: AtomicU64,
    rules: AtomicU64,
    last_samples: AtomicU64,
}

fn store_f64(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Relaxed);
}

fn load_f64(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

struct GroupMetrics {
    evaluations: Counter,
    failures: Counter,
    iterations: Counter,
    missed: Counter,
    stats: Arc<GroupStats>,
}

impl GroupMetrics {
    /// Prometheus's per-group series, labeled `rule_group="<file>;<name>"`.
    fn register(registry: &'static Registry, g: &Group) -> GroupMetrics {
        let key = format!("{};{}", g.file(), g.name());
        let l: &[(&str, &str)] = &[("rule_group", key.as_str())];
        let stats = Arc::new(GroupStats::default());
        store_f64(&stats.interval_seconds, g.interval().as_secs_f64());
        stats.rules.store(g.rules().len() as u64, Ordering::Relaxed);
        let gauge = |name: &str, help: &str, f: fn(&GroupStats) -> f64| {
            let w = Arc::downgrade(&stats);
            registry.gauge_fn(name, help, l, move || w.upgrade().map_or(0.0, |s| f(&s)));
        };
        gauge(
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds.",
            |s| load_f64(&s.last_eval_seconds),
        );
        gauge(
            "prometheus_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation.",
            |s| load_f64(&s.last_duration_seconds),
        );
        gauge(
            "prometheus_rule_group_interval_seconds",
            "The interval of a rule group.",
            |s| load_f64(&s.interval_seconds),
        );
        gauge("prometheus_rule_group_rules", "The number of rules.", |s| {
            s.rules.load(Ordering::Relaxed) as f64
        });
        gauge(
            "prometheus_rule_group_last_evaluation_samples",
            "The number of samples returned during the last rule group evaluation.",
            |s| s.last_samples.load(Ordering::Relaxed) as f64,
        );
        GroupMetrics {
            evaluations: registry.counter(
                "prometheus_rule_evaluations_total",
                "The total number of rule evaluations.",
                l,
            ),
            failures: registry.counter(
                "prometheus_rule_evaluation_failures_total",
                "The total number of rule evaluation failures.",
                l,
            ),
            iterations: registry.counter(
                "prometheus_rule_group_iterations_total",
                "The total number of scheduled rule group evaluations, whether executed or missed.",
                l,
            ),
            missed: registry.counter(
                "prometheus_rule_group_iterations_missed_total",
                "The total number of rule group evaluations missed due to slow rule group evaluation.",
                l,
            ),
            stats,
        }
    }
}

/// What the group tasks share.
struct Shared {
    db: Arc<Tsdb>,
    engine: Arc<promql::Engine>,
    sender: Option<Arc<dyn AlertSender>>,
    options: RwLock<Arc<ManagerOptions>>,
    cancel: Arc<AtomicBool>,
    registry: &'static Registry,
}

/// A group's latest evaluated state, as the API shows it.
pub type GroupView = Arc<RwLock<Arc<Group>>>;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<Group>>,
}

/// The rules engine of a running server. Cheap to share behind an `Arc`.
pub struct RuleManager {
    shared: Arc<Shared>,
    /// The running groups; the async lock also serializes reloads.
    running: tokio::sync::Mutex<Vec<Running>>,
    /// What the API reads: the groups' views in configuration order.
    views: RwLock<Vec<GroupView>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RuleManager {
    /// A manager with no groups, evaluating over `db` with `engine` and sending alerts to
    /// `sender`. Self-metrics go to [`selfmon::global`].
    pub fn new(
        db: Arc<Tsdb>,
        engine: Arc<promql::Engine>,
        sender: Option<Arc<dyn AlertSender>>,
        options: ManagerOptions,
    ) -> RuleManager {
        RuleManager {
            shared: Arc::new(Shared {
                db,
                engine,
                sender,
                options: RwLock::new(Arc::new(options)),
                cancel: Arc::new(AtomicBool::new(false)),
                registry: selfmon::global(),
            }),
            running: tokio::sync::Mutex::new(Vec::new()),
            views: RwLock::new(Vec::new()),
        }
    }

    /// The groups as last evaluated, in configuration order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.views.read().iter().map(|v| v.read().clone()).collect()
    }

    /// Runs `groups` from now on (start-up, with groups built with `should_restore`, or a
    /// reload, with groups built without): see the module doc.
    pub async fn update(&self, groups: Vec<Group>, options: ManagerOptions) {
        let mut running = self.running.lock().await;
        *self.shared.options.write() = Arc::new(options);
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
        let mut old = Vec::with_capacity(running.len());
        for r in running.drain(..) {
            match r.task.await {
                Ok(Some(g)) => old.push(g),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "a rule group task failed"),
            }
        }
        let reloaded = reload(old, groups);
        for g in reloaded.removed {
            self.spawn_stale_markers(g);
        }
        let mut views = Vec::with_capacity(reloaded.groups.len());
        for g in reloaded.groups {
            let view: GroupView = Arc::new(RwLock::new(Arc::new(g.clone())));
            let (stop, stop_rx) = watch::channel(false);
            let metrics = GroupMetrics::register(self.shared.registry, &g);
            let task = tokio::spawn(run_group(
                self.shared.clone(),
                g,
                view.clone(),
                stop_rx,
                metrics,
            ));
            views.push(view);
            running.push(Running { stop, task });
        }
        *self.views.write() = views;
    }

    /// Stops every group after its running evaluation (queries in flight are canceled).
    pub async fn shutdown(&self) {
        self.shared.cancel.store(true, Ordering::SeqCst);
        let mut running = self.running.lock().await;
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
        for r in running.drain(..) {
            let _ = r.task.await;
        }
    }

    /// Marks a removed group's series stale two of its intervals from now, so a rule that
    /// moved to another group writes them first (Prometheus does the same).
    fn spawn_stale_markers(&self, g: Group) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(g.interval() * 2).await;
            let series = g.written_series();
            if series.is_empty() {
                return;
            }
            let handle = tokio::runtime::Handle::current();
            let res = tokio::task::spawn_blocking(move || {
                let mut w = TsdbWriter::new(&shared.db, handle);
                write_stale_markers(&mut w, series, now_ms())
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::warn!(group = %g.name(), error = %e, "writing staleness markers of a removed rule group failed");
            }
        });
    }
}

/// One group's loop: wait for the slot, evaluate, publish, repeat until stopped. Returns
/// the group (for a reload to carry its state over), `None` if an evaluation panicked.
async fn run_group(
    shared: Arc<Shared>,
    mut group: Group,
    view: GroupView,
    mut stop: watch::Receiver<bool>,
    metrics: GroupMetrics,
) -> Option<Group> {
    let interval = i64::try_from(group.interval().as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = now_ms();
    // Prometheus waits for the group's next slot; a group resumed after a reload goes on
    // from the slot after its last evaluation (at once, if that has passed).
    let mut ts = match group.last_eval_timestamp_ms() {
        Some(last) => (last + interval).max(group.eval_timestamp(now)),
        None => group.eval_timestamp(now) + interval,
    };
    let mut needs_restore = group.alerting_rules().iter().any(|r| !r.restored());
    let mut evaluations = 0u32;
    loop {
        let wait = ts - now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.wait_for(|v| *v) => return Some(group),
            }
        }
        if *stop.borrow() {
            return Some(group);
        }
        evaluations += 1;
        let restore = needs_restore && evaluations >= 2;
        let s = shared.clone();
        let handle = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let options = s.options.read().clone();
            let ctx = EvalContext {
                engine: &s.engine,
                querier: &*s.db,
                external_labels: &options.external_labels,
                external_url: &options.external_url,
                sender: s.sender.as_deref(),
                resend_delay: options.resend_delay,
                cancel: Some(&s.cancel),
            };
            let mut w = TsdbWriter::new(&s.db, handle);
            let summary = group.eval(&ctx, ts, &mut w);
            if restore {
                group.restore_for_state(
                    &*s.db,
                    now_ms(),
                    options.outage_tolerance,
                    options.grace_period,
                );
            }
            (group, summary)
        })
        .await;
        let (g, summary) = match done {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "a rule group's evaluation panicked; the group stops until the next reload");
                return None;
            }
        };
        group = g;
        if restore {
            needs_restore = false;
        }
        metrics.evaluations.add(group.rules().len() as u64);
        metrics.failures.add(summary.failed_rules as u64);
        let st = &metrics.stats;
        store_f64(&st.last_eval_seconds, ts as f64 / 1000.0);
        store_f64(
            &st.last_duration_seconds,
            group.evaluation_time().as_secs_f64(),
        );
        st.last_samples
            .store(summary.samples as u64, Ordering::Relaxed);
        *view.write() = Arc::new(group.clone());
        // Slots that passed during the evaluation are skipped and counted.
        let missed = ((now_ms() - ts) / interval - 1).max(0);
        metrics.iterations.add(missed as u64 + 1);
        metrics.missed.add(missed as u64);
        ts += (missed + 1) * interval;
    }
}
