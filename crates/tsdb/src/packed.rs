//! Packed chunks: the dense, immutable chunk encoding of blocks and WAL checkpoints.
//!
//! Gorilla's XOR chunks suit the head (appendable one sample at a time) but spend most of
//! their bits on values: a counter stepping by irregular integers, or a gauge with one
//! decimal, XORs to 20-50 significant bits per sample. Most metric values are short decimals
//! (they were parsed from exposition text), so a packed chunk stores each value as an integer
//! mantissa `m` with one decimal exponent `e` for the whole chunk (`value = m / 10^e`, exact
//! bit for bit), and integers pack far better than float bit patterns. We own this encoding
//! because it is what the disk holds; it is written from the published ideas of
//! VictoriaMetrics (decimal conversion) and patched frame-of-reference integer packing.
//!
//! Layout (varints are LEB128, zigzag where signed):
//! ```text
//! u8 ENC_PACKED, uvarint n (1..=MAX_PACKED_SAMPLES)
//! column  timestamps (n values)
//! u8 e (0..=MAX_EXP)
//! uvarint k specials, k × (uvarint index gap, u64 LE raw value bits)
//! column  mantissas (n values; a special's slot repeats the previous mantissa)
//! ```
//! A column is `u8 order` (0: the values, 1: first value then deltas, 2: first value, first
//! delta, then deltas of deltas; each zigzag varint) followed by one stream of the remaining
//! integers: zigzag varint `base` (the minimum), `u8 w`, the `(x - base)` values packed in `w`
//! bits each (LSB first, padded to a byte), then uvarint `x` exceptions as `(uvarint index gap,
//! uvarint high bits)` for the few values wider than `w` (their low `w` bits are packed).
//! The encoder picks the order and `w` that take the fewest bytes: regular timestamps cost no
//! bits at all (every delta of delta is 0, so `w = 0`), and a counter's or gauge's value costs
//! the bits of its typical step.
//!
//! Values that are not short decimals (NaN payloads such as the staleness marker, ±Inf,
//! -0.0, results of float arithmetic) are "specials" stored raw, so every value survives bit
//! for bit. Writers fall back to an XOR chunk when a chunk has too many of them
//! ([`encode_best`]). Every read is bounds-checked: hostile bytes make [`PackedIter::new`]
//! return `None` or the iterator stop and report corruption, never a panic.

use crate::chunk::XorChunk;

/// Encoding byte of packed chunks.
pub const ENC_PACKED: u8 = 2;

/// Most samples one packed chunk holds.
pub const MAX_PACKED_SAMPLES: usize = 1 << 16;

/// Largest decimal exponent: `10^15` and smaller powers are exact doubles.
const MAX_EXP: u8 = 15;

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Mantissas stay below 2^53, where every integer is an exact double.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// The mantissa of `v` at exponent `e`, if `m / 10^e` gives back exactly `v`'s bits.
#[inline]
pub(crate) fn mantissa(v: f64, e: u8) -> Option<i64> {
    let p = POW10[usize::from(e)];
    let s = v * p;
    if !s.is_finite() || s.abs() >= MAX_MANTISSA {
        return None;
    }
    let m = s.round();
    ((m / p).to_bits() == v.to_bits()).then_some(m as i64)
}

