//! The database: WAL-first appends into the head, replay on open, and the [`Querier`] over
//! everything it holds.
//!
//! Invariants:
//! - An append validates its whole batch against the head first (nothing is written if a
//!   label set is unusable; per-sample rejections are decided before the WAL sees the
//!   batch), then writes one WAL record with the accepted samples, then applies them to the
//!   head. It holds the `cut` read guard across the WAL append and the head apply, so a
//!   head cut (which takes the write guard) never sees a sample that is in the WAL but not
//!   yet in the head.
//! - Replay applies records in WAL order with the same rules as live appends, so whatever
//!   was acknowledged comes back. Two concurrent batches writing the same series may apply
//!   in a different order than their WAL records; a sample that lost that race is dropped
//!   live, and replay keeps at least every sample that was acknowledged as stored.
//! - After head cuts, the head's samples are checkpointed into the WAL and the segments
//!   before the cuts' definitions checkpoint are deleted: what they held is in blocks (older
//!   than the cut) or in that checkpoint. Replay applies checkpoint records before live
//!   records, so live records written while the checkpoint was being written (appends do
//!   not wait for it) repeat or follow what the checkpoint holds for their series.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::histogram::FloatHistogram;
use parking_lot::{Mutex, RwLock};
use wal::{SegmentId, Wal, WalOptions};

use crate::block::{self, Block};
use crate::codec;
use crate::head::{Head, HeadOptions, MemSeries, Rejection, Value, Verdict};
use crate::index::Matcher;
use crate::querier::{Querier, Series, SeriesSet};
use crate::stchunk;
use crate::{Labels, TsdbError};

/// Settings of a [`Tsdb`].
#[derive(Clone, Debug)]
pub struct TsdbConfig {
    /// The database directory; the WAL lives in `dir/wal`.
    pub dir: PathBuf,
    /// WAL settings (fsync policy, segment size).
    pub wal: WalOptions,
    /// Data older than this (relative to the newest sample) is deleted. Default 15 days.
    pub retention: Duration,
    /// How far behind a series' newest sample a sample may arrive and still be stored.
    /// Zero (the default) rejects every out-of-order sample, as Prometheus does by default.
    pub out_of_order_window: Duration,
    /// Width of a block (and the boundary no chunk straddles). Default 2 hours.
    pub block_range: Duration,
    /// Most samples one append may carry.
    pub max_batch_samples: usize,
    /// When set, the oldest blocks are deleted while all blocks take more bytes than this.
    pub max_block_bytes: Option<u64>,
    /// Samples more than this ahead of the wall clock are rejected as out of bounds: one
    /// sample from a broken clock would otherwise move the head's time far ahead, cut
    /// everything into blocks and let retention delete it. Default 1 hour.
    pub max_future: Duration,
}

impl TsdbConfig {
    /// Defaults: 15 days of retention, no out-of-order window, 2 h blocks, group-commit WAL.
    pub fn new(dir: impl Into<PathBuf>) -> TsdbConfig {
        TsdbConfig {
            dir: dir.into(),
            wal: WalOptions::default(),
            retention: Duration::from_secs(15 * 24 * 3600),
            out_of_order_window: Duration::ZERO,
            block_range: Duration::from_secs(2 * 3600),
            max_batch_samples: 1_000_000,
            max_block_bytes: None,
            max_future: Duration::from_secs(3600),
        }
    }
}

/// A sample value of a batch that may hold native histograms ([`Tsdb::append_values`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    /// A float sample (the staleness marker included).
    Float(f64),
    /// A native histogram; the caller has checked it with
    /// [`FloatHistogram::validate`], since readers rely on its invariants.
    Histogram(Arc<FloatHistogram>),
}

/// What an append batch's values can be: plain `f64` (the common, float-only batch) or
/// [`SampleValue`]. Generic so the float-only path pays nothing for histograms.
pub trait AppendValue {
    /// The value as the head judges it.
    fn value(&self) -> Value<'_>;

    /// The sample's start timestamp in ms (0 for none, as for most samples).
    #[inline]
    fn start_ms(&self) -> i64 {
        0
    }
}

/// A value with a start timestamp (ms; 0 for none): when the counting behind a cumulative
/// or delta sample began, as OTLP's `start_time_unix_nano` says ([`Tsdb::append_values`]
/// takes these through [`Tsdb::append_with_start`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WithStart<V> {
    /// The value.
    pub value: V,
    /// Start timestamp, Unix ms; 0 for none.
    pub start_ms: i64,
}

impl<V: AppendValue> AppendValue for WithStart<V> {
    #[inline]
    fn value(&self) -> Value<'_> {
        self.value.value()
    }

    #[inline]
    fn start_ms(&self) -> i64 {
        self.start_ms
    }
}

