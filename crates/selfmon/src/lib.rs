//! Lookout's own metrics, served at `GET /metrics` in Prometheus text format 0.0.4.
//!
//! A deliberately small registry instead of a metrics crate: hot paths hold a cloned handle
//! (an `Arc` around atomics) and pay one relaxed atomic add per batch; values owned by other
//! parts (WAL bytes, store sizes) are read by callbacks only when `/metrics` is scraped.
//! Families are rendered in registration order with their `# HELP` and `# TYPE` lines once.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of the query and request duration histograms.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct HistogramInner {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds, so it can be an integer atomic.
    sum_nanos: AtomicU64,
}

/// A duration histogram with [`DURATION_BUCKETS`].
#[derive(Clone, Debug, Default)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

type GaugeFn = Box<dyn Fn() -> f64 + Send + Sync>;

enum Value {
    Counter(Counter),
    Gauge(GaugeFn),
    Histogram(Histogram),
}

struct Series {
    labels: Vec<(String, String)>,
    value: Value,
}

struct Family {
    name: String,
    help: String,
    kind: &'static str,
    series: Vec<Series>,
}

/// The set of metrics `/metrics` shows.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Family>>,
}

/// The process-wide registry.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

impl Registry {
    fn add(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
        value: Value,
    ) {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut families = self.families.lock();
        let family = match families.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut families[i],
            None => {
                families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    series: Vec::new(),
                });
                families.last_mut().expect("just pushed")
            }
        };
        // Re-registering the same series replaces it, so a restarted component (tests start
        // several servers in one process) reports its own values rather than a stale copy.
        family.series.retain(|s| s.labels != labels);
        family.series.push(Series { labels, value });
    }

    /// Returns the counter `name{labels}`, creating it at zero; the same labels give the same
    /// counter.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        {
            let families = self.families.lock();
            if let Some(f) = families.iter().find(|f| f.name == name) {
                for s in &f.series {
                    if let Value::Counter(c) = &s.value {
                        if s.labels.len() == labels.len()
                            && s.labels
                                .iter()
                                .zip(labels)
                                .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
                        {
                            return c.clone();
                        }
                    }
                }
            }
        }
        let c = Counter::default();
        self.add(name, help, "counter", labels, Value::Counter(c.clone()));
        c
    }

    /// Registers a gauge whose value `f` computes at scrape time.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.add(name, help, "gauge", labels, Value::Gauge(Box::new(f)));
    }

    /// Registers a counter whose value `f` reads at scrape time (from a part's own atomics).
    pub fn counter_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.add(name, help, "counter", labels, Value::Gauge(Box::new(f)));
    }

    /// Returns a duration histogram `name{labels}`.
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Histogram {
        {
            let families = self.families.lock();
            if let Some(f) = families.iter().find(|f| f.name == name) {
                for s in &f.series {
                    if let Value::Histogram(h) = &s.value {
                        if s.labels.len() == labels.len()
                            && s.labels
                                .iter()
                                .zip(labels)
                                .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
                        {
                            return h.clone();
                        }
                    }
                }
            }
        }
        let h = Histogram::default();
        self.add(name, help, "histogram", labels, Value::Histogram(h.clone()));
        h
    }

    /// Everything in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let families = self.families.lock();
        let mut out = String::with_capacity(4096);
        for f in families.iter() {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for s in &f.series {
                match &s.value {
                    Value::Counter(c) => sample(&mut out, &f.name, &s.labels, None, c.get() as f64),
                    Value::Gauge(g) => sample(&mut out, &f.name, &s.labels, None, g()),
                    Value::Histogram(h) => {
                        let bucket = format!("{}_bucket", f.name);
                        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
                            let n = h.0.buckets[i].load(Ordering::Relaxed);
                            sample(
                                &mut out,
                                &bucket,
                                &s.labels,
                                Some(&le.to_string()),
                                n as f64,
                            );
                        }
                        let count = h.0.count.load(Ordering::Relaxed);
                        sample(&mut out, &bucket, &s.labels, Some("+Inf"), count as f64);
                        let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        sample(&mut out, &format!("{}_sum", f.name), &s.labels, None, sum);
                        sample(
                            &mut out,
                            &format!("{}_count", f.name),
                            &s.labels,
                            None,
                            count as f64,
                        );
                    }
                }
            }
        }
        out
    }
}

fn sample(out: &mut String, name: &str, labels: &[(String, String)], le: Option<&str>, v: f64) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(val));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{le}\"");
        }
        out.push('}');
    }
    out.push(' ');
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
    out.push('\n');
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let r = Registry::default();
        let c = r.counter("x_total", "Things.", &[("signal", "traces")]);
        c.add(3);
        assert_eq!(
            r.counter("x_total", "Things.", &[("signal", "traces")])
                .get(),
            3
        );
        r.gauge_fn("g", "A gauge.", &[], || 1.5);
        let h = r.histogram("d_seconds", "Durations.", &[("api", "jaeger")]);
        h.observe(std::time::Duration::from_millis(2));
        let text = r.render();
        assert!(
            text.contains("# TYPE x_total counter\nx_total{signal=\"traces\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("g 1.5\n"), "{text}");
        assert!(
            text.contains("d_seconds_bucket{api=\"jaeger\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{api=\"jaeger\",le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_count{api=\"jaeger\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn escapes_label_values() {
        let r = Registry::default();
        r.counter("e_total", "x", &[("v", "a\"b\\c\nd")]).inc();
        assert!(r.render().contains(r#"e_total{v="a\"b\\c\nd"} 1"#));
    }
}
