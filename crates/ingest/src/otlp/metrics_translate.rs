//! OTLP metrics to Prometheus samples, translated the way Prometheus 3's own OTLP receiver
//! translates them with its default settings, so a series exported to Lookout has the name
//! and labels it would have in Prometheus and dashboards work unchanged.
//!
//! The rules follow Prometheus's `storage/remote/otlptranslator/prometheusremotewrite` and
//! the `prometheus/otlptranslator` naming library, with Prometheus's defaults
//! (`translation_strategy: UnderscoreEscapingWithSuffixes`, `promote_scope_metadata: false`,
//! `keep_identifying_resource_attributes: false`, no promoted resource attributes,
//! `label_name_underscore_sanitization: true`, `label_name_preserve_multiple_underscores: true`,
//! no delta ingestion, no created series):
//!
//! - **Metric names** are split into tokens at every character outside `[a-zA-Z0-9:]` (so
//!   runs of `_` collapse and leading/trailing ones vanish), the unit's Prometheus suffix is
//!   appended unless a token already equals it (`s` → `seconds`, `By` → `bytes`, `{packet}/s`
//!   → `per_second`; UCUM annotations in braces are ignored), monotonic sums get `_total`
//!   and gauges with unit `1` get `_ratio` (both moved to the end if already present), and a
//!   leading digit gets a `_` prefix.
//! - **Label names** have every character outside `[a-zA-Z0-9_]` replaced by `_`; a leading
//!   digit gets `key_`, a single leading `_` gets `key` (`__` names are kept). Attributes whose
//!   names collide after this are merged, their values joined with `;` in the order of the
//!   original names.
//! - **Resources**: `service.name` (prefixed `service.namespace/` when present) becomes `job`,
//!   `service.instance.id` becomes `instance`, overriding attributes of those names. The other
//!   resource attributes go to one `target_info` series per resource (only when there are
//!   such attributes and a `job` or `instance`), sampled every 2.5 minutes (half of PromQL's
//!   default lookback) from the resource's earliest to its latest data point, so joins with
//!   `target_info` find it at every step. Scope name and version are not labels (Prometheus's
//!   `promote_scope_metadata` is off by default).
//! - **Types**: gauges and non-monotonic sums are gauges; cumulative monotonic sums are
//!   counters; explicit-bucket histograms become `_bucket{le}` (cumulated, with `+Inf` equal
//!   to the count), `_sum` (only when set) and `_count`; summaries become `{quantile}` series,
//!   `_sum` and `_count`. A data point flagged "no recorded value" becomes Prometheus's
//!   staleness marker on every series it produces. Timestamps are truncated to milliseconds.
//! - **Refused, as Prometheus refuses them**: sums and histograms whose temporality is not
//!   cumulative (Prometheus accepts delta only behind a feature flag), and metrics whose name
//!   normalises to nothing. Their data points are counted as rejected with Prometheus's message.
//! - **Exponential histograms** become native histograms, as Prometheus 3's
//!   `exponentialToNativeHistogram` makes them: the scale is the schema; scales above 8 are
//!   brought down to 8 by merging `2^(scale-8)` neighbouring buckets; scales below -4 are
//!   refused ("Scale must be >= -4"); OTLP bucket index `k` (covering `(base^k, base^(k+1)]`)
//!   is Prometheus index `k+1` (the same range: Prometheus numbers a bucket by its upper
//!   bound's exponent);
//!   the dense OTLP buckets become spans, where runs of up to two empty buckets stay inside
//!   a span and longer ones start a new span, exactly as Prometheus lays them out; the zero
//!   bucket keeps its count with Prometheus's fixed threshold `1e-128` (it ignores OTLP's
//!   `zero_threshold` too); the counter-reset hint is "unknown" (cumulative only, so never
//!   "gauge"); the series is named like the metric, with no `_bucket`/`_count` suffixes
//!   and no `_total`. A histogram whose buckets hold more than its count is refused. A point
//!   flagged "no recorded value" becomes a float staleness marker, the tsdb's and the
//!   engine's form of a histogram series' staleness marker. Explicit-bucket histograms stay
//!   classic (Prometheus converts them to custom-bucket native histograms only behind a
//!   setting that is off by default).
//!
//! One deliberate difference: an attribute named `le` on a histogram point (`quantile` on a
//! summary point) gives Prometheus a series with that label twice, which its write path then
//! drops with a warning; here the bucket's (quantile's) own label wins and the series is kept.
//!
//! Everything here is pure: no I/O, no clock, so each rule is unit-tested with the output
//! Prometheus's code gives for the same input. Exemplars are not translated (the tsdb keeps
//! none yet).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use model::labels::{
    is_valid_label_name, LabelRef, Labels, MAX_LABELS, MAX_LABEL_BYTES, METRIC_NAME,
};
use model::otlp::proto;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::common::v1::{any_value, AnyValue, KeyValue};
use proto::metrics::v1 as pm;

