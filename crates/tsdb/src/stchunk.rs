//! Start timestamps (ST): when the counting behind a cumulative or delta sample began, as
//! OTLP's `start_time_unix_nano` and Prometheus 3's created timestamps say. PromQL's
//! `rate`, `increase`, `irate` and `resets` read them to see counter resets the values
//! alone hide, and `start_timestamp()` returns them.
//!
//! Most series never carry one, so start timestamps are not a column of every chunk: a
//! series that has any keeps them in chunks of their own ([`ENC_ST`]) beside its float or
//! histogram chunks, holding `(t, st)` only for the samples that have a start timestamp
//! (0 means none, as in Prometheus). Float and histogram chunk formats, and every series
//! without start timestamps, are unchanged and pay nothing.
//!
//! A chunk is the encoding byte, a uvarint entry count, then per entry the zigzag varint
//! delta of `t` from the previous entry's (the first from 0) and the zigzag varint of
//! `t - st` (a cumulative series' start lies a constant distance behind, a delta's one
//! interval behind: both small).

use crate::codec::{put_uvarint, unzigzag, zigzag, Reader};
use crate::TsdbError;

/// Encoding byte of a start-timestamp chunk.
pub const ENC_ST: u8 = 4;

/// Most entries one chunk holds (the head cuts them with its data chunks, blocks at this).
pub const MAX_ST_ENTRIES: usize = 4 * crate::chunk::SAMPLES_PER_CHUNK;

/// Whether `bytes` is a start-timestamp chunk.
#[inline]
pub fn is_st(bytes: &[u8]) -> bool {
    bytes.first() == Some(&ENC_ST)
}

/// Encodes `(t, st)` entries (in time order) as one chunk.
pub fn encode(entries: &[(i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + entries.len() * 3);
    out.push(ENC_ST);
    put_uvarint(&mut out, entries.len() as u64);
    let mut prev = 0i64;
    for &(t, st) in entries {
        put_uvarint(&mut out, zigzag(t.wrapping_sub(prev)));
        put_uvarint(&mut out, zigzag(t.wrapping_sub(st)));
        prev = t;
    }
    out
}

/// Decodes a chunk written by [`encode`]; damaged bytes are an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, i64)>, TsdbError> {
    let mut r = Reader::new(bytes, "start timestamp chunk");
    if r.u8()? != ENC_ST {
        return Err(r.err("not a start timestamp chunk"));
    }
    // Every entry takes at least two bytes: bound the count before allocating.
    let n = r.len(r.remaining() / 2)?;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        let t = prev.wrapping_add(unzigzag(r.uvarint()?));
        let st = t.wrapping_sub(unzigzag(r.uvarint()?));
        out.push((t, st));
        prev = t;
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok(out)
}

/// Encodes `entries` (in time order) as chunks of at most [`MAX_ST_ENTRIES`]:
/// `(min_t, max_t, bytes)` each.
pub fn encode_chunks(entries: &[(i64, i64)]) -> Vec<(i64, i64, Vec<u8>)> {
    entries
        .chunks(MAX_ST_ENTRIES)
        .map(|part| (part[0].0, part[part.len() - 1].0, encode(part)))
        .collect()
}

/// The start timestamp of the sample at `t` in `entries` (sorted by time), 0 when it has
/// none.
#[inline]
pub fn at(entries: &[(i64, i64)], t: i64) -> i64 {
    if entries.is_empty() {
        return 0;
    }
    match entries.binary_search_by_key(&t, |e| e.0) {
        Ok(i) => entries[i].1,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_damage_is_an_error() {
        let e = vec![
            (60_000, 30_000),
            (120_000, 30_000),
            (180_000, 180_001),
            (i64::MAX, i64::MIN),
            (-5, -5),
        ];
        let mut sorted = e.clone();
        sorted.sort_by_key(|x| x.0);
        let bytes = encode(&sorted);
        assert!(is_st(&bytes));
        assert_eq!(decode(&bytes).unwrap(), sorted);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        assert_eq!(at(&sorted, 120_000), 30_000);
        assert_eq!(at(&sorted, 120_001), 0);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let n = rng.random_range(0..40);
            let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if !b.is_empty() {
                b[0] = ENC_ST;
            }
            let _ = decode(&b);
        }
    }

    #[test]
    fn long_runs_split_into_bounded_chunks() {
        let e: Vec<(i64, i64)> = (0..1000).map(|i| (i * 1000, i * 1000 - 500)).collect();
        let cs = encode_chunks(&e);
        assert_eq!(cs.len(), 3);
        let back: Vec<(i64, i64)> = cs.iter().flat_map(|c| decode(&c.2).unwrap()).collect();
        assert_eq!(back, e);
        assert_eq!((cs[1].0, cs[1].1), (480_000, 959_000));
    }
}
