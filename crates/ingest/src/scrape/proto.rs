//! Prometheus's protobuf exposition format: varint-length-delimited
//! `io.prometheus.client.MetricFamily` messages (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`), what client_golang answers
//! when asked, and the one exposition that carries native histograms.
//!
//! The message structs are ours, derived with prost from the field numbers of client_model's
//! `metrics.proto`; exemplars and created timestamps are left out (prost skips fields a
//! struct does not name), since Lookout stores neither. The family envelope is walked with
//! remote_write's wire [`Reader`] rather than decoded whole, so one `Metric` is decoded at a
//! time: a hostile family of millions of empty metrics (two bytes each on the wire) never
//! becomes millions of structs in memory.
//!
//! [`ProtoParser`] yields what the text parsers yield, following Prometheus's
//! `ProtobufParser`: one metadata entry per non-empty family, then per metric its samples.
//! Counters, gauges and untyped metrics give one sample under the family name; summaries
//! `_count`, `_sum` and one series per quantile; classic histograms `_count`, `_sum` and
//! `_bucket{le}` up to the `+Inf` bucket (added from the count when the target left it
//! out), `le` and `quantile` in Prometheus's canonical float form. A histogram with native
//! parts (spans, a zero threshold or a zero count) is one native histogram sample under the
//! family name when [`ProtoOptions::native_histograms`] is set, followed by its classic
//! series only with [`ProtoOptions::keep_classic`] and only if it has classic buckets;
//! without `native_histograms` every histogram is read as classic, as Prometheus does with
//! `IgnoreNativeHistograms`. Native histograms with integer counts (bucket deltas) and float
//! counts both become [`FloatHistogram`]s through the same checks remote_write applies
//! (counts never negative, spans covering exactly the buckets given), then compacted as
//! Prometheus compacts them. A `timestamp_ms` of 0 means none, as in Prometheus.
//!
//! Errors name the message, family and series at fault; the scrape loop stores nothing of a
//! scrape whose body has one.

use model::histogram::{CounterResetHint, FloatHistogram, HistogramError, CUSTOM_BUCKETS_SCHEMA};

use super::parse::format_om_float;
use crate::metrics::MetricType;
use crate::remote_write::{absolute, check_index_range, Reader, WIRE_LEN, WIRE_VARINT};

/// `io.prometheus.client.LabelPair`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `io.prometheus.client.Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `io.prometheus.client.Counter` (without its exemplar and created timestamp).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `io.prometheus.client.Quantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    #[prost(double, tag = "1")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `io.prometheus.client.Summary` (without its created timestamp).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// `io.prometheus.client.Untyped`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Untyped {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `io.prometheus.client.Bucket`: one classic bucket (without its exemplar).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    /// Overrides `cumulative_count` when above 0.
    #[prost(double, tag = "4")]
    pub cumulative_count_float: f64,
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
}

/// `io.prometheus.client.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `io.prometheus.client.Histogram`: classic buckets and native parts (without exemplars and
/// created timestamp).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Overrides `sample_count` when above 0 (and makes a native histogram a float one).
    #[prost(double, tag = "4")]
    pub sample_count_float: f64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    #[prost(double, tag = "8")]
    pub zero_count_float: f64,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, tag = "11")]
    pub negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, tag = "14")]
    pub positive_count: Vec<f64>,
}

/// `io.prometheus.client.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    #[prost(int64, tag = "6")]
    pub timestamp_ms: i64,
}

/// `io.prometheus.client.MetricFamily`. The parser walks families rather than decoding
/// this (see the module docs); it is here for writers (tests, benches).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub help: String,
    /// `MetricType`: 0 counter, 1 gauge, 2 summary, 3 untyped, 4 histogram, 5 gauge histogram.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `MetricType` values.
const COUNTER: i32 = 0;
const GAUGE: i32 = 1;
const SUMMARY: i32 = 2;
const UNTYPED: i32 = 3;
const HISTOGRAM: i32 = 4;
const GAUGE_HISTOGRAM: i32 = 5;

/// What the scrape configuration asks of histograms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoOptions {
    /// `scrape_native_histograms`: histograms with native parts become native samples.
    pub native_histograms: bool,
    /// `always_scrape_classic_histograms`: such histograms also give their classic series.
    pub keep_classic: bool,
}

/// One entry of a protobuf body.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtoEntry {
    /// A family's metadata, before its samples.
    Metadata {
        name: String,
        kind: MetricType,
        help: String,
        unit: String,
    },
    /// A float sample of the current series ([`ProtoParser::series`]).
    Sample { value: f64, timestamp: Option<i64> },
    /// A native histogram sample of the current series.
    Histogram {
        histogram: Box<FloatHistogram>,
        timestamp: Option<i64>,
    },
}