use std::sync::Arc;

use model::histogram::{FloatHistogram, Span, MAX_EXPONENTIAL_SCHEMA, MIN_EXPONENTIAL_SCHEMA};

use crate::metrics::{HistogramSample, MetricMetadata, MetricType, Sample};

/// Prometheus's staleness marker: a NaN with this exact bit pattern means "this series
/// ended here" (what the tsdb writes when a scraped series disappears).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The data point flag meaning "no recorded value" (`DataPointFlags.FLAG_NO_RECORDED_VALUE`).
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
const TEMPORALITY_CUMULATIVE: i32 = 2;

/// Spacing of `target_info` samples: half of PromQL's default 5-minute lookback, in ns.
const TARGET_INFO_INTERVAL_NS: u64 = 150 * 1_000_000_000;

/// Most `target_info` samples per resource. Prometheus has no bound, so one data point with
/// an unset (1970) timestamp would make it write a sample every 2.5 minutes since 1970; past
/// this many (about 17 days' worth) only the latest ones are kept.
const MAX_TARGET_INFO_SAMPLES: u64 = 10_000;

/// How many distinct problems a translation reports in full; the rest are counted.
const MAX_ERRORS: usize = 8;

/// Prometheus's `service.name` → `job` and friends (OpenTelemetry semantic conventions).
const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// Why a request could not be translated at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The series the request names would take more memory than the limit (a histogram
    /// with many buckets repeats every label on each bucket series).
    #[error("the request translates into more than {limit} bytes of series and samples: send smaller batches (fewer data points or buckets per export)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// The result of translating one export request.
#[derive(Debug, Default)]
pub struct Translation {
    /// The samples to store, in request order.
    pub samples: Vec<Sample>,
    /// The native histogram samples (from exponential histograms), in request order.
    pub histograms: Vec<HistogramSample>,
    /// Metadata per metric family (the normalised name, e.g. `requests_total`).
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Data points in the request.
    pub data_points: u64,
    /// Data points that produced no samples because a rule refused them.
    pub rejected_points: u64,
    /// The first few problems, one sentence each.
    pub errors: Vec<String>,
    /// Problems beyond [`Translation::errors`].
    pub more_errors: usize,
    /// Approximate bytes the samples hold (label sets and the sample tuples).
    pub bytes: usize,
    /// The bound on [`Translation::bytes`].
    limit: usize,
    /// Set once `bytes` passed `limit`; the translation stops there.
    over: bool,
}

impl Translation {
    /// All problems as one message, or `None` when there were none.
    pub fn error_message(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let mut msg = self.errors.join("; ");
        if self.more_errors > 0 {
            let _ = write!(msg, "; and {} more", self.more_errors);
        }
        Some(msg)
    }

    fn error(&mut self, msg: String) {
        if self.errors.len() < MAX_ERRORS {
            if !self.errors.contains(&msg) {
                self.errors.push(msg);
            }
        } else {
            self.more_errors += 1;
        }
    }

    fn push(&mut self, sample: Sample) {
        self.bytes += sample_bytes(&sample.0);
        if self.bytes > self.limit {
            self.over = true;
            return;
        }
        self.samples.push(sample);
    }

    fn reject(&mut self, points: u64, msg: String) {
        self.rejected_points += points;
        self.error(msg);
    }
}

