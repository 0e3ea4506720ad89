//! Byte encodings shared by the WAL records and the block files: varints, length-prefixed
//! strings, label sets, and a bounds-checked reader that turns every malformed input into an
//! error instead of a panic.
//!
//! A live WAL record is version byte `3`, definitions `(series WAL id, label set)` of series
//! the WAL has not durably defined yet, then per sample zigzag deltas of WAL id and
//! timestamp and the value as a short decimal (see [`encode_record`]): about 5 bytes per
//! sample where raw value bits took 11. Labels are written once per series (and again in the
//! definitions checkpoint written at each head cut), not once per sample. A checkpoint of
//! samples (kind byte `4`) holds, per series, its WAL id and a chunk (packed or XOR) of the
//! head's samples, so the WAL segments before it can be deleted after a head cut.
//!
//! Native histograms: a batch holding any is written as version `5`, version 3 with one more
//! value tag ([`HIST_VALUE`]) followed by the whole histogram ([`crate::histchunk`]'s
//! stand-alone form), so floats and histograms keep their order within the record (a
//! series may switch between them, and replay must apply samples in the order they were
//! accepted). Float-only batches stay version 3, readable by versions before histograms.
//! Checkpoint records hold histogram chunks beside float chunks, told apart by their
//! encoding byte.
//!
//! Start timestamps ([`crate::stchunk`]): a batch where any sample has one is written as
//! version `6`, version 5 with a uvarint after each value: 0 for none, else
//! `zigzag(t - st) + 1`. Batches without stay version 3 or 5, readable by older versions.
//! A checkpoint holds a series' start-timestamp chunk before its sample chunks; decoding
//! attaches each start timestamp to the sample at its time.

use std::sync::Arc;

use model::histogram::FloatHistogram;

use crate::head::Value;
use crate::labels::Label;
use crate::{Labels, TsdbError};

/// Version byte of the first live records (raw value bits); still read, no longer written.
pub const WAL_RECORD_V2: u8 = 2;

/// Version byte of live records with decimal values.
pub const WAL_RECORD_V3: u8 = 3;

/// Kind byte of checkpoint records holding head samples as chunks.
pub const WAL_CHECKPOINT_SAMPLES: u8 = 4;

/// Version byte of live records that carry native histograms too.
pub const WAL_RECORD_V5: u8 = 5;

/// Version byte of live records whose samples may carry start timestamps.
pub const WAL_RECORD_V6: u8 = 6;

/// The value tag of version 5 meaning "a histogram follows": `zigzag(1) << 4 | 15`, a
/// pattern the raw-value tag (exactly 15) never takes.
const HIST_VALUE: u64 = 31;

/// Appends `v` as a LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Appends a label set.
pub fn put_labels(buf: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(buf, labels.len() as u64);
    for l in labels {
        put_bytes(buf, l.name.as_bytes());
        put_bytes(buf, l.value.as_bytes());
    }
}

/// Reads from a byte slice; every read past the end or of malformed data is an error.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `data`; `what` names it in errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { data, pos: 0, what }
    }

    /// An error at the current position.
    pub fn err(&self, reason: &str) -> TsdbError {
        TsdbError::Corrupt {
            what: self.what.to_string(),
            reason: format!("{reason} at byte {}", self.pos),
        }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, TsdbError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A varint.
    pub fn uvarint(&mut self) -> Result<u64, TsdbError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    /// A varint used as a count or length, bounded by `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, TsdbError> {
        let v = self.uvarint()?;
        if v > max as u64 {
            return Err(self.err(&format!("length {v} exceeds {max}")));
        }
        Ok(v as usize)
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], TsdbError> {
        if n > self.remaining() {
            return Err(self.err("unexpected end"));
        }
        let b = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self) -> Result<u64, TsdbError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String, TsdbError> {
        let n = self.len(crate::labels::MAX_LABEL_BYTES)?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }

    /// A label set written by [`put_labels`]; checks order and validity so a damaged file
    /// cannot produce a set that breaks the index's invariants.
    pub fn labels(&mut self) -> Result<Labels, TsdbError> {
        let n = self.len(crate::labels::MAX_LABELS)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.string()?;
            let value = self.string()?;
            if !crate::labels::is_valid_label_name(&name) || value.is_empty() {
                return Err(self.err("invalid label"));
            }
            if pairs.last().is_some_and(|p: &Label| p.name >= name) {
                return Err(self.err("labels out of order"));
            }
            pairs.push(Label { name, value });
        }
        Ok(Labels::from_sorted_unchecked(pairs))
    }
}

