//! Prometheus remote_write 1.0: decoding a snappy-compressed `prometheus.WriteRequest`.
//!
//! The protobuf walker is our own rather than prost-generated structs: remote_write is the
//! metrics ingest hot path, and walking the bytes builds each series' [`Labels`] straight
//! from the wire, with no intermediate owned message tree to allocate and free. It reads
//! only what Lookout stores (series labels, float samples, native histogram samples, metric
//! metadata) and skips exemplars and unknown fields as protobuf requires.
//!
//! Native histograms (`TimeSeries.histograms`, Prometheus's `prompb.Histogram`) become
//! [`FloatHistogram`]s: integer histograms' delta-encoded buckets are summed into absolute
//! counts, float histograms' counts are taken as they are, and every histogram must pass
//! [`FloatHistogram::validate`], so what storage gets is well-formed. A histogram that mixes
//! the two encodings (an integer count with float bucket counts, or the reverse) is refused
//! rather than half-read. A histogram whose sum is the staleness marker is Prometheus's
//! staleness marker for a histogram series and becomes a float staleness marker, the form
//! the tsdb and the PromQL engine know.
//!
//! Everything is checked before anything is returned: a request is either decoded whole or
//! refused with a [`DecodeError`] that names the problem (the HTTP layer answers 400, as
//! Prometheus does, so the sender does not retry it).

use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, HistogramError, Span};
use model::labels::{LabelError, Labels};

use crate::metrics::{HistogramSample, MetricMetadata, MetricType, Sample};

/// Default bound on a request body, compressed or not (VictoriaMetrics' default too).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 << 20;

/// Most labels read for one series before the request is refused.
const MAX_LABELS_ON_WIRE: usize = 1024;

/// A decoded request.
#[derive(Debug, Default)]
pub struct WriteRequest {
    /// Every float sample, in request order.
    pub samples: Vec<Sample>,
    /// Every native histogram sample, in request order (each series' after its floats, as
    /// Prometheus appends them).
    pub histograms: Vec<HistogramSample>,
    /// Metric family metadata the sender included.
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Time series in the request (with or without samples).
    pub series: usize,
}

/// Why a request could not be decoded; every variant is the sender's fault (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is not a snappy block.
    #[error(
        "snappy: corrupt input ({0}); remote_write bodies are snappy block format (not framed)"
    )]
    Snappy(String),
    /// The body or its decompressed form is larger than the bound.
    #[error("request of {size} bytes exceeds the limit of {limit} bytes; send smaller batches (queue_config.max_samples_per_send)")]
    TooLarge { size: usize, limit: usize },
    /// The protobuf encoding is broken.
    #[error("proto: cannot decode WriteRequest: {0}")]
    Protobuf(String),
    /// A series' labels are invalid.
    #[error("invalid labels for series {series}: {error}")]
    InvalidLabels { series: String, error: LabelError },
    /// A series without a metric name.
    #[error("series {series} has no metric name (__name__ label)")]
    MissingMetricName { series: String },
    /// A native histogram sample that is not well-formed.
    #[error("series {series}: native histogram at timestamp {timestamp}: {reason}")]
    InvalidHistogram {
        series: String,
        timestamp: i64,
        reason: String,
    },
}

/// Decompresses and decodes a remote_write 1.0 body.
pub fn decode_snappy(body: &[u8], limit: usize) -> Result<WriteRequest, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > limit {
        return Err(DecodeError::TooLarge { size, limit });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    decode(&raw)
}