/// Translates a whole request. What cannot be translated is counted in
/// [`Translation::rejected_points`] and explained in [`Translation::errors`]; the only
/// failure is a request whose samples would hold more than `limit_bytes` of memory, found
/// as soon as the translation passes the limit.
pub fn translate(
    req: &ExportMetricsServiceRequest,
    limit_bytes: usize,
) -> Result<Translation, TranslateError> {
    let mut t = Translation {
        limit: limit_bytes,
        ..Translation::default()
    };
    for rm in &req.resource_metrics {
        let attrs: &[KeyValue] = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let resource = ResourceLabels::new(attrs);
        let mut earliest = u64::MAX;
        let mut latest = 0u64;
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                if t.over {
                    return Err(TranslateError::TooLarge { limit: t.limit });
                }
                for ts in point_times(metric) {
                    earliest = earliest.min(ts);
                    latest = latest.max(ts);
                }
                translate_metric(&mut t, metric, &resource);
            }
        }
        if earliest != u64::MAX {
            target_info(&mut t, attrs, &resource, earliest, latest);
        }
        if t.over {
            return Err(TranslateError::TooLarge { limit: t.limit });
        }
    }
    Ok(t)
}

/// The `job` and `instance` a resource's series carry.
struct ResourceLabels {
    job: Option<String>,
    instance: Option<String>,
}

impl ResourceLabels {
    fn new(attrs: &[KeyValue]) -> ResourceLabels {
        let job = get(attrs, SERVICE_NAME).map(|name| match get(attrs, SERVICE_NAMESPACE) {
            Some(ns) => format!("{}/{}", value_string(ns), value_string(name)),
            None => value_string(name),
        });
        let instance = get(attrs, SERVICE_INSTANCE_ID).map(value_string);
        ResourceLabels { job, instance }
    }
}

/// The first attribute named `key` (pdata's `Map.Get`).
fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<Option<&'a AnyValue>> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_ref())
}

/// The metric kinds naming distinguishes (`otlptranslator.MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A monotonic sum: a counter.
    MonotonicCounter,
    /// A non-monotonic sum.
    NonMonotonicCounter,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram.
    ExponentialHistogram,
    /// A summary.
    Summary,
}

