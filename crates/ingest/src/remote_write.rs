//! Prometheus remote_write 1.0: decoding a snappy-compressed `prometheus.WriteRequest`.
//!
//! The protobuf walker is our own rather than prost-generated structs: remote_write is the
//! metrics ingest hot path, and walking the bytes builds each series' [`Labels`] straight
//! from the wire, with no intermediate owned message tree to allocate and free. It reads
//! only what Lookout stores (series labels, float samples, metric metadata), skips exemplars
//! and unknown fields as protobuf requires, and refuses native histogram samples with a
//! clear error instead of dropping them unseen.
//!
//! Everything is checked before anything is returned: a request is either decoded whole or
//! refused with a [`DecodeError`] that names the problem (the HTTP layer answers 400, as
//! Prometheus does, so the sender does not retry it).

use model::labels::{LabelError, Labels};

use crate::metrics::{MetricMetadata, MetricType, Sample};

/// Default bound on a request body, compressed or not (VictoriaMetrics' default too).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 << 20;

/// Most labels read for one series before the request is refused.
const MAX_LABELS_ON_WIRE: usize = 1024;

/// A decoded request.
#[derive(Debug, Default)]
pub struct WriteRequest {
    /// Every float sample, in request order.
    pub samples: Vec<Sample>,
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
    /// Native histogram samples, which Lookout's tsdb does not store yet.
    #[error("series {series} carries native histogram samples, which Lookout does not store yet; send classic histograms (send_native_histograms: false)")]
    NativeHistograms { series: String },
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
    let mut histograms = false;
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
            (4, WIRE_LEN) => {
                r.bytes()?;
                histograms = true;
            }
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
    if histograms {
        return Err(DecodeError::NativeHistograms {
            series: labels.to_string(),
        });
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

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A cursor over protobuf wire format.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn eof() -> DecodeError {
        DecodeError::Protobuf("unexpected end of input".into())
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
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
    fn key(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
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

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(Self::eof());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
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

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
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
        let mut ts = series(&[("__name__", "m")], &[]);
        ts.extend(W::default().bytes(4, b"").0.clone());
        assert!(matches!(
            one(ts).unwrap_err(),
            DecodeError::NativeHistograms { .. }
        ));
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
}
