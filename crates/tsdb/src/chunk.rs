//! Gorilla-style chunks: delta-of-delta timestamps and XOR-compressed float values.
//!
//! Every chunk starts with an encoding byte, so the head's appendable XOR chunks and the
//! denser packed chunks of blocks ([`crate::packed`]) coexist behind one [`ChunkIter`].
//!
//! An XOR chunk ([`ENC_XOR`]) is one `Vec<u8>`: the encoding byte, a big-endian `u16` sample
//! count, then a bit stream. The first
//! sample stores its timestamp as a zigzag varint and its value as raw 64 bits; the second
//! stores the timestamp delta as a zigzag varint; later ones store the delta of deltas in one
//! of five buckets (`0`; `10`+7 bits; `110`+14 bits; `1110`+20 bits; `1111`+64 bits). Values
//! are XORed with the previous value: `0` when equal, `10`+bits when the meaningful bits fit
//! the previous window, else `11`+5 bits leading zeros+6 bits length+bits. This is the scheme
//! of Facebook's Gorilla paper, written here from the paper's description, with buckets
//! sized for millisecond timestamps: the 7-bit bucket holds the few milliseconds of jitter
//! real scrapes have (Prometheus's smallest bucket is 14 bits, so jitter costs it 16 bits
//! per sample; here 9). Values are compared and stored as bit patterns, so every NaN payload
//! (Prometheus's stale marker `0x7ff0000000000002` included) survives bit-exactly.
//!
//! Arithmetic on timestamps wraps, in the encoder and decoder alike, so any `i64` sequence
//! round-trips; the decoder stops at the end of its data and never panics on garbage.

/// Samples per chunk before the head starts a new one (Prometheus's figure: about 1 KiB of
/// raw samples, a good trade between compression and decoding work per query).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Appends bits to a byte vector, most significant bit first.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    /// Free bits in the last byte (0 when it is full or there is none).
    free: u8,
}

impl BitWriter {
    /// A writer that appends after the bytes of `buf`.
    pub fn with_bytes(buf: Vec<u8>) -> BitWriter {
        BitWriter { buf, free: 0 }
    }

    /// Writes the low `n` bits of `v` (`n <= 64`), high bit first.
    pub fn write_bits(&mut self, v: u64, mut n: u32) {
        debug_assert!(n <= 64);
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let free = u32::from(self.free);
            let take = free.min(n);
            let chunk = (v >> (n - take)) & ((1u64 << take) - 1);
            let last = self.buf.len() - 1;
            self.buf[last] |= (chunk << (free - take)) as u8;
            self.free -= take as u8;
            n -= take;
        }
    }

    /// Writes one bit.
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes `v` as a varint of 8-bit groups (7 data bits and a continuation bit each).
    fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_bits((v & 0x7f) | 0x80, 8);
            v >>= 7;
        }
        self.write_bits(v, 8);
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The underlying buffer, for in-place header updates.
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// Reads bits written by [`BitWriter`]; a read past the end returns `None` and consumes
/// nothing.
///
/// The reader keeps up to 64 upcoming bits in a word, most significant first, and refills
/// it eight bytes at a time with one big-endian load, so a read is a shift and a mask instead
/// of a loop over bytes. Bits below the buffered ones are always zero. Near the end of the
/// data (fewer than eight bytes left) it refills byte by byte.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the first byte not yet loaded into `buf`.
    pos: usize,
    /// The next `nbits` bits of the stream, left-aligned; the rest is zero.
    buf: u64,
    nbits: u32,
}