/// The data points of one metric.
pub(super) fn points_of(metric: &pm::Metric) -> u64 {
    use pm::metric::Data;
    (match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

fn point_times(metric: &pm::Metric) -> Box<dyn Iterator<Item = u64> + '_> {
    use pm::metric::Data;
    match &metric.data {
        Some(Data::Gauge(g)) => Box::new(g.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::Sum(s)) => Box::new(s.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::Histogram(h)) => Box::new(h.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::ExponentialHistogram(h)) => {
            Box::new(h.data_points.iter().map(|p| p.time_unix_nano))
        }
        Some(Data::Summary(s)) => Box::new(s.data_points.iter().map(|p| p.time_unix_nano)),
        None => Box::new(std::iter::empty()),
    }
}

fn translate_metric(t: &mut Translation, metric: &pm::Metric, resource: &ResourceLabels) {
    use pm::metric::Data;
    let points = points_of(metric);
    t.data_points += points;
    let Some(data) = &metric.data else {
        t.error(format!(
            "metric {:?} carries no data (gauge, sum, histogram, exponential histogram or summary); it is dropped",
            metric.name
        ));
        return;
    };
    let (kind, temporality) = match data {
        Data::Gauge(_) => (MetricKind::Gauge, None),
        Data::Sum(s) if s.is_monotonic => (
            MetricKind::MonotonicCounter,
            Some(s.aggregation_temporality),
        ),
        Data::Sum(s) => (
            MetricKind::NonMonotonicCounter,
            Some(s.aggregation_temporality),
        ),
        Data::Histogram(h) => (MetricKind::Histogram, Some(h.aggregation_temporality)),
        Data::ExponentialHistogram(h) => (
            MetricKind::ExponentialHistogram,
            Some(h.aggregation_temporality),
        ),
        Data::Summary(_) => (MetricKind::Summary, None),
    };
    if temporality.is_some_and(|tm| tm != TEMPORALITY_CUMULATIVE) {
        t.reject(
            points,
            format!(
                "invalid temporality and type combination for metric {:?}: like Prometheus, lookout stores only cumulative sums and histograms; set the exporter's temporality preference to cumulative (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)",
                metric.name
            ),
        );
        return;
    }
    let family = match metric_name(&metric.name, &metric.unit, kind) {
        Ok(name) => name,
        Err(e) => {
            t.reject(points, e);
            return;
        }
    };
    let metric_type = match kind {
        MetricKind::Gauge | MetricKind::NonMonotonicCounter => MetricType::Gauge,
        MetricKind::MonotonicCounter => MetricType::Counter,
        MetricKind::Histogram | MetricKind::ExponentialHistogram => MetricType::Histogram,
        MetricKind::Summary => MetricType::Summary,
    };
    t.metadata.push((
        family.clone(),
        MetricMetadata {
            metric_type,
            help: metric.description.clone(),
            unit: metric.unit.clone(),
        },
    ));
    if points == 0 {
        t.error(format!("empty data points. {} is dropped", metric.name));
        return;
    }
    match data {
        Data::Gauge(pm::Gauge { data_points }) | Data::Sum(pm::Sum { data_points, .. }) => {
            for p in data_points {
                let value = match p.value {
                    Some(pm::number_data_point::Value::AsDouble(v)) => v,
                    Some(pm::number_data_point::Value::AsInt(v)) => v as f64,
                    None => 0.0,
                };
                let mut point = Point::new(
                    t,
                    resource,
                    &family,
                    &p.attributes,
                    p.time_unix_nano,
                    p.flags,
                );
                point.sample(&family, None, value);
                point.finish(t);
            }
        }
        Data::Histogram(h) => {
            for p in &h.data_points {
                let mut point = Point::new(
                    t,
                    resource,
                    &family,
                    &p.attributes,
                    p.time_unix_nano,
                    p.flags,
                );
                if let Some(sum) = p.sum {
                    point.sample(&format!("{family}_sum"), None, sum);
                }
                point.sample(&format!("{family}_count"), None, p.count as f64);
                let bucket = format!("{family}_bucket");
                let mut cumulative = 0u64;
                for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
                    cumulative = cumulative.wrapping_add(*count);
                    point.sample(
                        &bucket,
                        Some(("le", &format_float(*bound))),
                        cumulative as f64,
                    );
                }
                point.sample(&bucket, Some(("le", "+Inf")), p.count as f64);
                point.finish(t);
            }
        }
        Data::Summary(s) => {
            for p in &s.data_points {
                let mut point = Point::new(
                    t,
                    resource,
                    &family,
                    &p.attributes,
                    p.time_unix_nano,
                    p.flags,
                );
                point.sample(&format!("{family}_sum"), None, p.sum);
                point.sample(&format!("{family}_count"), None, p.count as f64);
                for q in &p.quantile_values {
                    point.sample(
                        &family,
                        Some(("quantile", &format_float(q.quantile))),
                        q.value,
                    );
                }
                point.finish(t);
            }
        }
        Data::ExponentialHistogram(h) => {
            for p in &h.data_points {
                let mut point = Point::new(
                    t,
                    resource,
                    &family,
                    &p.attributes,
                    p.time_unix_nano,
                    p.flags,
                );
                match exponential_to_native(p) {
                    Ok(h) => point.histogram(&family, h),
                    Err(e) => point.base = Err(format!("series {family}: {e}")),
                }
                point.finish(t);
            }
        }
    }
}

/// Prometheus's zero threshold for histograms translated from OTLP.
const OTLP_ZERO_THRESHOLD: f64 = 1e-128;

