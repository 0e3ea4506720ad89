//! The inverted index: postings lists per label pair, set operations on them, and label
//! matchers with Prometheus's semantics.
//!
//! A postings list is the sorted list of series refs that carry one `name="value"` pair.
//! Refs are handed out in increasing order, so appending a new series keeps every list sorted
//! without a sort. Selecting by matchers is set algebra on these lists, done the way
//! Prometheus's `PostingsForMatchers` does it: a matcher that does not match the empty string
//! selects the union of the lists of the values it matches (so the label must be present); a
//! matcher that does match the empty string also selects series without the label, so it is
//! applied by subtracting the lists of the values it rejects. If every matcher matches the
//! empty string, the start is the list of all series.
//!
//! Each distinct pair is stored once and numbered ([`PairId`]), which lets the head keep a
//! series' labels as four bytes a pair instead of its own copy of the strings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use crate::{LabelRef, Labels, TsdbError};

/// A series' number inside one head or block.
pub type SeriesRef = u32;

/// How a [`Matcher`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// Longest regex source accepted, in bytes.
pub const MAX_REGEX_BYTES: usize = 64 * 1024;

/// One label matcher, e.g. `job=~"api|web"`.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or the regex source as written.
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl Matcher {
    /// Builds a matcher; regexes are anchored as Prometheus 3 anchors them, `^(?s:re)$`
    /// (`.` also matches a newline there).
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, TsdbError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                if value.len() > MAX_REGEX_BYTES {
                    return Err(TsdbError::InvalidRegex {
                        regex: value.chars().take(64).collect(),
                        reason: format!("longer than {MAX_REGEX_BYTES} bytes"),
                    });
                }
                let re = regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(8 << 20)
                    .build()
                    .map_err(|e| TsdbError::InvalidRegex {
                        regex: value.clone(),
                        reason: e.to_string(),
                    })?;
                Some(re)
            }
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether `value` satisfies the matcher (an absent label has the value `""`).
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a full label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// Intersection of two sorted lists.
pub fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    // Galloping through the larger list keeps a small-vs-huge intersection cheap.
    let mut lo = 0;
    for &x in small {
        match large[lo..].binary_search(&x) {
            Ok(i) => {
                out.push(x);
                lo += i + 1;
            }
            Err(i) => lo += i,
        }
        if lo >= large.len() {
            break;
        }
    }
    out
}

