//! The in-memory head: every series with its recent samples in compressed chunks, and the
//! postings index over them.
//!
//! Shape: the index (hash → refs, refs → series, postings) sits behind one `RwLock` that is
//! taken for writing only when a series is created; each series' samples sit behind their own
//! small mutex, so appends to different series never contend. A series keeps closed chunks as
//! `Arc<[u8]>` (a query clones the pointer, not the bytes) and one open [`XorChunk`]; a chunk is
//! closed after [`SAMPLES_PER_CHUNK`] samples or when a sample crosses a block boundary, so
//! every closed chunk belongs to exactly one future block.
//!
//! Memory per series is what bounds a head, so a series keeps its labels as the ids of its
//! label pairs, interned once in the postings (every series of a fleet shares `job="node"`),
//! and the hash index keys on 32 bits. Label sets are built back from the ids when a query,
//! a block or the WAL needs them; ids are only reused after [`Head::truncate`] removed every
//! series carrying the pair, so anything that reads a series' labels outside the index lock
//! first checks the series is still in the head.
//!
//! Appending is split in two so the database can validate a whole batch before it writes the
//! WAL: [`Head::check`] classifies each sample against the series' newest sample without
//! changing anything, and [`Head::commit`] applies accepted samples. `commit` checks again,
//! because two concurrent batches may touch the same series between the two steps; a sample
//! that lost such a race is dropped and counted, exactly as replay would drop it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use model::histogram::FloatHistogram;

use crate::chunk::{ChunkIter, XorChunk, SAMPLES_PER_CHUNK};
use crate::histchunk::{self, HistChunk, ENC_HIST};
use crate::index::{Matcher, PairId, Postings, SeriesRef};
use crate::querier::Series;
use crate::stchunk;
use crate::Labels;

/// Why a sample was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Older than the series' newest sample, outside the out-of-order window.
    OutOfOrder,
    /// Same timestamp as a stored sample, different value.
    DuplicateTimestamp,
    /// Older than the head accepts at all (that time range is already in a block).
    OutOfBounds,
}

impl Rejection {
    /// Prometheus's wording for the rejection.
    pub fn prometheus_message(self) -> &'static str {
        match self {
            Rejection::OutOfOrder => "out of order sample",
            Rejection::DuplicateTimestamp => "duplicate sample for timestamp",
            Rejection::OutOfBounds => "out of bounds",
        }
    }
}

/// A sample's value as the head judges and stores it: float bits (compared bit for bit, so
/// the staleness marker is just another value) or a native histogram.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// A float sample's bits.
    Float(u64),
    /// A native histogram sample (validated by the receiver).
    Histogram(&'a Arc<FloatHistogram>),
}

impl Value<'_> {
    /// Whether two values are the same sample (a harmless re-send).
    fn same(self, other: Value<'_>) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Histogram(a), Value::Histogram(b)) => {
                Arc::ptr_eq(a, b) || histchunk::identical(a, b)
            }
            _ => false,
        }
    }

    /// Whether the value is a native histogram.
    pub fn is_histogram(self) -> bool {
        matches!(self, Value::Histogram(_))
    }
}

/// An out-of-order sample as the head keeps it.
#[derive(Clone, Debug)]
enum Stored {
    Float(u64),
    Histogram(Arc<FloatHistogram>),
}

impl Stored {
    fn of(v: Value<'_>) -> Stored {
        match v {
            Value::Float(b) => Stored::Float(b),
            Value::Histogram(h) => Stored::Histogram(h.clone()),
        }
    }

    fn value(&self) -> Value<'_> {
        match self {
            Stored::Float(b) => Value::Float(*b),
            Stored::Histogram(h) => Value::Histogram(h),
        }
    }
}

/// The verdict for a sample older than the newest one (`newest`): within the window it is
/// kept aside as out of order, floats and histograms alike (Prometheus 3 accepts
/// out-of-order native histograms whenever its out-of-order window is set).
fn behind(window: i64, t: i64, newest: i64) -> Verdict {
    if window > 0 && t >= newest.saturating_sub(window) {
        Verdict::OutOfOrder
    } else {
        Verdict::Reject(Rejection::OutOfOrder)
    }
}

/// What [`Head::check`] decided for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append in order.
    Append,
    /// Store in the series' out-of-order buffer.
    OutOfOrder,
    /// Exactly the stored sample again: nothing to do (Prometheus ignores these silently).
    Duplicate,
    /// Not stored.
    Reject(Rejection),
}

/// A closed, immutable chunk.
#[derive(Clone, Debug)]
pub struct ClosedChunk {
    /// Encoded samples.
    pub bytes: Arc<[u8]>,
    /// Timestamp of the first sample.
    pub min_t: i64,
    /// Timestamp of the last sample.
    pub max_t: i64,
}

/// The open histogram chunk of a series whose newest sample is a histogram.
#[derive(Debug)]
struct HistOpen {
    chunk: HistChunk,
    min_t: i64,
}

/// What only some series need, boxed behind one pointer so the many float series without
/// start timestamps pay 8 bytes for all of it: the open histogram chunk, and the start
/// timestamps `(t, st)` of the open chunk's samples that have one (written as a
/// [`stchunk`] chunk after the data chunk when it closes).
#[derive(Debug, Default)]
struct Aux {
    hist: Option<HistOpen>,
    sts: Vec<(i64, i64)>,
}

