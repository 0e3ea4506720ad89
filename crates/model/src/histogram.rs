//! Native histograms: Prometheus's sparse, exponential-bucket histograms (and their
//! custom-bucket variant), as receivers produce them, the tsdb stores them and PromQL reads them.
//!
//! One type, [`FloatHistogram`], serves every part: counts are `f64` (integer histograms
//! from remote_write or OTLP convert exactly, since counts below 2^53 are exact doubles), and
//! buckets are held as absolute counts, not the wire's deltas. Its meaning follows
//! Prometheus's `FloatHistogram`:
//!
//! - `schema` -4..=8 is exponential: bucket `i` of the positive side covers
//!   `(base^(i-1), base^i]` with `base = 2^(2^-schema)`; the negative side mirrors it.
//!   Schema [`CUSTOM_BUCKETS_SCHEMA`] (-53) means custom bounds in `custom_values`
//!   (bucket `i` covers `(custom_values[i-1], custom_values[i]]`, the last is `+Inf`).
//! - Buckets are listed sparsely: `spans` give runs of consecutive bucket indexes, each
//!   starting `offset` after the end of the previous run (the first run's offset is its
//!   absolute start index), `length` buckets long; `buckets` holds one count per bucket in
//!   those runs, in order.
//! - The zero bucket `[-zero_threshold, zero_threshold]` holds `zero_count` observations.
//! - `count` is all observations (it may exceed the bucket sum when NaNs were observed);
//!   `sum` their sum.
//!
//! [`FloatHistogram::validate`] is the receivers' check: what it refuses must never reach
//! storage, so every reader can rely on the span/bucket invariants.

/// The schema number of custom-bucket histograms (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The smallest exponential schema.
pub const MIN_EXPONENTIAL_SCHEMA: i32 = -4;
/// The largest exponential schema.
pub const MAX_EXPONENTIAL_SCHEMA: i32 = 8;

/// Whether a histogram is known to follow a counter reset, known not to, is a gauge, or
/// nobody said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Nothing is known; readers detect resets by comparing with the previous sample.
    #[default]
    Unknown,
    /// This sample follows a counter reset.
    CounterReset,
    /// This sample is known not to follow a counter reset.
    NotCounterReset,
    /// A gauge histogram: counts may go up and down.
    Gauge,
}

/// A run of consecutive buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Gap from the previous run's end (or the absolute start index for the first run).
    pub offset: i32,
    /// Number of consecutive buckets.
    pub length: u32,
}

/// A native histogram sample (see the module docs for the field meanings).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets, ascending; empty unless the schema is custom.
    pub custom_values: Vec<f64>,
}

/// Why a histogram was refused; the message names the broken field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid native histogram: {0}")]
pub struct HistogramError(pub String);

impl FloatHistogram {
    /// Whether the schema is the custom-bucket one.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Checks the invariants every reader relies on: a known schema, spans that cover
    /// exactly the listed buckets with non-negative gaps after the first, no negative or
    /// NaN counts, a `count` not below the buckets' total, and custom bounds (strictly
    /// ascending, finite) exactly when the schema is custom, with no negative buckets.
    pub fn validate(&self) -> Result<(), HistogramError> {
        let err = |m: String| Err(HistogramError(m));
        if self.uses_custom_buckets() {
            if !self.negative_spans.is_empty() || !self.negative_buckets.is_empty() {
                return err("custom-bucket histograms cannot have negative buckets".into());
            }
            if self.zero_count != 0.0 || self.zero_threshold != 0.0 {
                return err("custom-bucket histograms cannot have a zero bucket".into());
            }
            for w in self.custom_values.windows(2) {
                if w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less) {
                    return err(format!(
                        "custom bucket bounds must be strictly ascending, got {} before {}",
                        w[0], w[1]
                    ));
                }
            }
            if self.custom_values.iter().any(|v| !v.is_finite()) {
                return err("custom bucket bounds must be finite (+Inf is implied)".into());
            }
        } else {
            if !(MIN_EXPONENTIAL_SCHEMA..=MAX_EXPONENTIAL_SCHEMA).contains(&self.schema) {
                return err(format!(
                    "schema {} is outside {MIN_EXPONENTIAL_SCHEMA}..={MAX_EXPONENTIAL_SCHEMA} \
                     (or {CUSTOM_BUCKETS_SCHEMA} for custom buckets)",
                    self.schema
                ));
            }
            if !self.custom_values.is_empty() {
                return err("custom bucket bounds given for an exponential schema".into());
            }
            if self.zero_threshold.is_nan() || self.zero_threshold < 0.0 {
                return err(format!(
                    "zero threshold {} must be zero or positive",
                    self.zero_threshold
                ));
            }
        }
        let max_index = if self.uses_custom_buckets() {
            Some(self.custom_values.len() as i64)
        } else {
            None
        };
        let pos = check_side(
            "positive",
            &self.positive_spans,
            &self.positive_buckets,
            max_index,
        )?;
        let neg = check_side(
            "negative",
            &self.negative_spans,
            &self.negative_buckets,
            None,
        )?;
        if self.zero_count.is_nan() || self.zero_count < 0.0 {
            return err(format!(
                "zero bucket count {} must be zero or positive",
                self.zero_count
            ));
        }
        if self.count.is_nan() || self.count < 0.0 {
            return err(format!("count {} must be zero or positive", self.count));
        }
        let total = pos + neg + self.zero_count;
        // Float sums may round; allow a relative hair before calling the count short.
        if self.count < total && (total - self.count) > total * 1e-9 {
            return err(format!(
                "count {} is less than the {} observations in its buckets",
                self.count, total
            ));
        }
        Ok(())
    }

    /// Iterates `(bucket index, count)` over one side's sparse buckets.
    pub fn bucket_indexes<'a>(
        spans: &'a [Span],
        buckets: &'a [f64],
    ) -> impl Iterator<Item = (i32, f64)> + 'a {
        let mut idx = 0i64;
        spans
            .iter()
            .enumerate()
            .flat_map(move |(n, s)| {
                idx = if n == 0 {
                    i64::from(s.offset)
                } else {
                    idx + i64::from(s.offset)
                };
                let start = idx;
                idx += i64::from(s.length);
                (start..start + i64::from(s.length)).map(|i| i as i32)
            })
            .zip(buckets.iter().copied())
    }
}