/// One exponential histogram data point as a native histogram (see the module docs).
fn exponential_to_native(p: &pm::ExponentialHistogramDataPoint) -> Result<FloatHistogram, String> {
    if p.scale < MIN_EXPONENTIAL_SCHEMA {
        return Err(format!(
            "cannot convert exponential to native histogram. Scale must be >= {MIN_EXPONENTIAL_SCHEMA}, was {}",
            p.scale
        ));
    }
    let scale_down = (p.scale - MAX_EXPONENTIAL_SCHEMA).max(0) as u32;
    let (positive_spans, positive_buckets) = match &p.positive {
        Some(b) => native_buckets(b.offset, &b.bucket_counts, scale_down)?,
        None => (Vec::new(), Vec::new()),
    };
    let (negative_spans, negative_buckets) = match &p.negative {
        Some(b) => native_buckets(b.offset, &b.bucket_counts, scale_down)?,
        None => (Vec::new(), Vec::new()),
    };
    let h = FloatHistogram {
        schema: p.scale.min(MAX_EXPONENTIAL_SCHEMA),
        zero_threshold: OTLP_ZERO_THRESHOLD,
        zero_count: p.zero_count as f64,
        count: p.count as f64,
        sum: p.sum.unwrap_or(0.0),
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        ..Default::default()
    };
    h.validate().map_err(|e| e.to_string())?;
    Ok(h)
}

/// One side's dense OTLP buckets (`counts[i]` is OTLP index `offset + i`) as Prometheus
/// spans and absolute counts at Prometheus indexes (`((offset + i) >> scale_down) + 1`,
/// neighbours merged when scaling down).
///
/// The layout is Prometheus's: the first span starts at the first bucket's index; a merged
/// bucket is listed when it is not empty or is the last one; before a listed bucket, up to
/// two empty buckets are listed as zeros inside the span, more start a new span whose
/// offset is the gap.
fn native_buckets(
    offset: i32,
    counts: &[u64],
    scale_down: u32,
) -> Result<(Vec<Span>, Vec<f64>), String> {
    if counts.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let index = |i: usize| -> Result<i32, String> {
        let otlp = i64::from(offset) + i as i64;
        i32::try_from((otlp >> scale_down) + 1)
            .map_err(|_| format!("bucket index {otlp} is out of range"))
    };
    let start = index(0)?;
    index(counts.len() - 1)?;
    let mut spans = vec![Span {
        offset: start,
        length: 0,
    }];
    let mut buckets: Vec<f64> = Vec::new();
    // The index the current span would list next.
    let mut next = start;
    let mut emit = |idx: i32, count: u64, spans: &mut Vec<Span>, buckets: &mut Vec<f64>| {
        let gap = idx - next;
        if gap > 2 {
            spans.push(Span {
                offset: gap,
                length: 0,
            });
        } else {
            for _ in 0..gap {
                buckets.push(0.0);
            }
            if let Some(last) = spans.last_mut() {
                last.length += gap as u32;
            }
        }
        buckets.push(count as f64);
        if let Some(last) = spans.last_mut() {
            last.length += 1;
        }
        next = idx + 1;
    };
    let mut group = start;
    let mut sum = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        let idx = index(i)?;
        if idx != group {
            if sum != 0 {
                emit(group, sum, &mut spans, &mut buckets);
            }
            group = idx;
            sum = 0;
        }
        sum = sum.saturating_add(c);
    }
    // The last group is listed even when empty, as Prometheus lists it.
    emit(group, sum, &mut spans, &mut buckets);
    Ok((spans, buckets))
}

/// The samples of one data point, collected apart so a point whose labels turn out invalid
/// adds nothing (never half of its series).
///
/// The point's labels are validated once, with the family name, and each series is then
/// built straight from them in two allocations: a histogram point makes one series per
/// bucket, and validating and copying every label for each was most of the translation's time.
/// The memory bound is checked as each series is built, not when the point is done: one
/// point with a million buckets must not build a million label sets first.
struct Point {
    /// The point's labels (attributes, `job`, `instance`) sorted by name, without empty
    /// values or `__name__`; or why they are unusable.
    base: Result<Vec<(String, String)>, String>,
    timestamp: i64,
    stale: bool,
    samples: Vec<Sample>,
    histograms: Vec<HistogramSample>,
    /// Bytes the samples hold, and how many the translation may still take.
    bytes: usize,
    room: usize,
}

impl Point {
    fn new(
        t: &Translation,
        resource: &ResourceLabels,
        family: &str,
        attrs: &[KeyValue],
        time_unix_nano: u64,
        flags: u32,
    ) -> Point {
        Point {
            base: attribute_labels(attrs, &[], resource).and_then(|m| validated(m, family)),
            timestamp: (time_unix_nano / 1_000_000) as i64,
            stale: flags & FLAG_NO_RECORDED_VALUE != 0,
            samples: Vec::new(),
            histograms: Vec::new(),
            bytes: 0,
            room: t.limit.saturating_sub(t.bytes),
        }
    }

