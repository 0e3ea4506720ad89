//! Label sets: the identity of a series.
//!
//! A series is named by its sorted set of label pairs, the metric name included as the
//! `__name__` label, exactly as in Prometheus. [`Labels`] keeps the pairs sorted by name and
//! unique, with empty values dropped (Prometheus treats `x=""` as "no label x"), so two equal
//! sets are equal byte for byte and hash the same. Validation follows Prometheus's legacy
//! rules for names (`[a-zA-Z_][a-zA-Z0-9_]*`) and requires UTF-8 values; it happens once, when
//! a set is built from outside input, so the hot paths behind it never re-check.
//!
//! The series hash ([`Labels::stable_hash`]) is our own word-at-a-time hash: stable across
//! releases and platforms (unlike `std`'s randomly keyed hasher), so it can be written to disk.

use std::fmt;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Why a label set was refused. The texts follow Prometheus's wording where it has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {name:?}: label names must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName { name: String },
    /// A metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}: metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName { name: String },
    /// A label value that is not UTF-8.
    #[error("invalid UTF-8 in the value of label {name:?}: send label values as UTF-8")]
    InvalidLabelValue { name: String },
    /// The same label name twice in one set.
    #[error("label name {name:?} is not unique")]
    DuplicateLabelName { name: String },
    /// A label name or value past the size bound.
    #[error("label {name:?} is longer than {max} bytes; shorten it")]
    LabelTooLong { name: String, max: usize },
    /// Too many labels on one series.
    #[error("series has more than {max} labels; drop some with relabeling")]
    TooManyLabels { max: usize },
}

/// Longest label name or value accepted, in bytes; longer ones are outside input gone wrong.
pub const MAX_LABEL_BYTES: usize = 64 * 1024;

/// Most labels one series may have.
pub const MAX_LABELS: usize = 256;

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The label value, never empty inside a [`Labels`].
    pub value: String,
}

/// One label pair borrowed from a [`Labels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    /// The label name.
    pub name: &'a str,
    /// The label value, never empty.
    pub value: &'a str,
}

/// A sorted, duplicate-free set of label pairs with no empty values.
///
/// Stored as one string of all names and values back to back plus their end offsets: two
/// allocations per set instead of two per label, which is most of a head series' memory.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    buf: Box<str>,
    /// `ends[2i]` ends the name of pair `i`, `ends[2i + 1]` its value.
    ends: Box<[u32]>,
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| (l.name, l.value)))
            .finish()
    }
}

/// Pairwise order (by name, then value, pair by pair), as comparing the pairs would give.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Iterator over the pairs of a [`Labels`].
#[derive(Clone, Debug)]
pub struct LabelsIter<'a> {
    labels: &'a Labels,
    next: usize,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = LabelRef<'a>;

    fn next(&mut self) -> Option<LabelRef<'a>> {
        if self.next >= self.labels.len() {
            return None;
        }
        let l = self.labels.pair(self.next);
        self.next += 1;
        Some(l)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.labels.len() - self.next;
        (n, Some(n))
    }
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Whether `name` is a valid metric name in Prometheus's legacy scheme:
/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

impl Labels {
    /// The empty set.
    pub fn empty() -> Labels {
        Labels::default()
    }

    /// Builds a validated set from string pairs in any order. Empty values are dropped;
    /// invalid names, duplicate names and oversized input are errors.
    pub fn new<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Labels, LabelError> {
        let owned: Vec<(N, V)> = pairs.into_iter().collect();
        let mut refs: Vec<LabelRef<'_>> = Vec::with_capacity(owned.len());
        for (n, v) in &owned {
            push_checked(&mut refs, n.as_ref(), v.as_ref())?;
        }
        build_sorted(&mut refs)
    }