/// Decodes an uncompressed `prometheus.WriteRequest`.
pub fn decode(buf: &[u8]) -> Result<WriteRequest, DecodeError> {
    let mut out = WriteRequest::default();
    let mut r = Reader::new(buf);
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    let mut values: Vec<(i64, f64)> = Vec::new();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let ts = r.bytes()?;
                decode_series(ts, &mut pairs, &mut values, &mut out)?;
            }
            (3, WIRE_LEN) => {
                if let Some(m) = decode_metadata(r.bytes()?)? {
                    out.metadata.push(m);
                }
            }
            (1 | 3, _) => return Err(wrong_wire("WriteRequest", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    Ok(out)
}

/// One `TimeSeries`: labels (1), samples (2), exemplars (3, skipped), histograms (4).
fn decode_series<'a>(
    buf: &'a [u8],
    pairs: &mut Vec<(&'a [u8], &'a [u8])>,
    values: &mut Vec<(i64, f64)>,
    out: &mut WriteRequest,
) -> Result<(), DecodeError> {
    pairs.clear();
    values.clear();
    // Histograms are decoded once the labels are known (they may precede them on the wire).
    let mut histograms: Vec<&'a [u8]> = Vec::new();
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                if pairs.len() >= MAX_LABELS_ON_WIRE {
                    return Err(DecodeError::Protobuf(format!(
                        "a series has more than {MAX_LABELS_ON_WIRE} labels"
                    )));
                }
                pairs.push(decode_label(r.bytes()?)?);
            }
            (2, WIRE_LEN) => values.push(decode_sample(r.bytes()?)?),
            (4, WIRE_LEN) => histograms.push(r.bytes()?),
            (1 | 2 | 4, _) => return Err(wrong_wire("TimeSeries", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    out.series += 1;
    let describe = |pairs: &[(&[u8], &[u8])]| {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}={:?}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        let mut s = format!("{{{}}}", inner.join(", "));
        if s.len() > 256 {
            let mut end = 256;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str("...");
        }
        s
    };
    let labels =
        Labels::from_bytes(pairs.iter().copied()).map_err(|error| DecodeError::InvalidLabels {
            series: describe(pairs),
            error,
        })?;
    if labels.metric_name().is_none() {
        return Err(DecodeError::MissingMetricName {
            series: describe(pairs),
        });
    }
    for hbuf in histograms {
        let (t, h) = decode_histogram(hbuf).map_err(|(timestamp, reason)| {
            DecodeError::InvalidHistogram {
                series: labels.to_string(),
                timestamp,
                reason,
            }
        })?;
        match h {
            Some(h) => out.histograms.push((labels.clone(), t, Arc::new(h))),
            None => values.push((t, f64::from_bits(crate::scrape::STALE_NAN_BITS))),
        }
    }
    match values.len() {
        0 => {}
        1 => {
            let (t, v) = values[0];
            out.samples.push((labels, t, v));
        }
        _ => {
            for &(t, v) in values.iter() {
                out.samples.push((labels.clone(), t, v));
            }
        }
    }
    Ok(())
}

/// Most buckets one histogram may carry on one side: Prometheus's own limit of useful
/// resolution is far below (schema 8 spans 2^8 buckets per power of two).
const MAX_HISTOGRAM_BUCKETS: usize = 1 << 16;

/// One side's bucket counts as the wire carries them.
#[derive(Default)]
struct Side {
    spans: Vec<Span>,
    /// Packed or unpacked `sint64` deltas (integer histograms).
    deltas: Vec<i64>,
    /// Packed or unpacked doubles (float histograms).
    counts: Vec<f64>,
}