/// The smallest exponent at which `v` is a short decimal, if any (never for -0.0, NaN, ±Inf).
///
/// A decimal at exponent `e` is one at every larger exponent whose mantissa still fits, so
/// one test at the largest such exponent rejects a value that is no short decimal, and a
/// binary search finds the smallest: at most six tests per value, two for most, which keeps
/// the WAL's per-sample cost low for arbitrary floats too.
pub(crate) fn decimal_exponent(v: f64) -> Option<u8> {
    if !v.is_finite() || v.to_bits() == (-0.0f64).to_bits() {
        return None;
    }
    if mantissa(v, 0).is_some() {
        return Some(0);
    }
    let a = v.abs();
    let mut hi = (1..=MAX_EXP)
        .rev()
        .find(|&e| a * POW10[usize::from(e)] < MAX_MANTISSA)?;
    mantissa(v, hi)?;
    let mut lo = 1;
    while lo < hi {
        let mid = (lo + hi) / 2;
        if mantissa(v, mid).is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(hi)
}

/// The value of mantissa `m` at exponent `e` (the inverse of [`mantissa`]).
#[inline]
pub(crate) fn decimal_value(m: i64, e: u8) -> f64 {
    if e == 0 {
        m as f64
    } else {
        m as f64 / POW10[usize::from(e & 15)]
    }
}

/// Appends a patched frame-of-reference stream of `xs`.
fn put_stream(out: &mut Vec<u8>, xs: &[i64]) {
    let base = xs.iter().copied().min().unwrap_or(0);
    put_uvarint(out, zigzag(base));
    // Bit lengths of the offsets from the base, to choose the width.
    let mut hist = [0usize; 65];
    for &x in xs {
        let u = x.wrapping_sub(base) as u64;
        hist[(64 - u.leading_zeros()) as usize] += 1;
    }
    let max_len = (0..=64).rev().find(|&b| hist[b] > 0).unwrap_or(0);
    let mut best = (usize::MAX, max_len);
    for w in 0..=max_len {
        // Packed bits, plus about (index gap byte + high bits varint) per exception.
        let mut bits = xs.len() * w;
        for (b, &count) in hist.iter().enumerate().skip(w + 1) {
            bits += count * 8 * (1 + (b - w).div_ceil(7));
        }
        if bits < best.0 {
            best = (bits, w);
        }
    }
    let w = best.1 as u32;
    out.push(w as u8);
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let start = out.len();
    out.resize(start + (xs.len() * w as usize).div_ceil(8), 0);
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    if w > 0 {
        let packed = &mut out[start..];
        let mut bit = 0usize;
        for (i, &x) in xs.iter().enumerate() {
            let u = x.wrapping_sub(base) as u64;
            if w < 64 && u >> w != 0 {
                exceptions.push((i, u >> w));
            }
            let mut v = u & mask;
            let mut left = w;
            while left > 0 {
                let byte = bit / 8;
                let off = (bit % 8) as u32;
                let take = (8 - off).min(left);
                packed[byte] |= ((v & ((1u64 << take) - 1)) << off) as u8;
                v = if take == 64 { 0 } else { v >> take };
                left -= take;
                bit += take as usize;
            }
        }
    } else {
        for (i, &x) in xs.iter().enumerate() {
            let u = x.wrapping_sub(base) as u64;
            if u != 0 {
                exceptions.push((i, u));
            }
        }
    }
    put_uvarint(out, exceptions.len() as u64);
    let mut next = 0usize;
    for (i, high) in exceptions {
        put_uvarint(out, (i - next) as u64);
        put_uvarint(out, high);
        next = i + 1;
    }
}

/// Appends a column of `xs` in the order that encodes smallest.
fn put_column(out: &mut Vec<u8>, xs: &[i64]) {
    let mut best: Option<Vec<u8>> = None;
    let mut deltas: Vec<i64> = Vec::with_capacity(xs.len());
    for order in 0..=2u8 {
        if usize::from(order) > xs.len() {
            break;
        }
        let mut buf = vec![order];
        match order {
            0 => put_stream(&mut buf, xs),
            1 => {
                put_uvarint(&mut buf, zigzag(xs[0]));
                deltas.clear();
                deltas.extend(xs.windows(2).map(|p| p[1].wrapping_sub(p[0])));
                put_stream(&mut buf, &deltas);
            }
            _ => {
                put_uvarint(&mut buf, zigzag(xs[0]));
                put_uvarint(&mut buf, zigzag(deltas[0]));
                let dods: Vec<i64> = deltas.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
                put_stream(&mut buf, &dods);
            }
        }
        if best.as_ref().is_none_or(|b| buf.len() < b.len()) {
            best = Some(buf);
        }
    }
    out.extend_from_slice(&best.unwrap_or_default());
}

/// Encodes `samples` (1 to [`MAX_PACKED_SAMPLES`], any timestamps, any values) as a packed
/// chunk; `None` when they are empty or too many.
pub fn encode(samples: &[(i64, f64)]) -> Option<Vec<u8>> {
    if samples.is_empty() || samples.len() > MAX_PACKED_SAMPLES {
        return None;
    }
    let e = samples
        .iter()
        .filter_map(|s| decimal_exponent(s.1))
        .max()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(16 + samples.len() * 2);
    out.push(ENC_PACKED);
    put_uvarint(&mut out, samples.len() as u64);
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    put_column(&mut out, &ts);
    out.push(e);
    let mut specials: Vec<(usize, u64)> = Vec::new();
    let mut ms: Vec<i64> = Vec::with_capacity(samples.len());
    let mut prev = 0i64;
    for (i, &(_, v)) in samples.iter().enumerate() {
        let m = if v.to_bits() == (-0.0f64).to_bits() {
            None
        } else {
            mantissa(v, e)
        };
        match m {
            Some(m) => prev = m,
            None => specials.push((i, v.to_bits())),
        }
        ms.push(prev);
    }
    put_uvarint(&mut out, specials.len() as u64);
    let mut next = 0usize;
    for (i, bits) in specials {
        put_uvarint(&mut out, (i - next) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        next = i + 1;
    }
    put_column(&mut out, &ms);
    Some(out)
}

/// Encodes `samples` (at most [`MAX_PACKED_SAMPLES`]) as whichever of a packed or an XOR
/// chunk is smaller; what block and checkpoint writers store.
pub fn encode_best(samples: &[(i64, f64)]) -> Vec<u8> {
    let packed = encode(samples);
    // XOR chunks count in a u16; longer runs are always packed.
    if samples.len() < usize::from(u16::MAX) {
        let mut x = XorChunk::new();
        for &(t, v) in samples {
            x.append(t, v);
        }
        if packed.as_ref().is_none_or(|p| x.bytes().len() < p.len()) {
            return x.bytes().to_vec();
        }
    }
    packed.unwrap_or_default()
}

/// A bounds-checked reader over a byte slice; `None` on any overrun.
#[derive(Clone, Debug)]
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
}

/// Reads one patched frame-of-reference stream lazily.
#[derive(Clone, Debug)]
struct Stream<'a> {
    base: i64,
    w: u32,
    packed: &'a [u8],
    /// Index of the first packed byte not yet loaded into `buf`.
    pos: usize,
    /// The next `nbits` packed bits, least significant first; the bits above are zero.
    buf: u64,
    nbits: u32,
    /// Index of the next value.
    i: usize,
    /// Remaining exception bytes and count, and the next exception (index, high bits).
    exc: Cursor<'a>,
    exc_left: usize,
    next_exc: usize,
    next_high: u64,
}