    /// Builds a set from raw bytes as they arrive on the wire (remote_write, exposition
    /// text): values must be UTF-8.
    pub fn from_bytes<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Labels, LabelError> {
        // Borrowed pairs: no allocation per label, only the set's own two at the end.
        let pairs = pairs.into_iter();
        let mut refs: Vec<LabelRef<'a>> = Vec::with_capacity(pairs.size_hint().0);
        for (n, v) in pairs {
            let name = std::str::from_utf8(n).map_err(|_| LabelError::InvalidLabelName {
                name: String::from_utf8_lossy(n).into_owned(),
            })?;
            let value = std::str::from_utf8(v).map_err(|_| LabelError::InvalidLabelValue {
                name: name.to_string(),
            })?;
            push_checked(&mut refs, name, value)?;
        }
        build_sorted(&mut refs)
    }

    /// Like [`Labels::from_sorted_unchecked`] from borrowed pairs, in two allocations
    /// whatever their number: for receivers that validate a label set once and derive many
    /// series from it (one per histogram bucket).
    pub fn from_sorted_refs_unchecked(pairs: &[LabelRef<'_>]) -> Labels {
        debug_assert!(pairs.windows(2).all(|w| w[0].name < w[1].name));
        Labels::from_sorted_pairs_unchecked(pairs.iter().copied())
    }

    /// Like [`Labels::from_sorted_refs_unchecked`] from an iterator that can be walked twice
    /// (once to size the buffers, once to fill them): for a store that keeps label pairs
    /// interned and hands out sets built from them.
    pub fn from_sorted_pairs_unchecked<'a, I>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = LabelRef<'a>>,
        I::IntoIter: Clone,
    {
        let pairs = pairs.into_iter();
        let (mut total, mut n) = (0, 0);
        for l in pairs.clone() {
            total += l.name.len() + l.value.len();
            n += 1;
        }
        let mut buf = String::with_capacity(total);
        let mut ends = Vec::with_capacity(n * 2);
        for l in pairs {
            buf.push_str(l.name);
            ends.push(buf.len() as u32);
            buf.push_str(l.value);
            ends.push(buf.len() as u32);
        }
        Labels {
            buf: buf.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Builds from pairs already sorted, unique, valid and without empty values (the tsdb
    /// decoding its own files and WAL records, validated before they were written). Unchecked
    /// input breaks the set's invariants (equality, hashing), never memory safety.
    pub fn from_sorted_unchecked(pairs: Vec<Label>) -> Labels {
        debug_assert!(pairs.windows(2).all(|w| w[0].name < w[1].name));
        let total: usize = pairs.iter().map(|l| l.name.len() + l.value.len()).sum();
        let mut buf = String::with_capacity(total);
        let mut ends = Vec::with_capacity(pairs.len() * 2);
        for l in &pairs {
            buf.push_str(&l.name);
            ends.push(buf.len() as u32);
            buf.push_str(&l.value);
            ends.push(buf.len() as u32);
        }
        Labels {
            buf: buf.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Pair `i` (< `len()`).
    fn pair(&self, i: usize) -> LabelRef<'_> {
        let start = if i == 0 {
            0
        } else {
            self.ends[2 * i - 1] as usize
        };
        let mid = self.ends[2 * i] as usize;
        let end = self.ends[2 * i + 1] as usize;
        LabelRef {
            name: &self.buf[start..mid],
            value: &self.buf[mid..end],
        }
    }

    /// The value of label `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let p = self.pair(mid);
            match p.name.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(p.value),
            }
        }
        None
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter {
            labels: self,
            next: 0,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether the set has no pairs.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The stable 64-bit hash of the set.
    ///
    /// Every name and value is fed as little-endian 8-byte words (the last one zero-padded)
    /// followed by its length, each word mixed as FxHash mixes, and the result finished with
    /// MurmurHash3's 64-bit finalizer. Word-at-a-time keeps it several times faster than a
    /// byte-wise hash on the append path; the length words keep pair boundaries unforgeable.
    pub fn stable_hash(&self) -> u64 {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        #[inline]
        fn mix(h: u64, w: u64) -> u64 {
            (h.rotate_left(5) ^ w).wrapping_mul(K)
        }
        #[inline]
        fn feed(mut h: u64, bytes: &[u8]) -> u64 {
            let mut words = bytes.chunks_exact(8);
            for w in &mut words {
                let mut a = [0u8; 8];
                a.copy_from_slice(w);
                h = mix(h, u64::from_le_bytes(a));
            }
            let rest = words.remainder();
            if !rest.is_empty() {
                let mut a = [0u8; 8];
                a[..rest.len()].copy_from_slice(rest);
                h = mix(h, u64::from_le_bytes(a));
            }
            mix(h, bytes.len() as u64)
        }
        let mut h = 0u64;
        for l in self {
            h = feed(h, l.name.as_bytes());
            h = feed(h, l.value.as_bytes());
        }
        // MurmurHash3 fmix64: spreads the last word's bits over the whole hash.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buf.len() + self.ends.len() * 4
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = LabelsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Prints like Prometheus: `metric{a="b", c="d"}`, or `{a="b"}` without a metric name.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// Validates one pair, `kept` pairs having been kept before it: the checks every way of
/// building a set shares, in Prometheus's order. The caller then keeps the pair unless its
/// value is empty (Prometheus treats `x=""` as no label `x`).
fn check_pair(name: &str, value: &str, kept: usize) -> Result<(), LabelError> {
    if !is_valid_label_name(name) {
        return Err(LabelError::InvalidLabelName {
            name: truncate(name),
        });
    }
    if name.len() > MAX_LABEL_BYTES || value.len() > MAX_LABEL_BYTES {
        return Err(LabelError::LabelTooLong {
            name: truncate(name),
            max: MAX_LABEL_BYTES,
        });
    }
    if kept >= MAX_LABELS {
        return Err(LabelError::TooManyLabels { max: MAX_LABELS });
    }
    Ok(())
}

/// [`check_pair`], then keeps a pair with a value.
fn push_checked<'a>(
    pairs: &mut Vec<LabelRef<'a>>,
    name: &'a str,
    value: &'a str,
) -> Result<(), LabelError> {
    check_pair(name, value, pairs.len())?;
    if !value.is_empty() {
        pairs.push(LabelRef { name, value });
    }
    Ok(())
}

/// Sorts checked pairs by name, refuses duplicate names and an invalid metric name, and
/// builds the set.
fn build_sorted(pairs: &mut [LabelRef<'_>]) -> Result<Labels, LabelError> {
    pairs.sort_unstable_by(|a, b| a.name.cmp(b.name));
    if let Some(w) = pairs.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(LabelError::DuplicateLabelName {
            name: w[0].name.to_string(),
        });
    }
    if let Some(l) = pairs.iter().find(|l| l.name == METRIC_NAME) {
        if !is_valid_metric_name(l.value) {
            return Err(LabelError::InvalidMetricName {
                name: truncate(l.value),
            });
        }
    }
    Ok(Labels::from_sorted_pairs_unchecked(pairs.iter().copied()))
}

/// Collects pairs, validating each, then sorts them once.
///
/// Names and values are copied into one buffer as they come (no allocation per label);
/// [`LabelsBuilder::build`] sorts references into it.
#[derive(Debug, Default)]
pub struct LabelsBuilder {
    buf: String,
    /// Per kept pair: where its name ends and its value ends in `buf` (each starts where
    /// the previous one ended).
    ends: Vec<(u32, u32)>,
}

impl LabelsBuilder {
    /// An empty builder.
    pub fn new() -> LabelsBuilder {
        LabelsBuilder::default()
    }

    /// Adds one pair after checking the name and sizes; an empty value is dropped.
    pub fn push(&mut self, name: &str, value: &str) -> Result<&mut Self, LabelError> {
        check_pair(name, value, self.ends.len())?;
        if !value.is_empty() {
            self.buf.push_str(name);
            let name_end = self.buf.len() as u32;
            self.buf.push_str(value);
            self.ends.push((name_end, self.buf.len() as u32));
        }
        Ok(self)
    }

    /// Sorts and checks for duplicate names and an invalid metric name.
    pub fn build(self) -> Result<Labels, LabelError> {
        let mut refs: Vec<LabelRef<'_>> = Vec::with_capacity(self.ends.len());
        let mut start = 0usize;
        for &(name_end, value_end) in &self.ends {
            let (n, v) = (name_end as usize, value_end as usize);
            refs.push(LabelRef {
                name: &self.buf[start..n],
                value: &self.buf[n..v],
            });
            start = v;
        }
        build_sorted(&mut refs)
    }
}

/// Keeps error messages bounded when the offending input is huge.
fn truncate(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_sorted_refs_equals_the_built_set() {
        let built = Labels::new([("job", "api"), ("__name__", "up"), ("A", "x")]).unwrap();
        let refs: Vec<LabelRef<'_>> = built.iter().collect();
        let fast = Labels::from_sorted_refs_unchecked(&refs);
        assert_eq!(fast, built);
        assert_eq!(
            Labels::from_sorted_pairs_unchecked(refs.iter().copied()),
            built
        );
        assert_eq!(fast.stable_hash(), built.stable_hash());
        assert_eq!(Labels::from_sorted_refs_unchecked(&[]), Labels::empty());
    }

    #[test]
    fn sorted_and_empty_values_dropped() {
        let l = Labels::new([("job", "api"), ("__name__", "up"), ("empty", "")]).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name).collect();
        assert_eq!(names, ["__name__", "job"]);
        assert_eq!(l.get("job"), Some("api"));
        assert_eq!(l.get("empty"), None);
        assert_eq!(l.to_string(), r#"up{job="api"}"#);
    }

    #[test]
    fn names_validated_like_prometheus() {
        for ok in ["a", "_", "A_9", "__name__", "_1"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a:b", "é", "a b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
            let err = Labels::new([(bad, "v")]).unwrap_err();
            assert!(matches!(err, LabelError::InvalidLabelName { .. }), "{bad}");
        }
        assert!(is_valid_metric_name("a:b_c"));
        let err = Labels::new([("__name__", "1bad")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid metric name "1bad": metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*"#
        );
    }

    #[test]
    fn packed_storage_keeps_pairwise_identity_and_order() {
        // Same bytes back to back, different pairs.
        let a = Labels::new([("a", "bc")]).unwrap();
        let b = Labels::new([("ab", "c")]).unwrap();
        assert_ne!(a, b);
        assert!(a < b, "compares names first: \"a\" < \"ab\"");
        let c = Labels::new([("a", "b"), ("c", "d")]).unwrap();
        let d = Labels::new([("a", "b")]).unwrap();
        assert!(d < c);
        let pairs: Vec<(&str, &str)> = c.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(pairs, [("a", "b"), ("c", "d")]);
        assert_eq!(c.get("c"), Some("d"));
        assert_eq!(c.get("b"), None);
        assert_eq!(format!("{c:?}"), r#"{"a": "b", "c": "d"}"#);
        assert!(Labels::empty().iter().next().is_none());
    }

    /// The builder this module had before it stopped allocating per label: owned pairs,
    /// a stable sort, the same checks. The reference for the ways of building below.
    fn reference_build(pairs: &[(&str, &str)]) -> Result<Labels, LabelError> {
        let mut kept: Vec<Label> = Vec::new();
        for &(name, value) in pairs {
            if !is_valid_label_name(name) {
                return Err(LabelError::InvalidLabelName {
                    name: truncate(name),
                });
            }
            if name.len() > MAX_LABEL_BYTES || value.len() > MAX_LABEL_BYTES {
                return Err(LabelError::LabelTooLong {
                    name: truncate(name),
                    max: MAX_LABEL_BYTES,
                });
            }
            if kept.len() >= MAX_LABELS {
                return Err(LabelError::TooManyLabels { max: MAX_LABELS });
            }
            if !value.is_empty() {
                kept.push(Label {
                    name: name.to_string(),
                    value: value.to_string(),
                });
            }
        }
        kept.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = kept.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(LabelError::DuplicateLabelName {
                name: w[0].name.clone(),
            });
        }
        let labels = Labels::from_sorted_unchecked(kept);
        if let Some(name) = labels.metric_name() {
            if !is_valid_metric_name(name) {
                return Err(LabelError::InvalidMetricName {
                    name: truncate(name),
                });
            }
        }
        Ok(labels)
    }

    /// Property test: `new`, `from_bytes` and the builder give the reference's set or its
    /// exact error on random input (bad names, duplicates, empty values, bad metric names,
    /// too many labels), with the same hash.
    #[test]
    fn every_way_of_building_agrees_with_the_reference() {
        // A small deterministic generator, so the test needs no dependency.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let names = ["__name__", "job", "a", "b", "zz", "1bad", "", "a-b", "_x"];
        let values = ["", "v", "up", "1bad", "ü", "a b", "x:y"];
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        for case in 0..20_000 {
            let pairs: Vec<(&str, &str)> = if case % 500 == 0 {
                many.iter()
                    .take(MAX_LABELS - 1 + (case / 500) % 3)
                    .map(|n| (n.as_str(), "v"))
                    .collect()
            } else {
                (0..next(6))
                    .map(|_| {
                        (
                            names[next(names.len() as u64) as usize],
                            values[next(values.len() as u64) as usize],
                        )
                    })
                    .collect()
            };
            let want = reference_build(&pairs);
            let new = Labels::new(pairs.iter().copied());
            let bytes =
                Labels::from_bytes(pairs.iter().map(|&(n, v)| (n.as_bytes(), v.as_bytes())));
            let mut b = LabelsBuilder::new();
            let built = pairs
                .iter()
                .try_for_each(|&(n, v)| b.push(n, v).map(|_| ()))
                .and_then(|()| b.build());
            for got in [new, bytes, built] {
                assert_eq!(got, want, "{pairs:?}");
                if let (Ok(g), Ok(w)) = (&got, &want) {
                    assert_eq!(g.stable_hash(), w.stable_hash());
                }
            }
        }
    }

    #[test]
    fn duplicate_names_rejected() {
        let err = Labels::new([("a", "1"), ("a", "2")]).unwrap_err();
        assert_eq!(err.to_string(), r#"label name "a" is not unique"#);
    }

    #[test]
    fn invalid_utf8_value_rejected() {
        let err = Labels::from_bytes([(&b"a"[..], &b"\xff\xfe"[..])]).unwrap_err();
        assert!(matches!(err, LabelError::InvalidLabelValue { .. }));
        let ok = Labels::from_bytes([(&b"a"[..], "ü".as_bytes())]).unwrap();
        assert_eq!(ok.get("a"), Some("ü"));
    }

    #[test]
    fn hash_is_stable_and_order_independent() {
        let a = Labels::new([("a", "1"), ("b", "2")]).unwrap();
        let b = Labels::new([("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(a.stable_hash(), b.stable_hash());
        // Pinned (checked against an independent implementation): the hash must never change.
        const PINNED: u64 = 0x6710_9f7b_9a8f_5f8c;
        assert_eq!(a.stable_hash(), PINNED);
        // Moving a byte across the name/value boundary changes the hash.
        let c = Labels::new([("a", "12")]).unwrap();
        let d = Labels::new([("a1", "2")]).unwrap();
        assert_ne!(c.stable_hash(), d.stable_hash());
    }

    #[test]
    fn bounds_enforced() {
        let long = "x".repeat(MAX_LABEL_BYTES + 1);
        assert!(matches!(
            Labels::new([("a", long.as_str())]),
            Err(LabelError::LabelTooLong { .. })
        ));
        let many: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .collect();
        assert!(matches!(
            Labels::new(many),
            Err(LabelError::TooManyLabels { .. })
        ));
    }
}
