//! The read interface the PromQL engine evaluates over.
//!
//! [`Querier`] is a trait so the engine can be tested over a plain in-memory set of series
//! ([`VecQuerier`]) and so storage can change underneath it. A selected [`Series`] holds its
//! labels and shared pointers to the compressed chunks that overlap the range (plus a copy of
//! the open chunk and of any out-of-order samples), and decodes samples lazily: a select over
//! many series costs pointer copies, not decoded samples, until the engine reads them.
//! Native histogram chunks are the exception: they are decoded when the series is selected
//! (into [`Series::histograms`]), since a histogram is a structure the engine reads whole.

use std::sync::Arc;

use model::histogram::FloatHistogram;

use crate::chunk::ChunkIter;
use crate::histchunk::ENC_HIST;
use crate::index::Matcher;
use crate::{Labels, TsdbError};

/// One selected series: labels and the samples in the selected range.
#[derive(Clone, Debug)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Encoded chunks in time order, not overlapping each other.
    chunks: Vec<Arc<[u8]>>,
    /// Decoded samples outside the chunks (out-of-order samples), sorted by time.
    extra: Vec<(i64, f64)>,
    /// Native histogram samples, sorted by time. A series holds one sample per timestamp,
    /// float or histogram; none of these shares a timestamp with a float sample.
    histograms: Vec<(i64, Arc<FloatHistogram>)>,
    /// Start timestamps `(t, st)` of the samples that have one, sorted by time (see
    /// [`crate::stchunk`]); empty for the many series without any.
    sts: Vec<(i64, i64)>,
    start: i64,
    end: i64,
}

impl Series {
    /// A series from decoded samples (sorted by time; later duplicates of a timestamp are
    /// dropped); for tests and for queriers that do not hold chunks.
    pub fn from_samples(labels: Labels, mut samples: Vec<(i64, f64)>) -> Series {
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        Series {
            labels,
            chunks: Vec::new(),
            extra: samples,
            histograms: Vec::new(),
            sts: Vec::new(),
            start: i64::MIN,
            end: i64::MAX,
        }
    }

    /// A series from decoded float and histogram samples (each sorted by time here; a
    /// histogram at the timestamp of a float sample replaces it, later duplicates are
    /// dropped); for tests and for queriers that do not hold chunks.
    pub fn from_samples_and_histograms(
        labels: Labels,
        samples: Vec<(i64, f64)>,
        mut histograms: Vec<(i64, Arc<FloatHistogram>)>,
    ) -> Series {
        let mut s = Series::from_samples(labels, samples);
        histograms.sort_by_key(|h| h.0);
        histograms.dedup_by_key(|h| h.0);
        if !histograms.is_empty() {
            s.extra
                .retain(|(t, _)| histograms.binary_search_by_key(t, |h| h.0).is_err());
        }
        s.histograms = histograms;
        s
    }

    /// Gives the series start timestamps `(t, st)` for its samples (sorted here; entries
    /// with `st == 0`, meaning none, are dropped; the first of a duplicated time is kept).
    pub fn with_start_timestamps(mut self, mut sts: Vec<(i64, i64)>) -> Series {
        sts.retain(|e| e.1 != 0);
        sts.sort_by_key(|e| e.0);
        sts.dedup_by_key(|e| e.0);
        self.sts = sts;
        self
    }

    /// The start timestamps `(t, st)` of the samples in the selected range that have one,
    /// oldest first; a sample missing here has none (Prometheus's 0).
    pub fn start_timestamps(&self) -> &[(i64, i64)] {
        let from = self.sts.partition_point(|e| e.0 < self.start);
        let to = self.sts.partition_point(|e| e.0 <= self.end);
        &self.sts[from..to.max(from)]
    }

    /// A series from its chunks in time order (float, histogram and start-timestamp chunks
    /// mixed, told apart by their encoding byte) and out-of-order float samples. Histogram
    /// and start-timestamp chunks are decoded here, keeping the entries in `[start, end]`;
    /// one that does not decode is skipped with a warning (block chunks are CRC-checked
    /// before they get here).
    pub(crate) fn from_parts(
        labels: Labels,
        mut chunks: Vec<Arc<[u8]>>,
        extra: Vec<(i64, f64)>,
        start: i64,
        end: i64,
    ) -> Series {
        let mut sts: Vec<(i64, i64)> = Vec::new();
        if chunks.iter().any(|c| crate::stchunk::is_st(c)) {
            chunks.retain(|c| {
                if !crate::stchunk::is_st(c) {
                    return true;
                }
                match crate::stchunk::decode(c) {
                    Ok(es) => sts.extend(es.into_iter().filter(|e| e.0 >= start && e.0 <= end)),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping a damaged start timestamp chunk")
                    }
                }
                false
            });
            sts.sort_by_key(|e| e.0);
            sts.dedup_by_key(|e| e.0);
        }
        let mut histograms = Vec::new();
        if chunks.iter().any(|c| c.first() == Some(&ENC_HIST)) {
            chunks.retain(|c| {
                if c.first() != Some(&ENC_HIST) {
                    return true;
                }
                match crate::histchunk::decode(c) {
                    Ok(hs) => {
                        histograms.extend(hs.into_iter().filter(|h| h.0 >= start && h.0 <= end))
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping a damaged histogram chunk"),
                }
                false
            });
            histograms.sort_by_key(|h: &(i64, Arc<FloatHistogram>)| h.0);
            histograms.dedup_by_key(|h| h.0);
        }
        Series {
            labels,
            chunks,
            extra,
            histograms,
            sts,
            start,
            end,
        }
    }