/// One `Histogram` (see the module docs): its timestamp and the histogram, or `None` for a
/// staleness marker. Errors carry the timestamp (0 until read) and the reason.
fn decode_histogram(buf: &[u8]) -> Result<(i64, Option<FloatHistogram>), (i64, String)> {
    let mut count_int: Option<u64> = None;
    let mut count_float: Option<f64> = None;
    let mut zero_int: Option<u64> = None;
    let mut zero_float: Option<f64> = None;
    let mut h = FloatHistogram::default();
    let mut neg = Side::default();
    let mut pos = Side::default();
    let mut timestamp = 0i64;
    let mut hint = 0u64;
    let mut r = Reader::new(buf);
    let proto = |e: DecodeError| (0, e.to_string());
    while let Some((field, wire)) = r.key().map_err(proto)? {
        match (field, wire) {
            (1, WIRE_VARINT) => count_int = Some(r.varint().map_err(proto)?),
            (2, WIRE_FIXED64) => count_float = Some(f64::from_bits(r.fixed64().map_err(proto)?)),
            (3, WIRE_FIXED64) => h.sum = f64::from_bits(r.fixed64().map_err(proto)?),
            (4, WIRE_VARINT) => {
                let z = r.varint().map_err(proto)?;
                h.schema = unzigzag32(z).map_err(proto)?;
            }
            (5, WIRE_FIXED64) => h.zero_threshold = f64::from_bits(r.fixed64().map_err(proto)?),
            (6, WIRE_VARINT) => zero_int = Some(r.varint().map_err(proto)?),
            (7, WIRE_FIXED64) => zero_float = Some(f64::from_bits(r.fixed64().map_err(proto)?)),
            (8, WIRE_LEN) => neg
                .spans
                .push(decode_span(r.bytes().map_err(proto)?).map_err(proto)?),
            (11, WIRE_LEN) => pos
                .spans
                .push(decode_span(r.bytes().map_err(proto)?).map_err(proto)?),
            (9 | 12, WIRE_LEN | WIRE_VARINT) => {
                let side = if field == 9 { &mut neg } else { &mut pos };
                if wire == WIRE_LEN {
                    let mut p = Reader::new(r.bytes().map_err(proto)?);
                    while !p.buf.is_empty() {
                        side.deltas.push(unzigzag64(p.varint().map_err(proto)?));
                    }
                } else {
                    side.deltas.push(unzigzag64(r.varint().map_err(proto)?));
                }
            }
            (10 | 13 | 16, WIRE_LEN | WIRE_FIXED64) => {
                let dst = match field {
                    10 => &mut neg.counts,
                    13 => &mut pos.counts,
                    _ => &mut h.custom_values,
                };
                if wire == WIRE_LEN {
                    let b = r.bytes().map_err(proto)?;
                    if b.len() % 8 != 0 {
                        return Err((0, "packed doubles are not a multiple of 8 bytes".into()));
                    }
                    dst.extend(b.chunks_exact(8).map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        f64::from_bits(u64::from_le_bytes(a))
                    }));
                } else {
                    dst.push(f64::from_bits(r.fixed64().map_err(proto)?));
                }
            }
            (14, WIRE_VARINT) => hint = r.varint().map_err(proto)?,
            (15, WIRE_VARINT) => timestamp = r.varint().map_err(proto)? as i64,
            (1..=16, _) => return Err(proto(wrong_wire("Histogram", field, wire))),
            _ => r.skip(wire).map_err(proto)?,
        }
        if [
            neg.deltas.len(),
            neg.counts.len(),
            pos.deltas.len(),
            pos.counts.len(),
        ]
        .iter()
        .any(|&n| n > MAX_HISTOGRAM_BUCKETS)
        {
            return Err((
                timestamp,
                format!("more than {MAX_HISTOGRAM_BUCKETS} buckets on one side"),
            ));
        }
    }
    let fail = |m: String| Err((timestamp, m));
    if h.sum.to_bits() == crate::scrape::STALE_NAN_BITS {
        return Ok((timestamp, None));
    }
    h.counter_reset_hint = match hint {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        n => return fail(format!("unknown reset_hint {n}")),
    };
    // A float histogram is one whose count is a float (Prometheus's IsFloatHistogram);
    // without a count at all it is an integer histogram with count 0.
    let is_float = count_float.is_some();
    if count_int.is_some() && is_float {
        return fail("both count_int and count_float are set".into());
    }
    if zero_int.is_some() && zero_float.is_some() {
        return fail("both zero_count_int and zero_count_float are set".into());
    }
    if is_float {
        if zero_int.is_some() || !neg.deltas.is_empty() || !pos.deltas.is_empty() {
            return fail(
                "a float histogram (count_float) carries integer zero_count_int or bucket deltas"
                    .into(),
            );
        }
        h.count = count_float.unwrap_or(0.0);
        h.zero_count = zero_float.unwrap_or(0.0);
        h.negative_buckets = neg.counts;
        h.positive_buckets = pos.counts;
    } else {
        if zero_float.is_some() || !neg.counts.is_empty() || !pos.counts.is_empty() {
            return fail(
                "an integer histogram (count_int) carries float zero_count_float or bucket counts"
                    .into(),
            );
        }
        h.count = count_int.unwrap_or(0) as f64;
        h.zero_count = zero_int.unwrap_or(0) as f64;
        h.negative_buckets = absolute("negative", &neg.deltas).map_err(|m| (timestamp, m))?;
        h.positive_buckets = absolute("positive", &pos.deltas).map_err(|m| (timestamp, m))?;
    }
    h.negative_spans = neg.spans;
    h.positive_spans = pos.spans;
    h.validate().map_err(|HistogramError(m)| (timestamp, m))?;
    for (side, spans) in [
        ("positive", &h.positive_spans),
        ("negative", &h.negative_spans),
    ] {
        check_index_range(side, spans).map_err(|m| (timestamp, m))?;
    }
    Ok((timestamp, Some(h)))
}