    /// Adds one series: the point's labels plus `__name__` and `extra` (which win over
    /// attributes of the same name).
    fn sample(&mut self, name: &str, extra: Option<(&str, &str)>, value: f64) {
        let Ok(base) = &self.base else {
            return;
        };
        if self.bytes > self.room {
            return;
        }
        let value = if self.stale {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            value
        };
        match series_labels(base, name, extra) {
            Ok(labels) => {
                self.bytes += sample_bytes(&labels);
                self.samples.push((labels, self.timestamp, value));
            }
            Err(e) => self.base = Err(e),
        }
    }

    /// Adds the point's native histogram series (named `name`); a point flagged "no
    /// recorded value" gives the float staleness marker instead.
    fn histogram(&mut self, name: &str, h: FloatHistogram) {
        if self.stale {
            self.sample(name, None, f64::NAN);
            return;
        }
        let Ok(base) = &self.base else {
            return;
        };
        match series_labels(base, name, None) {
            Ok(labels) => {
                self.bytes += sample_bytes(&labels)
                    + std::mem::size_of::<FloatHistogram>()
                    + 8 * (h.positive_buckets.len() + h.negative_buckets.len())
                    + 8 * (h.positive_spans.len() + h.negative_spans.len());
                self.histograms.push((labels, self.timestamp, Arc::new(h)));
            }
            Err(e) => self.base = Err(e),
        }
    }

    fn finish(self, t: &mut Translation) {
        match self.base {
            Ok(_) if self.bytes > self.room => t.over = true,
            Ok(_) => {
                t.bytes += self.bytes;
                t.samples.extend(self.samples);
                t.histograms.extend(self.histograms);
            }
            Err(e) => t.reject(1, e),
        }
    }
}

/// What one sample costs in memory: its label set's heap and the tuple itself.
fn sample_bytes(labels: &Labels) -> usize {
    labels.heap_bytes() + std::mem::size_of::<Sample>()
}

/// Checks a point's labels as a [`model::labels::LabelsBuilder`] would and returns them
/// sorted, without empty values and without `__name__`. Names need no check: [`label_name`]
/// and [`metric_name`] only make valid ones, and the map makes them unique; sizes and the
/// label count are what outside input can still get wrong.
fn validated(map: BTreeMap<String, String>, family: &str) -> Result<Vec<(String, String)>, String> {
    let too_long = |n: &str| {
        format!("series {family}: label {n:?} is longer than {MAX_LABEL_BYTES} bytes; shorten it")
    };
    if family.len() > MAX_LABEL_BYTES {
        return Err(too_long(METRIC_NAME));
    }
    let mut out = Vec::with_capacity(map.len());
    for (n, v) in map {
        debug_assert!(is_valid_label_name(&n), "{n}");
        if n == METRIC_NAME || v.is_empty() {
            continue;
        }
        if n.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES {
            return Err(too_long(&n));
        }
        out.push((n, v));
    }
    // `__name__` and a bucket's `le` or a quantile's `quantile` come on top.
    if out.len() + 2 > MAX_LABELS {
        return Err(format!(
            "series {family}: series has more than {MAX_LABELS} labels; drop some with relabeling"
        ));
    }
    Ok(out)
}

/// One series' labels: validated `base` plus `__name__` and `extra`, merged in name order.
fn series_labels(
    base: &[(String, String)],
    name: &str,
    extra: Option<(&str, &str)>,
) -> Result<Labels, String> {
    // Suffixed names and bucket bounds are the only parts not validated with the point.
    if name.len() > MAX_LABEL_BYTES {
        return Err(format!(
            "series {name}: label \"__name__\" is longer than {MAX_LABEL_BYTES} bytes; shorten it"
        ));
    }
    let mut specials = [
        Some(LabelRef {
            name: METRIC_NAME,
            value: name,
        }),
        extra.map(|(name, value)| LabelRef { name, value }),
    ];
    if let [Some(a), Some(b)] = &specials {
        if b.name < a.name {
            specials.swap(0, 1);
        }
    }
    let mut refs: Vec<LabelRef<'_>> = Vec::with_capacity(base.len() + 2);
    let mut next = 0;
    for (n, v) in base {
        if extra.is_some_and(|(en, _)| en == n) {
            continue;
        }
        while let Some(Some(s)) = specials.get(next) {
            if s.name < n.as_str() {
                refs.push(*s);
                next += 1;
            } else {
                break;
            }
        }
        refs.push(LabelRef { name: n, value: v });
    }
    refs.extend(specials[next..].iter().flatten());
    Ok(Labels::from_sorted_refs_unchecked(&refs))
}