/// Union of two sorted lists.
pub fn union(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Union of many sorted lists.
pub fn union_many(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut all: Vec<SeriesRef> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

/// `a` without the elements of `b`, both sorted.
pub fn subtract(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

/// Number of one `name="value"` pair inside one [`Postings`]. A pair's id lives as long as
/// some series carries the pair; after [`Postings::remove`] drops its last series the id may
/// be given to another pair.
pub type PairId = u32;

/// One interned label pair and the sorted refs of the series that carry it.
#[derive(Debug)]
struct Pair {
    name: Arc<str>,
    value: Arc<str>,
    refs: Vec<SeriesRef>,
}

/// Postings of one index: label name → value → pair, each pair with its sorted refs.
///
/// Every distinct pair is stored once, and numbered ([`PairId`]): the head keeps a series'
/// labels as the ids of its pairs (four bytes a pair) and reads the strings back from here,
/// so `job="node"` is held once, not once per series. Names and values are kept in
/// `BTreeMap`s so label-name and label-value queries come out sorted, as Prometheus answers
/// them, without sorting per query; a name's `Arc<str>` is shared by all its pairs.
#[derive(Debug, Default)]
pub struct Postings {
    names: BTreeMap<Arc<str>, BTreeMap<Arc<str>, PairId>>,
    /// By id; `None` for a freed id (listed in `free`).
    pairs: Vec<Option<Pair>>,
    free: Vec<PairId>,
    all: Vec<SeriesRef>,
}

impl Postings {
    /// An empty index.
    pub fn new() -> Postings {
        Postings::default()
    }

    /// Adds a series. Refs must be added in increasing order.
    pub fn add(&mut self, r: SeriesRef, labels: &Labels) {
        self.all_push(r);
        for l in labels {
            self.add_pair(r, l.name, l.value);
        }
    }

    /// [`Postings::add`] that also returns the ids of the series' pairs, in label order: what
    /// the head keeps instead of the label strings ([`Postings::pair`] reads them back).
    pub fn add_interned(&mut self, r: SeriesRef, labels: &Labels) -> Box<[PairId]> {
        self.all_push(r);
        labels
            .iter()
            .map(|l| self.add_pair(r, l.name, l.value))
            .collect()
    }

    fn all_push(&mut self, r: SeriesRef) {
        debug_assert!(self.all.last().is_none_or(|&l| l < r));
        self.all.push(r);
    }

    fn add_pair(&mut self, r: SeriesRef, name: &str, value: &str) -> PairId {
        if let Some(&id) = self.names.get(name).and_then(|v| v.get(value)) {
            if let Some(p) = &mut self.pairs[id as usize] {
                p.refs.push(r);
            }
            return id;
        }
        let name: Arc<str> = match self.names.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(name);
                self.names.insert(k.clone(), BTreeMap::new());
                k
            }
        };
        let value: Arc<str> = Arc::from(value);
        let pair = Pair {
            name: name.clone(),
            value: value.clone(),
            refs: vec![r],
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.pairs[id as usize] = Some(pair);
                id
            }
            None => {
                self.pairs.push(Some(pair));
                (self.pairs.len() - 1) as PairId
            }
        };
        if let Some(values) = self.names.get_mut(&name) {
            values.insert(value, id);
        }
        id
    }

    /// The pair numbered `id`. Panics if no series carries it: the ids a caller holds come
    /// from [`Postings::add_interned`] for a series not removed since.
    #[inline]
    pub fn pair(&self, id: PairId) -> LabelRef<'_> {
        let p = self.pairs[id as usize]
            .as_ref()
            .expect("pair id of a live series");
        LabelRef {
            name: &p.name,
            value: &p.value,
        }
    }

    /// Removes series (retention of a head's dead series); `refs` sorted. Pairs left
    /// without series are dropped and their ids freed.
    pub fn remove(&mut self, refs: &[SeriesRef]) {
        if refs.is_empty() {
            return;
        }
        self.all = subtract(&self.all, refs);
        for (id, slot) in self.pairs.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            p.refs = subtract(&p.refs, refs);
            if !p.refs.is_empty() {
                continue;
            }
            if let Some(values) = self.names.get_mut(&p.name) {
                values.remove(&p.value);
                if values.is_empty() {
                    self.names.remove(&p.name);
                }
            }
            *slot = None;
            self.free.push(id as PairId);
        }
    }

    /// Every series ref, sorted.
    pub fn all(&self) -> &[SeriesRef] {
        &self.all
    }

    /// The refs of the pair numbered `id` (sorted; empty for a freed id).
    fn refs(&self, id: PairId) -> &[SeriesRef] {
        self.pairs
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or(&[], |p| p.refs.as_slice())
    }

    /// The refs of `name="value"`.
    pub fn get(&self, name: &str, value: &str) -> &[SeriesRef] {
        self.names
            .get(name)
            .and_then(|v| v.get(value))
            .map_or(&[], |&id| self.refs(id))
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(|k| &**k)
    }

    /// Every value of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.names
            .get(name)
            .into_iter()
            .flat_map(|v| v.keys().map(|k| &**k))
    }

    /// Refs of the series with label `name` and a value `m` accepts (or rejects, when
    /// `accepting` is false).
    fn values_matching(&self, m: &Matcher, accepting: bool) -> Vec<SeriesRef> {
        let Some(values) = self.names.get(m.name.as_str()) else {
            return Vec::new();
        };
        if m.op == MatchOp::Equal && accepting {
            return values
                .get(m.value.as_str())
                .map_or_else(Vec::new, |&id| self.refs(id).to_vec());
        }
        let lists: Vec<&[SeriesRef]> = values
            .iter()
            .filter(|(v, _)| m.matches(v) == accepting)
            .map(|(_, &id)| self.refs(id))
            .collect();
        union_many(&lists)
    }

    /// The sorted refs of the series every matcher accepts. No matchers select nothing (the
    /// PromQL layer refuses empty selectors before they get here).
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        if matchers.is_empty() {
            return Vec::new();
        }
        let (positive, negative): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| !m.matches(""));
        // Most selective first: equality lists are usually the shortest.
        let mut result: Option<Vec<SeriesRef>> = None;
        for m in positive {
            let list = self.values_matching(m, true);
            result = Some(match result {
                None => list,
                Some(r) => intersect(&r, &list),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for m in negative {
            // The matcher accepts "" (absent label); remove the series whose value it rejects.
            let rejected = self.values_matching(m, false);
            result = subtract(&result, &rejected);
        }
        result
    }
}

/// Cardinality figures of one index, the body of Prometheus's `/api/v1/status/tsdb`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardinalityStats {
    /// Series in the index.
    pub num_series: usize,
    /// Distinct `name=value` pairs.
    pub num_label_pairs: usize,
    /// Top metric names by series count.
    pub series_count_by_metric_name: Vec<(String, usize)>,
    /// Top label names by number of distinct values.
    pub label_value_count_by_label_name: Vec<(String, usize)>,
    /// Top label names by bytes of values held (value length times series count).
    pub memory_in_bytes_by_label_name: Vec<(String, usize)>,
    /// Top `name=value` pairs by series count.
    pub series_count_by_label_value_pair: Vec<(String, usize)>,
}