/// One sample a metric gives: the name suffix, the extra label, the value.
struct Pending {
    suffix: &'static str,
    extra: Option<(&'static str, String)>,
    value: PendingValue,
}

enum PendingValue {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// Walks a delimited protobuf body entry by entry.
pub struct ProtoParser<'a> {
    body: Reader<'a>,
    opts: ProtoOptions,
    /// Messages read so far (1-based in errors).
    message: usize,
    /// The current family: its name, type and the rest of its metrics.
    family: String,
    kind: i32,
    metrics: Option<Reader<'a>>,
    /// The current metric's labels and timestamp, and its samples still to give (reversed).
    labels: Vec<LabelPair>,
    timestamp: Option<i64>,
    pending: Vec<Pending>,
    /// The current sample's name suffix and extra label.
    cur_suffix: &'static str,
    cur_extra: Option<(&'static str, String)>,
    /// The current sample's series key: name, then `\xff`-separated label names and values.
    key: Vec<u8>,
}

/// A protobuf body that cannot be read; the message says where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtoError(pub String);

impl<'a> ProtoParser<'a> {
    /// A parser over `body`.
    pub fn new(body: &'a [u8], opts: ProtoOptions) -> ProtoParser<'a> {
        ProtoParser {
            body: Reader::new(body),
            opts,
            message: 0,
            family: String::new(),
            kind: UNTYPED,
            metrics: None,
            labels: Vec::new(),
            timestamp: None,
            pending: Vec::new(),
            cur_suffix: "",
            cur_extra: None,
            key: Vec::new(),
        }
    }

    fn family_err(&self, what: impl std::fmt::Display) -> ProtoError {
        ProtoError(format!(
            "protobuf message {} (metric family {:?}): {what}",
            self.message, self.family
        ))
    }

    /// The next entry; `None` at the end of a well-formed body.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<ProtoEntry>, ProtoError> {
        loop {
            if let Some(p) = self.pending.pop() {
                self.cur_suffix = p.suffix;
                self.cur_extra = p.extra;
                self.build_key();
                return Ok(Some(match p.value {
                    PendingValue::Float(value) => ProtoEntry::Sample {
                        value,
                        timestamp: self.timestamp,
                    },
                    PendingValue::Histogram(histogram) => ProtoEntry::Histogram {
                        histogram,
                        timestamp: self.timestamp,
                    },
                }));
            }
            if let Some(metrics) = self.metrics.as_mut() {
                match next_metric(metrics).map_err(|e| self.family_err(e))? {
                    Some(bytes) => {
                        let m = <Metric as prost::Message>::decode(bytes)
                            .map_err(|e| self.family_err(format!("cannot decode a Metric: {e}")))?;
                        self.start_metric(m)?;
                    }
                    None => self.metrics = None,
                }
                continue;
            }
            if self.body.remaining() == 0 {
                return Ok(None);
            }
            if let Some(meta) = self.start_family()? {
                return Ok(Some(meta));
            }
        }
    }