/// A series' samples. Closed chunks are XOR or packed float chunks or histogram chunks
/// (their first byte says which), in time order; at most one open chunk is in use: the
/// float one, or `hist` when the newest sample is a histogram. A switch between floats and
/// histograms closes the open chunk, as Prometheus cuts a new chunk on such a switch.
/// Start-timestamp chunks sit among the closed ones, each right after the data chunk whose
/// samples it describes.
#[derive(Debug)]
struct SeriesData {
    closed: Vec<ClosedChunk>,
    open: XorChunk,
    open_min_t: i64,
    /// `None` unless the series has an open histogram chunk or pending start timestamps.
    aux: Option<Box<Aux>>,
    /// Newest in-order sample; `i64::MIN` when there is none.
    last_t: i64,
    last_v: u64,
    /// Accepted out-of-order samples (only with a window); small by construction.
    ooo: BTreeMap<i64, Stored>,
}

impl SeriesData {
    fn new() -> SeriesData {
        SeriesData {
            closed: Vec::new(),
            open: XorChunk::new(),
            open_min_t: i64::MIN,
            aux: None,
            last_t: i64::MIN,
            last_v: 0,
            ooo: BTreeMap::new(),
        }
    }

    /// The open histogram chunk, if any.
    fn hist(&self) -> Option<&HistOpen> {
        self.aux.as_ref()?.hist.as_ref()
    }

    /// Drops the aux box once it holds nothing.
    fn shrink_aux(&mut self) {
        if self
            .aux
            .as_ref()
            .is_some_and(|a| a.hist.is_none() && a.sts.is_empty())
        {
            self.aux = None;
        }
    }

    /// The open chunk's start timestamps (empty when none).
    fn open_sts(&self) -> &[(i64, i64)] {
        self.aux.as_ref().map_or(&[], |a| a.sts.as_slice())
    }

    /// Closes the pending start timestamps into a chunk after the data chunk just closed.
    fn flush_sts(&mut self) {
        if let Some(a) = self.aux.as_mut().filter(|a| !a.sts.is_empty()) {
            let sts = std::mem::take(&mut a.sts);
            self.closed.push(ClosedChunk {
                min_t: sts[0].0,
                max_t: sts[sts.len() - 1].0,
                bytes: stchunk::encode(&sts).into(),
            });
        }
        self.shrink_aux();
    }

    fn min_t(&self) -> i64 {
        let chunks = self
            .closed
            .first()
            .map(|c| c.min_t)
            .or((!self.open.is_empty()).then_some(self.open_min_t))
            .or(self.hist().map(|h| h.min_t));
        let ooo = self.ooo.keys().next().copied();
        match (chunks, ooo) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(i64::MAX),
        }
    }

    fn max_t(&self) -> i64 {
        let ooo = self.ooo.keys().next_back().copied().unwrap_or(i64::MIN);
        self.last_t.max(ooo)
    }

    /// The newest in-order sample's value.
    fn last_value(&self) -> Value<'_> {
        match self.hist().and_then(|h| h.chunk.last()) {
            Some(h) => Value::Histogram(h),
            None => Value::Float(self.last_v),
        }
    }

    fn check(&self, t: i64, v: Value<'_>, window: i64) -> Verdict {
        if self.last_t == i64::MIN || t > self.last_t {
            return Verdict::Append;
        }
        if t == self.last_t {
            return if v.same(self.last_value()) {
                Verdict::Duplicate
            } else {
                Verdict::Reject(Rejection::DuplicateTimestamp)
            };
        }
        match behind(window, t, self.last_t) {
            Verdict::OutOfOrder => match self.ooo.get(&t) {
                Some(old) if old.value().same(v) => Verdict::Duplicate,
                Some(_) => Verdict::Reject(Rejection::DuplicateTimestamp),
                None => Verdict::OutOfOrder,
            },
            other => other,
        }
    }

    /// Moves the open float chunk to the closed ones.
    fn close_float(&mut self) {
        if !self.open.is_empty() {
            let open = std::mem::take(&mut self.open);
            self.closed.push(ClosedChunk {
                bytes: open.bytes().into(),
                min_t: self.open_min_t,
                max_t: self.last_t,
            });
            self.flush_sts();
        }
    }

    /// Moves the open histogram chunk to the closed ones.
    fn close_hist(&mut self) {
        if let Some(h) = self.aux.as_mut().and_then(|a| a.hist.take()) {
            self.closed.push(ClosedChunk {
                bytes: h.chunk.bytes().into(),
                min_t: h.min_t,
                max_t: self.last_t,
            });
            self.flush_sts();
        }
    }

    /// Appends an in-order sample with start timestamp `st` (0 for none).
    fn append(&mut self, t: i64, v: Value<'_>, st: i64, block_range: i64) {
        match v {
            Value::Float(v) => {
                self.close_hist();
                let crosses = !self.open.is_empty()
                    && t.div_euclid(block_range) != self.open_min_t.div_euclid(block_range);
                if self.open.len() >= SAMPLES_PER_CHUNK || crosses || self.open.is_full() {
                    self.close_float();
                }
                if self.open.is_empty() {
                    self.open_min_t = t;
                }
                self.open.append(t, f64::from_bits(v));
                self.last_v = v;
            }
            Value::Histogram(h) => {
                self.close_float();
                if let Some(o) = self.hist() {
                    let crosses = t.div_euclid(block_range) != o.min_t.div_euclid(block_range);
                    if o.chunk.len() >= SAMPLES_PER_CHUNK || crosses || o.chunk.is_full() {
                        self.close_hist();
                    }
                }
                let aux = self.aux.get_or_insert_with(Default::default);
                let o = aux.hist.get_or_insert_with(|| HistOpen {
                    chunk: HistChunk::new(),
                    min_t: t,
                });
                o.chunk.append(t, h.clone());
            }
        }
        if st != 0 {
            self.aux
                .get_or_insert_with(Default::default)
                .sts
                .push((t, st));
        }
        self.last_t = t;
    }

    /// The open chunk in use, if any: `(bytes, min_t)`.
    fn open_chunk(&self) -> Option<(Arc<[u8]>, i64)> {
        if let Some(h) = self.hist() {
            return Some((h.chunk.bytes().into(), h.min_t));
        }
        (!self.open.is_empty()).then(|| (self.open.bytes().into(), self.open_min_t))
    }

    /// A queryable copy of the samples in `[start, end]`, or `None` if there are none.
    fn snapshot(&self, labels: &Labels, start: i64, end: i64) -> Option<Series> {
        if self.max_t() < start || self.min_t() > end {
            return None;
        }
        let mut chunks: Vec<Arc<[u8]>> = self
            .closed
            .iter()
            .filter(|c| c.max_t >= start && c.min_t <= end)
            .map(|c| c.bytes.clone())
            .collect();
        if let Some((bytes, min_t)) = self.open_chunk() {
            if self.last_t >= start && min_t <= end {
                chunks.push(bytes);
            }
        }
        let sts = self.open_sts();
        if let (Some(first), Some(last)) = (sts.first(), sts.last()) {
            if last.0 >= start && first.0 <= end {
                chunks.push(stchunk::encode(sts).into());
            }
        }
        let mut extra: Vec<(i64, f64)> = Vec::new();
        let mut extra_hists: Vec<(i64, Arc<FloatHistogram>)> = Vec::new();
        for (&t, v) in self.ooo.range(start..=end) {
            match v {
                Stored::Float(b) => extra.push((t, f64::from_bits(*b))),
                Stored::Histogram(h) => extra_hists.push((t, h.clone())),
            }
        }
        let s = Series::from_parts(labels.clone(), chunks, extra, start, end)
            .with_histograms(extra_hists);
        (!s.is_empty()).then_some(s)
    }
}