impl<'a> Stream<'a> {
    /// Parses a stream of `len` values at the cursor, leaving it after the stream; checks
    /// that exceptions are in range and increasing.
    fn parse(c: &mut Cursor<'a>, len: usize) -> Option<Stream<'a>> {
        let base = unzigzag(c.uvarint()?);
        let w = u32::from(c.u8()?);
        if w > 64 {
            return None;
        }
        let packed = c.bytes((len.checked_mul(w as usize)?).div_ceil(8))?;
        let count = usize::try_from(c.uvarint()?).ok()?;
        if count > len || (w == 64 && count > 0) {
            return None;
        }
        let exc_start = c.pos;
        let mut next = 0usize;
        for _ in 0..count {
            let idx = next.checked_add(usize::try_from(c.uvarint()?).ok()?)?;
            if idx >= len {
                return None;
            }
            c.uvarint()?;
            next = idx + 1;
        }
        let mut s = Stream {
            base,
            w,
            packed,
            pos: 0,
            buf: 0,
            nbits: 0,
            i: 0,
            exc: Cursor {
                data: &c.data[exc_start..c.pos],
                pos: 0,
            },
            exc_left: count,
            next_exc: usize::MAX,
            next_high: 0,
        };
        s.load_exception(0);
        Some(s)
    }

    /// Reads the next exception (validated at parse time) relative to index `from`.
    fn load_exception(&mut self, from: usize) {
        self.next_exc = usize::MAX;
        if self.exc_left == 0 {
            return;
        }
        self.exc_left -= 1;
        if let (Some(gap), Some(high)) = (self.exc.uvarint(), self.exc.uvarint()) {
            self.next_exc = from + gap as usize;
            self.next_high = high;
        }
    }

    /// The next `out.len()` values (the caller reads at most the stream's length): the
    /// packed bits in one tight loop, then the batch's exceptions, then the base. Value `i`
    /// is `base` plus the `i`th packed bits, with its exception's high bits above them.
    #[inline]
    fn fill(&mut self, out: &mut [i64]) {
        if self.w == 0 {
            out.fill(0);
        } else {
            for o in out.iter_mut() {
                *o = self.read_packed() as i64;
            }
        }
        let end = self.i + out.len();
        while self.next_exc < end {
            let j = self.next_exc - self.i;
            out[j] |= self.next_high.wrapping_shl(self.w) as i64;
            self.load_exception(self.next_exc + 1);
        }
        self.i = end;
        if self.base != 0 {
            for o in out.iter_mut() {
                *o = self.base.wrapping_add(*o);
            }
        }
    }

    /// The next `w` packed bits, least significant first: from the bit buffer, refilled
    /// with one little-endian load of eight bytes. Past the end of the packed bytes (which
    /// parsing sized for the stream's length, so only a decoder bug gets there) bits are 0.
    #[inline]
    fn read_packed(&mut self) -> u64 {
        let w = self.w;
        if w == 0 {
            return 0;
        }
        if w <= self.nbits {
            return self.take(w);
        }
        self.refill();
        if w <= self.nbits {
            return self.take(w);
        }
        // Wider than what one refill can add (over 56 bits), or the end of the data.
        let lo_bits = self.nbits;
        let lo = if lo_bits > 0 { self.take(lo_bits) } else { 0 };
        self.refill();
        let hi_bits = (w - lo_bits).min(self.nbits);
        let hi = if hi_bits > 0 { self.take(hi_bits) } else { 0 };
        lo | hi << lo_bits
    }

    /// Takes `n` (1..=`nbits`) buffered bits.
    #[inline]
    fn take(&mut self, n: u32) -> u64 {
        let v = if n == 64 {
            self.buf
        } else {
            self.buf & ((1u64 << n) - 1)
        };
        self.buf = self.buf.checked_shr(n).unwrap_or(0);
        self.nbits -= n;
        v
    }

    /// Loads whole bytes above the buffered bits until more than 56 are buffered or the
    /// packed bytes are used up.
    #[inline]
    fn refill(&mut self) {
        if self.nbits > 56 {
            return;
        }
        if let Some(b) = self.packed.get(self.pos..self.pos + 8) {
            let word = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let bytes = (64 - self.nbits) / 8;
            let bits = bytes * 8;
            let word = if bits == 64 {
                word
            } else {
                word & ((1u64 << bits) - 1)
            };
            self.buf |= word << self.nbits;
            self.nbits += bits;
            self.pos += bytes as usize;
        } else {
            while self.nbits <= 56 {
                let Some(&b) = self.packed.get(self.pos) else {
                    break;
                };
                self.buf |= u64::from(b) << self.nbits;
                self.nbits += 8;
                self.pos += 1;
            }
        }
    }
}

/// Reads a column of `len` values lazily.
#[derive(Clone, Debug)]
struct Column<'a> {
    order: u8,
    /// Values read so far.
    read: usize,
    first: i64,
    first_delta: i64,
    prev: i64,
    delta: i64,
    stream: Stream<'a>,
}