    /// Adds decoded histogram samples (out-of-order ones, in time order) to those of the
    /// chunks; a chunk's sample wins a tie, and a float sharing a timestamp with a histogram
    /// gives way to it (a series holds one sample per timestamp).
    pub(crate) fn with_histograms(mut self, extra: Vec<(i64, Arc<FloatHistogram>)>) -> Series {
        if !extra.is_empty() {
            self.histograms.extend(extra);
            // Stable: the chunks' samples (first) stay ahead of the extra ones at a tie.
            self.histograms.sort_by_key(|h| h.0);
            self.histograms.dedup_by_key(|h| h.0);
        }
        if !self.histograms.is_empty() && !self.extra.is_empty() {
            let hs = &self.histograms;
            self.extra
                .retain(|(t, _)| hs.binary_search_by_key(t, |h| h.0).is_err());
        }
        self
    }

    /// Appends the chunks and samples of a later part of the same series (a block followed
    /// by the head).
    pub(crate) fn extend(&mut self, other: Series) {
        self.chunks.extend(other.chunks);
        if !other.extra.is_empty() {
            self.extra.extend(other.extra);
            self.extra.sort_by_key(|s| s.0);
            self.extra.dedup_by_key(|s| s.0);
        }
        if !other.histograms.is_empty() {
            self.histograms.extend(other.histograms);
            self.histograms.sort_by_key(|h| h.0);
            self.histograms.dedup_by_key(|h| h.0);
        }
        if !other.sts.is_empty() {
            self.sts.extend(other.sts);
            self.sts.sort_by_key(|e| e.0);
            self.sts.dedup_by_key(|e| e.0);
        }
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
    }

    /// Whether no sample falls in the range.
    pub fn is_empty(&self) -> bool {
        self.samples().next().is_none() && self.histograms().next().is_none()
    }

    /// The native histogram samples in the selected range, oldest first. Float samples
    /// ([`Series::samples`]) and these never share a timestamp; a reader wanting one
    /// time-ordered stream merges the two.
    pub fn histograms(&self) -> impl Iterator<Item = (i64, &Arc<FloatHistogram>)> + '_ {
        let (start, end) = (self.start, self.end);
        let from = self.histograms.partition_point(|h| h.0 < start);
        self.histograms[from..]
            .iter()
            .take_while(move |h| h.0 <= end)
            .map(|(t, h)| (*t, h))
    }

    /// The samples in the selected range, oldest first. When an in-order and an out-of-order
    /// sample share a timestamp, the in-order one wins.
    pub fn samples(&self) -> SampleIter<'_> {
        SampleIter {
            chunks: &self.chunks,
            next_chunk: 0,
            current: None,
            pending: None,
            extra: &self.extra,
            start: self.start,
            end: self.end,
        }
    }
}

/// Iterator over a [`Series`]' samples.
#[derive(Debug)]
pub struct SampleIter<'a> {
    chunks: &'a [Arc<[u8]>],
    next_chunk: usize,
    current: Option<ChunkIter<'a>>,
    /// The next in-order sample, already decoded.
    pending: Option<(i64, f64)>,
    extra: &'a [(i64, f64)],
    start: i64,
    end: i64,
}

impl SampleIter<'_> {
    fn next_in_order(&mut self) -> Option<(i64, f64)> {
        loop {
            if let Some(it) = &mut self.current {
                for (t, v) in it.by_ref() {
                    if t > self.end {
                        // Chunks are in time order: nothing later can be in range.
                        self.next_chunk = self.chunks.len();
                        self.current = None;
                        return None;
                    }
                    if t >= self.start {
                        return Some((t, v));
                    }
                }
            }
            let c = self.chunks.get(self.next_chunk)?;
            self.next_chunk += 1;
            self.current = Some(ChunkIter::new(c));
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        // The common case (no out-of-order samples) needs no merge.
        if self.extra.is_empty() && self.pending.is_none() {
            return self.next_in_order();
        }
        if self.pending.is_none() {
            self.pending = self.next_in_order();
        }
        while let Some(&(t, _)) = self.extra.first() {
            if t < self.start {
                self.extra = &self.extra[1..];
                continue;
            }
            if t > self.end {
                self.extra = &[];
                break;
            }
            match self.pending {
                Some((pt, _)) if pt < t => break,
                Some((pt, _)) if pt == t => {
                    self.extra = &self.extra[1..];
                    break;
                }
                _ => {
                    let s = self.extra[0];
                    self.extra = &self.extra[1..];
                    return Some(s);
                }
            }
        }
        self.pending.take()
    }
}