/// Bucket indexes must fit an `i32` (the span offsets' type): spans whose offsets add up
/// past it would describe buckets no reader can number.
pub(crate) fn check_index_range(side: &str, spans: &[Span]) -> Result<(), String> {
    let mut idx = 0i64;
    for (n, s) in spans.iter().enumerate() {
        idx = if n == 0 {
            i64::from(s.offset)
        } else {
            idx + i64::from(s.offset)
        };
        idx += i64::from(s.length);
        if idx - 1 > i64::from(i32::MAX) {
            return Err(format!(
                "{side} span {n} reaches bucket index {}, past the largest index {}",
                idx - 1,
                i32::MAX
            ));
        }
    }
    Ok(())
}

/// Integer buckets from deltas (each bucket's count minus the previous one's, the first
/// from zero); a count below zero is refused.
pub(crate) fn absolute(side: &str, deltas: &[i64]) -> Result<Vec<f64>, String> {
    let mut acc = 0i64;
    let mut out = Vec::with_capacity(deltas.len());
    for (i, &d) in deltas.iter().enumerate() {
        acc = acc
            .checked_add(d)
            .ok_or_else(|| format!("{side} bucket {i} overflows"))?;
        if acc < 0 {
            return Err(format!(
                "{side} bucket {i} has count {acc}; counts must be zero or positive"
            ));
        }
        out.push(acc as f64);
    }
    Ok(out)
}

/// One `BucketSpan`: offset (1, sint32), length (2, uint32).
fn decode_span(buf: &[u8]) -> Result<Span, DecodeError> {
    let mut span = Span {
        offset: 0,
        length: 0,
    };
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_VARINT) => span.offset = unzigzag32(r.varint()?)?,
            (2, WIRE_VARINT) => {
                span.length = u32::try_from(r.varint()?)
                    .map_err(|_| DecodeError::Protobuf("span length exceeds uint32".into()))?
            }
            (1 | 2, _) => return Err(wrong_wire("BucketSpan", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    Ok(span)
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A `sint32`: zigzag in a varint that must fit 32 bits.
fn unzigzag32(v: u64) -> Result<i32, DecodeError> {
    i32::try_from(unzigzag64(v)).map_err(|_| DecodeError::Protobuf("sint32 out of range".into()))
}

/// One `Label`: name (1), value (2).
fn decode_label(buf: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let mut name: &[u8] = &[];
    let mut value: &[u8] = &[];
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => name = r.bytes()?,
            (2, WIRE_LEN) => value = r.bytes()?,
            (1 | 2, _) => return Err(wrong_wire("Label", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    Ok((name, value))
}

/// One `Sample`: value (1, double), timestamp (2, int64 ms).
fn decode_sample(buf: &[u8]) -> Result<(i64, f64), DecodeError> {
    let mut value = 0.0;
    let mut timestamp = 0i64;
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_FIXED64) => value = f64::from_bits(r.fixed64()?),
            (2, WIRE_VARINT) => timestamp = r.varint()? as i64,
            (1 | 2, _) => return Err(wrong_wire("Sample", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    Ok((timestamp, value))
}

/// One `MetricMetadata`: type (1), metric_family_name (2), help (4), unit (5).
fn decode_metadata(buf: &[u8]) -> Result<Option<(String, MetricMetadata)>, DecodeError> {
    let mut kind = 0u64;
    let mut name: &[u8] = &[];
    let mut help: &[u8] = &[];
    let mut unit: &[u8] = &[];
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_VARINT) => kind = r.varint()?,
            (2, WIRE_LEN) => name = r.bytes()?,
            (4, WIRE_LEN) => help = r.bytes()?,
            (5, WIRE_LEN) => unit = r.bytes()?,
            (1 | 2 | 4 | 5, _) => return Err(wrong_wire("MetricMetadata", field, wire)),
            _ => r.skip(wire)?,
        }
    }
    let text = |b: &[u8], what: &str| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| DecodeError::Protobuf(format!("metadata {what} is not UTF-8")))
    };
    let name = text(name, "metric_family_name")?;
    if name.is_empty() {
        return Ok(None);
    }
    let metric_type = match kind {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    };
    Ok(Some((
        name,
        MetricMetadata {
            metric_type,
            help: text(help, "help")?,
            unit: text(unit, "unit")?,
        },
    )))
}