impl<'a> Column<'a> {
    fn parse(c: &mut Cursor<'a>, len: usize) -> Option<Column<'a>> {
        let order = c.u8()?;
        if order > 2 || usize::from(order) > len {
            return None;
        }
        let first = if order >= 1 {
            unzigzag(c.uvarint()?)
        } else {
            0
        };
        let first_delta = if order == 2 {
            unzigzag(c.uvarint()?)
        } else {
            0
        };
        let stream = Stream::parse(c, len - usize::from(order))?;
        Some(Column {
            order,
            read: 0,
            first,
            first_delta,
            prev: 0,
            delta: 0,
            stream,
        })
    }
}

impl Column<'_> {
    /// The next `out.len()` values (at most what is left): order 0 stores the values, order
    /// 1 a first value and deltas, order 2 a first value, a first delta and deltas of
    /// deltas; the order is undone in one loop per batch.
    #[inline]
    fn fill(&mut self, out: &mut [i64]) {
        let mut j = 0;
        // The first value, and for order 2 the second, come from the column's header.
        while j < out.len() && self.read < usize::from(self.order) {
            let x = if self.read == 0 {
                self.first
            } else {
                self.delta = self.first_delta;
                self.prev.wrapping_add(self.delta)
            };
            out[j] = x;
            self.prev = x;
            self.read += 1;
            j += 1;
        }
        let rest = &mut out[j..];
        if rest.is_empty() {
            return;
        }
        self.stream.fill(rest);
        match self.order {
            0 => {}
            1 => {
                let mut prev = self.prev;
                for x in rest.iter_mut() {
                    prev = prev.wrapping_add(*x);
                    *x = prev;
                }
            }
            _ => {
                let (mut prev, mut delta) = (self.prev, self.delta);
                for x in rest.iter_mut() {
                    delta = delta.wrapping_add(*x);
                    prev = prev.wrapping_add(delta);
                    *x = prev;
                }
                self.delta = delta;
            }
        }
        self.prev = rest[rest.len() - 1];
        self.read += rest.len();
    }
}