/// One float sample of a WAL record: series WAL id, timestamp, value bits.
pub type WalSample = (u64, i64, u64);

/// A decoded sample value.
#[derive(Clone, Debug, PartialEq)]
pub enum WalValue {
    /// Float bits.
    Float(u64),
    /// A native histogram.
    Histogram(Arc<FloatHistogram>),
}

impl WalValue {
    /// The value as the head takes it.
    pub fn as_value(&self) -> Value<'_> {
        match self {
            WalValue::Float(b) => Value::Float(*b),
            WalValue::Histogram(h) => Value::Histogram(h),
        }
    }
}

/// A decoded WAL record.
#[derive(Debug, Default, PartialEq)]
pub struct WalRecord {
    /// Series it defines: WAL id and labels.
    pub defs: Vec<(u64, Labels)>,
    /// Its samples (WAL id, timestamp, value), in the order they were accepted.
    pub samples: Vec<(u64, i64, WalValue)>,
    /// The samples' start timestamps (0 for none), one per sample, or empty when none has
    /// one.
    pub sts: Vec<i64>,
    /// Whether it is a checkpoint of head samples (replayed before every live record).
    pub checkpoint: bool,
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The value tag meaning "raw 64 bits follow" (tags 0..=14 are decimal exponents).
const RAW_VALUE: u64 = 15;

/// Appends a value: `zigzag(m) << 4 | e` when it is the short decimal `m / 10^e` (`e` below
/// 15), else the tag 15 and its 8 raw bytes, so every bit pattern survives.
fn put_value(buf: &mut Vec<u8>, bits: u64) {
    let v = f64::from_bits(bits);
    if let Some(e) = crate::packed::decimal_exponent(v).filter(|&e| u64::from(e) < RAW_VALUE) {
        if let Some(m) = crate::packed::mantissa(v, e) {
            put_uvarint(buf, (zigzag(m) << 4) | u64::from(e));
            return;
        }
    }
    put_uvarint(buf, RAW_VALUE);
    buf.extend_from_slice(&bits.to_le_bytes());
}

fn read_value(r: &mut Reader<'_>) -> Result<u64, TsdbError> {
    let h = r.uvarint()?;
    let e = h & 15;
    if e == RAW_VALUE {
        if h != RAW_VALUE {
            return Err(r.err("bad raw value tag"));
        }
        return r.u64_le();
    }
    let m = unzigzag(h >> 4);
    if m.unsigned_abs() >= 1 << 53 {
        return Err(r.err("decimal mantissa out of range"));
    }
    Ok(crate::packed::decimal_value(m, e as u8).to_bits())
}

/// Encodes a live record (version 3): series definitions (WAL id and labels) for series not
/// yet defined in a durable record, then per sample the WAL id and timestamp as zigzag
/// deltas from the record's previous sample and the value as a short decimal when it is
/// one. A batch of one sample per series (what scrapes and remote_write send) costs about
/// one byte for the id, one for the timestamp and two to four for the value. A checkpoint
/// of definitions is a record with definitions only.
pub fn encode_record(defs: &[(u64, &Labels)], samples: &[WalSample]) -> Vec<u8> {
    encode(
        defs,
        samples.len(),
        false,
        samples.iter().map(|&(id, t, v)| (id, t, Value::Float(v))),
        &[],
    )
}

/// Encodes a live record of float and histogram samples in their order: version 3 when
/// all are floats, else version 5 (see the module docs).
pub fn encode_record_values(defs: &[(u64, &Labels)], samples: &[(u64, i64, Value<'_>)]) -> Vec<u8> {
    let hists = samples.iter().any(|s| matches!(s.2, Value::Histogram(_)));
    encode(defs, samples.len(), hists, samples.iter().copied(), &[])
}

/// [`encode_record_values`] for samples with start timestamps `sts` (one per sample, 0 for
/// none): version 6 when any is set.
pub fn encode_record_values_st(
    defs: &[(u64, &Labels)],
    samples: &[(u64, i64, Value<'_>)],
    sts: &[i64],
) -> Vec<u8> {
    let hists = samples.iter().any(|s| matches!(s.2, Value::Histogram(_)));
    let sts = if sts.len() == samples.len() && sts.iter().any(|&st| st != 0) {
        sts
    } else {
        &[]
    };
    encode(defs, samples.len(), hists, samples.iter().copied(), sts)
}

fn encode<'a>(
    defs: &[(u64, &Labels)],
    n: usize,
    hists: bool,
    samples: impl Iterator<Item = (u64, i64, Value<'a>)>,
    sts: &[i64],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + defs.len() * 64 + n * 6);
    buf.push(if !sts.is_empty() {
        WAL_RECORD_V6
    } else if hists {
        WAL_RECORD_V5
    } else {
        WAL_RECORD_V3
    });
    put_uvarint(&mut buf, defs.len() as u64);
    for &(id, l) in defs {
        put_uvarint(&mut buf, id);
        put_labels(&mut buf, l);
    }
    put_uvarint(&mut buf, n as u64);
    let (mut prev_id, mut prev_t) = (0u64, 0i64);
    for (i, (id, t, v)) in samples.enumerate() {
        put_uvarint(&mut buf, zigzag(id.wrapping_sub(prev_id) as i64));
        put_uvarint(&mut buf, zigzag(t.wrapping_sub(prev_t)));
        match v {
            Value::Float(v) => put_value(&mut buf, v),
            Value::Histogram(h) => {
                put_uvarint(&mut buf, HIST_VALUE);
                crate::histchunk::put_histogram(&mut buf, h);
            }
        }
        if let Some(&st) = sts.get(i) {
            put_uvarint(
                &mut buf,
                if st == 0 {
                    0
                } else {
                    zigzag(t.wrapping_sub(st)).wrapping_add(1)
                },
            );
        }
        (prev_id, prev_t) = (id, t);
    }
    buf
}

/// Starts a checkpoint-samples record; add series with [`put_checkpoint_chunk`].
pub fn checkpoint_record() -> Vec<u8> {
    vec![WAL_CHECKPOINT_SAMPLES]
}

/// Appends one series' chunk (its samples in time order) to a checkpoint-samples record.
/// A series' start-timestamp chunk goes before its sample chunks.
pub fn put_checkpoint_chunk(buf: &mut Vec<u8>, id: u64, chunk: &[u8]) {
    put_uvarint(buf, id);
    put_bytes(buf, chunk);
}

/// Decodes a record written by [`encode_record`] (or by the version 2 encoder before it), or
/// a checkpoint-samples record.
pub fn decode_record(rec: &[u8]) -> Result<WalRecord, TsdbError> {
    let mut r = Reader::new(rec, "wal record");
    let version = r.u8()?;
    match version {
        WAL_RECORD_V2 | WAL_RECORD_V3 | WAL_RECORD_V5 | WAL_RECORD_V6 => {}
        WAL_CHECKPOINT_SAMPLES => return decode_checkpoint(r),
        _ => return Err(r.err(&format!("unknown record version {version}"))),
    }
    // Counts are bounded by the bytes left (every definition takes at least 2 bytes and
    // every sample at least 10 in version 2, 3 in version 3) before anything is allocated.
    let n = r.len(r.remaining() / 2)?;
    let mut defs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.uvarint()?;
        defs.push((id, r.labels()?));
    }
    let min_sample = if version == WAL_RECORD_V2 { 10 } else { 3 };
    let m = r.len(r.remaining() / min_sample)?;
    let mut samples = Vec::with_capacity(m);
    let mut sts = Vec::new();
    if version == WAL_RECORD_V6 {
        sts.reserve(m);
    }
    let (mut prev_id, mut prev_t) = (0u64, 0i64);
    for _ in 0..m {
        if version == WAL_RECORD_V2 {
            let id = r.uvarint()?;
            let t = prev_t.wrapping_add(unzigzag(r.uvarint()?));
            prev_t = t;
            samples.push((id, t, WalValue::Float(r.u64_le()?)));
        } else {
            let id = prev_id.wrapping_add(unzigzag(r.uvarint()?) as u64);
            let t = prev_t.wrapping_add(unzigzag(r.uvarint()?));
            (prev_id, prev_t) = (id, t);
            let v = if version >= WAL_RECORD_V5 && r.peek() == Some(HIST_VALUE as u8) {
                r.u8()?;
                WalValue::Histogram(Arc::new(crate::histchunk::read_histogram(&mut r)?))
            } else {
                WalValue::Float(read_value(&mut r)?)
            };
            samples.push((id, t, v));
            if version == WAL_RECORD_V6 {
                let tag = r.uvarint()?;
                sts.push(if tag == 0 {
                    0
                } else {
                    t.wrapping_sub(unzigzag(tag - 1))
                });
            }
        }
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok(WalRecord {
        defs,
        samples,
        sts,
        checkpoint: false,
    })
}

fn decode_checkpoint(mut r: Reader<'_>) -> Result<WalRecord, TsdbError> {
    let mut samples = Vec::new();
    let mut sts: Vec<i64> = Vec::new();
    // The start timestamps of the series whose chunks follow (its start-timestamp chunk
    // comes first).
    let mut pending: (u64, Vec<(i64, i64)>) = (u64::MAX, Vec::new());
    while !r.is_empty() {
        let id = r.uvarint()?;
        let n = r.len(r.remaining())?;
        let chunk = r.bytes(n)?;
        let before = samples.len();
        if crate::stchunk::is_st(chunk) {
            pending = (id, crate::stchunk::decode(chunk)?);
            continue;
        }
        if chunk.first() == Some(&crate::histchunk::ENC_HIST) {
            let hs = crate::histchunk::decode(chunk)?;
            samples.extend(hs.into_iter().map(|(t, h)| (id, t, WalValue::Histogram(h))));
            attach_sts(&samples, before, &mut sts, &pending);
            continue;
        }
        let mut it = crate::chunk::ChunkIter::new(chunk);
        samples.extend(
            it.by_ref()
                .map(|(t, v)| (id, t, WalValue::Float(v.to_bits()))),
        );
        if it.is_corrupt() {
            return Err(r.err("checkpoint chunk does not decode"));
        }
        attach_sts(&samples, before, &mut sts, &pending);
    }
    Ok(WalRecord {
        defs: Vec::new(),
        samples,
        sts,
        checkpoint: true,
    })
}

/// Gives the samples from `from` on their start timestamps from `pending` (when it is
/// their series'), keeping `sts` one per sample once any sample has one.
fn attach_sts(
    samples: &[(u64, i64, WalValue)],
    from: usize,
    sts: &mut Vec<i64>,
    pending: &(u64, Vec<(i64, i64)>),
) {
    let (pid, entries) = pending;
    let new = &samples[from..];
    if entries.is_empty() || new.first().is_none_or(|s| s.0 != *pid) {
        if !sts.is_empty() {
            sts.resize(samples.len(), 0);
        }
        return;
    }
    sts.resize(from, 0);
    sts.extend(new.iter().map(|s| crate::stchunk::at(entries, s.1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float samples of a decoded record (histograms fail the test).
    fn floats(samples: &[(u64, i64, WalValue)]) -> Vec<WalSample> {
        samples
            .iter()
            .map(|(id, t, v)| match v {
                WalValue::Float(b) => (*id, *t, *b),
                WalValue::Histogram(_) => panic!("unexpected histogram"),
            })
            .collect()
    }

    /// Start timestamps ride in version 6 only when a sample has one, so float-only and
    /// histogram batches stay readable by versions before start timestamps; a checkpoint's
    /// start-timestamp chunk attaches to the samples of its series that follow.
    #[test]
    fn start_timestamps_round_trip_in_version_6_only_when_present() {
        let a = Labels::new([("__name__", "a")]).unwrap();
        let samples = [
            (1, 1000, Value::Float(1.0f64.to_bits())),
            (2, 1000, Value::Float(2.0f64.to_bits())),
            (1, 2000, Value::Float(3.0f64.to_bits())),
        ];
        let plain = encode_record_values_st(&[(1, &a)], &samples, &[0, 0, 0]);
        assert_eq!(plain[0], WAL_RECORD_V3);
        assert!(decode_record(&plain).unwrap().sts.is_empty());
        let rec = encode_record_values_st(&[(1, &a)], &samples, &[500, 0, i64::MIN]);
        assert_eq!(rec[0], WAL_RECORD_V6);
        let back = decode_record(&rec).unwrap();
        assert_eq!(back.sts, [500, 0, i64::MIN]);
        assert_eq!(back.samples.len(), 3);
        for cut in 1..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "cut at {cut}");
        }
        let xor = |pts: &[(i64, f64)]| {
            let mut c = crate::chunk::XorChunk::new();
            for &(t, v) in pts {
                c.append(t, v);
            }
            c.bytes().to_vec()
        };
        let mut cp = checkpoint_record();
        put_checkpoint_chunk(&mut cp, 7, &crate::stchunk::encode(&[(20, 5)]));
        put_checkpoint_chunk(&mut cp, 7, &xor(&[(10, 1.0), (20, 2.0)]));
        put_checkpoint_chunk(&mut cp, 8, &xor(&[(20, 2.0)]));
        let back = decode_record(&cp).unwrap();
        assert_eq!(back.samples.len(), 3);
        assert_eq!(back.sts, [0, 5, 0]);
    }

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let a = Labels::new([("__name__", "a"), ("x", "ü")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        let samples = vec![
            (7, -5, 1.5f64.to_bits()),
            (1 << 40, i64::MAX, 0x7ff0_0000_0000_0002),
            (7, i64::MIN, 0),
        ];
        let rec = encode_record(&[(7, &a), (1 << 40, &b)], &samples);
        let WalRecord {
            defs,
            samples: got,
            sts,
            checkpoint,
        } = decode_record(&rec).unwrap();
        assert!(!checkpoint && sts.is_empty());
        assert_eq!(defs, [(7, a), (1 << 40, b)]);
        assert_eq!(floats(&got), samples);
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "{cut}");
        }
        let mut bad = rec.clone();
        bad[0] = 9;
        assert!(decode_record(&bad).is_err());
        let empty = decode_record(&encode_record(&[], &[])).unwrap();
        assert!(empty.defs.is_empty() && empty.samples.is_empty());
    }

    /// Values survive bit for bit (decimals, NaN payloads, the staleness marker, -0.0, ±Inf,
    /// huge and tiny numbers), and short decimals take a few bytes.
    #[test]
    fn record_values_are_exact_and_short() {
        let vals = [
            0.0,
            -0.0,
            1.0,
            12.3,
            -4.56,
            0.1 + 0.2,
            1e300,
            f64::from_bits(1),
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
            f64::from_bits(0x7ff0_0000_0000_0002),
            f64::INFINITY,
            f64::NEG_INFINITY,
            9_007_199_254_740_993.0,
            1e15,
            1e-14,
        ];
        let samples: Vec<WalSample> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (100 - i as u64, 1_700_000_000_000 + i as i64, v.to_bits()))
            .collect();
        let rec = encode_record(&[], &samples);
        assert_eq!(floats(&decode_record(&rec).unwrap().samples), samples);
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "{cut}");
        }
        // One sample per series at one timestamp: the shape of a scrape or remote_write batch.
        let batch: Vec<WalSample> = (0..1000u64)
            .map(|i| {
                (
                    i,
                    1_700_000_000_000,
                    ((i * 37 % 1000) as f64 / 10.0).to_bits(),
                )
            })
            .collect();
        let rec = encode_record(&[], &batch);
        assert!(rec.len() < 5 * batch.len(), "{} bytes", rec.len());
        assert_eq!(floats(&decode_record(&rec).unwrap().samples), batch);
    }

    /// Records of the previous version (raw value bits) still replay.
    #[test]
    fn version_2_records_still_decode() {
        let mut rec = vec![WAL_RECORD_V2, 0, 2];
        for (id, dt, v) in [(7u64, 1000i64, 1.5f64), (9, -10, -0.0)] {
            put_uvarint(&mut rec, id);
            put_uvarint(&mut rec, zigzag(dt));
            rec.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        let got = decode_record(&rec).unwrap();
        assert_eq!(
            floats(&got.samples),
            [(7, 1000, 1.5f64.to_bits()), (9, 990, (-0.0f64).to_bits())]
        );
    }

    #[test]
    fn checkpoint_records_round_trip() {
        let a: Vec<(i64, f64)> = (0..300).map(|i| (i * 30_000, i as f64 / 10.0)).collect();
        let mut rec = checkpoint_record();
        put_checkpoint_chunk(&mut rec, 5, &crate::packed::encode_best(&a));
        let first_end = rec.len();
        put_checkpoint_chunk(&mut rec, 1 << 33, &crate::packed::encode_best(&a[..1]));
        let got = decode_record(&rec).unwrap();
        assert!(got.checkpoint && got.defs.is_empty());
        assert_eq!(got.samples.len(), 301);
        let got_floats = floats(&got.samples);
        assert_eq!(got_floats[299], (5, 299 * 30_000, 29.9f64.to_bits()));
        assert_eq!(got_floats[300], (1 << 33, 0, 0.0f64.to_bits()));
        // A cut between two series is a valid record (the WAL's CRC catches it); any other
        // cut is an error.
        for cut in (2..rec.len()).filter(|&c| c != first_end) {
            assert!(decode_record(&rec[..cut]).is_err(), "{cut}");
        }
    }

    fn hist(n: f64) -> Arc<FloatHistogram> {
        Arc::new(FloatHistogram {
            schema: 1,
            count: 3.0 * n,
            sum: 1.5 * n,
            zero_threshold: 1e-128,
            zero_count: n,
            positive_spans: vec![model::histogram::Span {
                offset: -1,
                length: 2,
            }],
            positive_buckets: vec![n, n],
            ..Default::default()
        })
    }

    /// Floats and histograms keep their order in a version-5 record, and the record is
    /// refused when cut anywhere; a float-only batch is still version 3.
    #[test]
    fn histogram_records_keep_sample_order() {
        let (h1, h2) = (hist(1.0), hist(2.5));
        let a = Labels::new([("__name__", "h")]).unwrap();
        let samples = [
            (3, 1000, Value::Histogram(&h1)),
            (3, 2000, Value::Float(crate::STALE_NAN_BITS)),
            (4, 2000, Value::Float(1.5f64.to_bits())),
            (3, 3000, Value::Histogram(&h2)),
        ];
        let rec = encode_record_values(&[(3, &a)], &samples);
        assert_eq!(rec[0], WAL_RECORD_V5);
        let got = decode_record(&rec).unwrap();
        assert_eq!(got.defs, [(3, a)]);
        let want: Vec<(u64, i64, WalValue)> = vec![
            (3, 1000, WalValue::Histogram(h1.clone())),
            (3, 2000, WalValue::Float(crate::STALE_NAN_BITS)),
            (4, 2000, WalValue::Float(1.5f64.to_bits())),
            (3, 3000, WalValue::Histogram(h2.clone())),
        ];
        assert_eq!(got.samples, want);
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "{cut}");
        }
        let floats_only = encode_record_values(&[], &samples[1..3]);
        assert_eq!(floats_only[0], WAL_RECORD_V3);
        // A version-3 record never carries the histogram tag.
        let mut v3 = rec.clone();
        v3[0] = WAL_RECORD_V3;
        assert!(decode_record(&v3).is_err());
    }

    #[test]
    fn checkpoint_records_hold_histogram_chunks() {
        let hs: Vec<(i64, Arc<FloatHistogram>)> =
            (1..=5).map(|i| (i * 1000, hist(i as f64))).collect();
        let mut rec = checkpoint_record();
        put_checkpoint_chunk(&mut rec, 9, &crate::histchunk::encode(&hs));
        put_checkpoint_chunk(&mut rec, 9, &crate::packed::encode_best(&[(6000, 1.0)]));
        let got = decode_record(&rec).unwrap();
        assert_eq!(got.samples.len(), 6);
        assert_eq!(got.samples[4], (9, 5000, WalValue::Histogram(hist(5.0))));
        assert_eq!(got.samples[5], (9, 6000, WalValue::Float(1.0f64.to_bits())));
    }
}