/// One series in the head.
#[derive(Debug)]
pub struct MemSeries {
    /// The series' labels as the ids of their pairs in the head's postings, in label order
    /// ([`Head::labels_of`] reads them back): four bytes a pair instead of its strings.
    ids: Box<[PairId]>,
    /// The id WAL records use for this series; unique across restarts.
    pub wal_id: u64,
    /// Whether a WAL record defining `wal_id` is durable; until then every record that
    /// uses the series carries its labels too.
    pub logged: AtomicBool,
    data: Mutex<SeriesData>,
}

impl MemSeries {
    /// Every sample the series holds (chunks and out-of-order samples merged, in time order;
    /// the in-order sample wins a tie): what a WAL checkpoint of samples stores. Chunks are
    /// decoded after the series' lock is released.
    pub fn all_samples(&self) -> Vec<(i64, f64)> {
        let (chunks, ooo) = {
            let d = self.data.lock();
            let mut chunks: Vec<Arc<[u8]>> = d
                .closed
                .iter()
                .filter(|c| c.bytes.first() != Some(&ENC_HIST) && !stchunk::is_st(&c.bytes))
                .map(|c| c.bytes.clone())
                .collect();
            if !d.open.is_empty() {
                chunks.push(d.open.bytes().into());
            }
            let ooo: Vec<(i64, f64)> = d
                .ooo
                .iter()
                .filter_map(|(&t, v)| match v {
                    Stored::Float(b) => Some((t, f64::from_bits(*b))),
                    Stored::Histogram(_) => None,
                })
                .collect();
            (chunks, ooo)
        };
        let mut all: Vec<(i64, f64)> = chunks.iter().flat_map(|c| ChunkIter::new(c)).collect();
        if !ooo.is_empty() {
            all.extend(ooo);
            all.sort_by_key(|s| s.0);
            all.dedup_by_key(|s| s.0);
        }
        all
    }

    /// Every histogram sample the series holds, in time order (what a WAL checkpoint of
    /// histograms stores). Chunks are decoded after the series' lock is released. Head
    /// chunks were encoded here from validated histograms, so an error means a bug; it is
    /// returned rather than skipped because the checkpoint replaces the WAL segments.
    pub fn all_histograms(&self) -> Result<Vec<(i64, Arc<FloatHistogram>)>, crate::TsdbError> {
        let (chunks, ooo) = {
            let d = self.data.lock();
            let mut chunks: Vec<Arc<[u8]>> = d
                .closed
                .iter()
                .filter(|c| c.bytes.first() == Some(&ENC_HIST))
                .map(|c| c.bytes.clone())
                .collect();
            if let Some(h) = d.hist() {
                chunks.push(h.chunk.bytes().into());
            }
            (chunks, ooo_histograms(&d.ooo, ..))
        };
        let mut out = Vec::new();
        for c in &chunks {
            out.extend(histchunk::decode(c)?);
        }
        if !ooo.is_empty() {
            out.extend(ooo);
            // Stable: the in-order sample stays ahead of an out-of-order one at its time.
            out.sort_by_key(|s| s.0);
            out.dedup_by_key(|s| s.0);
        }
        Ok(out)
    }
}

impl MemSeries {
    /// The start timestamps `(t, st)` of every sample that has one, in time order (what a
    /// WAL checkpoint stores beside the samples). Head chunks were encoded here, so an
    /// error means a bug; it is returned, as for histograms.
    pub fn all_start_timestamps(&self) -> Result<Vec<(i64, i64)>, crate::TsdbError> {
        let (chunks, open) = {
            let d = self.data.lock();
            let chunks: Vec<Arc<[u8]>> = d
                .closed
                .iter()
                .filter(|c| stchunk::is_st(&c.bytes))
                .map(|c| c.bytes.clone())
                .collect();
            (chunks, d.open_sts().to_vec())
        };
        let mut out = Vec::new();
        for c in &chunks {
            out.extend(stchunk::decode(c)?);
        }
        out.extend(open);
        Ok(out)
    }
}

