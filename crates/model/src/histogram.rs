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
//!
//! The arithmetic PromQL needs lives here too, written after Prometheus's
//! `model/histogram/float_histogram.go` and `promql/quantile.go` semantics (we own it, since
//! results are compared with Prometheus's to the last digit): addition and subtraction with
//! schema reduction, zero-bucket widening and custom-bound reconciliation, scaling, counter
//! reset detection, compensated sums and means, quantile, fraction, variance, trimming, the
//! test notation (`{{schema:0 count:4 sum:5 buckets:[1 2 1]}}`) and Go's string form.
//! Results may hold empty buckets; [`FloatHistogram::compact`] gives the canonical layout.

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

/// One bucket with its bounds, as PromQL and the JSON API see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Whether `lower` belongs to the bucket.
    pub lower_inclusive: bool,
    /// Whether `upper` belongs to the bucket.
    pub upper_inclusive: bool,
    /// Observations in the bucket.
    pub count: f64,
}

/// What an addition or subtraction noticed besides its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combined {
    /// One operand said "counter reset" and the other "not a counter reset".
    pub counter_reset_collision: bool,
    /// Custom-bucket operands had different bounds and were mapped onto the bounds both share.
    pub custom_buckets_reconciled: bool,
}

/// Two histograms that cannot be combined: one has exponential buckets, the other custom
/// buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot combine histograms with exponential and custom buckets")]
pub struct IncompatibleSchemas;

/// Upper bound of bucket `idx` of an exponential `schema` (Prometheus's `getBoundExponential`):
/// `2^(idx * 2^-schema)`, except that the last finite bucket ends at `f64::MAX` so the next
/// one (for ±Inf observations) is the only one reaching infinity.
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(idx) << (-schema);
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let per = 1i64 << schema;
    let frac_idx = i64::from(idx) & (per - 1);
    let exp = (i64::from(idx) >> schema) + 1;
    // frac in [0.5, 1): 2^(frac_idx/per) / 2.
    let frac = if frac_idx == 0 {
        0.5
    } else {
        (frac_idx as f64 / per as f64).exp2() / 2.0
    };
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `frac * 2^exp` without overflowing the intermediate power.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let exp = exp.clamp(-2200, 2200) as i32;
    if exp > 1000 {
        frac * 2f64.powi(1000) * 2f64.powi(exp - 1000)
    } else if exp < -1000 {
        frac * 2f64.powi(-1000) * 2f64.powi(exp + 1000)
    } else {
        frac * 2f64.powi(exp)
    }
}

/// The index a bucket of `origin` schema falls into at the coarser `target` schema.
fn target_index(idx: i32, origin: i32, target: i32) -> i32 {
    ((idx - 1) >> (origin - target)) + 1
}

/// Sparse buckets `(index, count)` ascending, from spans and counts.
fn sparse(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    FloatHistogram::bucket_indexes(spans, buckets).collect()
}

/// Spans and counts from sparse `(index, count)` pairs ascending; adjacent indexes share a span.
fn from_sparse(pairs: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(pairs.len());
    let mut next = 0i64;
    for (n, &(i, c)) in pairs.iter().enumerate() {
        let i = i64::from(i);
        if n > 0 && i == next {
            if let Some(s) = spans.last_mut() {
                s.length += 1;
            }
        } else {
            let offset = if n == 0 { i } else { i - next };
            spans.push(Span {
                offset: offset as i32,
                length: 1,
            });
        }
        buckets.push(c);
        next = i + 1;
    }
    (spans, buckets)
}

/// Adds `b` into `a` (both ascending by index), `sign` scaling `b`.
fn merge_add(a: &[(i32, f64)], b: &[(i32, f64)], sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j >= b.len() || (i < a.len() && a[i].0 < b[j].0) {
            out.push(a[i]);
            i += 1;
        } else if i >= a.len() || b[j].0 < a[i].0 {
            out.push((b[j].0, sign * b[j].1));
            j += 1;
        } else {
            out.push((a[i].0, a[i].1 + sign * b[j].1));
            i += 1;
            j += 1;
        }
    }
    out
}