/// The series a select returns, sorted by labels.
pub type SeriesSet = std::vec::IntoIter<Series>;

/// What the PromQL engine reads. Times are Unix milliseconds, both ends inclusive.
pub trait Querier: Send + Sync {
    /// Series matching every matcher with at least one sample in `[start_ms, end_ms]`,
    /// sorted by labels, each restricted to that range.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<SeriesSet, TsdbError>;

    /// Sorted label names of the series matching `matchers` (all series when empty) that
    /// have samples in the range.
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError>;

    /// Sorted values of label `name` over the series matching `matchers` (all when empty)
    /// with samples in the range.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError>;
}

/// A querier over a fixed list of series: for engine tests that need no database.
#[derive(Clone, Debug, Default)]
pub struct VecQuerier {
    series: Vec<Series>,
}

impl VecQuerier {
    /// Holds `series` (duplicates by labels are not merged).
    pub fn new(mut series: Vec<Series>) -> VecQuerier {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        VecQuerier { series }
    }

    fn matching(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = Series> + '_ {
        let matchers = matchers.to_vec();
        self.series
            .iter()
            .filter(move |s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .map(move |s| {
                let mut s = s.clone();
                s.start = start.max(s.start);
                s.end = end.min(s.end);
                s
            })
            .filter(|s| !s.is_empty())
    }
}

impl Querier for VecQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<SeriesSet, TsdbError> {
        if matchers.is_empty() {
            return Ok(Vec::new().into_iter());
        }
        Ok(self
            .matching(matchers, start_ms, end_ms)
            .collect::<Vec<_>>()
            .into_iter())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        let mut names: Vec<String> = self
            .matching(matchers, start_ms, end_ms)
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|l| l.name.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        let mut values: Vec<String> = self
            .matching(matchers, start_ms, end_ms)
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::XorChunk;

    fn chunk(samples: &[(i64, f64)]) -> Arc<[u8]> {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        c.bytes().into()
    }

    #[test]
    fn merges_chunks_and_out_of_order_samples_in_range() {
        let l = Labels::new([("__name__", "m")]).unwrap();
        let s = Series::from_parts(
            l,
            vec![
                chunk(&[(10, 1.0), (20, 2.0)]),
                chunk(&[(30, 3.0), (40, 4.0)]),
            ],
            vec![(5, 0.5), (15, 1.5), (30, 99.0), (45, 4.5)],
            10,
            40,
        );
        let got: Vec<_> = s.samples().collect();
        assert_eq!(got, [(10, 1.0), (15, 1.5), (20, 2.0), (30, 3.0), (40, 4.0)]);
    }

    #[test]
    fn vec_querier_filters() {
        let a = Series::from_samples(
            Labels::new([("__name__", "a"), ("j", "x")]).unwrap(),
            vec![(1, 1.0), (5, 5.0)],
        );
        let b = Series::from_samples(Labels::new([("__name__", "b")]).unwrap(), vec![(9, 1.0)]);
        let q = VecQuerier::new(vec![b, a]);
        let sel: Vec<_> = q
            .select(
                &[Matcher::new(crate::MatchOp::Regex, "__name__", ".*").unwrap()],
                0,
                5,
            )
            .unwrap()
            .collect();
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].samples().collect::<Vec<_>>(), [(1, 1.0), (5, 5.0)]);
        assert_eq!(q.label_names(&[], 0, 100).unwrap(), ["__name__", "j"]);
        assert_eq!(q.label_values("__name__", &[], 6, 100).unwrap(), ["b"]);
    }

    #[test]
    fn histogram_samples_are_selected_by_range_and_replace_floats() {
        let h = Arc::new(FloatHistogram {
            count: 1.0,
            ..Default::default()
        });
        let s = Series::from_samples_and_histograms(
            Labels::new([("__name__", "h")]).unwrap(),
            vec![(1, 1.0), (2, 2.0)],
            vec![(2, h.clone()), (7, h.clone())],
        );
        let q = VecQuerier::new(vec![s]);
        let m = [Matcher::new(crate::MatchOp::Equal, "__name__", "h").unwrap()];
        let sel: Vec<_> = q.select(&m, 2, 7).unwrap().collect();
        assert!(sel[0].samples().next().is_none());
        let hs: Vec<_> = sel[0].histograms().map(|(t, _)| t).collect();
        assert_eq!(hs, [2, 7]);
        assert_eq!(q.select(&m, 3, 6).unwrap().count(), 0);
    }
}