/// Hashes a key that is already a well-mixed hash: one multiplication spreads its bits over
/// the high bits too, which the hash table's probing uses (SipHash would cost more than the
/// rest of a lookup).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used; fold anything else in so it still works.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, k: u32) {
        self.0 = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type KeyMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The 32-bit key of a series hash in the head's hash index. Series whose keys collide are
/// told apart by their labels, as those whose full hashes collide are.
#[inline]
fn hash_key(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

#[derive(Debug, Default)]
struct HeadIndex {
    /// The series of each label-set hash, keyed by [`hash_key`]. One ref per key in the map
    /// itself (8 bytes an entry, no allocation: half what a 64-bit key takes, with a million
    /// series about 17 bytes a series less); the further series sharing a key (about a
    /// hundred at a million series) go to `collisions`.
    by_hash: KeyMap<SeriesRef>,
    collisions: KeyMap<Vec<SeriesRef>>,
    /// By ref; `None` once a series was truncated away (refs are never reused).
    series: Vec<Option<Arc<MemSeries>>>,
    live: usize,
    postings: Postings,
}

impl HeadIndex {
    fn find(&self, labels: &Labels, hash: u64) -> Option<&Arc<MemSeries>> {
        let key = hash_key(hash);
        let first = *self.by_hash.get(&key)?;
        std::iter::once(first)
            .chain(self.collisions.get(&key).into_iter().flatten().copied())
            .filter_map(|r| self.series[r as usize].as_ref())
            .find(|s| self.has_labels(s, labels))
    }

    /// Whether `s` is the series named `labels`.
    #[inline]
    fn has_labels(&self, s: &MemSeries, labels: &Labels) -> bool {
        s.ids.len() == labels.len()
            && s.ids
                .iter()
                .zip(labels)
                .all(|(&id, l)| self.postings.pair(id) == l)
    }

    /// The label set of `s`, a series of this index.
    fn labels(&self, s: &MemSeries) -> Labels {
        Labels::from_sorted_pairs_unchecked(s.ids.iter().map(|&id| self.postings.pair(id)))
    }

    /// Whether the series numbered `r` is still `s` (not truncated away since).
    fn holds(&self, r: SeriesRef, s: &Arc<MemSeries>) -> bool {
        self.series
            .get(r as usize)
            .and_then(Option::as_ref)
            .is_some_and(|x| Arc::ptr_eq(x, s))
    }

    fn insert_hash(&mut self, hash: u64, r: SeriesRef) {
        let key = hash_key(hash);
        match self.by_hash.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(key).or_default().push(r);
            }
        }
    }

    fn remove_hash(&mut self, hash: u64, r: SeriesRef) {
        let key = hash_key(hash);
        let list = self.collisions.get_mut(&key);
        if self.by_hash.get(&key) == Some(&r) {
            // Promote a colliding series, if any, into the map.
            match list.and_then(|l| l.pop()) {
                Some(next) => {
                    self.by_hash.insert(key, next);
                }
                None => {
                    self.by_hash.remove(&key);
                }
            }
        } else if let Some(l) = list {
            l.retain(|&x| x != r);
        }
        if self.collisions.get(&key).is_some_and(Vec::is_empty) {
            self.collisions.remove(&key);
        }
    }
}

/// Settings the head needs from the database.
#[derive(Clone, Copy, Debug)]
pub struct HeadOptions {
    /// Width of a block in milliseconds; chunks never straddle a multiple of it.
    pub block_range_ms: i64,
    /// How far behind a series' newest sample a sample may be and still be accepted.
    pub out_of_order_window_ms: i64,
}

/// The in-memory head.
#[derive(Debug)]
pub struct Head {
    opts: HeadOptions,
    index: RwLock<HeadIndex>,
    /// Samples older than this are out of bounds (their range is already in a block).
    min_valid_t: AtomicI64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    samples: AtomicU64,
    histogram_samples: AtomicU64,
    next_wal_id: AtomicU64,
}

impl Head {
    /// An empty head.
    pub fn new(opts: HeadOptions) -> Head {
        Head {
            opts,
            index: RwLock::new(HeadIndex::default()),
            min_valid_t: AtomicI64::new(i64::MIN),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            samples: AtomicU64::new(0),
            histogram_samples: AtomicU64::new(0),
            next_wal_id: AtomicU64::new(0),
        }
    }

    /// The series with exactly these labels, if the head has it.
    pub fn get(&self, labels: &Labels, hash: u64) -> Option<Arc<MemSeries>> {
        self.index.read().find(labels, hash).cloned()
    }

    /// The series with these labels, created if new.
    pub fn get_or_create(&self, labels: &Labels, hash: u64) -> Arc<MemSeries> {
        self.get_or_create_with_id(labels, hash, None)
    }

    /// [`Head::get_or_create`] for replay: a new series takes the WAL id `id` (marked
    /// logged) and later ids are allocated above it.
    pub fn get_or_create_with_id(
        &self,
        labels: &Labels,
        hash: u64,
        id: Option<u64>,
    ) -> Arc<MemSeries> {
        if let Some(id) = id {
            self.next_wal_id
                .fetch_max(id.saturating_add(1), Ordering::Relaxed);
        }
        if let Some(s) = self.get(labels, hash) {
            return s;
        }
        let mut idx = self.index.write();
        if let Some(s) = idx.find(labels, hash) {
            return s.clone();
        }
        let r = idx.series.len() as SeriesRef;
        let ids = idx.postings.add_interned(r, labels);
        let s = Arc::new(MemSeries {
            ids,
            wal_id: id.unwrap_or_else(|| self.next_wal_id.fetch_add(1, Ordering::Relaxed)),
            logged: AtomicBool::new(id.is_some()),
            data: Mutex::new(SeriesData::new()),
        });
        idx.series.push(Some(s.clone()));
        idx.live += 1;
        idx.insert_hash(hash, r);
        s
    }

