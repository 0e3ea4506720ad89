//! Native histogram chunks and the stand-alone histogram encoding WAL records use.
//!
//! Why our own encoding: histograms are storage like floats, so the same rule applies ("own
//! the core"), and neither Gorilla XOR (one float per sample) nor the packed decimal columns
//! fit a sample that is a small structure. Prometheus's histogram chunk is a bit stream with
//! its own varbit widths and a separate "appendable" protocol for layout changes; this one
//! is byte-oriented, which keeps the encoder and the hardened decoder short, and costs a
//! little density on tiny histograms only.
//!
//! A chunk ([`ENC_HIST`]) is the encoding byte, a big-endian `u16` sample count, then per
//! sample:
//! - the timestamp: the first as a zigzag varint, the second as a zigzag delta, later ones
//!   as the zigzag delta of deltas (scrape intervals make that one byte);
//! - a flags byte: the counter-reset hint (bits 0-1), "layout follows" (bit 2), "counts are
//!   integers" (bit 3);
//! - the layout only when it differs from the previous sample's (always for the first):
//!   schema, zero threshold bits, positive and negative spans, custom bounds;
//! - the sum XORed with the previous sum (a byte counting the XOR's zero bytes at the top
//!   and bottom, then the bytes between: one byte when unchanged, at most nine);
//! - `count`, `zero_count` and every bucket count: as zigzag varint differences from the
//!   same field of the previous sample when both are integer-valued and the layout is
//!   unchanged (a counter histogram's buckets grow by small integers: a byte or two each),
//!   else XORed with it (floats), or with zero after a layout change.
//!
//! A WAL record's histogram ([`put_histogram`]) is the same per-sample part without a
//! previous sample, so it carries its whole layout.
//!
//! Every float survives bit for bit (NaN sums included). The decoder bounds every count by
//! the bytes left before allocating, checks each decoded histogram with
//! [`FloatHistogram::validate`], and turns anything malformed into an error, never a panic.

use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, Span};

use crate::codec::{put_uvarint, Reader};
use crate::TsdbError;

/// Encoding byte of histogram chunks.
pub const ENC_HIST: u8 = 3;

/// Bytes of the chunk header (encoding byte and sample count).
const HEADER: usize = 3;

/// A head histogram chunk is closed once it holds this many bytes (or
/// [`crate::chunk::SAMPLES_PER_CHUNK`] samples), so a query never decodes much it does not
/// need even when histograms are large.
pub const MAX_HIST_CHUNK_BYTES: usize = 16 * 1024;

const FLAG_LAYOUT: u8 = 1 << 2;
const FLAG_INT: u8 = 1 << 3;
/// Largest integer count kept in integer mode: every integer up to it is an exact double.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn hint_bits(h: CounterResetHint) -> u8 {
    match h {
        CounterResetHint::Unknown => 0,
        CounterResetHint::CounterReset => 1,
        CounterResetHint::NotCounterReset => 2,
        CounterResetHint::Gauge => 3,
    }
}