    /// Reads the next delimited family; its metadata, or None when it has no metrics.
    fn start_family(&mut self) -> Result<Option<ProtoEntry>, ProtoError> {
        self.message += 1;
        let n = self.message;
        let len = self.body.varint().map_err(|_| {
            ProtoError(format!(
                "protobuf message {n}: the length prefix is not a valid varint (the body is truncated or not varint-delimited MetricFamily messages)"
            ))
        })?;
        let left = self.body.remaining();
        if len > left as u64 {
            return Err(ProtoError(format!(
                "protobuf message {n} announces {len} bytes but only {left} remain (the body is truncated or not varint-delimited MetricFamily messages)"
            )));
        }
        let bytes = self
            .body
            .take(len as usize)
            .map_err(|e| ProtoError(e.to_string()))?;
        self.family.clear();
        let (mut name, mut help, mut unit, mut kind) = (&[][..], &[][..], &[][..], 0u64);
        let mut has_metrics = false;
        let mut r = Reader::new(bytes);
        let wire_err = |e: crate::remote_write::DecodeError| {
            ProtoError(format!(
                "protobuf message {n}: cannot decode a MetricFamily: {e}"
            ))
        };
        while let Some((field, wire)) = r.key().map_err(wire_err)? {
            match (field, wire) {
                (1, WIRE_LEN) => name = r.bytes().map_err(wire_err)?,
                (2, WIRE_LEN) => help = r.bytes().map_err(wire_err)?,
                (3, WIRE_VARINT) => kind = r.varint().map_err(wire_err)?,
                (4, WIRE_LEN) => {
                    r.bytes().map_err(wire_err)?;
                    has_metrics = true;
                }
                (5, WIRE_LEN) => unit = r.bytes().map_err(wire_err)?,
                (1..=5, _) => {
                    return Err(ProtoError(format!(
                        "protobuf message {n}: MetricFamily field {field} has wire type {wire}, which its type does not use"
                    )))
                }
                _ => r.skip(wire).map_err(wire_err)?,
            }
        }
        fn text<'b>(b: &'b [u8], what: &str, n: usize) -> Result<&'b str, ProtoError> {
            std::str::from_utf8(b).map_err(|_| {
                ProtoError(format!(
                    "protobuf message {n}: the metric family's {what} is not valid UTF-8"
                ))
            })
        }
        self.family.push_str(text(name, "name", n)?);
        if !has_metrics {
            // Prometheus skips empty families, metadata included.
            return Ok(None);
        }
        if self.family.is_empty() {
            return Err(ProtoError(format!(
                "protobuf message {n}: invalid metric name: a metric family has an empty name"
            )));
        }
        let help = text(help, "help", n)?.to_string();
        let unit = text(unit, "unit", n)?.to_string();
        // An enum varint is an int32: negative values come sign-extended.
        self.kind = kind as i64 as i32;
        let meta_kind = match self.kind {
            COUNTER => MetricType::Counter,
            GAUGE => MetricType::Gauge,
            SUMMARY => MetricType::Summary,
            UNTYPED => MetricType::Unknown,
            HISTOGRAM => MetricType::Histogram,
            GAUGE_HISTOGRAM => MetricType::GaugeHistogram,
            k => return Err(self.family_err(format!("unknown metric type {k}"))),
        };
        if !unit.is_empty() {
            let name = self.family.as_str();
            let base = match name.strip_suffix("_total") {
                Some(b) if self.kind == COUNTER => b,
                _ => name,
            };
            let fits = base
                .strip_suffix(unit.as_str())
                .is_some_and(|rest| rest.ends_with('_'));
            if !fits {
                return Err(
                    self.family_err(format!("unit {unit:?} not a suffix of metric {name:?}"))
                );
            }
        }
        self.metrics = Some(Reader::new(bytes));
        Ok(Some(ProtoEntry::Metadata {
            name: self.family.clone(),
            kind: meta_kind,
            help,
            unit,
        }))
    }

    /// Turns one metric into its pending samples.
    fn start_metric(&mut self, m: Metric) -> Result<(), ProtoError> {
        self.labels = m.label;
        self.timestamp = (m.timestamp_ms != 0).then_some(m.timestamp_ms);
        let mut out: Vec<Pending> = Vec::new();
        let float = |suffix, extra, v| Pending {
            suffix,
            extra,
            value: PendingValue::Float(v),
        };
        match self.kind {
            COUNTER => out.push(float("", None, m.counter.unwrap_or_default().value)),
            GAUGE => out.push(float("", None, m.gauge.unwrap_or_default().value)),
            UNTYPED => out.push(float("", None, m.untyped.unwrap_or_default().value)),
            SUMMARY => {
                let s = m.summary.unwrap_or_default();
                out.push(float("_count", None, s.sample_count as f64));
                out.push(float("_sum", None, s.sample_sum));
                for q in &s.quantile {
                    out.push(float(
                        "",
                        Some(("quantile", format_om_float(q.quantile))),
                        q.value,
                    ));
                }
            }
            _ => {
                let h = m.histogram.unwrap_or_default();
                let native = self.opts.native_histograms && is_native(&h);
                if native {
                    let fh = self.native(&h)?;
                    out.push(Pending {
                        suffix: "",
                        extra: None,
                        value: PendingValue::Histogram(Box::new(fh)),
                    });
                }
                if !native || (self.opts.keep_classic && !h.bucket.is_empty()) {
                    classic(&h, &mut out);
                }
            }
        }
        out.reverse();
        self.pending = out;
        Ok(())
    }

