//! Where metric samples go, whichever receiver produced them.
//!
//! The scrape manager, the remote_write receiver and the OTLP metrics receivers all end in
//! [`MetricsSink`]: a batch of samples named by validated [`Labels`], appended as one unit
//! and acknowledged once durable, plus each metric family's metadata (type, help, unit) for
//! Prometheus's `/api/v1/metadata`. The binary implements the trait over the tsdb, so
//! receivers never import storage code and their tests run against a recording sink.

use std::collections::BTreeMap;

use std::sync::Arc;

use model::histogram::FloatHistogram;
use model::labels::Labels;
use parking_lot::RwLock;

use crate::otlp::{BoxFuture, SinkError};

/// One sample: the series, its timestamp in milliseconds since the Unix epoch, its value.
pub type Sample = (Labels, i64, f64);

/// One native histogram sample: the series, its timestamp in milliseconds, the histogram
/// (checked with [`FloatHistogram::validate`] by the receiver).
pub type HistogramSample = (Labels, i64, Arc<FloatHistogram>);

/// What happened to a batch of samples the store accepted for processing.
///
/// Samples are judged one by one: a batch may be partly stored. The rejection counts and
/// the first rejection's message (Prometheus's wording, e.g. `out of order sample`) let a
/// receiver answer the way Prometheus does (remote_write: 400 naming the first bad
/// sample; scrape: the target's `lastError`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples stored (exact re-sends of stored samples count as stored).
    pub appended: usize,
    /// Samples older than the newest of their series.
    pub out_of_order: usize,
    /// Samples with a different value at a timestamp already stored.
    pub duplicate_timestamp: usize,
    /// Samples outside the time range the store accepts.
    pub out_of_bounds: usize,
    /// The first rejection, as one sentence naming the series and timestamp.
    pub first_error: Option<String>,
}

impl AppendOutcome {
    /// Samples not stored.
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicate_timestamp + self.out_of_bounds
    }
}

/// Why a batch was refused as a whole, before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The batch itself is invalid (too large, a sample without labels); a retry with the
    /// same data fails the same way: remote_write 400, scrape `lastError`.
    #[error("{0}")]
    Invalid(String),
    /// The store cannot take it now; a retry may succeed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// A metric family's type, as Prometheus's metadata API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    /// The word Prometheus uses (`counter`, `gaugehistogram`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// What a metric family says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricMetadata {
    /// The family's type.
    pub metric_type: MetricType,
    /// The `# HELP` text (may be empty).
    pub help: String,
    /// The unit (may be empty).
    pub unit: String,
}

/// Where receivers hand metric samples and metadata. Implemented by the binary over the
/// tsdb; receivers run the returned future to completion even if their client goes away.
pub trait MetricsSink: Send + Sync + 'static {
    /// Stores `samples`; resolves once the stored ones are durable (in the WAL) and
    /// visible to queries.
    fn append(&self, samples: Vec<Sample>) -> BoxFuture<'_, Result<AppendOutcome, AppendError>>;

    /// Like [`MetricsSink::append`], but stores nothing when any sample would be rejected
    /// (the outcome then counts the rejections and `appended` is zero): remote_write's
    /// contract, where one bad sample fails the whole request.
    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>>;

    /// Stores float samples and native histogram samples as one batch (each series' floats
    /// before its histograms, as Prometheus appends a remote_write series); with
    /// `all_or_nothing`, nothing is stored when any sample would be rejected. Rejected
    /// histograms are counted with the float rejections.
    ///
    /// The provided version serves sinks without native histograms: a batch without
    /// histograms goes to [`MetricsSink::append`] or [`MetricsSink::append_all_or_nothing`],
    /// one with histograms is refused as a whole, naming the first.
    fn append_with_histograms(
        &self,
        samples: Vec<Sample>,
        histograms: Vec<HistogramSample>,
        all_or_nothing: bool,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        if let Some((labels, t, _)) = histograms.first() {
            let e = AppendError::Invalid(format!(
                "series {labels} carries a native histogram at timestamp {t}, which this store does not keep; send classic histograms"
            ));
            return Box::pin(async move { Err(e) });
        }
        if all_or_nothing {
            self.append_all_or_nothing(samples)
        } else {
            self.append(samples)
        }
    }

    /// Remembers the metadata of metric families (by family name, e.g. `http_requests`
    /// for a counter whose samples are named `http_requests_total`).
    fn record_metadata(&self, metadata: Vec<(String, MetricMetadata)>);
}

/// Bound on distinct metadata entries per metric family: a family whose help text changes
/// on every scrape must not grow memory without end.
const MAX_METADATA_PER_METRIC: usize = 10;

/// Bound on metric families with metadata.
const MAX_METADATA_METRICS: usize = 100_000;

/// Metadata of the metric families seen, kept in memory like Prometheus's scrape caches.
/// Each family keeps its distinct entries (targets may disagree), newest last.
#[derive(Debug, Default)]
pub struct MetadataRegistry {
    by_metric: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
}

impl MetadataRegistry {
    /// An empty registry.
    pub fn new() -> MetadataRegistry {
        MetadataRegistry::default()
    }

    /// Records entries; an entry already known for its family is not repeated.
    pub fn record(&self, metadata: Vec<(String, MetricMetadata)>) {
        let mut map = self.by_metric.write();
        for (metric, meta) in metadata {
            if metric.is_empty() {
                continue;
            }
            if !map.contains_key(&metric) && map.len() >= MAX_METADATA_METRICS {
                continue;
            }
            let entries = map.entry(metric).or_default();
            if entries.contains(&meta) {
                continue;
            }
            if entries.len() >= MAX_METADATA_PER_METRIC {
                entries.remove(0);
            }
            entries.push(meta);
        }
    }

    /// Entries by family name, in name order; `metric` restricts to one family.
    pub fn list(&self, metric: Option<&str>) -> Vec<(String, Vec<MetricMetadata>)> {
        let map = self.by_metric.read();
        match metric {
            Some(m) => map
                .get(m)
                .map(|e| vec![(m.to_string(), e.clone())])
                .unwrap_or_default(),
            None => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(help: &str) -> MetricMetadata {
        MetricMetadata {
            metric_type: MetricType::Counter,
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn registry_keeps_distinct_entries_bounded() {
        let r = MetadataRegistry::new();
        r.record(vec![("a".into(), meta("x")), ("a".into(), meta("x"))]);
        assert_eq!(r.list(Some("a"))[0].1.len(), 1);
        for i in 0..20 {
            r.record(vec![("a".into(), meta(&i.to_string()))]);
        }
        let a = &r.list(Some("a"))[0].1;
        assert_eq!(a.len(), MAX_METADATA_PER_METRIC);
        assert_eq!(a.last().unwrap().help, "19");
        assert!(r.list(Some("b")).is_empty());
        r.record(vec![(String::new(), meta("y"))]);
        assert_eq!(r.list(None).len(), 1);
    }
}