impl AppendValue for f64 {
    #[inline]
    fn value(&self) -> Value<'_> {
        Value::Float(self.to_bits())
    }
}

impl AppendValue for SampleValue {
    #[inline]
    fn value(&self) -> Value<'_> {
        match self {
            SampleValue::Float(v) => Value::Float(v.to_bits()),
            SampleValue::Histogram(h) => Value::Histogram(h),
        }
    }
}

/// One sample that was not stored, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRejection {
    /// The series.
    pub labels: Labels,
    /// The sample's timestamp (ms).
    pub timestamp_ms: i64,
    /// Why.
    pub reason: Rejection,
}

/// How many rejections an [`AppendReport`] lists in full.
pub const MAX_LISTED_REJECTIONS: usize = 10;

/// What an append did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendReport {
    /// Samples stored.
    pub appended: usize,
    /// Exact re-sends of stored samples, ignored without error (as Prometheus does).
    pub duplicates_ignored: usize,
    /// Samples rejected as out of order.
    pub out_of_order: usize,
    /// Samples rejected for a different value at an existing timestamp.
    pub duplicate_timestamp: usize,
    /// Samples rejected as older than the head accepts.
    pub out_of_bounds: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] rejections.
    pub rejections: Vec<SampleRejection>,
}

impl AppendReport {
    /// Number of samples not stored because of an error.
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicate_timestamp + self.out_of_bounds
    }

    /// The first rejection as an error (the answer a remote_write handler gives), if any.
    pub fn first_error(&self) -> Option<TsdbError> {
        self.rejections.first().map(|r| TsdbError::SampleRejected {
            reason: r.reason.prometheus_message(),
            series: r.labels.to_string(),
            timestamp_ms: r.timestamp_ms,
            total: self.rejected(),
        })
    }

    fn count(&mut self, labels: &Labels, t: i64, verdict: Verdict) {
        match verdict {
            Verdict::Append | Verdict::OutOfOrder => self.appended += 1,
            Verdict::Duplicate => self.duplicates_ignored += 1,
            Verdict::Reject(r) => {
                match r {
                    Rejection::OutOfOrder => self.out_of_order += 1,
                    Rejection::DuplicateTimestamp => self.duplicate_timestamp += 1,
                    Rejection::OutOfBounds => self.out_of_bounds += 1,
                }
                if self.rejections.len() < MAX_LISTED_REJECTIONS {
                    self.rejections.push(SampleRejection {
                        labels: labels.clone(),
                        timestamp_ms: t,
                        reason: r,
                    });
                }
            }
        }
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsdbStats {
    /// Series in the head.
    pub head_series: usize,
    /// Samples appended to the head since open (replay included).
    pub head_samples: u64,
    /// Samples rejected since open, by any reason.
    pub rejected_samples: u64,
    /// Native histogram samples appended to the head since open (counted in
    /// `head_samples` too).
    pub head_histogram_samples: u64,
    /// Native histogram samples rejected since open (counted in `rejected_samples` too).
    pub rejected_histogram_samples: u64,
    /// Out-of-order samples rejected since open.
    pub out_of_order_samples: u64,
    /// WAL records replayed at open.
    pub replayed_records: u64,
}

/// What one [`Tsdb::maintain`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Blocks written from the head.
    pub blocks_written: usize,
    /// Blocks deleted by retention.
    pub blocks_deleted: usize,
    /// Blocks merged into larger ones by compaction.
    pub blocks_compacted: usize,
    /// Head series dropped because all their samples moved to blocks.
    pub series_removed: usize,
}

/// The time-series database.
pub struct Tsdb {
    cfg: TsdbConfig,
    wal: Wal,
    cut: tokio::sync::RwLock<()>,
    head: Arc<Head>,
    /// Open blocks, oldest first; queries clone the list of `Arc`s.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Newest sample timestamp in each WAL segment: a segment may be deleted once every
    /// sample in it (and in the segments before it) is in a block.
    segment_max_t: Mutex<BTreeMap<SegmentId, i64>>,
    /// The segment holding the latest checkpoint (every live series' definition); segments
    /// from it on are never deleted, so every live series stays defined in the log.
    checkpoint_segment: AtomicU64,
    /// One maintenance at a time.
    maintenance: tokio::sync::Mutex<()>,
    rejected: AtomicU64,
    rejected_histograms: AtomicU64,
    out_of_order: AtomicU64,
    replayed: u64,
}