/// The `limit` largest entries, largest first, ties by name.
fn top(mut v: Vec<(String, usize)>, limit: usize) -> Vec<(String, usize)> {
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

impl Postings {
    /// Cardinality figures, each list cut to its `limit` largest entries.
    pub fn stats(&self, limit: usize) -> CardinalityStats {
        let mut by_metric = Vec::new();
        let mut values_by_name = Vec::new();
        let mut bytes_by_name = Vec::new();
        let mut pairs = Vec::new();
        let mut num_pairs = 0;
        for (name, values) in &self.names {
            num_pairs += values.len();
            values_by_name.push((name.to_string(), values.len()));
            bytes_by_name.push((
                name.to_string(),
                values
                    .iter()
                    .map(|(v, &id)| v.len() * self.refs(id).len())
                    .sum(),
            ));
            for (value, &id) in values {
                let n = self.refs(id).len();
                if &**name == crate::METRIC_NAME {
                    by_metric.push((value.to_string(), n));
                }
                pairs.push((format!("{name}={value}"), n));
            }
        }
        CardinalityStats {
            num_series: self.all.len(),
            num_label_pairs: num_pairs,
            series_count_by_metric_name: top(by_metric, limit),
            label_value_count_by_label_name: top(values_by_name, limit),
            memory_in_bytes_by_label_name: top(bytes_by_name, limit),
            series_count_by_label_value_pair: top(pairs, limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    fn index() -> (Postings, Vec<Labels>) {
        let sets = vec![
            Labels::new([("__name__", "up"), ("job", "api"), ("instance", "a")]).unwrap(),
            Labels::new([("__name__", "up"), ("job", "web"), ("instance", "b")]).unwrap(),
            Labels::new([("__name__", "up"), ("instance", "c")]).unwrap(),
            Labels::new([("__name__", "http"), ("job", "api"), ("code", "200")]).unwrap(),
            Labels::new([("__name__", "http"), ("job", "api"), ("code", "500")]).unwrap(),
            Labels::new([("__name__", "x"), ("job", "line\nbreak")]).unwrap(),
        ];
        let mut p = Postings::new();
        for (i, l) in sets.iter().enumerate() {
            p.add(i as SeriesRef, l);
        }
        (p, sets)
    }

    /// The reference semantics: filter every series by every matcher.
    fn brute(sets: &[Labels], ms: &[Matcher]) -> Vec<SeriesRef> {
        sets.iter()
            .enumerate()
            .filter(|(_, l)| ms.iter().all(|m| m.matches_labels(l)))
            .map(|(i, _)| i as SeriesRef)
            .collect()
    }

    #[test]
    fn matcher_semantics() {
        let (p, sets) = index();
        let cases: Vec<(Vec<Matcher>, Vec<SeriesRef>)> = vec![
            (vec![m(MatchOp::Equal, "__name__", "up")], vec![0, 1, 2]),
            (
                vec![
                    m(MatchOp::Equal, "__name__", "up"),
                    m(MatchOp::NotEqual, "job", "api"),
                ],
                vec![1, 2],
            ),
            // A matcher matching "" also selects series without the label.
            (
                vec![
                    m(MatchOp::Equal, "__name__", "up"),
                    m(MatchOp::Equal, "job", ""),
                ],
                vec![2],
            ),
            (
                vec![
                    m(MatchOp::Equal, "__name__", "up"),
                    m(MatchOp::Regex, "job", "api|"),
                ],
                vec![0, 2],
            ),
            // != "" means the label is present.
            (
                vec![
                    m(MatchOp::Equal, "__name__", "up"),
                    m(MatchOp::NotEqual, "job", ""),
                ],
                vec![0, 1],
            ),
            // Regexes are anchored: "ap" does not match "api".
            (vec![m(MatchOp::Regex, "job", "ap")], vec![]),
            (vec![m(MatchOp::Regex, "job", "a.*")], vec![0, 3, 4]),
            (vec![m(MatchOp::NotRegex, "job", "a.*")], vec![1, 2, 5]),
            // `.` matches a newline, as in Prometheus 3.
            (vec![m(MatchOp::Regex, "job", "line.break")], vec![5]),
            (vec![m(MatchOp::Regex, "code", "5..")], vec![4]),
            (
                vec![m(MatchOp::NotEqual, "nope", "x")],
                vec![0, 1, 2, 3, 4, 5],
            ),
            (vec![m(MatchOp::Equal, "nope", "x")], vec![]),
        ];
        for (ms, want) in cases {
            let got = p.select(&ms);
            assert_eq!(got, want, "{ms:?}");
            assert_eq!(brute(&sets, &ms), want, "{ms:?}");
        }
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = Matcher::new(MatchOp::Regex, "a", "(").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid regular expression \"(\""),
            "{err}"
        );
    }

    #[test]
    fn set_operations_against_brute_force() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..500 {
            let mut a: Vec<SeriesRef> = (0..rng.random_range(0..50))
                .map(|_| rng.random_range(0..100))
                .collect();
            let mut b: Vec<SeriesRef> = (0..rng.random_range(0..50))
                .map(|_| rng.random_range(0..100))
                .collect();
            a.sort_unstable();
            a.dedup();
            b.sort_unstable();
            b.dedup();
            let i: Vec<_> = a.iter().copied().filter(|x| b.contains(x)).collect();
            let s: Vec<_> = a.iter().copied().filter(|x| !b.contains(x)).collect();
            let mut u: Vec<_> = a.iter().chain(&b).copied().collect();
            u.sort_unstable();
            u.dedup();
            assert_eq!(intersect(&a, &b), i);
            assert_eq!(subtract(&a, &b), s);
            assert_eq!(union(&a, &b), u);
            assert_eq!(union_many(&[&a, &b]), u);
        }
    }

    #[test]
    fn random_matchers_agree_with_brute_force() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut sets = Vec::new();
        let mut p = Postings::new();
        for i in 0..300 {
            let mut pairs = vec![(
                "__name__".to_string(),
                format!("m{}", rng.random_range(0..4)),
            )];
            for name in ["a", "b", "c"] {
                if rng.random_bool(0.7) {
                    pairs.push((name.to_string(), format!("v{}", rng.random_range(0..5))));
                }
            }
            let l = Labels::new(pairs).unwrap();
            p.add(i, &l);
            sets.push(l);
        }
        let ops = [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ];
        let vals = ["", "v1", "v2", "v[12]", "v.*", ".*", ".+", "m1|v3"];
        for _ in 0..500 {
            let ms: Vec<Matcher> = (0..rng.random_range(1..4))
                .map(|_| {
                    let name = ["__name__", "a", "b", "c", "zz"][rng.random_range(0..5)];
                    m(
                        ops[rng.random_range(0..4)],
                        name,
                        vals[rng.random_range(0..vals.len())],
                    )
                })
                .collect();
            assert_eq!(p.select(&ms), brute(&sets, &ms), "{ms:?}");
        }
    }

    #[test]
    fn cardinality_stats() {
        let (p, _) = index();
        let st = p.stats(2);
        assert_eq!(st.num_series, 6);
        assert_eq!(st.num_label_pairs, 11);
        assert_eq!(
            st.series_count_by_metric_name,
            [("up".to_string(), 3), ("http".to_string(), 2)]
        );
        assert_eq!(
            st.label_value_count_by_label_name[0],
            ("__name__".to_string(), 3)
        );
        // Ties are ordered by name.
        assert_eq!(
            st.series_count_by_label_value_pair,
            [("__name__=up".to_string(), 3), ("job=api".to_string(), 3)]
        );
        // job: "api" in 3 series, "web" and the 10-byte value in one each.
        assert_eq!(
            st.memory_in_bytes_by_label_name[0],
            ("job".to_string(), 3 * 3 + 3 + 10)
        );
    }

    #[test]
    fn names_values_and_removal() {
        let (mut p, _) = index();
        let names: Vec<_> = p.label_names().collect();
        assert_eq!(names, ["__name__", "code", "instance", "job"]);
        let jobs: Vec<_> = p.label_values("job").collect();
        assert_eq!(jobs, ["api", "line\nbreak", "web"]);
        p.remove(&[3, 4]);
        assert!(p.label_values("code").next().is_none());
        assert_eq!(p.all(), &[0, 1, 2, 5]);
        assert_eq!(p.get("job", "api"), &[0]);
    }
}
