//! Byte encodings shared by the WAL records and the block files: varints, length-prefixed
//! strings, label sets, and a bounds-checked reader that turns every malformed input into an
//! error instead of a panic.
//!
//! A WAL record is self-contained: version byte `1`, the batch's distinct label sets, then
//! `(series index, timestamp, value bits)` per sample. Repeating label sets in every record
//! costs WAL bytes, but needs no cross-record state, so replay can start at any segment and
//! concurrent batches never depend on each other's records.

use crate::labels::Label;
use crate::{Labels, TsdbError};

/// Version byte of sample records.
pub const WAL_RECORD_V1: u8 = 1;

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

/// One sample of a WAL record: index into the record's label sets, timestamp, value bits.
pub type WalSample = (u32, i64, u64);

/// A decoded WAL record: its label sets and samples.
pub type WalBatch = (Vec<Labels>, Vec<WalSample>);

/// Encodes a batch: `series` are the distinct label sets, `samples` index into them.
pub fn encode_samples(series: &[&Labels], samples: &[WalSample]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + series.len() * 64 + samples.len() * 18);
    buf.push(WAL_RECORD_V1);
    put_uvarint(&mut buf, series.len() as u64);
    for l in series {
        put_labels(&mut buf, l);
    }
    put_uvarint(&mut buf, samples.len() as u64);
    for &(s, t, v) in samples {
        put_uvarint(&mut buf, u64::from(s));
        buf.extend_from_slice(&t.to_le_bytes());
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf
}

/// Decodes a record written by [`encode_samples`].
pub fn decode_samples(rec: &[u8]) -> Result<WalBatch, TsdbError> {
    let mut r = Reader::new(rec, "wal record");
    let version = r.u8()?;
    if version != WAL_RECORD_V1 {
        return Err(r.err(&format!("unknown record version {version}")));
    }
    // Every series takes at least one byte and every sample at least 17, which bounds the
    // counts by the record size before anything is allocated.
    let n = r.len(r.remaining())?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        series.push(r.labels()?);
    }
    let m = r.len(r.remaining() / 17)?;
    let mut samples = Vec::with_capacity(m);
    for _ in 0..m {
        let s = r.uvarint()?;
        if s >= n as u64 {
            return Err(r.err("sample refers to a missing series"));
        }
        let s = s as u32;
        let t = r.u64_le()? as i64;
        let v = r.u64_le()?;
        samples.push((s, t, v));
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok((series, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_and_garbage_is_an_error() {
        let a = Labels::new([("__name__", "a"), ("x", "ü")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        let samples = vec![
            (0, -5, 1.5f64.to_bits()),
            (1, i64::MAX, 0x7ff0_0000_0000_0002),
            (0, 7, 0),
        ];
        let rec = encode_samples(&[&a, &b], &samples);
        let (series, got) = decode_samples(&rec).unwrap();
        assert_eq!(series, [a, b]);
        assert_eq!(got, samples);
        for cut in 0..rec.len() {
            assert!(decode_samples(&rec[..cut]).is_err(), "{cut}");
        }
        let mut bad = rec.clone();
        bad[0] = 9;
        assert!(decode_samples(&bad).is_err());
        // A sample pointing past the series table.
        let rec = encode_samples(&[], &[(0, 1, 1)]);
        assert!(decode_samples(&rec).is_err());
    }
}