    /// The labels of a series of this head. Valid while the series is in the head (its pairs
    /// may be renumbered once [`Head::truncate`] removed it).
    pub fn labels_of(&self, series: &MemSeries) -> Labels {
        self.index.read().labels(series)
    }

    /// [`Head::labels_of`] for many series under one lock.
    pub fn labels_of_many(&self, series: &[Arc<MemSeries>]) -> Vec<Labels> {
        let idx = self.index.read();
        series.iter().map(|s| idx.labels(s)).collect()
    }

    /// Attaches the labels of each series still in the head (a truncation may have removed
    /// some since they were picked; they are left out), a few thousand per hold of the index
    /// lock so series creation never waits long.
    fn attach_labels<T>(&self, picked: Vec<(SeriesRef, Arc<MemSeries>, T)>) -> Vec<(Labels, T)> {
        const PER_LOCK: usize = 4096;
        let mut out = Vec::with_capacity(picked.len());
        let mut it = picked.into_iter().peekable();
        while it.peek().is_some() {
            let idx = self.index.read();
            for (r, s, x) in it.by_ref().take(PER_LOCK) {
                if idx.holds(r, &s) {
                    out.push((idx.labels(&s), x));
                }
            }
        }
        out
    }

    /// Classifies a sample for `series` (or a new series when `None`) whose newest sample so
    /// far in this batch is `batch_last` (timestamp and value), without changing state.
    pub fn check(
        &self,
        series: Option<&MemSeries>,
        batch_last: Option<(i64, Value<'_>)>,
        t: i64,
        v: Value<'_>,
    ) -> Verdict {
        if t < self.min_valid_t.load(Ordering::Relaxed) {
            return Verdict::Reject(Rejection::OutOfBounds);
        }
        let window = self.opts.out_of_order_window_ms;
        match (series, batch_last) {
            (_, Some((bt, bv))) if t >= bt => {
                if t == bt && !bv.same(v) {
                    Verdict::Reject(Rejection::DuplicateTimestamp)
                } else if t == bt {
                    Verdict::Duplicate
                } else {
                    Verdict::Append
                }
            }
            (Some(s), _) => {
                let d = s.data.lock();
                let verdict = d.check(t, v, window);
                match (verdict, batch_last) {
                    // Older than this batch's newest sample for the series: the batch itself
                    // is out of order unless the window allows it.
                    (Verdict::Append, Some((bt, _))) if t < bt => behind(window, t, bt),
                    (verdict, _) => verdict,
                }
            }
            (None, Some((bt, _))) => behind(window, t, bt),
            (None, None) => Verdict::Append,
        }
    }

    /// Applies one sample (checking again); returns what happened.
    pub fn commit(&self, series: &MemSeries, t: i64, v: Value<'_>) -> Verdict {
        self.commit_st(series, t, v, 0)
    }

    /// [`Head::commit`] for a sample with start timestamp `st` (0 for none). An
    /// out-of-order sample keeps its value but not its start timestamp (not stored yet).
    pub fn commit_st(&self, series: &MemSeries, t: i64, v: Value<'_>, st: i64) -> Verdict {
        if t < self.min_valid_t.load(Ordering::Relaxed) {
            return Verdict::Reject(Rejection::OutOfBounds);
        }
        let mut d = series.data.lock();
        let verdict = d.check(t, v, self.opts.out_of_order_window_ms);
        match verdict {
            Verdict::Append => d.append(t, v, st, self.opts.block_range_ms),
            Verdict::OutOfOrder => {
                d.ooo.insert(t, Stored::of(v));
            }
            Verdict::Duplicate | Verdict::Reject(_) => return verdict,
        }
        drop(d);
        self.min_t.fetch_min(t, Ordering::Relaxed);
        self.max_t.fetch_max(t, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
        if v.is_histogram() {
            self.histogram_samples.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Every live series (for WAL checkpoints).
    pub fn all_series(&self) -> Vec<Arc<MemSeries>> {
        self.index.read().series.iter().flatten().cloned().collect()
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.index.read().live
    }

    /// Number of samples stored since the head was created.
    pub fn num_samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Native histogram samples stored since the head was created (part of
    /// [`Head::num_samples`]).
    pub fn num_histogram_samples(&self) -> u64 {
        self.histogram_samples.load(Ordering::Relaxed)
    }

    /// Oldest and newest sample timestamps, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let (a, b) = (
            self.min_t.load(Ordering::Relaxed),
            self.max_t.load(Ordering::Relaxed),
        );
        (a <= b).then_some((a, b))
    }

    /// Chunks held, the open ones included (walks every series: for status pages).
    pub fn num_chunks(&self) -> usize {
        self.all_series()
            .iter()
            .map(|s| {
                let d = s.data.lock();
                d.closed.len() + usize::from(!d.open.is_empty() || d.hist().is_some())
            })
            .sum()
    }

    /// Samples older than this are out of bounds.
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_t.load(Ordering::Relaxed)
    }

    /// Cardinality figures of the head (what Prometheus's `/api/v1/status/tsdb` reports).
    pub fn cardinality(&self, limit: usize) -> crate::index::CardinalityStats {
        self.index.read().postings.stats(limit)
    }

    /// Refuses samples older than `t` from now on.
    pub fn set_min_valid_time(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::Relaxed);
    }

    /// The series matching `matchers` with samples in `[start, end]`, sorted by labels.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Series> {
        let series: Vec<(SeriesRef, Arc<MemSeries>)> = {
            let idx = self.index.read();
            idx.postings
                .select(matchers)
                .into_iter()
                .filter_map(|r| Some((r, idx.series[r as usize].clone()?)))
                .collect()
        };
        // Samples first, outside the index lock; labels only for the series that have some.
        let picked: Vec<(SeriesRef, Arc<MemSeries>, Series)> = series
            .into_iter()
            .filter_map(|(r, s)| {
                let snap = s.data.lock().snapshot(&Labels::empty(), start, end)?;
                Some((r, s, snap))
            })
            .collect();
        let mut out: Vec<Series> = self
            .attach_labels(picked)
            .into_iter()
            .map(|(labels, mut snap)| {
                snap.labels = labels;
                snap
            })
            .collect();
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Sorted label names of series matching `matchers` (all series when empty) that have
    /// samples in `[start, end]`.
    pub fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        if matchers.is_empty() && self.covers_whole(start, end) {
            return self
                .index
                .read()
                .postings
                .label_names()
                .map(str::to_string)
                .collect();
        }
        let idx = self.index.read();
        let mut names: Vec<&str> = Self::matching_series(&idx, matchers, start, end)
            .flat_map(|s| s.ids.iter().map(|&id| idx.postings.pair(id).name))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(str::to_string).collect()
    }