/// Prometheus's `createAttributes`: attribute names normalised, values merged with `;` on
/// collisions (in original-name order), then `job` and `instance` from the resource.
/// Attributes named in `ignore` are skipped.
fn attribute_labels(
    attrs: &[KeyValue],
    ignore: &[&str],
    resource: &ResourceLabels,
) -> Result<BTreeMap<String, String>, String> {
    let mut sorted: Vec<&KeyValue> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .collect();
    // Stable, so duplicate keys keep their request order as Go's sort.Stable does.
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut map = BTreeMap::new();
    for kv in sorted {
        let name = label_name(&kv.key)?;
        let value = value_string(kv.value.as_ref());
        match map.entry(name) {
            Entry::Occupied(mut e) => {
                let v: &mut String = e.get_mut();
                v.push(';');
                v.push_str(&value);
            }
            Entry::Vacant(e) => {
                e.insert(value);
            }
        }
    }
    if let Some(job) = &resource.job {
        map.insert("job".to_string(), job.clone());
    }
    if let Some(instance) = &resource.instance {
        map.insert("instance".to_string(), instance.clone());
    }
    Ok(map)
}

/// The `target_info` series of one resource (Prometheus's `addResourceTargetInfo`).
fn target_info(
    t: &mut Translation,
    attrs: &[KeyValue],
    resource: &ResourceLabels,
    earliest: u64,
    latest: u64,
) {
    let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
    let present = identifying
        .iter()
        .filter(|k| attrs.iter().any(|kv| kv.key == **k))
        .count();
    // pdata's Map.Len counts every entry, duplicates included.
    if attrs.len() == present {
        return;
    }
    if resource.job.is_none() && resource.instance.is_none() {
        return;
    }
    let base = match attribute_labels(attrs, &identifying, resource)
        .and_then(|m| validated(m, "target_info"))
    {
        Ok(base) => base,
        Err(e) => {
            t.error(e);
            return;
        }
    };
    let labels = match series_labels(&base, "target_info", None) {
        Ok(labels) => labels,
        Err(e) => {
            t.error(e);
            return;
        }
    };
    let ms = |ns: u64| (ns / 1_000_000) as i64;
    let steps = (latest - earliest) / TARGET_INFO_INTERVAL_NS;
    let mut ts = earliest;
    // The grid has `steps + 1` points below `latest` at most, plus `latest` itself.
    if steps + 2 > MAX_TARGET_INFO_SAMPLES {
        ts += (steps + 2 - MAX_TARGET_INFO_SAMPLES) * TARGET_INFO_INTERVAL_NS;
    }
    let mut last = None;
    while ts < latest {
        t.push((labels.clone(), ms(ts), 1.0));
        last = Some(ms(ts));
        ts += TARGET_INFO_INTERVAL_NS;
    }
    if last.is_none_or(|l| l < ms(latest)) {
        t.push((labels, ms(latest), 1.0));
    }
}

// ---------------------------------------------------------------------------------------
// Names

/// OTLP (UCUM) units to Prometheus unit words (`otlptranslator`'s `unitMap`).
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of a `x/y` unit, in the singular (`perUnitMap`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// The main and `per_` suffixes of a unit, before cleaning (`buildUnitSuffixes`).
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = main.trim();
    let main_suffix = if !main.is_empty() && !main.contains(['{', '}']) {
        unit_word(main).to_string()
    } else {
        String::new()
    };
    let mut per_suffix = String::new();
    if let Some(per) = per.filter(|p| !p.is_empty()) {
        let per = per.trim();
        if !per.is_empty() && !per.contains(['{', '}']) {
            let word = per_unit_word(per);
            if !word.is_empty() {
                per_suffix = format!("per_{word}");
            }
        }
    }
    (main_suffix, per_suffix)
}