/// Checks one side's spans against its buckets and returns the buckets' total.
fn check_side(
    side: &str,
    spans: &[Span],
    buckets: &[f64],
    max_index: Option<i64>,
) -> Result<f64, HistogramError> {
    let mut covered = 0u64;
    let mut idx = 0i64;
    for (n, s) in spans.iter().enumerate() {
        if n > 0 && s.offset < 0 {
            return Err(HistogramError(format!(
                "{side} span {n} has negative offset {}",
                s.offset
            )));
        }
        idx = if n == 0 {
            i64::from(s.offset)
        } else {
            idx + i64::from(s.offset)
        };
        idx += i64::from(s.length);
        covered += u64::from(s.length);
    }
    if covered != buckets.len() as u64 {
        return Err(HistogramError(format!(
            "{side} spans cover {covered} buckets but {} counts were given",
            buckets.len()
        )));
    }
    if let (Some(max), Some(first)) = (max_index, spans.first()) {
        if first.offset < 0 || idx > max + 1 {
            return Err(HistogramError(format!(
                "{side} buckets reach index {} but only {} custom bounds (+Inf) were given",
                idx - 1,
                max
            )));
        }
    }
    let mut total = 0.0;
    for (i, &b) in buckets.iter().enumerate() {
        if b.is_nan() || b < 0.0 {
            return Err(HistogramError(format!(
                "{side} bucket {i} has count {b}; counts must be zero or positive"
            )));
        }
        total += b;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 6.0,
            sum: 10.0,
            positive_spans: vec![
                Span {
                    offset: 1,
                    length: 2,
                },
                Span {
                    offset: 2,
                    length: 1,
                },
            ],
            positive_buckets: vec![1.0, 2.0, 1.0],
            negative_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            ..Default::default()
        }
    }

    #[test]
    fn valid_histogram_passes_and_indexes_follow_spans() {
        h().validate().unwrap();
        let got: Vec<_> =
            FloatHistogram::bucket_indexes(&h().positive_spans, &h().positive_buckets).collect();
        assert_eq!(got, [(1, 1.0), (2, 2.0), (5, 1.0)]);
    }

    #[test]
    fn broken_histograms_are_refused_with_the_field() {
        let mut x = h();
        x.positive_buckets.push(1.0);
        assert!(x
            .validate()
            .unwrap_err()
            .0
            .contains("positive spans cover 3"));
        let mut x = h();
        x.schema = 9;
        assert!(x.validate().unwrap_err().0.contains("schema 9"));
        let mut x = h();
        x.count = 2.0;
        assert!(x.validate().unwrap_err().0.contains("less than"));
        let mut x = h();
        x.negative_buckets[0] = -1.0;
        assert!(x.validate().unwrap_err().0.contains("negative bucket 0"));
        let mut x = h();
        x.positive_spans[1].offset = -1;
        assert!(x.validate().unwrap_err().0.contains("negative offset"));
    }

    #[test]
    fn custom_buckets_need_ascending_bounds_within_range() {
        let mut x = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 1.0, 1.0],
            custom_values: vec![1.0, 2.0],
            ..Default::default()
        };
        x.validate().unwrap();
        x.custom_values = vec![2.0, 1.0];
        assert!(x.validate().is_err());
        x.custom_values = vec![1.0];
        assert!(x.validate().unwrap_err().0.contains("custom bounds"));
    }
}