fn wrong_wire(message: &str, field: u64, wire: u8) -> DecodeError {
    DecodeError::Protobuf(format!(
        "{message} field {field} has wire type {wire}, which its type does not use"
    ))
}

pub(crate) const WIRE_VARINT: u8 = 0;
pub(crate) const WIRE_FIXED64: u8 = 1;
pub(crate) const WIRE_LEN: u8 = 2;
pub(crate) const WIRE_FIXED32: u8 = 5;

/// A cursor over protobuf wire format (also walks the scrape's delimited protobuf bodies).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn eof() -> DecodeError {
        DecodeError::Protobuf("unexpected end of input".into())
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        if self.buf.len() >= 10 {
            Err(DecodeError::Protobuf("varint longer than 10 bytes".into()))
        } else {
            Err(Self::eof())
        }
    }

    /// The next field number and wire type, or `None` at the end.
    pub(crate) fn key(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(DecodeError::Protobuf("field number 0".into()));
        }
        Ok(Some((field, (k & 7) as u8)))
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(Self::eof());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| Self::eof())?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            w => Err(DecodeError::Protobuf(format!("unsupported wire type {w}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protobuf writer for building test requests.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn varint(&mut self, mut v: u64) -> &mut Self {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
            self
        }
        fn key(&mut self, field: u64, wire: u8) -> &mut Self {
            self.varint(field << 3 | u64::from(wire))
        }
        fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
            self.key(field, WIRE_LEN).varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
    }

    fn label(n: &str, v: &str) -> Vec<u8> {
        let mut w = W::default();
        w.bytes(1, n.as_bytes()).bytes(2, v.as_bytes());
        w.0
    }

    fn sample(t: i64, v: f64) -> Vec<u8> {
        let mut w = W::default();
        w.key(1, WIRE_FIXED64);
        w.0.extend_from_slice(&v.to_bits().to_le_bytes());
        w.key(2, WIRE_VARINT).varint(t as u64);
        w.0
    }

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
        let mut w = W::default();
        for (n, v) in labels {
            w.bytes(1, &label(n, v));
        }
        for &(t, v) in samples {
            w.bytes(2, &sample(t, v));
        }
        w.0
    }

    #[test]
    fn decodes_series_samples_and_metadata() {
        let mut w = W::default();
        w.bytes(
            1,
            &series(
                &[("job", "a"), ("__name__", "up"), ("empty", "")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
        );
        // Exemplars (3) and an unknown field are skipped.
        let mut ts = series(&[("__name__", "x")], &[(-5, f64::INFINITY)]);
        ts.extend(W::default().bytes(3, &label("a", "b")).0.clone());
        ts.extend(W::default().key(99, WIRE_FIXED32).0.clone());
        ts.extend([0, 0, 0, 0]);
        w.bytes(1, &ts);
        let mut md = W::default();
        md.key(1, WIRE_VARINT)
            .varint(1)
            .bytes(2, b"http_requests")
            .bytes(4, b"Requests.")
            .bytes(5, b"");
        w.bytes(3, &md.0);
        let req = decode(&w.0).unwrap();
        assert_eq!(req.series, 2);
        assert_eq!(req.samples.len(), 3);
        assert_eq!(req.samples[0].0.to_string(), r#"up{job="a"}"#);
        assert_eq!((req.samples[1].1, req.samples[1].2), (2000, 0.0));
        assert_eq!(req.samples[2].1, -5);
        assert_eq!(req.samples[2].2, f64::INFINITY);
        assert_eq!(req.metadata[0].0, "http_requests");
        assert_eq!(req.metadata[0].1.metric_type, MetricType::Counter);
        assert_eq!(req.metadata[0].1.help, "Requests.");
    }

    #[test]
    fn snappy_round_trip_and_bounds() {
        let mut w = W::default();
        w.bytes(1, &series(&[("__name__", "m")], &[(1, 2.0)]));
        let body = snap::raw::Encoder::new().compress_vec(&w.0).unwrap();
        assert_eq!(decode_snappy(&body, 1 << 20).unwrap().samples.len(), 1);
        assert!(matches!(
            decode_snappy(&body, 4),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_snappy(b"\xff\xff\xff\xff\x0fjunk", 1 << 20),
            Err(DecodeError::TooLarge { .. }) | Err(DecodeError::Snappy(_))
        ));
        assert!(matches!(
            decode_snappy(&w.0, 1 << 20),
            Err(DecodeError::Snappy(_)) | Err(DecodeError::Protobuf(_))
        ));
    }

    #[test]
    fn refuses_bad_input_precisely() {
        let one = |ts: Vec<u8>| {
            let mut w = W::default();
            w.bytes(1, &ts);
            decode(&w.0)
        };
        let e = one(series(&[("__name__", "m"), ("bad-name", "x")], &[(1, 1.0)])).unwrap_err();
        assert!(
            e.to_string().starts_with(r#"invalid labels for series {__name__="m", bad-name="x"}: invalid label name "bad-name""#),
            "{e}"
        );
        let e = one(series(&[("job", "x")], &[(1, 1.0)])).unwrap_err();
        assert!(matches!(e, DecodeError::MissingMetricName { .. }));
        let e = one(series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[])).unwrap_err();
        assert!(e.to_string().contains("not unique"), "{e}");
        let e = one(series(&[("__name__", "1m")], &[])).unwrap_err();
        assert!(e.to_string().contains("invalid metric name"), "{e}");
        // Truncated input, a length past the end, a group wire type, a runaway varint.
        let mut w = W::default();
        w.bytes(1, &series(&[("__name__", "m")], &[(1, 1.0)]));
        for cut in 1..w.0.len() {
            assert!(decode(&w.0[..cut]).is_err(), "prefix of {cut} bytes");
        }
        assert!(decode(&[0x0a, 0x05, 0x0a]).is_err());
        assert!(decode(&[0x0b]).is_err());
        assert!(
            decode(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .is_err()
        );
        // A known field with the wrong wire type.
        assert!(decode(&[0x08, 0x01]).is_err());
        assert!(decode(&[0x00]).is_err());
        assert_eq!(decode(&[]).unwrap().series, 0);
    }

    // Native histograms, encoded by prost from Prometheus's `prompb` definitions, so the
    // walker is checked against an independent encoder.
    #[derive(Clone, PartialEq, prost::Message)]
    struct PbWriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<PbTimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct PbTimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<PbLabel>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<PbSample>,
        #[prost(message, repeated, tag = "4")]
        histograms: Vec<PbHistogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct PbLabel {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct PbSample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct PbHistogram {
        #[prost(oneof = "PbCount", tags = "1, 2")]
        count: Option<PbCount>,
        #[prost(double, tag = "3")]
        sum: f64,
        #[prost(sint32, tag = "4")]
        schema: i32,
        #[prost(double, tag = "5")]
        zero_threshold: f64,
        #[prost(oneof = "PbZeroCount", tags = "6, 7")]
        zero_count: Option<PbZeroCount>,
        #[prost(message, repeated, tag = "8")]
        negative_spans: Vec<PbSpan>,
        #[prost(sint64, repeated, tag = "9")]
        negative_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "10")]
        negative_counts: Vec<f64>,
        #[prost(message, repeated, tag = "11")]
        positive_spans: Vec<PbSpan>,
        #[prost(sint64, repeated, tag = "12")]
        positive_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "13")]
        positive_counts: Vec<f64>,
        #[prost(int32, tag = "14")]
        reset_hint: i32,
        #[prost(int64, tag = "15")]
        timestamp: i64,
        #[prost(double, repeated, tag = "16")]
        custom_values: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    enum PbCount {
        #[prost(uint64, tag = "1")]
        Int(u64),
        #[prost(double, tag = "2")]
        Float(f64),
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    enum PbZeroCount {
        #[prost(uint64, tag = "6")]
        Int(u64),
        #[prost(double, tag = "7")]
        Float(f64),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct PbSpan {
        #[prost(sint32, tag = "1")]
        offset: i32,
        #[prost(uint32, tag = "2")]
        length: u32,
    }

    fn pb_span(offset: i32, length: u32) -> PbSpan {
        PbSpan { offset, length }
    }

    /// An integer histogram: 9 observations, buckets 2, 1, 3 (deltas 2, -1, 2) at indexes
    /// -1, 0 and 3, one negative at 1, a zero bucket of 2.
    fn int_hist(t: i64) -> PbHistogram {
        PbHistogram {
            count: Some(PbCount::Int(9)),
            sum: 18.5,
            schema: 1,
            zero_threshold: 1e-128,
            zero_count: Some(PbZeroCount::Int(2)),
            negative_spans: vec![pb_span(1, 1)],
            negative_deltas: vec![1],
            positive_spans: vec![pb_span(-1, 2), pb_span(2, 1)],
            positive_deltas: vec![2, -1, 2],
            reset_hint: 2,
            timestamp: t,
            ..Default::default()
        }
    }

    fn float_hist(t: i64) -> PbHistogram {
        PbHistogram {
            count: Some(PbCount::Float(4.5)),
            sum: -3.25,
            schema: -53,
            positive_spans: vec![pb_span(0, 3)],
            positive_counts: vec![1.5, 0.0, 3.0],
            custom_values: vec![0.1, 1.0],
            reset_hint: 3,
            timestamp: t,
            ..Default::default()
        }
    }

    /// A series for [`request`]: metric name, float samples, histograms.
    type PbSeries<'a> = (&'a str, Vec<(i64, f64)>, Vec<PbHistogram>);

    fn request(series: Vec<PbSeries<'_>>) -> Vec<u8> {
        prost::Message::encode_to_vec(&PbWriteRequest {
            timeseries: series
                .into_iter()
                .map(|(name, samples, histograms)| PbTimeSeries {
                    labels: vec![PbLabel {
                        name: "__name__".into(),
                        value: name.into(),
                    }],
                    samples: samples
                        .into_iter()
                        .map(|(timestamp, value)| PbSample { value, timestamp })
                        .collect(),
                    histograms,
                })
                .collect(),
        })
    }

    #[test]
    fn decodes_integer_and_float_native_histograms() {
        let stale = PbHistogram {
            sum: f64::from_bits(crate::scrape::STALE_NAN_BITS),
            timestamp: 3000,
            ..Default::default()
        };
        let req = decode(&request(vec![
            ("h", vec![], vec![int_hist(1000), int_hist(2000), stale]),
            ("f", vec![(500, 1.0)], vec![float_hist(1000)]),
        ]))
        .unwrap();
        assert_eq!(req.series, 2);
        assert_eq!(req.histograms.len(), 3);
        let (l, t, h) = &req.histograms[0];
        assert_eq!((l.to_string().as_str(), *t), ("h{}", 1000));
        let want = FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 1,
            zero_threshold: 1e-128,
            zero_count: 2.0,
            count: 9.0,
            sum: 18.5,
            positive_spans: vec![
                Span {
                    offset: -1,
                    length: 2,
                },
                Span {
                    offset: 2,
                    length: 1,
                },
            ],
            positive_buckets: vec![2.0, 1.0, 3.0],
            negative_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            custom_values: vec![],
        };
        assert_eq!(**h, want);
        let (_, _, f) = &req.histograms[2];
        assert_eq!(f.counter_reset_hint, CounterResetHint::Gauge);
        assert_eq!(f.positive_buckets, [1.5, 0.0, 3.0]);
        assert_eq!(f.custom_values, [0.1, 1.0]);
        assert_eq!(f.count, 4.5);
        // The staleness marker of a histogram series becomes a float one.
        let stale: Vec<_> = req
            .samples
            .iter()
            .filter(|s| s.0.to_string() == "h{}")
            .collect();
        assert_eq!(stale.len(), 1);
        assert_eq!(
            (stale[0].1, stale[0].2.to_bits()),
            (3000, crate::scrape::STALE_NAN_BITS)
        );
        // Unpacked repeated fields (allowed by protobuf) decode the same.
        let mut w = W::default();
        w.key(1, WIRE_VARINT).varint(3);
        w.bytes(11, &[0x08, 0x00, 0x10, 0x02]);
        w.key(12, WIRE_VARINT).varint(2); // zigzag(1)
        w.key(12, WIRE_VARINT).varint(2);
        let mut ts = series(&[("__name__", "u")], &[]);
        ts.extend(W::default().bytes(4, &w.0).0.clone());
        let req = decode(&W::default().bytes(1, &ts).0).unwrap();
        assert_eq!(req.histograms[0].2.positive_buckets, [1.0, 2.0]);
    }

    #[test]
    fn refuses_broken_native_histograms_precisely() {
        let refused = |h: PbHistogram, words: &str| {
            let e = decode(&request(vec![
                ("ok", vec![(1, 1.0)], vec![]),
                ("bad", vec![], vec![h]),
            ]))
            .unwrap_err();
            assert!(matches!(e, DecodeError::InvalidHistogram { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.starts_with("series bad{}: native histogram at timestamp 7: "),
                "{text}"
            );
            assert!(text.contains(words), "{words:?} not in {text:?}");
        };
        let mut h = int_hist(7);
        h.positive_deltas = vec![2, -3, 2];
        refused(h, "positive bucket 1 has count -1");
        let mut h = int_hist(7);
        h.positive_deltas.push(1);
        refused(h, "positive spans cover 3 buckets but 4 counts");
        let mut h = int_hist(7);
        h.schema = 9;
        refused(h, "schema 9");
        let mut h = int_hist(7);
        h.count = Some(PbCount::Int(5));
        refused(h, "count 5 is less than");
        let mut h = int_hist(7);
        h.positive_counts = vec![1.0];
        refused(h, "integer histogram (count_int) carries float");
        let mut h = float_hist(7);
        h.positive_deltas = vec![1];
        refused(h, "float histogram (count_float) carries integer");
        let mut h = float_hist(7);
        h.custom_values = vec![1.0, 0.5];
        refused(h, "strictly ascending");
        let mut h = float_hist(7);
        h.positive_counts[1] = f64::NAN;
        refused(h, "positive bucket 1 has count NaN");
        let mut h = int_hist(7);
        h.reset_hint = 9;
        refused(h, "unknown reset_hint 9");
        let mut h = int_hist(7);
        h.positive_deltas = vec![i64::MAX, i64::MAX, 0];
        refused(h, "overflows");
        let mut h = int_hist(7);
        h.positive_spans[1].offset = i32::MAX;
        refused(h, "past the largest index");
        // A histogram field with the wrong wire type, a truncated span.
        let mut ts = series(&[("__name__", "m")], &[]);
        ts.extend(W::default().bytes(4, &[0x08 | 1, 0, 0]).0.clone());
        assert!(decode(&W::default().bytes(1, &ts).0).is_err());
        let mut ts = series(&[("__name__", "m")], &[]);
        ts.extend(W::default().bytes(4, &[0x5a, 0x03, 0x08]).0.clone());
        assert!(decode(&W::default().bytes(1, &ts).0).is_err());
        // Every truncation of a good request is an error, never a panic.
        let good = request(vec![("h", vec![], vec![int_hist(1), float_hist(2)])]);
        for cut in 1..good.len() {
            let _ = decode(&good[..cut]);
        }
    }
}