/// Whether `c` may stay in a metric name token: `[a-zA-Z0-9:]` (`_` separates tokens).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// A unit suffix made name-safe: invalid characters to `_`, runs of `_` collapsed, one
/// leading `_` dropped (`cleanUpUnit`).
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The Prometheus name of an OTLP metric (`MetricNamer.Build` with suffixes and escaping).
pub fn metric_name(name: &str, unit: &str, kind: MetricKind) -> Result<String, String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_name_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let mut main = clean_unit(&main);
    let mut per = clean_unit(&per);
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == MetricKind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_string());
    }
    if unit == "1" && kind == MetricKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".to_string());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() {
        return Err(format!(
            "normalization for metric {name:?} resulted in empty name: give the metric a name with letters or digits"
        ));
    }
    if out != name && out.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for metric {name:?} resulted in invalid name {out:?}"
        ));
    }
    Ok(out)
}

/// The Prometheus name of an attribute (`LabelNamer.Build` with Prometheus's defaults).
pub fn label_name(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err(
            "normalization for label name \"\" resulted in empty name: give every attribute a key"
                .to_string(),
        );
    }
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out != key && out.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for label name {key:?} resulted in invalid name {out:?}"
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Values

/// An attribute value as a label value, as pdata's `Value.AsString` renders it: strings as
/// they are, numbers like JavaScript (ES6) prints them, bytes in base64, arrays and maps as
/// JSON (Go's encoder: keys sorted, `<`, `>` and `&` escaped).
pub fn value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => {
            if d.is_finite() {
                es6_number(*d)
            } else {
                format!("json: unsupported value: {}", go_float_g(*d))
            }
        }
        Some(V::BytesValue(b)) => base64_std(b),
        Some(V::ArrayValue(_)) | Some(V::KvlistValue(_)) => {
            let mut out = String::new();
            // Go's json.Marshal fails on NaN and infinities; pdata then renders "".
            if json_value(v, &mut out, 0) {
                out
            } else {
                String::new()
            }
        }
    }
}

fn go_float_g(d: f64) -> &'static str {
    if d.is_nan() {
        "NaN"
    } else if d > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

pub use model::gofmt::format_f as format_float;
use model::gofmt::{base64_std, json_number as es6_number};

/// How deep array and map attribute values are rendered; the JSON decoder bounds nesting
/// already, this only keeps a protobuf request from recursing without end.
const MAX_JSON_DEPTH: usize = 64;

/// Writes `v` as Go's `json.Marshal(v.AsRaw())` would; false if Go would fail (NaN, ±Inf,
/// nesting past [`MAX_JSON_DEPTH`]).
fn json_value(v: Option<&AnyValue>, out: &mut String, depth: usize) -> bool {
    use any_value::Value as V;
    if depth > MAX_JSON_DEPTH {
        return false;
    }
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => out.push_str("null"),
        Some(V::StringValue(s)) => json_string(s, out),
        Some(V::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(V::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(V::DoubleValue(d)) => {
            if !d.is_finite() {
                return false;
            }
            out.push_str(&es6_number(*d));
        }
        Some(V::BytesValue(b)) => json_string(&base64_std(b), out),
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !json_value(Some(item), out, depth + 1) {
                    return false;
                }
            }
            out.push(']');
        }
        Some(V::KvlistValue(kv)) => {
            // AsRaw builds a Go map (a later duplicate key wins), which json.Marshal writes
            // with its keys sorted.
            let mut map: BTreeMap<&str, Option<&AnyValue>> = BTreeMap::new();
            for e in &kv.values {
                map.insert(&e.key, e.value.as_ref());
            }
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                if !json_value(v, out, depth + 1) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    true
}

/// A JSON string as Go's encoder writes it (HTML-safe escaping, U+2028/2029 escaped).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[path = "metrics_translate_tests.rs"]
mod tests;