impl<'a> BitReader<'a> {
    /// Reads `data` from its first bit.
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            nbits: 0,
        }
    }

    /// Bits not read yet.
    #[inline]
    fn remaining(&self) -> usize {
        (self.data.len() - self.pos) * 8 + self.nbits as usize
    }

    /// Loads whole bytes until the buffer holds more than 56 bits or the data is used up.
    #[inline]
    fn refill(&mut self) {
        if self.nbits > 56 {
            return;
        }
        if let Some(b) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            // Whole bytes that fit below the buffered bits (at least one: nbits <= 56 here).
            let bytes = (64 - self.nbits) / 8;
            let bits = bytes * 8;
            self.buf |= (word >> (64 - bits)) << (64 - self.nbits - bits);
            self.nbits += bits;
            self.pos += bytes as usize;
        } else {
            while self.nbits <= 56 {
                let Some(&b) = self.data.get(self.pos) else {
                    break;
                };
                self.buf |= u64::from(b) << (56 - self.nbits);
                self.nbits += 8;
                self.pos += 1;
            }
        }
    }

    /// Takes `n` (1..=`nbits`) buffered bits.
    #[inline]
    fn take(&mut self, n: u32) -> u64 {
        debug_assert!(n >= 1 && n <= self.nbits);
        let v = self.buf >> (64 - n);
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.nbits -= n;
        v
    }

    /// Reads `n <= 64` bits as the low bits of a `u64`.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n <= self.nbits {
            return Some(self.take(n));
        }
        if n > 64 || n as usize > self.remaining() {
            return None;
        }
        self.refill();
        if n <= self.nbits {
            return Some(self.take(n));
        }
        // More than 56 bits asked with an unaligned buffer: in two parts.
        let hi_bits = self.nbits;
        let hi = self.take(hi_bits);
        self.refill();
        let lo_bits = n - hi_bits;
        Some((hi << lo_bits) | self.take(lo_bits))
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        if self.nbits == 0 {
            self.refill();
            if self.nbits == 0 {
                return None;
            }
        }
        Some(self.take(1) == 1)
    }

    /// The next `n` (1..=32) bits without consuming them, zero-padded past the end.
    #[inline]
    fn peek(&mut self, n: u32) -> u64 {
        debug_assert!((1..=32).contains(&n));
        if self.nbits < n {
            self.refill();
        }
        self.buf >> (64 - n)
    }

    /// Drops `n` bits returned by [`BitReader::peek`]; `None` if fewer remain.
    #[inline]
    fn skip(&mut self, n: u32) -> Option<()> {
        if n > self.nbits {
            return None;
        }
        self.take(n);
        Some(())
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let g = self.read_bits(8)?;
            v |= (g & 0x7f) << (7 * i);
            if g & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encoding byte of XOR chunks.
pub const ENC_XOR: u8 = 1;

/// Bytes of the XOR chunk header (encoding byte and sample count).
const HEADER: usize = 3;

/// Sentinel for "no XOR window yet".
const NO_WINDOW: u8 = u8::MAX;

/// An appendable XOR chunk.
///
/// Every series in the head holds one, so its fields are kept narrow (56 bytes): the bit
/// writer's buffer and free-bit count sit here directly rather than in a padded
/// [`BitWriter`], and the XOR window's bounds (at most 64) are bytes.
#[derive(Clone, Debug)]
pub struct XorChunk {
    buf: Vec<u8>,
    t: i64,
    delta: i64,
    v: u64,
    count: u16,
    /// The writer's free bits in the last byte.
    free: u8,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> XorChunk {
        XorChunk {
            buf: vec![ENC_XOR, 0, 0],
            free: 0,
            count: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: NO_WINDOW,
            trailing: 0,
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

    /// Whether the chunk cannot take another sample (its count is a `u16`).
    pub fn is_full(&self) -> bool {
        self.count == u16::MAX
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Appends a sample. The caller keeps timestamps increasing (the head does); the encoding
    /// itself round-trips any sequence. Does nothing once [`XorChunk::is_full`].
    pub fn append(&mut self, t: i64, v: f64) {
        if self.is_full() {
            return;
        }
        let bits = v.to_bits();
        let mut w = BitWriter {
            buf: std::mem::take(&mut self.buf),
            free: self.free,
        };
        match self.count {
            0 => {
                w.write_uvarint(zigzag(t));
                w.write_bits(bits, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t);
                w.write_uvarint(zigzag(delta));
                self.write_value(&mut w, bits);
                self.delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                Self::write_dod(&mut w, dod);
                self.write_value(&mut w, bits);
                self.delta = delta;
            }
        }
        self.t = t;
        self.v = bits;
        self.count += 1;
        let c = self.count.to_be_bytes();
        w.bytes_mut()[1..HEADER].copy_from_slice(&c);
        self.buf = w.buf;
        self.free = w.free;
    }

    fn write_dod(w: &mut BitWriter, dod: i64) {
        // (prefix, prefix bits, value bits); values are two's complement in that width.
        const BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 7), (0b110, 3, 14), (0b1110, 4, 20)];
        if dod == 0 {
            w.write_bit(false);
            return;
        }
        for (prefix, pbits, vbits) in BUCKETS {
            let lo = -(1i64 << (vbits - 1));
            let hi = (1i64 << (vbits - 1)) - 1;
            if (lo..=hi).contains(&dod) {
                w.write_bits(prefix, pbits);
                w.write_bits(dod as u64 & ((1u64 << vbits) - 1), vbits);
                return;
            }
        }
        w.write_bits(0b1111, 4);
        w.write_bits(dod as u64, 64);
    }

    fn write_value(&mut self, w: &mut BitWriter, bits: u64) {
        let xor = bits ^ self.v;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        let lead = xor.leading_zeros().min(31) as u8;
        let trail = xor.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && lead >= self.leading && trail >= self.trailing {
            w.write_bits(0b10, 2);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            w.write_bits(xor >> self.trailing, sig);
        } else {
            let sig = 64 - u32::from(lead) - u32::from(trail);
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(lead), 5);
            // 64 significant bits do not fit 6 bits; 0 stands for 64 (0 cannot occur).
            w.write_bits(u64::from(sig) & 0x3f, 6);
            w.write_bits(xor >> trail, sig);
            self.leading = lead;
            self.trailing = trail;
        }
    }

    /// Iterates over the samples.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(self.bytes())
    }
}