/// The sample count of a packed chunk (0 when its header does not parse).
pub fn packed_len(bytes: &[u8]) -> usize {
    let mut c = Cursor {
        data: bytes.get(1..).unwrap_or_default(),
        pos: 0,
    };
    c.uvarint()
        .filter(|&n| n as usize <= MAX_PACKED_SAMPLES)
        .map_or(0, |n| n as usize)
}

/// Decodes a packed chunk lazily, one sample per `next`.
#[derive(Clone, Debug)]
pub struct PackedIter<'a> {
    n: usize,
    /// Samples handed out.
    i: usize,
    e: u8,
    ts: Column<'a>,
    ms: Column<'a>,
    specials: Cursor<'a>,
    specials_left: usize,
    next_special: usize,
    special_bits: u64,
    corrupt: bool,
    /// Samples decoded ahead, a batch at a time: `[pos, len)` are not handed out yet.
    batch_t: [i64; BATCH],
    batch_v: [f64; BATCH],
    pos: usize,
    len: usize,
}

/// Samples a [`PackedIter`] decodes at a time: each column is unpacked, undeltaed and
/// converted in its own short loop, which costs a fraction of decoding sample by sample.
const BATCH: usize = 32;

impl<'a> PackedIter<'a> {
    /// Parses the chunk's structure (every section in bounds); `None` if it is malformed.
    pub fn new(bytes: &'a [u8]) -> Option<PackedIter<'a>> {
        let mut c = Cursor {
            data: bytes,
            pos: 0,
        };
        if c.u8()? != ENC_PACKED {
            return None;
        }
        let n = usize::try_from(c.uvarint()?).ok()?;
        if n == 0 || n > MAX_PACKED_SAMPLES {
            return None;
        }
        let ts = Column::parse(&mut c, n)?;
        let e = c.u8()?;
        if e > MAX_EXP {
            return None;
        }
        let k = usize::try_from(c.uvarint()?).ok()?;
        if k > n {
            return None;
        }
        let start = c.pos;
        let mut next = 0usize;
        for _ in 0..k {
            let idx = next.checked_add(usize::try_from(c.uvarint()?).ok()?)?;
            if idx >= n {
                return None;
            }
            c.bytes(8)?;
            next = idx + 1;
        }
        let specials = Cursor {
            data: &bytes[start..c.pos],
            pos: 0,
        };
        let ms = Column::parse(&mut c, n)?;
        if c.pos != bytes.len() {
            return None;
        }
        let mut it = PackedIter {
            n,
            i: 0,
            e,
            ts,
            ms,
            specials,
            specials_left: k,
            next_special: usize::MAX,
            special_bits: 0,
            corrupt: false,
            batch_t: [0; BATCH],
            batch_v: [0.0; BATCH],
            pos: 0,
            len: 0,
        };
        it.load_special(0);
        Some(it)
    }

    fn load_special(&mut self, from: usize) {
        self.next_special = usize::MAX;
        if self.specials_left == 0 {
            return;
        }
        self.specials_left -= 1;
        let gap = self.specials.uvarint();
        let bits = self.specials.bytes(8);
        match (gap, bits) {
            (Some(gap), Some(b)) => {
                self.next_special = from + gap as usize;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.special_bits = u64::from_le_bytes(a);
            }
            // Validated at parse time; a failure here means a decoder bug, not bad data.
            _ => self.corrupt = true,
        }
    }

    /// Decodes the next batch; the caller checks that samples are left.
    fn refill(&mut self) {
        let first = self.i;
        let k = (self.n - first).min(BATCH);
        self.ts.fill(&mut self.batch_t[..k]);
        let mut ms = [0i64; BATCH];
        self.ms.fill(&mut ms[..k]);
        let vs = &mut self.batch_v[..k];
        if self.e == 0 {
            for (v, &m) in vs.iter_mut().zip(&ms[..k]) {
                *v = m as f64;
            }
        } else {
            // The same division as `decimal_value`, so every value is bit for bit the same.
            let p = POW10[usize::from(self.e & 15)];
            for (v, &m) in vs.iter_mut().zip(&ms[..k]) {
                *v = m as f64 / p;
            }
        }
        let mut len = k;
        while self.next_special < first + k {
            let j = self.next_special - first;
            self.batch_v[j] = f64::from_bits(self.special_bits);
            self.load_special(self.next_special + 1);
            if self.corrupt {
                // Not reachable with data that parsed; end after this sample all the same.
                len = j + 1;
                self.n = first + len;
                break;
            }
        }
        self.pos = 0;
        self.len = len;
    }

    /// Whether decoding stopped because the data was malformed.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }
}

impl Iterator for PackedIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.pos == self.len {
            if self.i >= self.n {
                return None;
            }
            self.refill();
        }
        let s = (self.batch_t[self.pos], self.batch_v[self.pos]);
        self.pos += 1;
        self.i += 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.n - self.i;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkIter;
    use rand::{Rng, SeedableRng};

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn check(samples: &[(i64, f64)]) -> Vec<u8> {
        let bytes = encode(samples).unwrap();
        let mut it = ChunkIter::new(&bytes);
        let got: Vec<(i64, f64)> = it.by_ref().collect();
        assert!(!it.is_corrupt());
        assert_eq!(got.len(), samples.len());
        for (i, (a, b)) in samples.iter().zip(&got).enumerate() {
            assert_eq!(a.0, b.0, "timestamp {i}");
            assert_eq!(
                a.1.to_bits(),
                b.1.to_bits(),
                "value {i}: {} vs {}",
                a.1,
                b.1
            );
        }
        assert_eq!(crate::chunk::chunk_len(&bytes), samples.len());
        let best = encode_best(samples);
        let again: Vec<(i64, f64)> = ChunkIter::new(&best).collect();
        assert_eq!(again.len(), samples.len());
        assert!(best.len() <= bytes.len());
        bytes
    }