    /// The native histogram of `h`, checked.
    fn native(&self, h: &Histogram) -> Result<FloatHistogram, ProtoError> {
        let bad = |reason: String| {
            let mut series = self.family.clone();
            series.push('{');
            for (i, l) in self.labels.iter().enumerate() {
                if i > 0 {
                    series.push_str(", ");
                }
                series.push_str(&format!("{}={:?}", l.name, l.value));
            }
            series.push('}');
            self.family_err(format!(
                "series {series}: invalid native histogram: {reason}"
            ))
        };
        if h.schema == CUSTOM_BUCKETS_SCHEMA {
            return Err(bad(format!(
                "schema {CUSTOM_BUCKETS_SCHEMA} (custom buckets) needs bucket bounds, which io.prometheus.client.Histogram cannot carry; expose the histogram with classic buckets"
            )));
        }
        let spans = |s: &[BucketSpan]| {
            s.iter()
                .map(|s| model::histogram::Span {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        let mut fh = FloatHistogram {
            counter_reset_hint: if self.kind == GAUGE_HISTOGRAM {
                CounterResetHint::Gauge
            } else {
                CounterResetHint::Unknown
            },
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            sum: h.sample_sum,
            positive_spans: spans(&h.positive_span),
            negative_spans: spans(&h.negative_span),
            ..FloatHistogram::default()
        };
        // Prometheus's rule: a float count or zero count above 0 makes it a float histogram,
        // whose absolute counts are read; otherwise the integer deltas are.
        if h.sample_count_float > 0.0 || h.zero_count_float > 0.0 {
            fh.count = h.sample_count_float;
            fh.zero_count = h.zero_count_float;
            fh.positive_buckets = h.positive_count.clone();
            fh.negative_buckets = h.negative_count.clone();
        } else {
            fh.count = h.sample_count as f64;
            fh.zero_count = h.zero_count as f64;
            fh.positive_buckets = absolute("positive", &h.positive_delta).map_err(bad)?;
            fh.negative_buckets = absolute("negative", &h.negative_delta).map_err(bad)?;
        }
        fh.validate().map_err(|HistogramError(m)| bad(m))?;
        for (side, s) in [
            ("positive", &fh.positive_spans),
            ("negative", &fh.negative_spans),
        ] {
            check_index_range(side, s).map_err(bad)?;
        }
        fh.compact();
        Ok(fh)
    }

    fn build_key(&mut self) {
        self.key.clear();
        self.key.extend_from_slice(self.family.as_bytes());
        self.key.extend_from_slice(self.cur_suffix.as_bytes());
        for l in &self.labels {
            self.key.push(0xff);
            self.key.extend_from_slice(l.name.as_bytes());
            self.key.push(0xff);
            self.key.extend_from_slice(l.value.as_bytes());
        }
        if let Some((n, v)) = &self.cur_extra {
            self.key.push(0xff);
            self.key.extend_from_slice(n.as_bytes());
            self.key.push(0xff);
            self.key.extend_from_slice(v.as_bytes());
        }
    }

    /// The current sample's series key (unique per label set as exposed; the scrape loop's
    /// cache key).
    pub fn series(&self) -> &[u8] {
        &self.key
    }

    /// The current sample's metric name and labels, `__name__` first, in exposition order
    /// (duplicates are the caller's to reject).
    pub fn labels(&self, out: &mut Vec<(String, String)>) {
        out.clear();
        out.push((
            model::labels::METRIC_NAME.to_string(),
            format!("{}{}", self.family, self.cur_suffix),
        ));
        for l in &self.labels {
            out.push((l.name.clone(), l.value.clone()));
        }
        if let Some((n, v)) = &self.cur_extra {
            out.push((n.to_string(), v.clone()));
        }
    }

    /// The name of the current family, for error messages.
    pub fn family(&self) -> &str {
        &self.family
    }
}

/// The next `metric` field's bytes in a family, skipping the other fields.
fn next_metric<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, String> {
    let err = |e: crate::remote_write::DecodeError| format!("cannot decode a MetricFamily: {e}");
    while let Some((field, wire)) = r.key().map_err(err)? {
        if field == 4 && wire == WIRE_LEN {
            return r.bytes().map(Some).map_err(err);
        }
        r.skip(wire).map_err(err)?;
    }
    Ok(None)
}

/// Prometheus's `isNativeHistogram`: spans, a zero threshold or a zero count. (A native
/// histogram without observations and a zero threshold of 0 carries a no-op span to say so.)
fn is_native(h: &Histogram) -> bool {
    !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
        || h.zero_threshold > 0.0
        || h.zero_count > 0
}

/// The classic series of a histogram: `_count`, `_sum`, then `_bucket{le}` up to `+Inf`.
fn classic(h: &Histogram, out: &mut Vec<Pending>) {
    let count = if h.sample_count_float != 0.0 {
        h.sample_count_float
    } else {
        h.sample_count as f64
    };
    let float = |suffix, extra, v| Pending {
        suffix,
        extra,
        value: PendingValue::Float(v),
    };
    out.push(float("_count", None, count));
    out.push(float("_sum", None, h.sample_sum));
    for b in &h.bucket {
        let v = if b.cumulative_count_float != 0.0 {
            b.cumulative_count_float
        } else {
            b.cumulative_count as f64
        };
        out.push(float(
            "_bucket",
            Some(("le", format_om_float(b.upper_bound))),
            v,
        ));
        if b.upper_bound == f64::INFINITY {
            return;
        }
    }
    out.push(float("_bucket", Some(("le", "+Inf".to_string())), count));
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn body(families: &[MetricFamily]) -> Vec<u8> {
        let mut b = Vec::new();
        for f in families {
            f.encode_length_delimited(&mut b).unwrap();
        }
        b
    }

    fn label(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: name.into(),
            value: value.into(),
        }
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Meta(String, MetricType, String, String),
        Float(Vec<(String, String)>, f64, Option<i64>),
        Hist(Vec<(String, String)>, FloatHistogram),
    }

    fn all(b: &[u8], opts: ProtoOptions) -> Result<Vec<Got>, ProtoError> {
        let mut p = ProtoParser::new(b, opts);
        let mut out = Vec::new();
        let mut keys = std::collections::HashSet::new();
        while let Some(e) = p.next()? {
            let mut labels = Vec::new();
            match e {
                ProtoEntry::Metadata {
                    name,
                    kind,
                    help,
                    unit,
                } => out.push(Got::Meta(name, kind, help, unit)),
                ProtoEntry::Sample { value, timestamp } => {
                    p.labels(&mut labels);
                    assert!(keys.insert(p.series().to_vec()), "key reused");
                    out.push(Got::Float(labels, value, timestamp));
                }
                ProtoEntry::Histogram { histogram, .. } => {
                    p.labels(&mut labels);
                    assert!(keys.insert(p.series().to_vec()), "key reused");
                    out.push(Got::Hist(labels, *histogram));
                }
            }
        }
        Ok(out)
    }

    fn floats(got: &[Got]) -> Vec<(String, f64)> {
        got.iter()
            .filter_map(|g| match g {
                Got::Float(l, v, _) => Some((
                    l.iter()
                        .map(|(n, v)| format!("{n}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    *v,
                )),
                _ => None,
            })
            .collect()
    }

    /// A histogram exposed both ways: classic buckets 1 and 2 (no +Inf bucket given),
    /// native schema 0 with integer deltas over two spans and a zero bucket.
    fn both_ways() -> Histogram {
        Histogram {
            sample_count: 7,
            sample_sum: 12.5,
            bucket: vec![
                Bucket {
                    cumulative_count: 2,
                    upper_bound: 1.0,
                    ..Bucket::default()
                },
                Bucket {
                    cumulative_count: 5,
                    upper_bound: 2.0,
                    ..Bucket::default()
                },
            ],
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1,
            positive_span: vec![
                BucketSpan {
                    offset: 0,
                    length: 2,
                },
                BucketSpan {
                    offset: 2,
                    length: 1,
                },
            ],
            // Counts 1, 3 at indexes 0 and 1, then 2 at index 4.
            positive_delta: vec![1, 2, -1],
            negative_span: vec![],
            ..Histogram::default()
        }
    }

    fn families() -> Vec<MetricFamily> {
        vec![
            MetricFamily {
                name: "reqs_total".into(),
                help: "Requests.".into(),
                r#type: COUNTER,
                metric: vec![
                    Metric {
                        label: vec![label("code", "200")],
                        counter: Some(Counter { value: 3.0 }),
                        ..Metric::default()
                    },
                    Metric {
                        label: vec![label("code", "500")],
                        counter: Some(Counter { value: 1.0 }),
                        timestamp_ms: 1234,
                        ..Metric::default()
                    },
                ],
                unit: String::new(),
            },
            MetricFamily {
                name: "empty".into(),
                help: "No metrics, no metadata.".into(),
                r#type: GAUGE,
                ..MetricFamily::default()
            },
            MetricFamily {
                name: "temp_celsius".into(),
                r#type: GAUGE,
                unit: "celsius".into(),
                metric: vec![Metric {
                    gauge: Some(Gauge { value: -4.5 }),
                    ..Metric::default()
                }],
                ..MetricFamily::default()
            },
            MetricFamily {
                name: "u".into(),
                r#type: UNTYPED,
                metric: vec![Metric {
                    untyped: Some(Untyped { value: 9.0 }),
                    ..Metric::default()
                }],
                ..MetricFamily::default()
            },
            MetricFamily {
                name: "lat".into(),
                r#type: SUMMARY,
                metric: vec![Metric {
                    summary: Some(Summary {
                        sample_count: 4,
                        sample_sum: 2.0,
                        quantile: vec![
                            Quantile {
                                quantile: 0.5,
                                value: 0.4,
                            },
                            Quantile {
                                quantile: 1.0,
                                value: 0.9,
                            },
                        ],
                    }),
                    ..Metric::default()
                }],
                ..MetricFamily::default()
            },
            MetricFamily {
                name: "h".into(),
                r#type: HISTOGRAM,
                metric: vec![Metric {
                    label: vec![label("a", "b")],
                    histogram: Some(both_ways()),
                    ..Metric::default()
                }],
                ..MetricFamily::default()
            },
        ]
    }

    #[test]
    fn every_type_as_prometheus_reads_it() {
        let b = body(&families());
        let opts = ProtoOptions {
            native_histograms: true,
            keep_classic: false,
        };
        let got = all(&b, opts).unwrap();
        assert_eq!(
            got[0],
            Got::Meta(
                "reqs_total".into(),
                MetricType::Counter,
                "Requests.".into(),
                String::new()
            )
        );
        assert!(matches!(&got[2], Got::Float(_, 1.0, Some(1234))));
        assert!(matches!(&got[1], Got::Float(_, 3.0, None)));
        assert!(!got
            .iter()
            .any(|g| matches!(g, Got::Meta(n, ..) if n == "empty")));
        assert!(got.contains(&Got::Meta(
            "temp_celsius".into(),
            MetricType::Gauge,
            String::new(),
            "celsius".into()
        )));
        assert!(got.contains(&Got::Meta(
            "u".into(),
            MetricType::Unknown,
            String::new(),
            String::new()
        )));
        assert_eq!(
            floats(&got),
            [
                ("__name__=reqs_total,code=200".to_string(), 3.0),
                ("__name__=reqs_total,code=500".to_string(), 1.0),
                ("__name__=temp_celsius".to_string(), -4.5),
                ("__name__=u".to_string(), 9.0),
                ("__name__=lat_count".to_string(), 4.0),
                ("__name__=lat_sum".to_string(), 2.0),
                ("__name__=lat,quantile=0.5".to_string(), 0.4),
                ("__name__=lat,quantile=1.0".to_string(), 0.9),
            ]
        );
        let Some(Got::Hist(labels, h)) = got.last() else {
            panic!("{got:?}")
        };
        assert_eq!(labels[0].1, "h");
        let want = FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 7.0,
            sum: 12.5,
            positive_spans: vec![
                model::histogram::Span {
                    offset: 0,
                    length: 2,
                },
                model::histogram::Span {
                    offset: 2,
                    length: 1,
                },
            ],
            positive_buckets: vec![1.0, 3.0, 2.0],
            ..FloatHistogram::default()
        };
        assert_eq!(h, &want);
    }

    #[test]
    fn native_histograms_integer_float_and_gauge() {
        let mut h = both_ways();
        h.positive_delta = vec![1, 2, -3, 2];
        h.positive_span[1].length = 2;
        let mut fam = MetricFamily {
            name: "h".into(),
            r#type: HISTOGRAM,
            metric: vec![Metric {
                histogram: Some(h.clone()),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        };
        let native = ProtoOptions {
            native_histograms: true,
            keep_classic: false,
        };
        let got = all(&body(std::slice::from_ref(&fam)), native).unwrap();
        let Got::Hist(_, fh) = &got[1] else {
            panic!("{got:?}")
        };
        // Counts 1, 3 | 0, 2: the empty bucket compacted away, as Prometheus compacts.
        assert_eq!(fh.positive_buckets, [1.0, 3.0, 2.0]);
        assert_eq!(
            fh.positive_spans,
            [
                model::histogram::Span {
                    offset: 0,
                    length: 2
                },
                model::histogram::Span {
                    offset: 3,
                    length: 1
                }
            ]
        );
        assert_eq!((fh.count, fh.zero_count, fh.sum), (7.0, 1.0, 12.5));
        assert_eq!(fh.counter_reset_hint, CounterResetHint::Unknown);
        assert_eq!(got.len(), 2, "no classic series unless asked: {got:?}");

        // Kept classic too: _count, _sum, le 1, 2 and the +Inf bucket from the count.
        let keep = ProtoOptions {
            native_histograms: true,
            keep_classic: true,
        };
        let got = all(&body(std::slice::from_ref(&fam)), keep).unwrap();
        assert!(matches!(got[1], Got::Hist(..)));
        assert_eq!(
            floats(&got),
            [
                ("__name__=h_count".to_string(), 7.0),
                ("__name__=h_sum".to_string(), 12.5),
                ("__name__=h_bucket,le=1.0".to_string(), 2.0),
                ("__name__=h_bucket,le=2.0".to_string(), 5.0),
                ("__name__=h_bucket,le=+Inf".to_string(), 7.0),
            ]
        );
        // Native histograms off: classic only, as Prometheus without scrape_native_histograms.
        let got = all(&body(std::slice::from_ref(&fam)), ProtoOptions::default()).unwrap();
        assert_eq!(floats(&got).len(), 5);
        assert!(!got.iter().any(|g| matches!(g, Got::Hist(..))));

        // A float gauge histogram.
        fam.r#type = GAUGE_HISTOGRAM;
        let m = fam.metric[0].histogram.as_mut().unwrap();
        m.bucket.clear();
        m.positive_delta.clear();
        m.sample_count_float = 6.5;
        m.zero_count_float = 0.5;
        m.positive_count = vec![1.0, 2.0, 0.0, 3.0];
        let got = all(&body(std::slice::from_ref(&fam)), keep).unwrap();
        let Got::Hist(_, fh) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(fh.counter_reset_hint, CounterResetHint::Gauge);
        assert_eq!((fh.count, fh.zero_count), (6.5, 0.5));
        assert_eq!(fh.positive_buckets, [1.0, 2.0, 3.0]);
        assert_eq!(got.len(), 2, "no classic buckets to keep: {got:?}");
        assert_eq!(
            got[0],
            Got::Meta(
                "h".into(),
                MetricType::GaugeHistogram,
                String::new(),
                String::new()
            )
        );
    }

    #[test]
    fn classic_histogram_stops_at_inf_and_uses_float_counts() {
        let fam = MetricFamily {
            name: "c".into(),
            r#type: HISTOGRAM,
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count_float: 3.5,
                    sample_sum: 1.0,
                    bucket: vec![
                        Bucket {
                            cumulative_count_float: 1.5,
                            upper_bound: 0.25,
                            ..Bucket::default()
                        },
                        Bucket {
                            cumulative_count: 3,
                            upper_bound: f64::INFINITY,
                            ..Bucket::default()
                        },
                        Bucket {
                            cumulative_count: 9,
                            upper_bound: 10.0,
                            ..Bucket::default()
                        },
                    ],
                    ..Histogram::default()
                }),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        };
        let got = all(
            &body(&[fam]),
            ProtoOptions {
                native_histograms: true,
                keep_classic: false,
            },
        )
        .unwrap();
        assert_eq!(
            floats(&got),
            [
                ("__name__=c_count".to_string(), 3.5),
                ("__name__=c_sum".to_string(), 1.0),
                ("__name__=c_bucket,le=0.25".to_string(), 1.5),
                ("__name__=c_bucket,le=+Inf".to_string(), 3.0),
            ]
        );
    }

    fn err_of(b: &[u8]) -> String {
        let opts = ProtoOptions {
            native_histograms: true,
            keep_classic: true,
        };
        match all(b, opts) {
            Ok(g) => panic!("parsed: {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn hist_family(h: Histogram) -> Vec<u8> {
        body(&[MetricFamily {
            name: "bad".into(),
            r#type: HISTOGRAM,
            metric: vec![Metric {
                label: vec![label("x", "y")],
                histogram: Some(h),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        }])
    }

    /// Hostile and broken bodies: each a precise error, never a panic.
    #[test]
    fn broken_bodies_are_precise_errors() {
        let good = body(&families());
        // Truncated in the middle of a message.
        let e = err_of(&good[..good.len() - 3]);
        assert!(
            e.starts_with("protobuf message 6 announces") && e.contains("truncated"),
            "{e}"
        );
        // An absurd length prefix.
        let mut absurd = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        absurd.extend_from_slice(&[0; 8]);
        let e = err_of(&absurd);
        assert!(
            e.contains("announces 4294967295 bytes but only 8 remain"),
            "{e}"
        );
        // A length prefix that never ends.
        let e = err_of(&[0xff; 12]);
        assert!(e.contains("length prefix is not a valid varint"), "{e}");
        // Text sent with the protobuf content type.
        let e = err_of(b"a 1\n");
        assert!(e.contains("truncated or not varint-delimited"), "{e}");
        // A metric that is not a valid message.
        let mut fam = Vec::new();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut fam);
        prost::encoding::encode_varint(1, &mut fam);
        fam.push(b'm');
        prost::encoding::encode_key(4, prost::encoding::WireType::LengthDelimited, &mut fam);
        prost::encoding::encode_varint(2, &mut fam);
        fam.extend_from_slice(&[0x0a, 0x05]);
        let mut b = Vec::new();
        prost::encoding::encode_varint(fam.len() as u64, &mut b);
        b.extend_from_slice(&fam);
        let e = err_of(&b);
        assert!(
            e.starts_with("protobuf message 1 (metric family \"m\"): cannot decode a Metric"),
            "{e}"
        );
        // Unknown type, empty name, unit that is not a suffix.
        let one = |f: MetricFamily| {
            body(&[MetricFamily {
                metric: vec![Metric::default()],
                ..f
            }])
        };
        let e = err_of(&one(MetricFamily {
            name: "t".into(),
            r#type: 9,
            ..MetricFamily::default()
        }));
        assert!(e.contains("unknown metric type 9"), "{e}");
        let e = err_of(&one(MetricFamily::default()));
        assert!(e.contains("invalid metric name"), "{e}");
        let e = err_of(&one(MetricFamily {
            name: "a_bytes".into(),
            unit: "seconds".into(),
            ..MetricFamily::default()
        }));
        assert!(
            e.contains("unit \"seconds\" not a suffix of metric \"a_bytes\""),
            "{e}"
        );
        // A counter's unit goes before _total.
        let ok = one(MetricFamily {
            name: "a_seconds_total".into(),
            unit: "seconds".into(),
            ..MetricFamily::default()
        });
        assert!(all(&ok, ProtoOptions::default()).is_ok());

        // Native histograms whose parts disagree.
        let base = both_ways();
        let prefix = "protobuf message 1 (metric family \"bad\"): series bad{x=\"y\"}: invalid native histogram: ";
        let mut h = base.clone();
        h.positive_delta = vec![1];
        let e = err_of(&hist_family(h));
        assert!(e.starts_with(prefix), "{e}");
        assert!(
            e.contains("positive spans cover 3 buckets but 1 counts were given"),
            "{e}"
        );
        let mut h = base.clone();
        h.positive_delta = vec![1, -2, 1];
        let e = err_of(&hist_family(h));
        assert!(e.contains("positive bucket 1 has count -1"), "{e}");
        let mut h = base.clone();
        h.sample_count_float = 4.0;
        h.positive_count = vec![1.0, -1.0, 1.0];
        let e = err_of(&hist_family(h));
        assert!(e.contains("positive bucket 1 has count -1"), "{e}");
        let mut h = base.clone();
        h.schema = 9;
        let e = err_of(&hist_family(h));
        assert!(e.contains("schema 9 is outside"), "{e}");
        let mut h = base.clone();
        h.schema = CUSTOM_BUCKETS_SCHEMA;
        let e = err_of(&hist_family(h));
        assert!(e.contains("custom buckets"), "{e}");
        let mut h = base.clone();
        h.sample_count = 2;
        h.positive_delta = vec![1, 2, -3];
        let e = err_of(&hist_family(h));
        assert!(e.contains("count 2 is less than the 5 observations"), "{e}");
        let mut h = base.clone();
        h.positive_span[1].offset = -1;
        h.positive_delta = vec![1, 2, -3];
        let e = err_of(&hist_family(h));
        assert!(e.contains("negative offset"), "{e}");
        let mut h = base;
        h.positive_span = vec![BucketSpan {
            offset: i32::MAX,
            length: 2,
        }];
        h.positive_delta = vec![1, 0];
        let e = err_of(&hist_family(h));
        assert!(e.contains("past the largest index"), "{e}");
    }

    /// Every prefix and many corruptions of a valid body end in entries or an error.
    #[test]
    fn truncations_and_garbage_never_panic() {
        let good = body(&families());
        let opts = ProtoOptions {
            native_histograms: true,
            keep_classic: true,
        };
        for i in 0..good.len() {
            let _ = all(&good[..i], opts);
        }
        let mut seed = 11u64;
        for _ in 0..3000 {
            let mut b = good.clone();
            for _ in 0..3 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % b.len();
                b[at] = (seed >> 17) as u8;
            }
            let _ = all(&b, opts);
        }
    }

    /// Two-byte empty metrics are decoded one at a time, not all at once.
    #[test]
    fn many_empty_metrics_stream() {
        let fam = MetricFamily {
            name: "g".into(),
            r#type: GAUGE,
            metric: vec![Metric::default(); 100_000],
            ..MetricFamily::default()
        };
        let b = body(&[fam]);
        let mut p = ProtoParser::new(&b, ProtoOptions::default());
        let mut n = 0;
        while let Some(e) = p.next().unwrap() {
            if matches!(e, ProtoEntry::Sample { .. }) {
                n += 1;
            }
        }
        assert_eq!(n, 100_000);
    }
}