/// Decodes the samples of any chunk, whatever its encoding byte says; an unknown encoding or
/// malformed bytes yield what decodes cleanly and then report [`ChunkIter::is_corrupt`].
#[derive(Clone, Debug)]
pub struct ChunkIter<'a>(Decoder<'a>);

// The packed decoder's state is a few hundred bytes; boxing it would cost an allocation per
// chunk a query reads, and iterators live on the stack for one chunk at a time anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Decoder<'a> {
    Xor(XorIter<'a>),
    Packed(crate::packed::PackedIter<'a>),
    Corrupt,
    Empty,
}

impl<'a> ChunkIter<'a> {
    /// Iterates over the chunk encoded in `bytes`.
    pub fn new(bytes: &'a [u8]) -> ChunkIter<'a> {
        ChunkIter(match bytes.first() {
            None => Decoder::Empty,
            Some(&ENC_XOR) => Decoder::Xor(XorIter::new(&bytes[1..])),
            Some(&crate::packed::ENC_PACKED) => match crate::packed::PackedIter::new(bytes) {
                Some(it) => Decoder::Packed(it),
                None => Decoder::Corrupt,
            },
            Some(_) => Decoder::Corrupt,
        })
    }

    /// Whether decoding stopped early because the data was truncated or malformed.
    pub fn is_corrupt(&self) -> bool {
        match &self.0 {
            Decoder::Xor(it) => it.is_corrupt(),
            Decoder::Packed(it) => it.is_corrupt(),
            Decoder::Corrupt => true,
            Decoder::Empty => false,
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        match &mut self.0 {
            Decoder::Xor(it) => it.next(),
            Decoder::Packed(it) => it.next(),
            Decoder::Corrupt | Decoder::Empty => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Decoder::Xor(it) => it.size_hint(),
            Decoder::Packed(it) => it.size_hint(),
            Decoder::Corrupt | Decoder::Empty => (0, Some(0)),
        }
    }
}

/// Decodes samples from the bytes of an [`XorChunk`] after its encoding byte.
#[derive(Clone, Debug)]
struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u32,
    trailing: u32,
    corrupt: bool,
}

impl<'a> XorIter<'a> {
    /// Iterates over the chunk encoded in `bytes` (after the encoding byte); a too-short
    /// buffer yields nothing.
    fn new(bytes: &'a [u8]) -> XorIter<'a> {
        let (total, body, corrupt) = match bytes {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest, false),
            _ => (0, &[][..], !bytes.is_empty()),
        };
        XorIter {
            r: BitReader::new(body),
            total,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            corrupt,
        }
    }

    fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    fn decode(&mut self) -> Option<(i64, f64)> {
        match self.read {
            0 => {
                self.t = unzigzag(self.r.read_uvarint()?);
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.delta = unzigzag(self.r.read_uvarint()?);
                self.t = self.t.wrapping_add(self.delta);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.delta = self.delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.delta);
                self.read_value()?;
            }
        }
        Some((self.t, f64::from_bits(self.v)))
    }

    fn read_dod(&mut self) -> Option<i64> {
        // The prefix is up to four one bits ended by a zero (none after four ones): count
        // the leading ones of the next four bits in one step.
        let ones = ((self.r.peek(4) as u32) << 28).leading_ones();
        self.r.skip((ones + 1).min(4))?;
        let vbits = match ones {
            0 => return Some(0),
            1 => 7,
            2 => 14,
            3 => 20,
            _ => return self.r.read_bits(64).map(|v| v as i64),
        };
        let raw = self.r.read_bits(vbits)?;
        // Sign-extend from vbits.
        let shift = 64 - vbits;
        Some(((raw << shift) as i64) >> shift)
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.read_bit()? {
            return Some(());
        }
        if self.r.read_bit()? {
            self.leading = self.r.read_bits(5)? as u32;
            let mut sig = self.r.read_bits(6)? as u32;
            if sig == 0 {
                sig = 64;
            }
            if self.leading + sig > 64 {
                return None;
            }
            self.trailing = 64 - self.leading - sig;
        } else if self.read == 1 && self.leading == 0 && self.trailing == 0 {
            // A window reuse before any window was set cannot come from our encoder.
            return None;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits << self.trailing;
        Some(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total || self.corrupt {
            return None;
        }
        match self.decode() {
            Some(s) => {
                self.read += 1;
                Some(s)
            }
            None => {
                self.corrupt = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.total - self.read)))
    }
}

/// The sample count stored in a chunk's header (0 for an unknown encoding).
pub fn chunk_len(bytes: &[u8]) -> usize {
    match bytes {
        [ENC_XOR, a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        [crate::packed::ENC_PACKED, ..] => crate::packed::packed_len(bytes),
        [crate::histchunk::ENC_HIST, ..] => crate::histchunk::hist_len(bytes),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Prometheus's staleness marker.
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        assert_eq!(c.len(), samples.len());
        assert_eq!(chunk_len(c.bytes()), samples.len());
        let mut it = c.iter();
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
    }

    /// The byte-at-a-time reader and XOR decoder this module had before the word-wise
    /// reader, kept as the reference the new one must agree with bit for bit.
    mod reference {
        pub struct ByteReader<'a> {
            pub data: &'a [u8],
            pub pos: usize,
        }

        impl ByteReader<'_> {
            pub fn read_bits(&mut self, mut n: u32) -> Option<u64> {
                if n > 64 || self.pos + n as usize > self.data.len() * 8 {
                    return None;
                }
                let mut v = 0u64;
                while n > 0 {
                    let byte = self.data[self.pos / 8];
                    let used = (self.pos % 8) as u32;
                    let avail = 8 - used;
                    let take = avail.min(n);
                    let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
                    v = if take == 64 { bits } else { (v << take) | bits };
                    self.pos += take as usize;
                    n -= take;
                }
                Some(v)
            }

            fn read_bit(&mut self) -> Option<bool> {
                self.read_bits(1).map(|b| b == 1)
            }

            fn read_uvarint(&mut self) -> Option<u64> {
                let mut v = 0u64;
                for i in 0..10 {
                    let g = self.read_bits(8)?;
                    v |= (g & 0x7f) << (7 * i);
                    if g & 0x80 == 0 {
                        return Some(v);
                    }
                }
                None
            }
        }

        /// Decodes a whole XOR chunk (encoding byte included): the samples as value bits,
        /// and whether decoding stopped early.
        pub fn decode(bytes: &[u8]) -> (Vec<(i64, u64)>, bool) {
            let body = &bytes[1..];
            let (total, data) = match body {
                [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
                _ => return (Vec::new(), !body.is_empty()),
            };
            let mut r = ByteReader { data, pos: 0 };
            let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
            let (mut leading, mut trailing) = (0u32, 0u32);
            let mut out = Vec::new();
            for read in 0..total {
                let ok = (|| -> Option<()> {
                    let mut value = |r: &mut ByteReader<'_>| -> Option<()> {
                        if !r.read_bit()? {
                            return Some(());
                        }
                        if r.read_bit()? {
                            leading = r.read_bits(5)? as u32;
                            let mut sig = r.read_bits(6)? as u32;
                            if sig == 0 {
                                sig = 64;
                            }
                            if leading + sig > 64 {
                                return None;
                            }
                            trailing = 64 - leading - sig;
                        } else if read == 1 && leading == 0 && trailing == 0 {
                            return None;
                        }
                        let sig = 64 - leading - trailing;
                        v ^= r.read_bits(sig)? << trailing;
                        Some(())
                    };
                    match read {
                        0 => {
                            t = super::unzigzag(r.read_uvarint()?);
                            v = r.read_bits(64)?;
                        }
                        1 => {
                            delta = super::unzigzag(r.read_uvarint()?);
                            t = t.wrapping_add(delta);
                            value(&mut r)?;
                        }
                        _ => {
                            let mut ones = 0;
                            while ones < 4 && r.read_bit()? {
                                ones += 1;
                            }
                            let dod = match ones {
                                0 => 0,
                                4 => r.read_bits(64)? as i64,
                                _ => {
                                    let vbits = [0, 7, 14, 20][ones];
                                    let raw = r.read_bits(vbits)?;
                                    let shift = 64 - vbits;
                                    ((raw << shift) as i64) >> shift
                                }
                            };
                            delta = delta.wrapping_add(dod);
                            t = t.wrapping_add(delta);
                            value(&mut r)?;
                        }
                    }
                    Some(())
                })();
                if ok.is_none() {
                    return (out, true);
                }
                out.push((t, v));
            }
            (out, false)
        }
    }

    /// Random reads of every width from random bytes give what the byte-wise reader gives,
    /// including the `None` at the end that consumes nothing.
    #[test]
    fn word_reader_matches_byte_reader() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xb17);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut a = reference::ByteReader {
                data: &data,
                pos: 0,
            };
            let mut b = BitReader::new(&data);
            for _ in 0..rng.random_range(0..60) {
                match rng.random_range(0..4) {
                    0 => assert_eq!(b.read_bit(), a.read_bits(1).map(|x| x == 1)),
                    1 => {
                        let n = rng.random_range(0..=65);
                        assert_eq!(b.read_bits(n), a.read_bits(n), "{n} bits at {}", a.pos);
                    }
                    2 => {
                        let n = rng.random_range(56..=64);
                        assert_eq!(b.read_bits(n), a.read_bits(n), "{n} bits at {}", a.pos);
                    }
                    _ => {
                        let n = rng.random_range(1..=8);
                        assert_eq!(b.read_bits(n), a.read_bits(n), "{n} bits at {}", a.pos);
                    }
                }
                assert_eq!(b.remaining(), data.len() * 8 - a.pos);
            }
        }
    }

    fn random_samples(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<(i64, f64)> {
        let mut t: i64 = rng.random_range(-1_000_000_000_000..2_000_000_000_000);
        let mut v = 0.0f64;
        (0..n)
            .map(|_| {
                t = t.wrapping_add(match rng.random_range(0..7) {
                    0 => 15_000,
                    1 => rng.random_range(0..20),
                    2 => rng.random_range(0..100_000),
                    3 => rng.random_range(0..1_000_000),
                    4 => rng.random_range(0..i64::MAX / 4),
                    5 => rng.random(),
                    _ => -rng.random_range(0..1_000_000),
                });
                v = match rng.random_range(0..9) {
                    0 => v,
                    1 => v + 1.0,
                    2 => rng.random::<f64>() * 1e6,
                    3 => f64::from_bits(rng.random()),
                    4 => f64::from_bits(STALE_NAN),
                    5 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.random_range(0..3)],
                    6 => rng.random_range(0..1000) as f64,
                    7 => -0.0,
                    _ => -v,
                };
                (t, v)
            })
            .collect()
    }

    /// Property test: random chunks (NaNs, the staleness marker, ±Inf, huge and negative
    /// deltas), whole, truncated and with flipped bytes, decode to exactly what the
    /// byte-wise decoder gives, with the same corruption verdict.
    #[test]
    fn word_decoder_matches_byte_decoder() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xdec0);
        for _ in 0..4000 {
            let n = rng.random_range(0..=SAMPLES_PER_CHUNK * 2);
            let mut c = XorChunk::new();
            for (t, v) in random_samples(&mut rng, n) {
                c.append(t, v);
            }
            let mut bytes = c.bytes().to_vec();
            match rng.random_range(0..3) {
                0 => {}
                1 => bytes.truncate(rng.random_range(1..=bytes.len())),
                _ => {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(1..bytes.len());
                        bytes[i] = rng.random();
                    }
                }
            }
            let (want, want_corrupt) = reference::decode(&bytes);
            let mut it = ChunkIter::new(&bytes);
            let got: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
            assert_eq!(got, want);
            assert_eq!(it.is_corrupt(), want_corrupt);
        }
    }

    /// The encoder's bytes must never change: WAL checkpoints and blocks written by earlier
    /// builds hold them. 500 random chunks (jitter, huge and negative jumps, NaN payloads, the
    /// staleness marker, ±Inf, -0.0) hash to the value the encoder gave before its fields
    /// were narrowed.
    #[test]
    fn xor_encoding_is_pinned() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xf0_12a7);
        let mut h = crc32fast::Hasher::new();
        let mut total = 0usize;
        for _ in 0..500 {
            let n = rng.random_range(1..=240);
            let mut t: i64 = rng.random_range(-1_000_000_000_000i64..2_000_000_000_000);
            let mut v = 0.0f64;
            let mut c = XorChunk::new();
            for _ in 0..n {
                t = t.wrapping_add(match rng.random_range(0..6) {
                    0 => 15_000,
                    1 => rng.random_range(0..20),
                    2 => rng.random_range(0..1_000_000),
                    3 => rng.random(),
                    4 => -rng.random_range(0..1_000_000),
                    _ => 15_000 + rng.random_range(-3..=3),
                });
                v = match rng.random_range(0..8) {
                    0 => v,
                    1 => v + rng.random_range(0..100) as f64,
                    2 => f64::from_bits(rng.random()),
                    3 => f64::from_bits(STALE_NAN),
                    4 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][rng.random_range(0..4)],
                    5 => rng.random_range(0..1000) as f64 / 10.0,
                    _ => -v,
                };
                c.append(t, v);
            }
            total += c.bytes().len();
            h.update(c.bytes());
        }
        assert_eq!((h.finalize(), total), (0xffc0_0254, 747_747));
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::default();
        w.write_bits(0b101, 3);
        w.write_bits(u64::MAX, 64);
        w.write_bits(0, 5);
        w.write_bits(0x1234, 13);
        let mut r = BitReader::new(w.bytes());
        assert_eq!(r.read_bits(3), Some(0b101));
        assert_eq!(r.read_bits(64), Some(u64::MAX));
        assert_eq!(r.read_bits(5), Some(0));
        assert_eq!(r.read_bits(13), Some(0x1234 & 0x1fff));
        assert_eq!(r.read_bits(8), None);
    }

    #[test]
    fn special_values_bit_exact() {
        let vals = [
            f64::from_bits(STALE_NAN),
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::from_bits(1),
            f64::from_bits(STALE_NAN),
            1.5,
        ];
        let samples: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 15_000, v))
            .collect();
        round_trip(&samples);
    }

    #[test]
    fn extreme_timestamps() {
        round_trip(&[(i64::MIN, 1.0), (i64::MAX, 2.0), (0, 3.0), (i64::MIN, 4.0)]);
        round_trip(&[(-5, 0.0), (-4, 0.0), (1 << 40, 0.0), ((1 << 40) + 1, 0.0)]);
        round_trip(&[(7, 1.0)]);
        round_trip(&[]);
    }

    #[test]
    fn delta_of_delta_bucket_edges() {
        let dods = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            -8192,
            8192,
            -8193,
            524_287,
            -524_288,
            524_288,
            -524_289,
            i64::MAX,
            i64::MIN,
        ];
        let mut t = 1_000_000_000i64;
        let mut delta = 15_000i64;
        let mut samples = vec![(t, 0.0)];
        for &d in &dods {
            delta = delta.wrapping_add(d);
            t = t.wrapping_add(delta);
            samples.push((t, 1.0));
        }
        round_trip(&samples);
    }

    /// Property test: random timestamp gaps from every dod bucket and random values from a
    /// mix of distributions round-trip bit-exactly.
    #[test]
    fn random_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for case in 0..2000 {
            let n = rng.random_range(0..=SAMPLES_PER_CHUNK * 2);
            let mut t: i64 = rng.random_range(-1_000_000_000_000..2_000_000_000_000);
            let mut v = 0.0f64;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                t = t.wrapping_add(match rng.random_range(0..6) {
                    0 => 15_000,
                    1 => rng.random_range(0..20),
                    2 => rng.random_range(0..100_000),
                    3 => rng.random_range(0..1_000_000),
                    4 => rng.random_range(0..i64::MAX / 4),
                    _ => -rng.random_range(0..1_000_000),
                });
                v = match rng.random_range(0..8) {
                    0 => v,
                    1 => v + 1.0,
                    2 => rng.random::<f64>() * 1e6,
                    3 => f64::from_bits(rng.random()),
                    4 => f64::from_bits(STALE_NAN),
                    5 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.random_range(0..3)],
                    6 => rng.random_range(0..1000) as f64,
                    _ => -v,
                };
                samples.push((t, v));
            }
            let _ = case;
            round_trip(&samples);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5000 {
            let len = rng.random_range(0..64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = bytes.first_mut() {
                *b = [ENC_XOR, crate::packed::ENC_PACKED, *b][rng.random_range(0..3)];
            }
            let n = ChunkIter::new(&bytes).count();
            assert!(n <= chunk_len(&bytes));
        }
        // A truncated chunk yields a prefix and reports corruption.
        let mut c = XorChunk::new();
        for i in 0..100 {
            c.append(i * 1000, i as f64 * 1.1);
        }
        let cut = &c.bytes()[..c.bytes().len() / 2];
        let mut it = ChunkIter::new(cut);
        let n = it.by_ref().count();
        assert!(n > 0 && n < 100);
        assert!(it.is_corrupt());
    }

    /// A counter incremented irregularly, scraped every 15 s with a little jitter: the kind of
    /// series most of a Prometheus database holds.
    #[test]
    fn realistic_counter_compresses() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut c = XorChunk::new();
        let mut t = 1_700_000_000_000i64;
        let mut v = 0.0;
        for _ in 0..SAMPLES_PER_CHUNK {
            t += 15_000 + rng.random_range(-2..=2);
            if rng.random_bool(0.3) {
                v += rng.random_range(1..5) as f64;
            }
            c.append(t, v);
        }
        let bps = c.bytes().len() as f64 / SAMPLES_PER_CHUNK as f64;
        assert!(bps < 3.0, "{bps} bytes per sample");
    }
}