    /// The byte-wise bit unpacking packed chunks used before the bit buffer: value `i` of
    /// width `w` starts at bit `i * w`, least significant bit first, zero past the end.
    fn reference_read_packed(packed: &[u8], bit: usize, w: u32) -> u64 {
        let mut v = 0u64;
        let mut got = 0u32;
        let mut pos = bit / 8;
        let mut off = (bit % 8) as u32;
        while got < w {
            let b = u64::from(packed.get(pos).copied().unwrap_or(0)) >> off;
            let take = (8 - off).min(w - got);
            v |= (b & ((1u64 << take) - 1)) << got;
            got += take;
            pos += 1;
            off = 0;
        }
        v
    }

    /// Property test: every width from 0 to 64 over random bytes unpacks to what the
    /// byte-wise reader gives, value after value (exceptions are tested by the round trips).
    #[test]
    fn buffered_unpacking_matches_byte_wise() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0b175);
        for _ in 0..5000 {
            let w: u32 = rng.random_range(0..=64);
            let len: usize = rng.random_range(0..300);
            let bytes: Vec<u8> = (0..(len * w as usize).div_ceil(8))
                .map(|_| rng.random())
                .collect();
            let mut s = Stream {
                base: 0,
                w,
                packed: &bytes,
                pos: 0,
                buf: 0,
                nbits: 0,
                i: 0,
                exc: Cursor { data: &[], pos: 0 },
                exc_left: 0,
                next_exc: usize::MAX,
                next_high: 0,
            };
            let mut i = 0;
            while i < len {
                let mut out = vec![0i64; rng.random_range(1..=40usize).min(len - i)];
                s.fill(&mut out);
                for x in out {
                    let want = reference_read_packed(&bytes, i * w as usize, w);
                    assert_eq!(x as u64, want, "value {i} of width {w}");
                    i += 1;
                }
            }
        }
    }

    /// The sample-at-a-time decoder packed chunks had before batches, over the same parsed
    /// structure: the reference the batched iterator must match, damaged chunks included.
    fn reference_decode(bytes: &[u8]) -> Option<Vec<(i64, u64)>> {
        fn stream_next(s: &mut Stream<'_>) -> i64 {
            let mut u = reference_read_packed(s.packed, s.i * s.w as usize, s.w);
            if s.i == s.next_exc {
                u |= s.next_high.wrapping_shl(s.w);
                s.load_exception(s.i + 1);
            }
            s.i += 1;
            s.base.wrapping_add(u as i64)
        }
        fn column_next(c: &mut Column<'_>) -> i64 {
            let x = match (c.order, c.read) {
                (0, _) => stream_next(&mut c.stream),
                (_, 0) => c.first,
                (1, _) => c.prev.wrapping_add(stream_next(&mut c.stream)),
                (_, 1) => {
                    c.delta = c.first_delta;
                    c.prev.wrapping_add(c.delta)
                }
                _ => {
                    c.delta = c.delta.wrapping_add(stream_next(&mut c.stream));
                    c.prev.wrapping_add(c.delta)
                }
            };
            c.read += 1;
            c.prev = x;
            x
        }
        let mut it = PackedIter::new(bytes)?;
        let mut out = Vec::new();
        for i in 0..it.n {
            let t = column_next(&mut it.ts);
            let m = column_next(&mut it.ms);
            let v = if i == it.next_special {
                let bits = it.special_bits;
                it.load_special(i + 1);
                bits
            } else {
                decimal_value(m, it.e).to_bits()
            };
            out.push((t, v));
        }
        Some(out)
    }

    /// Property test: random chunks, whole and with bytes changed (those that still parse
    /// decode to garbage, but to the same garbage), give what the sample-at-a-time decoder
    /// gives, bit for bit.
    #[test]
    fn batched_decoder_matches_sample_at_a_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xba7c);
        let mut parsed_damaged = 0;
        for case in 0..3000 {
            let n = rng.random_range(1..=700);
            let mut t: i64 = rng.random();
            let mut v = 0.0f64;
            let samples: Vec<(i64, f64)> = (0..n)
                .map(|_| {
                    t = t.wrapping_add([15_000, 30_000, 1, rng.random()][rng.random_range(0..4)]);
                    v = match rng.random_range(0..6) {
                        0 => f64::from_bits(STALE_NAN),
                        1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]
                            [rng.random_range(0..4)],
                        2 => rng.random_range(-100_000i64..100_000) as f64 / 1000.0,
                        3 => v + rng.random_range(0..5000) as f64,
                        _ => v,
                    };
                    (t, v)
                })
                .collect();
            let mut bytes = encode(&samples).unwrap();
            if case % 2 == 1 {
                for _ in 0..rng.random_range(1..3) {
                    let i = rng.random_range(1..bytes.len());
                    bytes[i] = rng.random();
                }
            }
            let Some(want) = reference_decode(&bytes) else {
                assert!(PackedIter::new(&bytes).is_none());
                continue;
            };
            parsed_damaged += case % 2;
            let mut it = PackedIter::new(&bytes).unwrap();
            let got: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
            assert_eq!(got, want, "case {case}");
            assert!(!it.is_corrupt());
        }
        assert!(
            parsed_damaged > 100,
            "{parsed_damaged} damaged chunks parsed"
        );
    }

    /// Random chunks of every kind of value (NaN payloads, the staleness marker, ±Inf,
    /// -0.0, huge timestamp jumps) decode bit for bit through the buffered reader, whole
    /// and when read in the middle of a column's 64-bit words.
    #[test]
    fn random_chunks_decode_bit_for_bit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0b17);
        for _ in 0..400 {
            let n = rng.random_range(1..=1000);
            let mut t: i64 = rng.random();
            let mut v = 0.0f64;
            let samples: Vec<(i64, f64)> = (0..n)
                .map(|_| {
                    t = t.wrapping_add(match rng.random_range(0..5) {
                        0 => 15_000,
                        1 => rng.random(),
                        2 => rng.random_range(-5..=5),
                        3 => {
                            let bits = rng.random_range(1..63);
                            rng.random_range(0..1i64 << bits)
                        }
                        _ => 30_000 + rng.random_range(-20..=20),
                    });
                    v = match rng.random_range(0..8) {
                        0 => f64::from_bits(STALE_NAN),
                        1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]
                            [rng.random_range(0..4)],
                        2 => f64::from_bits(rng.random()),
                        3 => {
                            let bits = rng.random_range(1..50);
                            v + rng.random_range(0..1u64 << bits) as f64
                        }
                        4 => rng.random_range(-1_000_000i64..1_000_000) as f64 / 100.0,
                        _ => v,
                    };
                    (t, v)
                })
                .collect();
            check(&samples);
        }
    }

    #[test]
    fn decimals_are_exact() {
        for v in [0.1, 0.2, 12.3, -7.25, 1e15, 123456789.0, 0.000_001, 3.0] {
            let e = decimal_exponent(v).unwrap();
            assert_eq!(
                decimal_value(mantissa(v, e).unwrap(), e).to_bits(),
                v.to_bits()
            );
        }
        for (v, e) in [
            (0.1, 1),
            (42.0, 0),
            (-42.0, 0),
            (12.345, 3),
            (123_456.7, 1),
            (1e-15, 15),
            (0.000_25, 5),
            (9_007_199_254_740_991.0, 0),
        ] {
            assert_eq!(decimal_exponent(v), Some(e), "{v}");
        }
        for v in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            0.1 + 0.2,
            1e300,
            f64::from_bits(1),
        ] {
            assert_eq!(decimal_exponent(v), None, "{v}");
        }
    }

    #[test]
    fn special_values_survive_bit_for_bit() {
        let vals = [
            f64::from_bits(STALE_NAN),
            1.5,
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::from_bits(1),
            f64::from_bits(STALE_NAN),
            2.5,
        ];
        let samples: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 30_000, v))
            .collect();
        check(&samples);
        check(&[(0, -0.0)]);
        check(&[
            (0, f64::from_bits(STALE_NAN)),
            (1, f64::from_bits(STALE_NAN)),
        ]);
    }

    #[test]
    fn extreme_timestamps_and_mantissas() {
        check(&[(i64::MIN, 1.0), (i64::MAX, 2.0), (0, 3.0), (i64::MIN, 4.0)]);
        check(&[(7, 9_007_199_254_740_991.0), (8, -9_007_199_254_740_991.0)]);
        check(&[(1, 1e15), (2, 1e-15), (3, 123.456)]);
        assert!(encode(&[]).is_none());
    }

    #[test]
    fn random_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9ac4);
        for _ in 0..3000 {
            let n = rng.random_range(1..=600);
            let mut t: i64 = rng.random_range(-1_000_000_000_000..2_000_000_000_000);
            let mut v = 0.0f64;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                t = t.wrapping_add(match rng.random_range(0..6) {
                    0 | 1 => 30_000,
                    2 => rng.random_range(0..100_000),
                    3 => rng.random_range(0..i64::MAX / 4),
                    4 => -rng.random_range(0..1_000_000),
                    _ => 15_000 + rng.random_range(-3..=3),
                });
                v = match rng.random_range(0..9) {
                    0 => v,
                    1 => v + rng.random_range(0..100) as f64,
                    2 => rng.random::<f64>() * 1e6,
                    3 => f64::from_bits(rng.random()),
                    4 => f64::from_bits(STALE_NAN),
                    5 => rng.random_range(0..1000) as f64 / 10.0,
                    6 => rng.random_range(-1_000_000_000i64..1_000_000_000) as f64 / 1000.0,
                    7 => [f64::NAN, f64::INFINITY, -0.0][rng.random_range(0..3)],
                    _ => -v,
                };
                samples.push((t, v));
            }
            check(&samples);
        }
    }

    /// The bench's data: regular 30 s timestamps, counters stepping by 0..=99 and gauges with
    /// one decimal cost about a byte per sample.
    #[test]
    fn counters_and_gauges_pack_to_about_a_byte() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t0 = 1_700_000_000_000i64;
        let counter: Vec<(i64, f64)> = (0..480)
            .map(|r| (t0 + r * 30_000, (r * 50 + rng.random_range(0..100)) as f64))
            .collect();
        let gauge: Vec<(i64, f64)> = (0..480)
            .map(|r| {
                (
                    t0 + r * 30_000,
                    500.0 + rng.random_range(0..100) as f64 / 10.0,
                )
            })
            .collect();
        for (name, s) in [("counter", counter), ("gauge", gauge)] {
            let bps = check(&s).len() as f64 / s.len() as f64;
            assert!(bps < 1.05, "{name}: {bps} bytes per sample");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let good = encode(
            &(0..200)
                .map(|i| (i * 1000 + (i % 7), (i * 3 % 17) as f64 / 10.0))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for _ in 0..20_000 {
            let mut bytes = if rng.random_bool(0.5) {
                good.clone()
            } else {
                let len = rng.random_range(1..80);
                let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                b[0] = ENC_PACKED;
                b
            };
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            if rng.random_bool(0.3) {
                bytes.truncate(rng.random_range(0..bytes.len()));
            }
            let n = ChunkIter::new(&bytes).count();
            assert!(n <= MAX_PACKED_SAMPLES);
        }
        for cut in 0..good.len() {
            assert!(PackedIter::new(&good[..cut]).is_none(), "{cut}");
        }
    }
}