impl std::fmt::Debug for Tsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsdb")
            .field("dir", &self.cfg.dir)
            .finish_non_exhaustive()
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes: passes them through.
#[derive(Default)]
struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so it still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Tsdb {
    /// Opens (creating) the database in `cfg.dir` and replays its WAL.
    ///
    /// Replay reads the whole log synchronously; call it from a blocking context or at
    /// start-up before serving.
    pub fn open(cfg: TsdbConfig) -> Result<Tsdb, TsdbError> {
        let block_range_ms = ms(cfg.block_range).max(1);
        let head = Arc::new(Head::new(HeadOptions {
            block_range_ms,
            out_of_order_window_ms: ms(cfg.out_of_order_window),
        }));
        let blocks = block::open_all(&cfg.dir.join("blocks"))?;
        // Samples of ranges already in blocks are out of bounds, in replay as in appends.
        if let Some(maxt) = blocks.iter().map(|b| b.maxt).max() {
            head.set_min_valid_time(maxt);
        }
        let wal = Wal::open(&cfg.dir.join("wal"), cfg.wal.clone())?;
        let wal_dir = cfg.dir.join("wal");
        let corrupt = |e: TsdbError, slot: &mut Option<TsdbError>| {
            *slot = Some(e);
            wal::WalError::Corrupt {
                path: wal_dir.clone(),
                offset: 0,
                reason: "undecodable tsdb record".to_string(),
            }
        };
        // Pass 1: series definitions. A sample record may precede the checkpoint that
        // defines its series again after older segments were deleted, so definitions are
        // collected from the whole log before any sample is applied.
        let is_checkpoint = |rec: &[u8]| rec.first() == Some(&codec::WAL_CHECKPOINT_SAMPLES);
        let mut by_id: HashMap<u64, Arc<MemSeries>> = HashMap::new();
        let mut decode_err = None;
        wal.replay(0, |_pos, rec| {
            if is_checkpoint(rec) {
                return Ok(());
            }
            match codec::decode_record(rec) {
                Ok(r) => {
                    for (id, labels) in r.defs {
                        let s = head.get_or_create_with_id(&labels, labels.stable_hash(), Some(id));
                        by_id.insert(id, s);
                    }
                    Ok(())
                }
                Err(e) => Err(corrupt(e, &mut decode_err)),
            }
        })
        .map_err(|e| decode_err.take().unwrap_or(TsdbError::Wal(e)))?;
        // Pass 2: checkpoints of head samples, then pass 3: live records, each in log order
        // and with the same rules as live appends. A checkpoint holds the head's samples as
        // they were after a cut, so it goes first: live records after it are newer, and a
        // live record before it (a segment not deleted yet) holds either a sample the
        // checkpoint repeats (a duplicate, ignored) or one already in a block (out of
        // bounds).
        let mut replayed = 0u64;
        let mut unknown = 0u64;
        let mut segment_max_t = BTreeMap::new();
        for checkpoints in [true, false] {
            wal.replay(0, |pos, rec| {
                if is_checkpoint(rec) != checkpoints {
                    return Ok(());
                }
                replayed += 1;
                match codec::decode_record(rec) {
                    Ok(r) => {
                        let newest = r.samples.iter().map(|s| s.1).max().unwrap_or(i64::MIN);
                        let e = segment_max_t.entry(pos.segment).or_insert(i64::MIN);
                        *e = newest.max(*e);
                        for (i, (id, t, v)) in r.samples.into_iter().enumerate() {
                            match by_id.get(&id) {
                                Some(s) => {
                                    let st = r.sts.get(i).copied().unwrap_or(0);
                                    head.commit_st(s, t, v.as_value(), st);
                                }
                                // Only a series dropped from the head (all its samples in
                                // blocks) loses its definition with deleted segments; its
                                // samples here are older than the blocks' end and would be
                                // out of bounds.
                                None => unknown += 1,
                            }
                        }
                        Ok(())
                    }
                    Err(e) => Err(corrupt(e, &mut decode_err)),
                }
            })
            .map_err(|e| decode_err.take().unwrap_or(TsdbError::Wal(e)))?;
        }
        if unknown > 0 {
            tracing::debug!(
                unknown,
                "tsdb replay skipped samples of series already in blocks"
            );
        }
        // Series defined in the log whose samples all went to blocks hold nothing: drop them.
        head.truncate(head.min_valid_time());
        Ok(Tsdb {
            cfg,
            wal,
            cut: tokio::sync::RwLock::new(()),
            head,
            blocks: RwLock::new(blocks),
            segment_max_t: Mutex::new(segment_max_t),
            checkpoint_segment: AtomicU64::new(0),
            maintenance: tokio::sync::Mutex::new(()),
            rejected: AtomicU64::new(0),
            rejected_histograms: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            replayed,
        })
    }

    /// Stores a batch of samples `(labels, timestamp ms, value)`; returns once the stored
    /// ones are durable in the WAL (as its fsync policy says) and visible to queries.
    ///
    /// An empty label set or a batch over `max_batch_samples` fails the whole batch with
    /// nothing written. Samples that are out of order, out of bounds, or a different value
    /// at an existing timestamp are rejected one by one and counted in the report; the rest
    /// are stored. Exact re-sends are ignored silently, as Prometheus does.
    pub async fn append(
        &self,
        samples: Vec<(Labels, i64, f64)>,
    ) -> Result<AppendReport, TsdbError> {
        self.append_inner(samples, false).await
    }

    /// Like [`Tsdb::append`], but stores nothing when any sample would be rejected: the
    /// report then counts the rejections and `appended` is zero. This is Prometheus's
    /// remote_write contract (one bad sample fails the request, which the sender then
    /// drops), and it keeps a refused request from leaving half its samples behind.
    ///
    /// The check runs before the WAL write; a concurrent batch for the same series that
    /// lands in between can still make single samples fail afterwards, as with `append`.
    pub async fn append_all_or_nothing(
        &self,
        samples: Vec<(Labels, i64, f64)>,
    ) -> Result<AppendReport, TsdbError> {
        self.append_inner(samples, true).await
    }

    /// [`Tsdb::append`] (or, with `all_or_nothing`, [`Tsdb::append_all_or_nothing`]) for a
    /// batch that may hold native histograms. A series holds one sample per timestamp,
    /// float or histogram, and may switch between the two; the verdicts are Prometheus's
    /// for both (a histogram equal to the stored one is a duplicate, a different one at the
    /// same timestamp is refused). Within the out-of-order window histograms are accepted
    /// out of order as floats are, as Prometheus 3 accepts them.
    pub async fn append_values(
        &self,
        samples: Vec<(Labels, i64, SampleValue)>,
        all_or_nothing: bool,
    ) -> Result<AppendReport, TsdbError> {
        self.append_inner(samples, all_or_nothing).await
    }

    /// [`Tsdb::append_values`] for samples with start timestamps: stored beside the
    /// samples (in the WAL, the head and blocks) for PromQL's counter functions. A sample
    /// stored out of order keeps its value but not its start timestamp.
    pub async fn append_with_start(
        &self,
        samples: Vec<(Labels, i64, WithStart<SampleValue>)>,
        all_or_nothing: bool,
    ) -> Result<AppendReport, TsdbError> {
        self.append_inner(samples, all_or_nothing).await
    }

    async fn append_inner<V: AppendValue>(
        &self,
        samples: Vec<(Labels, i64, V)>,
        all_or_nothing: bool,
    ) -> Result<AppendReport, TsdbError> {
        if samples.len() > self.cfg.max_batch_samples {
            return Err(TsdbError::BatchTooLarge {
                len: samples.len(),
                max: self.cfg.max_batch_samples,
            });
        }
        if samples.iter().any(|s| s.0.is_empty()) {
            return Err(TsdbError::EmptyLabels);
        }
        let mut report = AppendReport::default();
        let _cut = self.cut.read().await;

        // 1. Validate the whole batch without changing anything.
        struct Pending {
            idx: usize,
            series: u32,
            verdict: Verdict,
        }
        // Per distinct label set of the batch: its hash, the head's series if it exists, its
        // slot in the record's table (`u32::MAX` until a sample is accepted), and the
        // batch's newest accepted in-order sample. Found through `by_hash` (keyed by the
        // already mixed series hash, so no second hashing of the labels).
        struct BatchSeries<'a> {
            labels: &'a Labels,
            hash: u64,
            series: Option<Arc<MemSeries>>,
            slot: u32,
            last: Option<(i64, Value<'a>)>,
        }
        let mut entries: Vec<BatchSeries<'_>> = Vec::new();
        let mut by_hash: HashMap<u64, Vec<u32>, BuildHasherDefault<PremixedHasher>> =
            HashMap::default();
        let mut table: Vec<u32> = Vec::new();
        let mut accepted: Vec<Pending> = Vec::with_capacity(samples.len());
        let mut hist_rejected = 0u64;
        let newest_allowed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, ms)
            .saturating_add(ms(self.cfg.max_future));
        for (idx, (labels, t, v)) in samples.iter().enumerate() {
            if *t > newest_allowed {
                report.count(labels, *t, Verdict::Reject(Rejection::OutOfBounds));
                continue;
            }
            let v = v.value();
            let hash = labels.stable_hash();
            let candidates = by_hash.entry(hash).or_default();
            let e = match candidates
                .iter()
                .find(|&&e| entries[e as usize].labels == labels)
            {
                Some(&e) => e as usize,
                None => {
                    candidates.push(entries.len() as u32);
                    entries.push(BatchSeries {
                        labels,
                        hash,
                        series: self.head.get(labels, hash),
                        slot: u32::MAX,
                        last: None,
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[e];
            let verdict = self.head.check(entry.series.as_deref(), entry.last, *t, v);
            match verdict {
                Verdict::Append | Verdict::OutOfOrder => {
                    if entry.slot == u32::MAX {
                        entry.slot = table.len() as u32;
                        table.push(e as u32);
                    }
                    if verdict == Verdict::Append {
                        entry.last = Some((*t, v));
                    }
                    accepted.push(Pending {
                        idx,
                        series: entry.slot,
                        verdict,
                    });
                }
                other => {
                    if matches!(other, Verdict::Reject(_)) && v.is_histogram() {
                        hist_rejected += 1;
                    }
                    report.count(labels, *t, other)
                }
            }
        }
        if accepted.is_empty() || (all_or_nothing && report.rejected() > 0) {
            self.rejected_histograms
                .fetch_add(hist_rejected, Ordering::Relaxed);
            self.note_rejections(&report);
            return Ok(report);
        }

        // 2. The WAL. Series are created in the head first so they have WAL ids; a series
        // whose definition is not durable yet is defined in this record (a concurrent batch
        // may define it too, which replay takes as the same series).
        let refs: Vec<Arc<MemSeries>> = table
            .iter()
            .map(|&e| {
                let b = &entries[e as usize];
                match &b.series {
                    Some(s) => s.clone(),
                    None => self.head.get_or_create(b.labels, b.hash),
                }
            })
            .collect();
        // The batch's own label set names each new series (the head keeps interned pairs).
        let defs: Vec<(u64, &Labels)> = refs
            .iter()
            .zip(&table)
            .filter(|(s, _)| !s.logged.load(Ordering::Acquire))
            .map(|(s, &e)| (s.wal_id, entries[e as usize].labels))
            .collect();
        let wal_samples: Vec<(u64, i64, Value<'_>)> = accepted
            .iter()
            .map(|p| {
                let (_, t, v) = &samples[p.idx];
                (refs[p.series as usize].wal_id, *t, v.value())
            })
            .collect();
        let newest = wal_samples.iter().map(|s| s.1).max().unwrap_or(i64::MIN);
        let record = if accepted.iter().any(|p| samples[p.idx].2.start_ms() != 0) {
            let sts: Vec<i64> = accepted
                .iter()
                .map(|p| samples[p.idx].2.start_ms())
                .collect();
            codec::encode_record_values_st(&defs, &wal_samples, &sts)
        } else {
            codec::encode_record_values(&defs, &wal_samples)
        };
        drop(wal_samples);
        let defined = !defs.is_empty();
        drop(defs);
        let pos = self.wal.append(record).await?;
        if defined {
            for s in &refs {
                s.logged.store(true, Ordering::Release);
            }
        }
        {
            let mut seg = self.segment_max_t.lock();
            let e = seg.entry(pos.segment).or_insert(i64::MIN);
            *e = newest.max(*e);
        }

        // 3. The head, checking again against concurrent batches.
        for p in &accepted {
            let (labels, t, sv) = &samples[p.idx];
            let v = sv.value();
            let verdict = self
                .head
                .commit_st(&refs[p.series as usize], *t, v, sv.start_ms());
            if matches!(verdict, Verdict::Reject(_)) && v.is_histogram() {
                hist_rejected += 1;
            }
            debug_assert!(matches!(p.verdict, Verdict::Append | Verdict::OutOfOrder));
            report.count(labels, *t, verdict);
        }
        self.rejected_histograms
            .fetch_add(hist_rejected, Ordering::Relaxed);
        self.note_rejections(&report);
        Ok(report)
    }

    /// Housekeeping the binary runs every minute or so: cuts the head's oldest block range
    /// into a block once the head spans one and a half ranges (Prometheus's rule, which
    /// leaves room for late samples of the newest range), deletes WAL segments whose samples
    /// are all in blocks, and applies retention by age and size.
    pub async fn maintain(&self) -> Result<MaintenanceReport, TsdbError> {
        let _m = self.maintenance.lock().await;
        let mut report = MaintenanceReport::default();
        let range = ms(self.cfg.block_range).max(1);
        while let Some((min_t, max_t)) = self.head.time_range() {
            let mint = min_t.div_euclid(range).saturating_mul(range);
            let maxt = mint.saturating_add(range);
            if max_t < maxt.saturating_add(range / 2) {
                break;
            }
            report.series_removed += self.cut_block(mint, maxt).await?;
            report.blocks_written += 1;
        }
        if report.blocks_written > 0 {
            self.checkpoint_samples().await?;
        }
        report.blocks_compacted = self.compact_blocks().await?;
        report.blocks_deleted = self.apply_retention()?;
        Ok(report)
    }

    /// Merges the blocks of each completed 3x and 9x block range into one block (like
    /// Prometheus's compaction levels, capped at a tenth of the retention): fewer files, one index per series instead of several,
    /// and chunks of a series stored together. A range is complete once the head no longer
    /// accepts samples for it. Returns the number of source blocks merged away.
    async fn compact_blocks(&self) -> Result<usize, TsdbError> {
        let base = ms(self.cfg.block_range).max(1);
        let mut merged = 0;
        for factor in [3i64, 9] {
            let level = base.saturating_mul(factor);
            // As in Prometheus, no block spans more than a tenth of the retention, so
            // retention still deletes data in small steps.
            if level > ms(self.cfg.retention) / 10 {
                break;
            }
            // Blocks of one level-range are merged only when the whole range is settled.
            let settled = self.head.min_valid_time();
            loop {
                let group: Option<(i64, Vec<Arc<Block>>)> = {
                    let blocks = self.blocks.read();
                    let mut found = None;
                    let mut i = 0;
                    while i < blocks.len() {
                        let g = blocks[i].mint.div_euclid(level);
                        let members: Vec<Arc<Block>> = blocks[i..]
                            .iter()
                            .take_while(|b| b.mint.div_euclid(level) == g)
                            .cloned()
                            .collect();
                        i += members.len();
                        let (gmin, gmax) = (
                            g.saturating_mul(level),
                            g.saturating_mul(level).saturating_add(level),
                        );
                        if members.len() > 1
                            && members.iter().all(|b| b.maxt <= gmax)
                            && gmax <= settled
                        {
                            found = Some((gmin, members));
                            break;
                        }
                    }
                    found
                };
                let Some((gmin, members)) = group else { break };
                let dir = self.cfg.dir.join("blocks");
                let sources = members.clone();
                let block = tokio::task::spawn_blocking(move || {
                    block::compact(&dir, gmin, gmin.saturating_add(level), &sources)
                })
                .await
                .map_err(|e| TsdbError::Task(e.to_string()))??;
                {
                    let mut blocks = self.blocks.write();
                    blocks.retain(|b| !members.iter().any(|m| Arc::ptr_eq(m, b)));
                    blocks.push(Arc::new(block));
                    blocks.sort_by_key(|b| b.mint);
                }
                for m in &members {
                    // Queries still holding a source keep reading the unlinked file.
                    std::fs::remove_file(m.path()).map_err(|source| TsdbError::Io {
                        path: m.path().to_path_buf(),
                        source,
                    })?;
                }
                merged += members.len();
            }
        }
        Ok(merged)
    }

    /// Writes the head's samples of `[mint, maxt)` to a block, then drops them from the head
    /// and the WAL. Returns the number of head series removed.
    async fn cut_block(&self, mint: i64, maxt: i64) -> Result<usize, TsdbError> {
        {
            // From here on samples before `maxt` are out of bounds; the write guard waits for
            // appends that validated against the old bound, so none of them can add such a
            // sample later. Rotating closes the segment so it can be deleted once covered.
            let _cut = self.cut.write().await;
            self.head.set_min_valid_time(maxt);
            self.wal.rotate().await?;
            self.write_checkpoint().await?;
        }
        let data = self.head.data_before(maxt);
        let dir = self.cfg.dir.join("blocks");
        let block = tokio::task::spawn_blocking(move || block::write_block(&dir, mint, maxt, data))
            .await
            .map_err(|e| TsdbError::Task(e.to_string()))??;
        // The block is durable. Publish it and drop the same samples from the head under the
        // write guard, so queries see them in exactly one place and no append is mid-flight.
        let removed = {
            let _cut = self.cut.write().await;
            // Queries read the block list and the head under the list's read lock, so they
            // see the range either in the head or in the block, never in neither or both.
            let mut blocks = self.blocks.write();
            blocks.push(Arc::new(block));
            self.head.truncate(maxt)
        };
        self.remove_covered_segments(maxt)?;
        Ok(removed)
    }

    /// Writes the definition of every live series to the WAL (in records under the size
    /// bound) and remembers the segment it starts in. The caller holds the cut write guard,
    /// so no append is between its series creation and its WAL record.
    async fn write_checkpoint(&self) -> Result<(), TsdbError> {
        const PER_RECORD: usize = 50_000;
        let series = self.head.all_series();
        let mut first = None;
        for part in series.chunks(PER_RECORD) {
            let labels = self.head.labels_of_many(part);
            let defs: Vec<(u64, &Labels)> = part.iter().map(|s| s.wal_id).zip(&labels).collect();
            let pos = self.wal.append(codec::encode_record(&defs, &[])).await?;
            first.get_or_insert(pos.segment);
            for s in part {
                s.logged.store(true, Ordering::Release);
            }
        }
        let seg = first.unwrap_or_else(|| self.wal.current_segment());
        self.checkpoint_segment.store(seg, Ordering::Release);
        Ok(())
    }

    /// Writes every head sample to the WAL as checkpoint records of packed chunks, then
    /// deletes the segments before the latest definitions checkpoint. Called after head cuts:
    /// what those segments hold is then either in a block (older than the cut) or in this
    /// checkpoint (the head's samples, written after the head was truncated), so the WAL
    /// keeps about a byte per head sample instead of whole segments of live records.
    /// Appends go on meanwhile; replay applies checkpoints before live records.
    async fn checkpoint_samples(&self) -> Result<(), TsdbError> {
        /// Series encoded per blocking task, and the size a record is flushed at.
        const SERIES_PER_TASK: usize = 4096;
        const RECORD_BYTES: usize = 4 << 20;
        let upto = self.checkpoint_segment.load(Ordering::Acquire);
        let series = self.head.all_series();
        for part in series.chunks(SERIES_PER_TASK) {
            let part = part.to_vec();
            let records = tokio::task::spawn_blocking(move || {
                let mut records = Vec::new();
                let mut rec = codec::checkpoint_record();
                for s in &part {
                    // Start timestamps first: decoding attaches them to the samples after.
                    let sts = s.all_start_timestamps()?;
                    if !sts.is_empty() {
                        codec::put_checkpoint_chunk(&mut rec, s.wal_id, &stchunk::encode(&sts));
                    }
                    for chunk in checkpoint_chunks(&s.all_samples(), &s.all_histograms()?) {
                        codec::put_checkpoint_chunk(&mut rec, s.wal_id, &chunk);
                    }
                    if rec.len() >= RECORD_BYTES {
                        records.push(std::mem::replace(&mut rec, codec::checkpoint_record()));
                    }
                }
                if rec.len() > 1 {
                    records.push(rec);
                }
                Ok::<_, TsdbError>(records)
            })
            .await
            .map_err(|e| TsdbError::Task(e.to_string()))??;
            for rec in records {
                self.wal.append(rec).await?;
            }
        }
        // Durable whatever the fsync policy, before anything it replaces is deleted.
        self.wal.sync().await?;
        if upto > 0 {
            self.segment_max_t.lock().retain(|&id, _| id >= upto);
            self.wal.remove_segments_before(upto)?;
        }
        Ok(())
    }

    /// Deletes the oldest WAL segments while every sample in them is older than `covered`.
    fn remove_covered_segments(&self, covered: i64) -> Result<(), TsdbError> {
        // Never past the latest checkpoint: it defines every live series.
        let current = self
            .wal
            .current_segment()
            .min(self.checkpoint_segment.load(Ordering::Acquire));
        let before = {
            let mut seg = self.segment_max_t.lock();
            let mut before = None;
            for (&id, &newest) in seg.iter() {
                if id >= current || newest >= covered {
                    break;
                }
                before = Some(id + 1);
            }
            if let Some(b) = before {
                *seg = seg.split_off(&b);
            }
            before
        };
        if let Some(b) = before {
            self.wal.remove_segments_before(b)?;
        }
        Ok(())
    }

    /// Deletes blocks past the retention age (relative to the newest sample) or the size
    /// limit, oldest first.
    fn apply_retention(&self) -> Result<usize, TsdbError> {
        let doomed: Vec<Arc<Block>> = {
            let mut blocks = self.blocks.write();
            let newest = blocks
                .iter()
                .map(|b| b.maxt)
                .chain(self.head.time_range().map(|r| r.1))
                .max()
                .unwrap_or(i64::MIN);
            let oldest_kept = newest.saturating_sub(ms(self.cfg.retention));
            let mut total: u64 = blocks.iter().map(|b| b.bytes).sum();
            let mut n = 0;
            while n < blocks.len() {
                let b = &blocks[n];
                let too_old = b.maxt <= oldest_kept;
                let too_big = self.cfg.max_block_bytes.is_some_and(|max| total > max);
                if !(too_old || too_big) {
                    break;
                }
                total -= b.bytes;
                n += 1;
            }
            blocks.drain(..n).collect()
        };
        for b in &doomed {
            // Queries still holding the block keep reading the unlinked file.
            std::fs::remove_file(b.path()).map_err(|source| TsdbError::Io {
                path: b.path().to_path_buf(),
                source,
            })?;
        }
        Ok(doomed.len())
    }

    /// Open blocks, oldest first: `(mint, maxt, series, bytes)`.
    pub fn blocks(&self) -> Vec<(i64, i64, usize, u64)> {
        self.blocks
            .read()
            .iter()
            .map(|b| (b.mint, b.maxt, b.num_series(), b.bytes))
            .collect()
    }

    fn note_rejections(&self, r: &AppendReport) {
        self.rejected
            .fetch_add(r.rejected() as u64, Ordering::Relaxed);
        self.out_of_order
            .fetch_add(r.out_of_order as u64, Ordering::Relaxed);
    }

    /// Flushes the WAL (for shutdown; appends are already durable under the default policy).
    pub async fn sync(&self) -> Result<(), TsdbError> {
        Ok(self.wal.sync().await?)
    }

    /// Counters since open.
    pub fn stats(&self) -> TsdbStats {
        TsdbStats {
            head_series: self.head.num_series(),
            head_samples: self.head.num_samples(),
            rejected_samples: self.rejected.load(Ordering::Relaxed),
            head_histogram_samples: self.head.num_histogram_samples(),
            rejected_histogram_samples: self.rejected_histograms.load(Ordering::Relaxed),
            out_of_order_samples: self.out_of_order.load(Ordering::Relaxed),
            replayed_records: self.replayed,
        }
    }

    /// Cardinality of the head, each list cut to `limit` entries (Prometheus's
    /// `/api/v1/status/tsdb` reports the head the same way).
    pub fn head_cardinality(&self, limit: usize) -> crate::index::CardinalityStats {
        self.head.cardinality(limit)
    }

    /// Oldest and newest sample timestamps in the head, if it holds any.
    pub fn head_time_range(&self) -> Option<(i64, i64)> {
        self.head.time_range()
    }

    /// Chunks in the head (walks every series: for status pages).
    pub fn head_chunks(&self) -> usize {
        self.head.num_chunks()
    }

    /// The WAL's counters.
    pub fn wal_stats(&self) -> wal::WalStats {
        self.wal.stats()
    }
}

/// A series' samples as checkpoint chunks in time order: packed float chunks and histogram
/// chunks, one run of each kind after the other as the series switched, so replaying them in
/// order appends every sample in order.
fn checkpoint_chunks(floats: &[(i64, f64)], hists: &[(i64, Arc<FloatHistogram>)]) -> Vec<Vec<u8>> {
    /// Histogram checkpoint chunks stay well under the WAL's record bound.
    const HIST_CHUNK_BYTES: usize = 1 << 20;
    let mut out = Vec::new();
    let (mut f, mut h) = (floats, hists);
    while !f.is_empty() || !h.is_empty() {
        let float_first = match (f.first(), h.first()) {
            (Some(a), Some(b)) => a.0 < b.0,
            (a, _) => a.is_some(),
        };
        if float_first {
            let next_h = h.first().map_or(i64::MAX, |x| x.0);
            let n = f.partition_point(|x| x.0 < next_h);
            for run in f[..n].chunks(crate::packed::MAX_PACKED_SAMPLES) {
                out.push(crate::packed::encode_best(run));
            }
            f = &f[n..];
        } else {
            let next_f = f.first().map_or(i64::MAX, |x| x.0);
            // At least one, so a (never written) float and histogram at the same timestamp
            // cannot stall the loop.
            let n = h.partition_point(|x| x.0 < next_f).max(1);
            for (_, _, bytes) in
                crate::histchunk::encode_chunks(&h[..n], usize::from(u16::MAX), HIST_CHUNK_BYTES)
            {
                out.push(bytes);
            }
            h = &h[n..];
        }
    }
    out
}

impl Querier for Tsdb {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<SeriesSet, TsdbError> {
        // One consistent view: the block list and the head's data together (a cut publishes
        // its block and truncates the head under the list's write lock). Block chunks are
        // read after the lock is released.
        let (blocks, head) = {
            let list = self.blocks.read();
            (list.clone(), self.head.select(matchers, start_ms, end_ms))
        };
        let mut parts: Vec<Vec<Series>> = Vec::with_capacity(blocks.len() + 1);
        for b in &blocks {
            parts.push(b.select(matchers, start_ms, end_ms)?);
        }
        parts.push(head);
        if parts.iter().filter(|p| !p.is_empty()).count() <= 1 {
            let only = parts
                .into_iter()
                .find(|p| !p.is_empty())
                .unwrap_or_default();
            return Ok(only.into_iter());
        }
        // Blocks come oldest first and the head last, so extending in this order keeps each
        // series' chunks in time order.
        let mut merged: BTreeMap<Labels, Series> = BTreeMap::new();
        for part in parts {
            for s in part {
                match merged.get_mut(&s.labels) {
                    Some(m) => m.extend(s),
                    None => {
                        merged.insert(s.labels.clone(), s);
                    }
                }
            }
        }
        Ok(merged.into_values().collect::<Vec<_>>().into_iter())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        let list = self.blocks.read();
        let mut names = self.head.label_names(matchers, start_ms, end_ms);
        for b in list.iter() {
            names.extend(b.label_names(matchers, start_ms, end_ms));
        }
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
        let list = self.blocks.read();
        let mut values = self.head.label_values(name, matchers, start_ms, end_ms);
        for b in list.iter() {
            values.extend(b.label_values(name, matchers, start_ms, end_ms));
        }
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}