/// Maps sparse buckets to a coarser schema, summing the buckets that merge.
fn reduce(pairs: &[(i32, f64)], origin: i32, target: i32) -> Vec<(i32, f64)> {
    if origin <= target {
        return pairs.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
    for &(i, c) in pairs {
        let t = target_index(i, origin, target);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Maps custom buckets onto `bounds` (a subset of `from`'s bounds): each bucket goes to the
/// first kept bound at or above its own upper bound.
fn remap_custom(pairs: &[(i32, f64)], from: &[f64], bounds: &[f64]) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
    for &(i, c) in pairs {
        let upper = usize::try_from(i)
            .ok()
            .and_then(|i| from.get(i))
            .copied()
            .unwrap_or(f64::INFINITY);
        let t = bounds.partition_point(|&b| b < upper) as i32;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out.sort_by_key(|p| p.0);
    out
}

/// One step of Kahan-Neumaier summation: `(sum, compensation)` after adding `v`.
fn kahan_step(v: f64, s: f64, c: f64) -> (f64, f64) {
    let t = s + v;
    let c = if t.is_infinite() {
        0.0
    } else if s.abs() >= v.abs() {
        c + ((s - t) + v)
    } else {
        c + ((v - t) + s)
    };
    (t, c)
}

/// The compensated sum of `vals`.
fn kahan_sum_of(vals: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for &v in vals {
        (s, c) = kahan_step(v, s, c);
    }
    if s.is_infinite() {
        s
    } else {
        s + c
    }
}

/// The mean of `vals` as Prometheus's `avg` computes it: the compensated sum over the count,
/// switching to a compensated incremental mean once the sum would overflow.
fn kahan_mean_of(vals: &[f64]) -> f64 {
    let Some(&first) = vals.first() else {
        return f64::NAN;
    };
    let (mut sum, mut c) = (first, 0.0);
    let (mut mean, mut incremental) = (0.0, false);
    let mut count = 1.0;
    for &v in &vals[1..] {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_step(v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        (mean, c) = kahan_step(v / count - corrected / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Whether any bucket of `prev` holds more than the same bucket of `cur` (missing is 0).
fn decreased(prev: &[(i32, f64)], cur: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(i, c) in prev {
        while j < cur.len() && cur[j].0 < i {
            j += 1;
        }
        let now = if j < cur.len() && cur[j].0 == i {
            cur[j].1
        } else {
            0.0
        };
        if c > now {
            return true;
        }
    }
    false
}

/// Go's `%g` of a float slice: `[1 2.5 +Inf]`.
fn go_float_slice(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|f| crate::gofmt::format_g(*f)).collect();
    format!("[{}]", parts.join(" "))
}

impl FloatHistogram {
    /// Whether this sample is a staleness marker (Prometheus marks stale histograms by a
    /// special NaN in `sum`).
    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }

    /// The zero bucket `[-zero_threshold, zero_threshold]`.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Upper bound of positive bucket `idx` in this histogram's schema (custom or exponential).
    fn upper_bound(&self, idx: i32) -> f64 {
        if self.uses_custom_buckets() {
            if idx < 0 {
                return f64::NEG_INFINITY;
            }
            return self
                .custom_values
                .get(idx as usize)
                .copied()
                .unwrap_or(f64::INFINITY);
        }
        exponential_bound(idx, self.schema)
    }

    /// The positive buckets with bounds, ascending (every listed bucket, empty ones too).
    pub fn positive_bucket_list(&self) -> Vec<Bucket> {
        Self::bucket_indexes(&self.positive_spans, &self.positive_buckets)
            .map(|(i, c)| Bucket {
                lower: self.upper_bound(i - 1),
                upper: self.upper_bound(i),
                lower_inclusive: false,
                upper_inclusive: true,
                count: c,
            })
            .collect()
    }

    /// The negative buckets with bounds, from the one nearest zero outwards.
    pub fn negative_bucket_list(&self) -> Vec<Bucket> {
        Self::bucket_indexes(&self.negative_spans, &self.negative_buckets)
            .map(|(i, c)| Bucket {
                lower: -exponential_bound(i, self.schema),
                upper: -exponential_bound(i - 1, self.schema),
                lower_inclusive: true,
                upper_inclusive: false,
                count: c,
            })
            .collect()
    }

    /// Every bucket from the lowest value up: negative buckets, the zero bucket (when it
    /// holds observations), positive buckets (Prometheus's `AllBucketIterator`).
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let mut out = self.negative_bucket_list();
        out.reverse();
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.positive_bucket_list());
        out
    }

    /// Removes empty buckets and merges adjacent spans (Prometheus's `Compact(0)`), the
    /// canonical layout two equal histograms share.
    pub fn compact(&mut self) {
        for negative in [false, true] {
            let (spans, buckets) = if negative {
                (&mut self.negative_spans, &mut self.negative_buckets)
            } else {
                (&mut self.positive_spans, &mut self.positive_buckets)
            };
            let pairs: Vec<(i32, f64)> = sparse(spans, buckets)
                .into_iter()
                .filter(|p| p.1 != 0.0)
                .collect();
            let (s, b) = from_sparse(&pairs);
            *spans = s;
            *buckets = b;
        }
    }

    /// Multiplies every count and the sum by `factor`.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
    }

    /// Divides every count and the sum by `divisor`. By zero, as Prometheus does, the count,
    /// sum and zero bucket become ±Inf (or NaN) and the other buckets are dropped.
    pub fn div(&mut self, divisor: f64) {
        if divisor == 0.0 {
            self.zero_count /= divisor;
            self.count /= divisor;
            self.sum /= divisor;
            self.positive_spans.clear();
            self.positive_buckets.clear();
            self.negative_spans.clear();
            self.negative_buckets.clear();
            return;
        }
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
    }

    /// A copy at the coarser `target` schema (buckets merged); custom-bucket histograms and
    /// targets not below the schema are copied unchanged.
    pub fn copy_to_schema(&self, target: i32) -> FloatHistogram {
        let mut c = self.clone();
        if self.uses_custom_buckets() || target >= self.schema {
            return c;
        }
        let pos = reduce(
            &sparse(&self.positive_spans, &self.positive_buckets),
            self.schema,
            target,
        );
        let neg = reduce(
            &sparse(&self.negative_spans, &self.negative_buckets),
            self.schema,
            target,
        );
        (c.positive_spans, c.positive_buckets) = from_sparse(&pos);
        (c.negative_spans, c.negative_buckets) = from_sparse(&neg);
        c.schema = target;
        c
    }

    /// The zero count this histogram would have with the zero threshold raised to `larger`,
    /// and the threshold actually needed: a threshold inside a populated bucket moves up to
    /// that bucket's upper bound, so the bucket can be absorbed whole.
    pub fn zero_count_for_larger_threshold(&self, larger: f64) -> (f64, f64) {
        let mut larger = larger;
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold.max(larger));
        }
        let pos = self.positive_bucket_list();
        let neg = self.negative_bucket_list();
        'outer: loop {
            let mut count = self.zero_count;
            for b in &pos {
                if b.lower >= larger {
                    break;
                }
                count += b.count;
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in &neg {
                if b.upper <= -larger {
                    break;
                }
                count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    /// Drops the buckets now inside the zero bucket (their counts are already in it).
    fn trim_buckets_in_zero_bucket(&mut self) {
        let t = self.zero_threshold;
        let schema = self.schema;
        let pos: Vec<(i32, f64)> = sparse(&self.positive_spans, &self.positive_buckets)
            .into_iter()
            .filter(|&(i, _)| exponential_bound(i - 1, schema) >= t)
            .collect();
        let neg: Vec<(i32, f64)> = sparse(&self.negative_spans, &self.negative_buckets)
            .into_iter()
            .filter(|&(i, _)| exponential_bound(i - 1, schema) >= t)
            .collect();
        (self.positive_spans, self.positive_buckets) = from_sparse(&pos);
        (self.negative_spans, self.negative_buckets) = from_sparse(&neg);
    }

    /// Widens both zero buckets to a common threshold; returns `other`'s zero count at it.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Each round moves a threshold up to a bucket bound, so this ends; the bound keeps a
        // hostile histogram from spinning.
        for _ in 0..10_000 {
            if other_threshold == self.zero_threshold {
                break;
            }
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    /// The counter-reset hint of a sum of histograms with these two hints; `true` when the
    /// two hints contradict each other (reset and not-reset).
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (a, b) = (self.counter_reset_hint, other.counter_reset_hint);
        match (a, b) {
            _ if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// `self += other` (Prometheus's `FloatHistogram.Add`): the coarser schema wins, zero
    /// buckets widen to cover both, custom buckets with different bounds are mapped onto the
    /// bounds both share. Fails, leaving `self` unchanged, for exponential plus custom buckets.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, 1.0)
    }

    /// The sum of `items` (at least one), laid out as repeated [`FloatHistogram::add`] would
    /// lay it out, with every count and the sum added with Kahan-Neumaier compensation so
    /// that large values cancelling out do not swallow small ones (Prometheus's `KahanAdd`).
    pub fn kahan_sum(
        items: &[&FloatHistogram],
    ) -> Result<(FloatHistogram, Combined), IncompatibleSchemas> {
        Self::fold_components(items, kahan_sum_of)
    }

    /// The mean of `items` (at least one), component by component: the compensated sum over
    /// the number of items, or, where that sum overflows, the compensated incremental mean
    /// (Prometheus's `avg` numerics), so large finite inputs keep a finite mean.
    pub fn mean(
        items: &[&FloatHistogram],
    ) -> Result<(FloatHistogram, Combined), IncompatibleSchemas> {
        Self::fold_components(items, kahan_mean_of)
    }

    /// Lays `items` out as repeated additions would (schema, zero bucket, custom bounds,
    /// hint), then computes every component (count, sum, zero count, each bucket) from the
    /// items' values mapped onto that layout with `f`.
    fn fold_components(
        items: &[&FloatHistogram],
        f: fn(&[f64]) -> f64,
    ) -> Result<(FloatHistogram, Combined), IncompatibleSchemas> {
        let Some(first) = items.first() else {
            return Ok((FloatHistogram::default(), Combined::default()));
        };
        let mut acc = (*first).clone();
        let mut flags = Combined::default();
        for h in &items[1..] {
            let o = acc.add(h)?;
            flags.custom_buckets_reconciled |= o.custom_buckets_reconciled;
        }
        // Prometheus reports a collision when the inputs hold both hints, whatever order
        // they come in and whatever else (a gauge) is in the mix.
        let has = |h: CounterResetHint| items.iter().any(|x| x.counter_reset_hint == h);
        flags.counter_reset_collision =
            has(CounterResetHint::CounterReset) && has(CounterResetHint::NotCounterReset);
        let n = items.len();
        let counts: Vec<f64> = items.iter().map(|h| h.count).collect();
        let sums: Vec<f64> = items.iter().map(|h| h.sum).collect();
        acc.count = f(&counts);
        acc.sum = f(&sums);
        let schema = acc.schema;
        let threshold = acc.zero_threshold;
        let custom = acc.uses_custom_buckets();
        let mut zero_terms = Vec::with_capacity(n);
        for negative in [false, true] {
            let mut terms: std::collections::BTreeMap<i32, Vec<f64>> = Default::default();
            for (k, h) in items.iter().enumerate() {
                let (sp, bk) = if negative {
                    (&h.negative_spans, &h.negative_buckets)
                } else {
                    (&h.positive_spans, &h.positive_buckets)
                };
                let pairs = sparse(sp, bk);
                let mapped: Vec<(i32, f64)> = if custom {
                    if h.custom_values == acc.custom_values {
                        pairs
                    } else {
                        remap_custom(&pairs, &h.custom_values, &acc.custom_values)
                    }
                } else {
                    if !negative {
                        zero_terms.push(h.zero_count_for_larger_threshold(threshold).0);
                    }
                    reduce(&pairs, h.schema, schema)
                        .into_iter()
                        .filter(|&(i, _)| exponential_bound(i, schema) > threshold)
                        .collect()
                };
                for (i, c) in mapped {
                    terms.entry(i).or_insert_with(|| vec![0.0; n])[k] += c;
                }
            }
            let pairs: Vec<(i32, f64)> = terms.into_iter().map(|(i, v)| (i, f(&v))).collect();
            let (sp, bk) = from_sparse(&pairs);
            if negative {
                (acc.negative_spans, acc.negative_buckets) = (sp, bk);
            } else {
                (acc.positive_spans, acc.positive_buckets) = (sp, bk);
            }
        }
        if !custom {
            acc.zero_count = f(&zero_terms);
        }
        Ok((acc, flags))
    }

    /// `self -= other`, as [`FloatHistogram::add`] (buckets may become negative).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, -1.0)
    }

    fn combine(
        &mut self,
        other: &FloatHistogram,
        sign: f64,
    ) -> Result<Combined, IncompatibleSchemas> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(IncompatibleSchemas);
        }
        let mut out = Combined {
            counter_reset_collision: self.adjust_counter_reset(other),
            ..Combined::default()
        };
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        let a = sparse(&self.positive_spans, &self.positive_buckets);
        let b = sparse(&other.positive_spans, &other.positive_buckets);
        if self.uses_custom_buckets() {
            let merged = if self.custom_values == other.custom_values {
                merge_add(&a, &b, sign)
            } else {
                out.custom_buckets_reconciled = true;
                let shared: Vec<f64> = self
                    .custom_values
                    .iter()
                    .copied()
                    .filter(|v| other.custom_values.contains(v))
                    .collect();
                let a = remap_custom(&a, &self.custom_values, &shared);
                let b = remap_custom(&b, &other.custom_values, &shared);
                self.custom_values = shared;
                merge_add(&a, &b, sign)
            };
            (self.positive_spans, self.positive_buckets) = from_sparse(&merged);
            return Ok(out);
        }
        let other_zero = self.reconcile_zero_buckets(other);
        self.zero_count += sign * other_zero;
        let schema = self.schema.min(other.schema);
        let threshold = self.zero_threshold;
        for negative in [false, true] {
            let (mine, theirs) = if negative {
                (
                    sparse(&self.negative_spans, &self.negative_buckets),
                    sparse(&other.negative_spans, &other.negative_buckets),
                )
            } else {
                (a.clone(), b.clone())
            };
            let mine = reduce(&mine, self.schema, schema);
            // The other side's buckets inside the (widened) zero bucket are already counted
            // in its zero count.
            let theirs: Vec<(i32, f64)> = reduce(&theirs, other.schema, schema)
                .into_iter()
                .filter(|&(i, _)| exponential_bound(i, schema) > threshold)
                .collect();
            let merged = merge_add(&mine, &theirs, sign);
            let (s, bk) = from_sparse(&merged);
            if negative {
                (self.negative_spans, self.negative_buckets) = (s, bk);
            } else {
                (self.positive_spans, self.positive_buckets) = (s, bk);
            }
        }
        self.schema = schema;
        Ok(out)
    }

    /// Whether `self` follows a counter reset relative to `previous` (Prometheus's
    /// `DetectReset`): an explicit hint decides; otherwise any count, zero bucket or bucket
    /// that went down, a finer schema, a narrower zero bucket or changed custom bounds.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() {
            if self.custom_values != previous.custom_values {
                // Different bounds compare on the bounds both share, as an addition would
                // reconcile them.
                let shared: Vec<f64> = self
                    .custom_values
                    .iter()
                    .copied()
                    .filter(|v| previous.custom_values.contains(v))
                    .collect();
                let cur = remap_custom(
                    &sparse(&self.positive_spans, &self.positive_buckets),
                    &self.custom_values,
                    &shared,
                );
                let prev = remap_custom(
                    &sparse(&previous.positive_spans, &previous.positive_buckets),
                    &previous.custom_values,
                    &shared,
                );
                return decreased(&prev, &cur);
            }
        } else {
            if self.schema > previous.schema {
                return true;
            }
            if self.zero_threshold < previous.zero_threshold {
                return true;
            }
            let (prev_zero, threshold) =
                previous.zero_count_for_larger_threshold(self.zero_threshold);
            if threshold != self.zero_threshold {
                return true;
            }
            if self.zero_count < prev_zero {
                return true;
            }
        }
        let schema = self.schema;
        let t = self.zero_threshold;
        let custom = self.uses_custom_buckets();
        for negative in [false, true] {
            let (cur, prev) = if negative {
                (
                    sparse(&self.negative_spans, &self.negative_buckets),
                    sparse(&previous.negative_spans, &previous.negative_buckets),
                )
            } else {
                (
                    sparse(&self.positive_spans, &self.positive_buckets),
                    sparse(&previous.positive_spans, &previous.positive_buckets),
                )
            };
            let above = |v: Vec<(i32, f64)>| -> Vec<(i32, f64)> {
                if custom {
                    return v;
                }
                v.into_iter()
                    .filter(|&(i, _)| exponential_bound(i, schema) > t)
                    .collect()
            };
            let cur = above(reduce(&cur, self.schema, schema));
            let prev = above(reduce(&prev, previous.schema, schema));
            if decreased(&prev, &cur) {
                return true;
            }
        }
        false
    }

    /// Go's `String()` of a histogram, as `count_values` labels it:
    /// `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}` (populated buckets only).
    pub fn go_string(&self) -> String {
        let g = crate::gofmt::format_g;
        let mut s = format!("{{count:{}, sum:{}", g(self.count), g(self.sum));
        let mut neg = self.negative_bucket_list();
        neg.reverse();
        let zero = if self.zero_count != 0.0 {
            Some(self.zero_bucket())
        } else {
            None
        };
        for b in neg
            .iter()
            .chain(zero.iter())
            .chain(self.positive_bucket_list().iter())
        {
            if b.count == 0.0 {
                continue;
            }
            s.push_str(&format!(
                ", {}{},{}{}:{}",
                if b.lower_inclusive { '[' } else { '(' },
                g(b.lower),
                g(b.upper),
                if b.upper_inclusive { ']' } else { ')' },
                g(b.count)
            ));
        }
        s.push('}');
        s
    }

    /// Whether NaN was observed: the sum is NaN and the count exceeds the buckets' total
    /// (a NaN observation is counted but lands in no bucket).
    pub fn has_nan_observations(&self) -> bool {
        if !self.sum.is_nan() {
            return false;
        }
        let total: f64 = self.zero_count
            + self.positive_buckets.iter().sum::<f64>()
            + self.negative_buckets.iter().sum::<f64>();
        self.count > total
    }

    /// The `q` quantile by interpolation within buckets (Prometheus's `HistogramQuantile`):
    /// exponentially inside exponential buckets, linearly in the zero bucket and in custom
    /// buckets.
    pub fn quantile(&self, q: f64) -> f64 {
        if q < 0.0 {
            return f64::NEG_INFINITY;
        }
        if q > 1.0 {
            return f64::INFINITY;
        }
        if self.count == 0.0 || q.is_nan() {
            return f64::NAN;
        }
        let forward = self.sum.is_nan() || q < 0.5;
        let mut buckets = self.all_buckets();
        let mut rank = if forward {
            q * self.count
        } else {
            buckets.reverse();
            (1.0 - q) * self.count
        };
        let mut count = 0.0;
        let mut bucket = Bucket {
            lower: 0.0,
            upper: 0.0,
            lower_inclusive: false,
            upper_inclusive: false,
            count: 0.0,
        };
        for b in &buckets {
            bucket = *b;
            if b.count == 0.0 {
                continue;
            }
            count += b.count;
            if count >= rank {
                break;
            }
        }
        if !self.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
            if self.negative_buckets.is_empty() && !self.positive_buckets.is_empty() {
                bucket.lower = 0.0;
            } else if self.positive_buckets.is_empty() && !self.negative_buckets.is_empty() {
                bucket.upper = 0.0;
            }
        } else if self.uses_custom_buckets() {
            if bucket.lower == f64::NEG_INFINITY {
                if bucket.upper <= 0.0 {
                    return bucket.upper;
                }
                bucket.lower = 0.0;
            } else if bucket.upper == f64::INFINITY {
                return bucket.lower;
            }
        }
        if count > self.count {
            count = self.count;
        }
        if count < rank {
            // The rank lies among NaN observations, which have no bucket.
            if self.has_nan_observations() {
                return f64::NAN;
            }
            return bucket.upper;
        }
        if forward {
            rank -= count - bucket.count;
        } else {
            rank = count - rank;
        }
        let fraction = rank / bucket.count;
        if self.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
            return bucket.lower + (bucket.upper - bucket.lower) * fraction;
        }
        let log_lower = bucket.lower.abs().log2();
        let log_upper = bucket.upper.abs().log2();
        if bucket.lower > 0.0 {
            return (log_lower + (log_upper - log_lower) * fraction).exp2();
        }
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }

    /// The fraction of observations between `lower` and `upper` (Prometheus's
    /// `HistogramFraction`), interpolating as [`FloatHistogram::quantile`] does.
    pub fn fraction(&self, lower: f64, upper: f64) -> f64 {
        if self.count == 0.0 || lower.is_nan() || upper.is_nan() {
            return f64::NAN;
        }
        if lower >= upper {
            return 0.0;
        }
        let custom = self.uses_custom_buckets();
        let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
        let (mut lower_set, mut upper_set) = (false, false);
        for mut b in self.all_buckets() {
            let mut zero_bucket = false;
            if b.lower <= 0.0 && b.upper >= 0.0 {
                zero_bucket = true;
                if self.negative_buckets.is_empty() && !self.positive_buckets.is_empty() {
                    b.lower = 0.0;
                } else if self.positive_buckets.is_empty() && !self.negative_buckets.is_empty() {
                    b.upper = 0.0;
                }
            }
            let linear = |v: f64| rank + b.count * (v - b.lower) / (b.upper - b.lower);
            let exponential = |v: f64| {
                let ll = b.lower.abs().log2();
                let lu = b.upper.abs().log2();
                let lv = v.abs().log2();
                let f = if v > 0.0 {
                    (lv - ll) / (lu - ll)
                } else {
                    1.0 - ((lv - lu) / (ll - lu))
                };
                rank + b.count * f
            };
            if !lower_set && b.lower >= lower {
                lower_rank = rank;
                lower_set = true;
            }
            if !upper_set && b.lower >= upper {
                upper_rank = rank;
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            // A bucket of infinite width cannot be interpolated: a bound inside it sits at
            // the bucket's finite edge, so the bucket adds nothing to the fraction.
            let infinite = b.lower.is_infinite() || b.upper.is_infinite();
            let finite_edge = if b.lower == f64::NEG_INFINITY {
                rank + b.count
            } else {
                rank
            };
            if !lower_set && b.lower < lower && b.upper > lower {
                lower_rank = if infinite {
                    finite_edge
                } else if custom || zero_bucket {
                    linear(lower)
                } else {
                    exponential(lower)
                };
                lower_set = true;
            }
            if !upper_set && b.lower < upper && b.upper > upper {
                upper_rank = if infinite {
                    finite_edge
                } else if custom || zero_bucket {
                    linear(upper)
                } else {
                    exponential(upper)
                };
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            rank += b.count;
        }
        // Bounds beyond every bucket sit at the buckets' total: NaN observations (counted
        // but in no bucket) are in no fraction.
        if !lower_set {
            lower_rank = rank;
        }
        if !upper_set {
            upper_rank = rank;
        }
        lower_rank = lower_rank.min(self.count);
        upper_rank = upper_rank.min(self.count);
        (upper_rank - lower_rank) / self.count
    }

    /// The estimated variance of the observations (Prometheus's `histogram_stdvar`): every
    /// observation is taken at its bucket's midpoint (geometric for exponential buckets,
    /// zero in the zero bucket, arithmetic for custom buckets).
    pub fn variance(&self) -> f64 {
        let mean = self.sum / self.count;
        let (mut var, mut c) = (0.0f64, 0.0f64);
        for b in self.all_buckets() {
            if b.count == 0.0 {
                continue;
            }
            let val = if self.uses_custom_buckets() {
                (b.upper + b.lower) / 2.0
            } else if b.lower <= 0.0 && b.upper >= 0.0 {
                0.0
            } else {
                let v = (b.upper * b.lower).sqrt();
                if b.upper < 0.0 {
                    -v
                } else {
                    v
                }
            };
            let delta = val - mean;
            let inc = b.count * delta * delta;
            // Kahan-Neumaier, as Prometheus sums it.
            let t = var + inc;
            if t.is_infinite() {
                c = 0.0;
            } else if var.abs() >= inc.abs() {
                c += (var - t) + inc;
            } else {
                c += (inc - t) + var;
            }
            var = t;
        }
        (var + c) / self.count
    }

    /// The part of the histogram below `x` (`keep_below`, PromQL's `</`) or above it (`>/`).
    ///
    /// Buckets wholly on the kept side stay, buckets wholly beyond go, and the bucket holding
    /// `x` keeps the interpolated share of its count (exponentially in exponential buckets,
    /// linearly in the zero bucket and custom buckets). The sum is estimated again from the
    /// kept buckets, each contributing its count times a representative value: the geometric
    /// mean of the kept range for exponential buckets, the arithmetic mean otherwise. As in
    /// `histogram_quantile`, a zero bucket (or a first custom bucket reaching up above zero)
    /// starts at zero when no observations are negative. A custom bucket of infinite width
    /// cannot be cut: holding `x` it is dropped when it reaches out on the removed side,
    /// otherwise kept whole at `x`. When nothing is cut the histogram comes back unchanged.
    pub fn trim(&self, x: f64, keep_below: bool) -> FloatHistogram {
        let mut out = self.clone();
        if self.count == 0.0 && self.positive_buckets.is_empty() && self.negative_buckets.is_empty()
        {
            return out;
        }
        // Cuts at the infinities keep everything or nothing.
        if (keep_below && x == f64::INFINITY) || (!keep_below && x == f64::NEG_INFINITY) {
            return out;
        }
        if (keep_below && x == f64::NEG_INFINITY) || (!keep_below && x == f64::INFINITY) {
            out.count = 0.0;
            out.sum = 0.0;
            out.zero_count = 0.0;
            out.positive_spans.clear();
            out.positive_buckets.clear();
            out.negative_spans.clear();
            out.negative_buckets.clear();
            return out;
        }
        let custom = self.uses_custom_buckets();
        let only_pos = self.negative_buckets.is_empty() && !self.positive_buckets.is_empty();
        let only_neg = self.positive_buckets.is_empty() && !self.negative_buckets.is_empty();
        let mut changed = false;
        let mut sum = 0.0f64;
        // (kept count, representative value) of one bucket [lo, hi] (bounds as given).
        let cut =
            |lo: f64, hi: f64, count: f64, exponential: bool, changed: &mut bool| -> (f64, f64) {
                let inside = lo < x && x < hi;
                let wholly_kept = if keep_below { hi <= x } else { lo >= x };
                let rep_whole = |lo: f64, hi: f64| {
                    if exponential {
                        let v = (lo * hi).abs().sqrt();
                        if hi <= 0.0 {
                            -v
                        } else {
                            v
                        }
                    } else {
                        (lo + hi) / 2.0
                    }
                };
                if wholly_kept {
                    return (count, rep_whole(lo, hi));
                }
                if !inside {
                    *changed |= count != 0.0;
                    return (0.0, 0.0);
                }
                *changed = true;
                let frac_below = if exponential {
                    let (la, lb, lx) = (lo.abs().log2(), hi.abs().log2(), x.abs().log2());
                    if hi > 0.0 {
                        (lx - la) / (lb - la)
                    } else {
                        1.0 - (lx - lb) / (la - lb)
                    }
                } else {
                    (x - lo) / (hi - lo)
                };
                if keep_below {
                    (count * frac_below, rep_whole(lo, x))
                } else {
                    (count * (1.0 - frac_below), rep_whole(x, hi))
                }
            };
        if custom {
            let mut pairs = sparse(&self.positive_spans, &self.positive_buckets);
            for (i, c) in pairs.iter_mut() {
                let lo = self.upper_bound(*i - 1);
                let hi = self.upper_bound(*i);
                let count = *c;
                let (kept, rep) = if lo == f64::NEG_INFINITY && hi == f64::INFINITY {
                    if (keep_below && x == f64::INFINITY) || (!keep_below && x == f64::NEG_INFINITY)
                    {
                        (count, 0.0)
                    } else {
                        changed |= count != 0.0;
                        (0.0, 0.0)
                    }
                } else if lo == f64::NEG_INFINITY {
                    if hi > 0.0 && (keep_below || x >= 0.0) {
                        // Observations start at zero: a finite bucket [0, hi].
                        if keep_below && x <= 0.0 {
                            changed |= count != 0.0;
                            (0.0, 0.0)
                        } else {
                            cut(0.0, hi, count, false, &mut changed)
                        }
                    } else if keep_below {
                        if x >= hi {
                            (count, hi)
                        } else {
                            changed = true;
                            (count, x)
                        }
                    } else {
                        changed |= count != 0.0;
                        (0.0, 0.0)
                    }
                } else if hi == f64::INFINITY {
                    if keep_below {
                        if x == f64::INFINITY {
                            (count, lo)
                        } else {
                            changed |= count != 0.0;
                            (0.0, 0.0)
                        }
                    } else if x <= lo {
                        (count, lo)
                    } else {
                        changed = true;
                        (count, x)
                    }
                } else {
                    cut(lo, hi, count, false, &mut changed)
                };
                *c = kept;
                if kept != 0.0 {
                    sum += kept * rep;
                }
            }
            if !changed {
                return out;
            }
            (out.positive_spans, out.positive_buckets) = from_sparse(&pairs);
        } else {
            let schema = self.schema;
            let mut pos = sparse(&self.positive_spans, &self.positive_buckets);
            for (i, c) in pos.iter_mut() {
                let (kept, rep) = cut(
                    exponential_bound(*i - 1, schema),
                    exponential_bound(*i, schema),
                    *c,
                    true,
                    &mut changed,
                );
                *c = kept;
                if kept != 0.0 {
                    sum += kept * rep;
                }
            }
            let mut neg = sparse(&self.negative_spans, &self.negative_buckets);
            for (i, c) in neg.iter_mut() {
                let (kept, rep) = cut(
                    -exponential_bound(*i, schema),
                    -exponential_bound(*i - 1, schema),
                    *c,
                    true,
                    &mut changed,
                );
                *c = kept;
                if kept != 0.0 {
                    sum += kept * rep;
                }
            }
            let zt = self.zero_threshold;
            let (zlo, zhi) = if only_pos {
                (0.0, zt)
            } else if only_neg {
                (-zt, 0.0)
            } else {
                (-zt, zt)
            };
            let (zkept, zrep) = if zlo == zhi {
                // A zero bucket of no width lies wholly on one side of any cut but zero.
                let kept = if keep_below { zhi <= x } else { zlo >= x };
                if kept {
                    (self.zero_count, 0.0)
                } else {
                    changed |= self.zero_count != 0.0;
                    (0.0, 0.0)
                }
            } else {
                cut(zlo, zhi, self.zero_count, false, &mut changed)
            };
            if zkept != 0.0 {
                sum += zkept * zrep;
            }
            if !changed {
                return out;
            }
            out.zero_count = zkept;
            (out.positive_spans, out.positive_buckets) = from_sparse(&pos);
            (out.negative_spans, out.negative_buckets) = from_sparse(&neg);
        }
        out.count = out.zero_count
            + out.positive_buckets.iter().sum::<f64>()
            + out.negative_buckets.iter().sum::<f64>();
        out.sum = sum;
        out
    }

    /// Prometheus's test notation (`TestExpression`), e.g.
    /// `{{schema:1 count:4 sum:5 buckets:[1 2 1]}}`: one span per side, zero fields left out.
    pub fn test_expression(&self) -> String {
        let g = crate::gofmt::format_g;
        let mut res: Vec<String> = Vec::new();
        if self.schema != 0 {
            res.push(format!("schema:{}", self.schema));
        }
        if self.count != 0.0 {
            res.push(format!("count:{}", g(self.count)));
        }
        if self.sum != 0.0 {
            res.push(format!("sum:{}", g(self.sum)));
        }
        if self.zero_count != 0.0 {
            res.push(format!("z_bucket:{}", g(self.zero_count)));
        }
        if self.zero_threshold != 0.0 {
            res.push(format!("z_bucket_w:{}", g(self.zero_threshold)));
        }
        if self.uses_custom_buckets() {
            res.push(format!(
                "custom_values:{}",
                go_float_slice(&self.custom_values)
            ));
        }
        match self.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => res.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => res.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
        }
        for (spans, buckets, key, off_key) in [
            (
                &self.positive_spans,
                &self.positive_buckets,
                "buckets",
                "offset",
            ),
            (
                &self.negative_spans,
                &self.negative_buckets,
                "n_buckets",
                "n_offset",
            ),
        ] {
            // One span covering first to last non-empty bucket, gaps filled with zeros.
            let pairs: Vec<(i32, f64)> = sparse(spans, buckets)
                .into_iter()
                .filter(|p| p.1 != 0.0)
                .collect();
            let (Some(first), Some(last)) = (pairs.first(), pairs.last()) else {
                continue;
            };
            if first.0 != 0 {
                res.push(format!("{off_key}:{}", first.0));
            }
            let mut dense = vec![0.0; (i64::from(last.0) - i64::from(first.0) + 1) as usize];
            for &(i, c) in &pairs {
                dense[(i - first.0) as usize] = c;
            }
            let parts: Vec<String> = dense.iter().map(|c| g(*c)).collect();
            res.push(format!("{key}:[{}]", parts.join(" ")));
        }
        format!("{{{{{}}}}}", res.join(" "))
    }

    /// Whether two histograms are equal as Prometheus's test runner compares them: after
    /// compaction, same schema, bounds, zero threshold and bucket indexes, and counts, sum
    /// and zero count equal within `eq`.
    pub fn approx_eq(&self, other: &FloatHistogram, eq: impl Fn(f64, f64) -> bool) -> bool {
        if self.schema != other.schema
            || !eq(self.count, other.count)
            || !eq(self.sum, other.sum)
            || self.zero_threshold != other.zero_threshold
            || !eq(self.zero_count, other.zero_count)
        {
            return false;
        }
        if self.uses_custom_buckets() && self.custom_values != other.custom_values {
            return false;
        }
        for negative in [false, true] {
            let side = |h: &FloatHistogram| -> Vec<(i32, f64)> {
                let (s, b) = if negative {
                    (&h.negative_spans, &h.negative_buckets)
                } else {
                    (&h.positive_spans, &h.positive_buckets)
                };
                sparse(s, b).into_iter().filter(|p| p.1 != 0.0).collect()
            };
            let (a, b) = (side(self), side(other));
            if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.0 != y.0 || !eq(x.1, y.1)) {
                return false;
            }
        }
        true
    }
}