    /// Sorted values of label `name` over series matching `matchers` with samples in range.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<String> {
        if matchers.is_empty() && self.covers_whole(start, end) {
            return self
                .index
                .read()
                .postings
                .label_values(name)
                .map(str::to_string)
                .collect();
        }
        let idx = self.index.read();
        let mut values: Vec<&str> = Self::matching_series(&idx, matchers, start, end)
            .filter_map(|s| {
                s.ids
                    .iter()
                    .map(|&id| idx.postings.pair(id))
                    .find(|l| l.name == name)
                    .map(|l| l.value)
            })
            .collect();
        values.sort_unstable();
        values.dedup();
        values.into_iter().map(str::to_string).collect()
    }

    /// Whether `[start, end]` covers every sample in the head, so the postings alone answer.
    fn covers_whole(&self, start: i64, end: i64) -> bool {
        self.time_range()
            .is_none_or(|(a, b)| start <= a && b <= end)
    }

    /// The series of `idx` matching `matchers` (all when empty) with samples in range.
    fn matching_series<'a>(
        idx: &'a HeadIndex,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = &'a MemSeries> + 'a {
        let refs = if matchers.is_empty() {
            idx.postings.all().to_vec()
        } else {
            idx.postings.select(matchers)
        };
        refs.into_iter()
            .filter_map(|r| idx.series[r as usize].as_deref())
            .filter(move |s| {
                let d = s.data.lock();
                d.max_t() >= start && d.min_t() <= end
            })
    }

    /// Every series' data older than `before`: its chunks that end before it (the open one
    /// included when it does), and its out-of-order samples before it; sorted by labels,
    /// series without such data left out. This is what a block for a range ending at
    /// `before` holds.
    pub fn data_before(&self, before: i64) -> Vec<SeriesChunks> {
        let series: Vec<(SeriesRef, Arc<MemSeries>)> = self
            .index
            .read()
            .series
            .iter()
            .enumerate()
            .filter_map(|(r, s)| Some((r as SeriesRef, s.clone()?)))
            .collect();
        let picked: Vec<_> = series
            .into_iter()
            .map(|(r, s)| {
                let d = s.data.lock();
                let mut chunks: Vec<ClosedChunk> = d
                    .closed
                    .iter()
                    .filter(|c| c.max_t < before)
                    .cloned()
                    .collect();
                if let Some((bytes, min_t)) = d.open_chunk().filter(|_| d.last_t < before) {
                    chunks.push(ClosedChunk {
                        bytes,
                        min_t,
                        max_t: d.last_t,
                    });
                    let sts = d.open_sts();
                    if let (Some(first), Some(last)) = (sts.first(), sts.last()) {
                        chunks.push(ClosedChunk {
                            min_t: first.0,
                            max_t: last.0,
                            bytes: stchunk::encode(sts).into(),
                        });
                    }
                }
                let ooo: Vec<(i64, f64)> = d
                    .ooo
                    .range(..before)
                    .filter_map(|(&t, v)| match v {
                        Stored::Float(b) => Some((t, f64::from_bits(*b))),
                        Stored::Histogram(_) => None,
                    })
                    .collect();
                // Out-of-order histograms travel as one more histogram chunk, after the
                // in-order ones: the block writer sorts and keeps the in-order sample of a
                // tie.
                let hists = ooo_histograms(&d.ooo, ..before);
                if let (Some(first), Some(last)) = (hists.first(), hists.last()) {
                    chunks.push(ClosedChunk {
                        min_t: first.0,
                        max_t: last.0,
                        bytes: histchunk::encode(&hists).into(),
                    });
                }
                drop(d);
                (r, s, (chunks, ooo))
            })
            .filter(|(_, _, (c, o))| !c.is_empty() || !o.is_empty())
            .collect();
        let mut out: Vec<SeriesChunks> = self
            .attach_labels(picked)
            .into_iter()
            .map(|(labels, (chunks, ooo))| (labels, chunks, ooo))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Drops every sample older than `before` (now in a block) and the series left empty;
    /// from now on such samples are out of bounds. Returns the number of series removed.
    ///
    /// The caller must keep appends out while this runs (the database holds its cut write
    /// guard): an append holding a series that is being removed would otherwise be lost.
    pub fn truncate(&self, before: i64) -> usize {
        self.set_min_valid_time(before);
        let mut idx = self.index.write();
        let mut dead: Vec<SeriesRef> = Vec::new();
        let mut min_t = i64::MAX;
        let mut max_t = i64::MIN;
        for (r, slot) in idx.series.iter().enumerate() {
            let Some(s) = slot else { continue };
            let mut d = s.data.lock();
            d.closed.retain(|c| c.max_t >= before);
            if d.last_t < before {
                d.open = XorChunk::new();
                d.open_min_t = i64::MIN;
                d.aux = None;
            }
            d.ooo = d.ooo.split_off(&before);
            if d.closed.is_empty() && d.open.is_empty() && d.aux.is_none() && d.ooo.is_empty() {
                dead.push(r as SeriesRef);
            } else {
                min_t = min_t.min(d.min_t());
                max_t = max_t.max(d.max_t());
            }
        }
        for &r in &dead {
            if let Some(s) = idx.series[r as usize].take() {
                let hash = idx.labels(&s).stable_hash();
                idx.remove_hash(hash, r);
            }
        }
        idx.live -= dead.len();
        // Last: the dead series' pair ids stay readable until here.
        idx.postings.remove(&dead);
        self.min_t.store(min_t, Ordering::Relaxed);
        self.max_t.store(max_t, Ordering::Relaxed);
        dead.len()
    }
}