fn hint_of(bits: u8) -> CounterResetHint {
    match bits & 3 {
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

/// Whether two histograms are the same sample bit for bit (what makes a re-sent histogram a
/// harmless duplicate rather than a conflicting value at its timestamp).
pub fn identical(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let same = |x: &[f64], y: &[f64]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
    };
    a.counter_reset_hint == b.counter_reset_hint
        && same_layout(a, b)
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && same(&a.positive_buckets, &b.positive_buckets)
        && same(&a.negative_buckets, &b.negative_buckets)
}

fn same_layout(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && a.custom_values.len() == b.custom_values.len()
        && a.custom_values
            .iter()
            .zip(&b.custom_values)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

fn is_int(v: f64) -> bool {
    v.is_sign_positive() && v.fract() == 0.0 && v < MAX_INT
}

/// The counts in encoding order: `count`, `zero_count`, positive then negative buckets.
fn counts(h: &FloatHistogram) -> impl Iterator<Item = f64> + '_ {
    [h.count, h.zero_count]
        .into_iter()
        .chain(h.positive_buckets.iter().copied())
        .chain(h.negative_buckets.iter().copied())
}

/// Appends a XOR of two floats' bits: a byte holding the number of zero bytes at the top
/// (high nibble) and at the bottom (low nibble), then the bytes between, most significant
/// first. Equal values cost one byte; floats of the same sign and magnitude share their top
/// byte or two, so a changed value usually costs eight bytes or fewer (nine at most).
fn put_xor(buf: &mut Vec<u8>, x: u64) {
    if x == 0 {
        buf.push(8 << 4);
        return;
    }
    let lead = x.leading_zeros() / 8;
    let trail = x.trailing_zeros() / 8;
    buf.push(((lead << 4) | trail) as u8);
    let bytes = x.to_be_bytes();
    buf.extend_from_slice(&bytes[lead as usize..(8 - trail) as usize]);
}

fn read_xor(r: &mut Reader<'_>) -> Result<u64, TsdbError> {
    let h = r.u8()?;
    let (lead, trail) = (usize::from(h >> 4), usize::from(h & 15));
    if lead + trail > 8 {
        return Err(r.err("bad XOR header"));
    }
    let mut bytes = [0u8; 8];
    bytes[lead..8 - trail].copy_from_slice(r.bytes(8 - lead - trail)?);
    Ok(u64::from_be_bytes(bytes))
}

fn put_spans(buf: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(buf, spans.len() as u64);
    for s in spans {
        put_uvarint(buf, zigzag(i64::from(s.offset)));
        put_uvarint(buf, u64::from(s.length));
    }
}

fn read_spans(r: &mut Reader<'_>) -> Result<(Vec<Span>, usize), TsdbError> {
    let n = r.len(r.remaining() / 2)?;
    let mut spans = Vec::with_capacity(n);
    let mut buckets = 0usize;
    for _ in 0..n {
        let offset = i32::try_from(unzigzag(r.uvarint()?)).map_err(|_| r.err("span offset"))?;
        let length = u32::try_from(r.uvarint()?).map_err(|_| r.err("span length"))?;
        buckets = buckets.saturating_add(length as usize);
        spans.push(Span { offset, length });
    }
    // Every bucket takes at least one byte, so more buckets than bytes left is corruption;
    // checking here keeps a damaged length from allocating gigabytes.
    if buckets > r.remaining() {
        return Err(r.err("more buckets than bytes left"));
    }
    Ok((spans, buckets))
}

/// Appends `h` encoded against `prev` (the previous sample of the chunk, if any).
fn put_value(buf: &mut Vec<u8>, h: &FloatHistogram, prev: Option<&FloatHistogram>) {
    let layout_same = prev.is_some_and(|p| same_layout(p, h));
    let int = counts(h).all(is_int);
    let mut flags = hint_bits(h.counter_reset_hint);
    if !layout_same {
        flags |= FLAG_LAYOUT;
    }
    if int {
        flags |= FLAG_INT;
    }
    buf.push(flags);
    if !layout_same {
        put_uvarint(buf, zigzag(i64::from(h.schema)));
        buf.extend_from_slice(&h.zero_threshold.to_bits().to_le_bytes());
        put_spans(buf, &h.positive_spans);
        put_spans(buf, &h.negative_spans);
        put_uvarint(buf, h.custom_values.len() as u64);
        for v in &h.custom_values {
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    put_xor(buf, h.sum.to_bits() ^ prev.map_or(0, |p| p.sum.to_bits()));
    let base: Option<&FloatHistogram> = prev.filter(|_| layout_same);
    let prev_int = base.is_some_and(|p| counts(p).all(is_int));
    match base {
        Some(p) if int && prev_int => {
            for (c, b) in counts(h).zip(counts(p)) {
                put_uvarint(buf, zigzag((c as i64).wrapping_sub(b as i64)));
            }
        }
        Some(p) if !int => {
            for (c, b) in counts(h).zip(counts(p)) {
                put_xor(buf, c.to_bits() ^ b.to_bits());
            }
        }
        _ if int => {
            for c in counts(h) {
                put_uvarint(buf, c as u64);
            }
        }
        _ => {
            for c in counts(h) {
                put_xor(buf, c.to_bits());
            }
        }
    }
}

/// Reads a histogram written by [`put_value`] against the same `prev`.
fn read_value(
    r: &mut Reader<'_>,
    prev: Option<&FloatHistogram>,
) -> Result<FloatHistogram, TsdbError> {
    let flags = r.u8()?;
    if flags & !(3 | FLAG_LAYOUT | FLAG_INT) != 0 {
        return Err(r.err("unknown histogram flags"));
    }
    let int = flags & FLAG_INT != 0;
    let mut h = if flags & FLAG_LAYOUT != 0 {
        let schema = i32::try_from(unzigzag(r.uvarint()?)).map_err(|_| r.err("schema"))?;
        let zero_threshold = f64::from_bits(r.u64_le()?);
        let (positive_spans, npos) = read_spans(r)?;
        let (negative_spans, nneg) = read_spans(r)?;
        let ncv = r.len(r.remaining() / 8)?;
        let mut custom_values = Vec::with_capacity(ncv);
        for _ in 0..ncv {
            custom_values.push(f64::from_bits(r.u64_le()?));
        }
        FloatHistogram {
            schema,
            zero_threshold,
            positive_buckets: vec![0.0; npos],
            negative_buckets: vec![0.0; nneg],
            positive_spans,
            negative_spans,
            custom_values,
            ..Default::default()
        }
    } else {
        let p = prev.ok_or_else(|| r.err("first histogram without a layout"))?;
        FloatHistogram {
            schema: p.schema,
            zero_threshold: p.zero_threshold,
            positive_spans: p.positive_spans.clone(),
            negative_spans: p.negative_spans.clone(),
            positive_buckets: vec![0.0; p.positive_buckets.len()],
            negative_buckets: vec![0.0; p.negative_buckets.len()],
            custom_values: p.custom_values.clone(),
            ..Default::default()
        }
    };
    h.counter_reset_hint = hint_of(flags);
    h.sum = f64::from_bits(read_xor(r)? ^ prev.map_or(0, |p| p.sum.to_bits()));
    let base: Option<&FloatHistogram> = prev.filter(|_| flags & FLAG_LAYOUT == 0);
    let prev_int = base.is_some_and(|p| counts(p).all(is_int));
    let npos = h.positive_buckets.len();
    let n = 2 + npos + h.negative_buckets.len();
    for i in 0..n {
        let b = base.map(|p| match i {
            0 => p.count,
            1 => p.zero_count,
            i if i < 2 + npos => p.positive_buckets[i - 2],
            i => p.negative_buckets[i - 2 - npos],
        });
        let v = match (b, int) {
            (Some(b), true) if prev_int => {
                let d = unzigzag(r.uvarint()?);
                let v = (b as i64).wrapping_add(d);
                if !(0..=MAX_INT as i64).contains(&v) {
                    return Err(r.err("integer count out of range"));
                }
                v as f64
            }
            (Some(b), false) => f64::from_bits(read_xor(r)? ^ b.to_bits()),
            (_, true) => {
                let v = r.uvarint()?;
                if v > MAX_INT as u64 {
                    return Err(r.err("integer count out of range"));
                }
                v as f64
            }
            (None, false) => f64::from_bits(read_xor(r)?),
        };
        match i {
            0 => h.count = v,
            1 => h.zero_count = v,
            i if i < 2 + npos => h.positive_buckets[i - 2] = v,
            i => h.negative_buckets[i - 2 - npos] = v,
        }
    }
    h.validate()
        .map_err(|e| r.err(&format!("stored histogram is invalid ({e})")))?;
    Ok(h)
}

/// Appends one histogram with its whole layout (the form WAL records carry).
pub fn put_histogram(buf: &mut Vec<u8>, h: &FloatHistogram) {
    put_value(buf, h, None);
}

/// Reads a histogram written by [`put_histogram`].
pub fn read_histogram(r: &mut Reader<'_>) -> Result<FloatHistogram, TsdbError> {
    read_value(r, None)
}

/// An appendable histogram chunk.
#[derive(Clone, Debug)]
pub struct HistChunk {
    buf: Vec<u8>,
    count: u16,
    t: i64,
    delta: i64,
    /// The newest sample: the base of the next one's encoding, and what a re-sent sample
    /// at the same timestamp is compared with.
    last: Option<Arc<FloatHistogram>>,
}

impl Default for HistChunk {
    fn default() -> Self {
        HistChunk::new()
    }
}

impl HistChunk {
    /// An empty chunk.
    pub fn new() -> HistChunk {
        HistChunk {
            buf: vec![ENC_HIST, 0, 0],
            count: 0,
            t: 0,
            delta: 0,
            last: None,
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the chunk should be closed before another sample: its count is a `u16`, and
    /// the head keeps chunks near [`MAX_HIST_CHUNK_BYTES`].
    pub fn is_full(&self) -> bool {
        self.count == u16::MAX || self.buf.len() >= MAX_HIST_CHUNK_BYTES
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The newest sample, if any.
    pub fn last(&self) -> Option<&Arc<FloatHistogram>> {
        self.last.as_ref()
    }

    /// Appends a sample (the caller keeps timestamps increasing; any sequence round-trips).
    /// Does nothing once the count is at its maximum.
    pub fn append(&mut self, t: i64, h: Arc<FloatHistogram>) {
        if self.count == u16::MAX {
            return;
        }
        match self.count {
            0 => put_uvarint(&mut self.buf, zigzag(t)),
            1 => {
                self.delta = t.wrapping_sub(self.t);
                put_uvarint(&mut self.buf, zigzag(self.delta));
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                put_uvarint(&mut self.buf, zigzag(delta.wrapping_sub(self.delta)));
                self.delta = delta;
            }
        }
        put_value(&mut self.buf, &h, self.last.as_deref());
        self.t = t;
        self.last = Some(h);
        self.count += 1;
        self.buf[1..HEADER].copy_from_slice(&self.count.to_be_bytes());
    }
}

/// Encodes samples (in time order) as one chunk.
pub fn encode(samples: &[(i64, Arc<FloatHistogram>)]) -> Vec<u8> {
    let mut c = HistChunk::new();
    for (t, h) in samples {
        c.append(*t, h.clone());
    }
    c.buf
}

/// Splits samples (in time order) into chunks of at most `max_samples` samples, each closed
/// once it reaches `max_bytes`: `(min_t, max_t, bytes)`.
pub fn encode_chunks(
    samples: &[(i64, Arc<FloatHistogram>)],
    max_samples: usize,
    max_bytes: usize,
) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut c = HistChunk::new();
    let mut min_t = 0;
    for (t, h) in samples {
        if !c.is_empty()
            && (c.len() >= max_samples.min(usize::from(u16::MAX)) || c.buf.len() >= max_bytes)
        {
            out.push((min_t, c.t, std::mem::take(&mut c).buf));
        }
        if c.is_empty() {
            min_t = *t;
        }
        c.append(*t, h.clone());
    }
    if !c.is_empty() {
        out.push((min_t, c.t, c.buf));
    }
    out
}

/// The sample count in a histogram chunk's header.
pub fn hist_len(bytes: &[u8]) -> usize {
    match bytes {
        [ENC_HIST, a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    }
}

/// Decodes a whole histogram chunk; malformed bytes are an error (never a panic).
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, Arc<FloatHistogram>)>, TsdbError> {
    let mut r = Reader::new(bytes, "histogram chunk");
    if r.u8()? != ENC_HIST {
        return Err(r.err("not a histogram chunk"));
    }
    let n = usize::from(u16::from_be_bytes([r.u8()?, r.u8()?]));
    let mut out: Vec<(i64, Arc<FloatHistogram>)> = Vec::with_capacity(n.min(r.remaining()));
    let (mut t, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let v = unzigzag(r.uvarint()?);
        match i {
            0 => t = v,
            1 => {
                delta = v;
                t = t.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(v);
                t = t.wrapping_add(delta);
            }
        }
        let h = read_value(&mut r, out.last().map(|p| &*p.1))?;
        out.push((t, Arc::new(h)));
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::histogram::CUSTOM_BUCKETS_SCHEMA;
    use rand::{Rng, SeedableRng};

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    /// A counter-like exponential histogram at step `i`.
    fn counter(i: u32) -> FloatHistogram {
        let b = [1.0, 3.0, 2.0, 5.0].map(|x: f64| x * f64::from(i + 1));
        FloatHistogram {
            schema: 3,
            zero_threshold: 1e-128,
            zero_count: f64::from(i),
            count: b.iter().sum::<f64>() + f64::from(i) + 2.0 * f64::from(i),
            sum: 12.5 * f64::from(i),
            positive_spans: vec![span(-2, 2), span(3, 2)],
            positive_buckets: b.to_vec(),
            negative_spans: vec![span(1, 1)],
            negative_buckets: vec![2.0 * f64::from(i)],
            ..Default::default()
        }
    }

    fn round_trip(samples: &[(i64, Arc<FloatHistogram>)]) -> Vec<u8> {
        let bytes = encode(samples);
        assert_eq!(hist_len(&bytes), samples.len());
        let got = decode(&bytes).unwrap();
        assert_eq!(got.len(), samples.len());
        for ((t, h), (gt, gh)) in samples.iter().zip(&got) {
            assert_eq!(t, gt);
            assert!(identical(h, gh), "{h:?} != {gh:?}");
        }
        bytes
    }

    #[test]
    fn counter_histograms_are_compact_and_exact() {
        let samples: Vec<_> = (0..120)
            .map(|i| {
                (
                    1_700_000_000_000 + i64::from(i) * 15_000,
                    Arc::new(counter(i)),
                )
            })
            .collect();
        let bytes = round_trip(&samples);
        // The layout is written once; then a sample is a few bytes of deltas.
        assert!(bytes.len() < 120 * 16, "{} bytes", bytes.len());
    }

    #[test]
    fn layout_changes_floats_nans_and_custom_buckets_survive() {
        let mut f = counter(3);
        f.positive_buckets[1] = 0.5;
        f.count += 0.25;
        f.sum = f64::NAN;
        let mut g = counter(4);
        g.positive_spans = vec![span(0, 4)];
        g.counter_reset_hint = CounterResetHint::CounterReset;
        g.sum = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut gauge = counter(2);
        gauge.counter_reset_hint = CounterResetHint::Gauge;
        gauge.sum = -0.0;
        let nhcb = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 4.0,
            sum: 3.5,
            positive_spans: vec![span(0, 2), span(1, 1)],
            positive_buckets: vec![1.0, 2.0, 1.0],
            custom_values: vec![0.1, 1.0, 10.0],
            ..Default::default()
        };
        let empty = FloatHistogram::default();
        let samples: Vec<_> = [
            counter(1),
            f.clone(),
            f,
            g,
            counter(5),
            gauge,
            nhcb.clone(),
            nhcb,
            empty,
            counter(7),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| (i as i64 * 1000 - 3000, Arc::new(h)))
        .collect();
        round_trip(&samples);
        // Stand-alone (WAL) form.
        for (_, h) in &samples {
            let mut buf = Vec::new();
            put_histogram(&mut buf, h);
            let mut r = Reader::new(&buf, "t");
            assert!(identical(h, &read_histogram(&mut r).unwrap()));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let samples: Vec<_> = (0..20)
            .map(|i| (i64::from(i) * 10, Arc::new(counter(i))))
            .collect();
        let bytes = encode(&samples);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5000 {
            let mut b = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            // Any result is fine as long as it does not panic and what decodes is valid.
            if let Ok(got) = decode(&b) {
                assert!(got.iter().all(|(_, h)| h.validate().is_ok()));
            }
        }
    }

    #[test]
    fn chunks_split_by_count_and_bytes() {
        let samples: Vec<_> = (0..300)
            .map(|i| (i64::from(i), Arc::new(counter(i))))
            .collect();
        let parts = encode_chunks(&samples, 120, usize::MAX);
        assert_eq!(
            parts.iter().map(|p| hist_len(&p.2)).collect::<Vec<_>>(),
            [120, 120, 60]
        );
        assert_eq!((parts[1].0, parts[1].1), (120, 239));
        let small = encode_chunks(&samples, 120, 200);
        assert!(small.len() > 3);
        let all: Vec<_> = small
            .iter()
            .flat_map(|p| decode(&p.2).unwrap())
            .map(|s| s.0)
            .collect();
        assert_eq!(all, (0..300).collect::<Vec<i64>>());
    }
}