/// Prometheus's staleness marker NaN (`value.StaleNaN`).
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

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

    #[test]
    fn add_reduces_schema_and_widens_zero_bucket() {
        let a = FloatHistogram {
            schema: 1,
            count: 4.0,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 4,
            }],
            positive_buckets: vec![1.0, 1.0, 1.0, 1.0],
            ..Default::default()
        };
        let b = FloatHistogram {
            schema: 0,
            zero_threshold: 1.0,
            zero_count: 1.0,
            count: 2.0,
            sum: 3.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            positive_buckets: vec![1.0],
            ..Default::default()
        };
        let mut x = a.clone();
        x.add(&b).unwrap();
        // Schema 1 buckets 1..=4 are (1,1.41],(1.41,2],(2,2.83],(2.83,4]; at schema 0 they
        // become (1,2],(2,4]; widening the zero bucket to 1 absorbs nothing populated.
        assert_eq!(x.schema, 0);
        assert_eq!(x.zero_threshold, 1.0);
        assert_eq!(x.count, 6.0);
        let got: Vec<_> =
            FloatHistogram::bucket_indexes(&x.positive_spans, &x.positive_buckets).collect();
        assert_eq!(got, [(1, 3.0), (2, 2.0)]);
        let mut y = x.clone();
        y.sub(&b).unwrap();
        y.compact();
        assert_eq!(y.count, 4.0);
        assert_eq!(y.zero_count, 0.0);
        assert!(!x.detect_reset(&a.copy_to_schema(0)));
        assert!(a.detect_reset(&x));
        let mut c = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0],
            ..Default::default()
        };
        assert_eq!(c.add(&a), Err(IncompatibleSchemas));
    }

    #[test]
    fn quantile_fraction_and_test_expression() {
        let h = FloatHistogram {
            schema: 0,
            count: 4.0,
            sum: 5.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 2.0, 1.0],
            ..Default::default()
        };
        // Buckets (0.5,1], (1,2], (2,4]; the median is the middle of (1,2] on a log scale.
        assert!(
            (h.quantile(0.5) - 2f64.sqrt()).abs() < 1e-12,
            "{}",
            h.quantile(0.5)
        );
        assert_eq!(h.quantile(1.0), 4.0);
        assert!((h.fraction(f64::NEG_INFINITY, 1.0) - 0.25).abs() < 1e-12);
        assert_eq!(h.test_expression(), "{{count:4 sum:5 buckets:[1 2 1]}}");
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert!((exponential_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        let mut half = h.clone();
        half.div(2.0);
        assert_eq!(
            half.test_expression(),
            "{{count:2 sum:2.5 buckets:[0.5 1 0.5]}}"
        );
    }

    #[test]
    fn trim_interpolates_and_reestimates_the_sum() {
        let h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 172.5,
            positive_spans: vec![Span {
                offset: 0,
                length: 5,
            }],
            positive_buckets: vec![1.0, 6.0, 4.0, 3.0, 1.0],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        };
        // Below 13: (-inf,5] counts from zero (midpoint 2.5), (5,10] whole, 2/5 of (10,15].
        let below = h.trim(13.0, true);
        assert!((below.count - 9.4).abs() < 1e-12);
        assert!((below.sum - 75.1).abs() < 1e-9, "{}", below.sum);
        // Nothing cut: the histogram comes back as it was, sum included.
        assert_eq!(h.trim(0.0, false), h);
        assert_eq!(h.trim(f64::INFINITY, true), h);
        assert_eq!(h.trim(f64::INFINITY, false).count, 0.0);
        let e = FloatHistogram {
            count: 6.0,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![2.0, 4.0],
            ..Default::default()
        };
        // Exponential interpolation: sqrt(2) halves the (1,2] bucket.
        let t = e.trim(2f64.sqrt(), true);
        assert!((t.count - 4.0).abs() < 1e-12, "{}", t.count);
    }

    #[test]
    fn sums_compensate_and_means_survive_overflow() {
        let mk = |sum: f64, count: f64| FloatHistogram {
            count,
            sum,
            ..Default::default()
        };
        let (a, b, c) = (mk(1e100, 1.0), mk(1.0, 1.0), mk(-1e100, 1.0));
        let (s, _) = FloatHistogram::kahan_sum(&[&a, &b, &c]).unwrap();
        assert_eq!(s.sum, 1.0);
        let (big1, big2) = (mk(0.0, 1e308), mk(0.0, 1.5e308));
        let (m, _) = FloatHistogram::mean(&[&big1, &big2]).unwrap();
        assert!((m.count - 1.25e308).abs() < 1e295, "{}", m.count);
    }
}