/// The out-of-order histograms of `ooo` in `range`, in time order.
fn ooo_histograms(
    ooo: &BTreeMap<i64, Stored>,
    range: impl std::ops::RangeBounds<i64>,
) -> Vec<(i64, Arc<FloatHistogram>)> {
    ooo.range(range)
        .filter_map(|(&t, v)| match v {
            Stored::Histogram(h) => Some((t, h.clone())),
            Stored::Float(_) => None,
        })
        .collect()
}

/// A series' labels, chunks and out-of-order samples, for block writing.
pub type SeriesChunks = (Labels, Vec<ClosedChunk>, Vec<(i64, f64)>);

/// Decodes every sample of a chunk list, for tests and block building.
pub fn decode_all(chunks: &[ClosedChunk]) -> Vec<(i64, f64)> {
    chunks
        .iter()
        .filter(|c| !stchunk::is_st(&c.bytes))
        .flat_map(|c| ChunkIter::new(&c.bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MatchOp;

    #[test]
    fn series_sharing_a_hash_are_all_found_and_removed() {
        let mut idx = HeadIndex::default();
        let sets: Vec<Labels> = (0..3)
            .map(|i| Labels::new([("__name__", "m"), ("i", &i.to_string())]).unwrap())
            .collect();
        for (r, l) in sets.iter().enumerate() {
            let ids = idx.postings.add_interned(r as SeriesRef, l);
            idx.series.push(Some(Arc::new(MemSeries {
                ids,
                wal_id: r as u64,
                logged: AtomicBool::new(true),
                data: Mutex::new(SeriesData::new()),
            })));
            // Pretend all three collide on hash 7.
            idx.insert_hash(7, r as SeriesRef);
        }
        for l in &sets {
            assert_eq!(idx.find(l, 7).map(|s| idx.labels(s)).as_ref(), Some(l));
        }
        idx.remove_hash(7, 0);
        assert!(idx.find(&sets[0], 7).is_none());
        assert!(idx.find(&sets[1], 7).is_some() && idx.find(&sets[2], 7).is_some());
        idx.remove_hash(7, 2);
        idx.remove_hash(7, 1);
        assert!(idx.by_hash.is_empty() && idx.collisions.is_empty());
    }

    fn head(window: i64) -> Head {
        Head::new(HeadOptions {
            block_range_ms: 7_200_000,
            out_of_order_window_ms: window,
        })
    }

    fn add(h: &Head, l: &Labels, t: i64, v: f64) -> Verdict {
        let s = h.get_or_create(l, l.stable_hash());
        h.commit(&s, t, Value::Float(v.to_bits()))
    }

    #[test]
    fn in_order_duplicates_and_out_of_order() {
        let h = head(0);
        let l = Labels::new([("__name__", "m")]).unwrap();
        assert_eq!(add(&h, &l, 1000, 1.0), Verdict::Append);
        assert_eq!(add(&h, &l, 2000, 2.0), Verdict::Append);
        assert_eq!(add(&h, &l, 2000, 2.0), Verdict::Duplicate);
        assert_eq!(
            add(&h, &l, 2000, 3.0),
            Verdict::Reject(Rejection::DuplicateTimestamp)
        );
        assert_eq!(
            add(&h, &l, 1500, 3.0),
            Verdict::Reject(Rejection::OutOfOrder)
        );
        let got = h.select(&[Matcher::equal("__name__", "m")], 0, 10_000);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].samples().collect::<Vec<_>>(),
            [(1000, 1.0), (2000, 2.0)]
        );
    }

    #[test]
    fn out_of_order_window_accepts_and_merges() {
        let h = head(10_000);
        let l = Labels::new([("__name__", "m")]).unwrap();
        for t in [10_000, 20_000, 30_000] {
            assert_eq!(add(&h, &l, t, t as f64), Verdict::Append);
        }
        assert_eq!(add(&h, &l, 25_000, 25.0), Verdict::OutOfOrder);
        assert_eq!(add(&h, &l, 25_000, 25.0), Verdict::Duplicate);
        assert_eq!(
            add(&h, &l, 25_000, 26.0),
            Verdict::Reject(Rejection::DuplicateTimestamp)
        );
        assert_eq!(
            add(&h, &l, 19_000, 1.0),
            Verdict::Reject(Rejection::OutOfOrder)
        );
        let got = h.select(&[Matcher::equal("__name__", "m")], 15_000, 30_000);
        let ts: Vec<i64> = got[0].samples().map(|s| s.0).collect();
        assert_eq!(ts, [20_000, 25_000, 30_000]);
    }

    #[test]
    fn chunks_cut_by_count_and_block_boundary() {
        let h = head(0);
        let l = Labels::new([("__name__", "m")]).unwrap();
        // 300 samples every 15 s, then a jump past a block boundary.
        for i in 0..300 {
            add(&h, &l, i * 15_000, i as f64);
        }
        add(&h, &l, 7_200_000, 1.0);
        let s = h.get(&l, l.stable_hash()).unwrap();
        let d = s.data.lock();
        let sizes: Vec<usize> = d
            .closed
            .iter()
            .map(|c| crate::chunk::chunk_len(&c.bytes))
            .collect();
        assert_eq!(sizes, [120, 120, 60]);
        assert_eq!(d.open.len(), 1);
        assert!(d.closed.iter().all(|c| c.max_t < 7_200_000));
        drop(d);
        let all = h.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX);
        assert_eq!(all[0].samples().count(), 301);
        // A range inside one chunk.
        let part = h.select(&[Matcher::equal("__name__", "m")], 15_000, 45_000);
        assert_eq!(
            part[0].samples().map(|s| s.0).collect::<Vec<_>>(),
            [15_000, 30_000, 45_000]
        );
    }

    #[test]
    fn label_queries_respect_matchers_and_time() {
        let h = head(0);
        let a = Labels::new([("__name__", "up"), ("job", "a")]).unwrap();
        let b = Labels::new([("__name__", "up"), ("job", "b"), ("zone", "z")]).unwrap();
        let c = Labels::new([("__name__", "other"), ("x", "1")]).unwrap();
        add(&h, &a, 1000, 1.0);
        add(&h, &b, 5000, 1.0);
        add(&h, &c, 1000, 1.0);
        assert_eq!(
            h.label_names(&[], 0, 10_000),
            ["__name__", "job", "x", "zone"]
        );
        assert_eq!(
            h.label_names(&[], 4000, 10_000),
            ["__name__", "job", "zone"]
        );
        let up = [Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()];
        assert_eq!(h.label_names(&up, 0, 10_000), ["__name__", "job", "zone"]);
        assert_eq!(h.label_values("job", &up, 0, 2000), ["a"]);
        assert_eq!(h.label_values("job", &[], 0, 10_000), ["a", "b"]);
        assert!(h.label_values("nope", &[], 0, 10_000).is_empty());
    }

    /// Series keep their labels as interned pair ids: a truncation frees the ids of pairs no
    /// live series carries, and a new series reusing them must not change what the
    /// survivors' labels read back as.
    #[test]
    fn truncated_series_free_their_pairs_and_survivors_keep_their_labels() {
        let h = head(0);
        let a = Labels::new([("__name__", "m"), ("job", "a")]).unwrap();
        let b = Labels::new([("__name__", "m"), ("job", "b")]).unwrap();
        add(&h, &a, 1000, 1.0);
        add(&h, &b, 1000, 2.0);
        add(&h, &b, 9_000_000, 2.0);
        assert_eq!(h.truncate(7_200_000), 1);
        assert!(h.get(&a, a.stable_hash()).is_none());
        assert_eq!(h.cardinality(10).num_label_pairs, 2, "job=a is gone");
        // job="c" takes the id job="a" had.
        let c = Labels::new([("__name__", "m"), ("job", "c"), ("zone", "z")]).unwrap();
        add(&h, &c, 9_000_001, 3.0);
        let sb = h.get(&b, b.stable_hash()).unwrap();
        assert_eq!(h.labels_of(&sb), b);
        let all = |h: &Head| -> Vec<Labels> {
            h.select(&[Matcher::equal("__name__", "m")], 0, i64::MAX)
                .into_iter()
                .map(|s| s.labels)
                .collect()
        };
        assert_eq!(all(&h), [b.clone(), c.clone()]);
        assert_eq!(h.label_values("job", &[], 0, i64::MAX), ["b", "c"]);
        let up = [Matcher::equal("zone", "z")];
        assert_eq!(
            h.label_names(&up, 9_000_000, i64::MAX),
            ["__name__", "job", "zone"]
        );
        assert_eq!(h.label_values("job", &up, 9_000_000, i64::MAX), ["c"]);
        add(&h, &a, 9_000_002, 4.0);
        assert_eq!(all(&h), [a.clone(), b.clone(), c.clone()]);
        let blocks: Vec<Labels> = h.data_before(i64::MAX).into_iter().map(|d| d.0).collect();
        assert_eq!(blocks, [a, b, c]);
    }

    /// Start timestamps and histograms share one boxed pointer, so a series that never has
    /// either costs what it did before them (the head's memory is its series).
    #[test]
    fn series_without_start_timestamps_do_not_grow() {
        assert_eq!(std::mem::size_of::<SeriesData>(), 136);
        let h = head(0);
        let l = Labels::new([("__name__", "m")]).unwrap();
        let s = h.get_or_create(&l, l.stable_hash());
        h.commit(&s, 1000, Value::Float(1.0f64.to_bits()));
        assert!(s.data.lock().aux.is_none());
        h.commit_st(&s, 2000, Value::Float(2.0f64.to_bits()), 1500);
        h.commit(&s, 3000, Value::Float(3.0f64.to_bits()));
        let got = h.select(&[Matcher::equal("__name__", "m")], 0, 10_000);
        assert_eq!(got[0].start_timestamps(), [(2000, 1500)]);
        assert_eq!(s.all_start_timestamps().unwrap(), [(2000, 1500)]);
    }

    #[test]
    fn out_of_bounds_after_min_valid_time() {
        let h = head(0);
        let l = Labels::new([("__name__", "m")]).unwrap();
        h.set_min_valid_time(5000);
        assert_eq!(
            add(&h, &l, 4999, 1.0),
            Verdict::Reject(Rejection::OutOfBounds)
        );
        assert_eq!(add(&h, &l, 5000, 1.0), Verdict::Append);
    }
}
