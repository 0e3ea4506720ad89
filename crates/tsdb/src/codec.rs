//! Byte encodings shared by the WAL records and the block files: varints, length-prefixed
//! strings, label sets, and a bounds-checked reader that turns every malformed input into an
//! error instead of a panic.
//!
//! A WAL record is version byte `2`, definitions `(series WAL id, label set)` of series the
//! WAL has not durably defined yet, then `(WAL id, timestamp delta, value bits)` per sample.
//! Labels are written once per series (and again in the checkpoint written at each head
//! cut), not once per sample: the WAL costs about a dozen bytes per sample.

use crate::labels::Label;
use crate::{Labels, TsdbError};

/// Version byte of WAL records.
pub const WAL_RECORD_V2: u8 = 2;

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

/// One sample of a WAL record: series WAL id, timestamp, value bits.
pub type WalSample = (u64, i64, u64);

/// A decoded WAL record: the series it defines (WAL id, labels) and its samples.
pub type WalBatch = (Vec<(u64, Labels)>, Vec<WalSample>);

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes a record: series definitions (WAL id and labels) for series not yet defined in
/// a durable record, then samples by WAL id with timestamps delta-encoded within the record.
/// A checkpoint is a record with definitions only.
pub fn encode_record(defs: &[(u64, &Labels)], samples: &[WalSample]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + defs.len() * 64 + samples.len() * 12);
    buf.push(WAL_RECORD_V2);
    put_uvarint(&mut buf, defs.len() as u64);
    for &(id, l) in defs {
        put_uvarint(&mut buf, id);
        put_labels(&mut buf, l);
    }
    put_uvarint(&mut buf, samples.len() as u64);
    let mut prev = 0i64;
    for &(id, t, v) in samples {
        put_uvarint(&mut buf, id);
        put_uvarint(&mut buf, zigzag(t.wrapping_sub(prev)));
        prev = t;
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record(rec: &[u8]) -> Result<WalBatch, TsdbError> {
    let mut r = Reader::new(rec, "wal record");
    let version = r.u8()?;
    if version != WAL_RECORD_V2 {
        return Err(r.err(&format!("unknown record version {version}")));
    }
    // Counts are bounded by the bytes left (every definition takes at least 2 bytes and
    // every sample at least 10) before anything is allocated.
    let n = r.len(r.remaining() / 2)?;
    let mut defs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.uvarint()?;
        defs.push((id, r.labels()?));
    }
    let m = r.len(r.remaining() / 10)?;
    let mut samples = Vec::with_capacity(m);
    let mut prev = 0i64;
    for _ in 0..m {
        let id = r.uvarint()?;
        let t = prev.wrapping_add(unzigzag(r.uvarint()?));
        prev = t;
        samples.push((id, t, r.u64_le()?));
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok((defs, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (defs, got) = decode_record(&rec).unwrap();
        assert_eq!(defs, [(7, a), (1 << 40, b)]);
        assert_eq!(got, samples);
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "{cut}");
        }
        let mut bad = rec.clone();
        bad[0] = 9;
        assert!(decode_record(&bad).is_err());
        let (defs, got) = decode_record(&encode_record(&[], &[])).unwrap();
        assert!(defs.is_empty() && got.is_empty());
    }
}
