//! Lookout's time-series database: where metrics live.
//!
//! This crate is our own code on purpose: storage is the product (see STYLE.md, "own the
//! core"). It holds the pieces Prometheus's TSDB has, written from their published
//! descriptions: sorted label sets naming series (`model::labels`, shared with the receivers), Gorilla-style compressed chunks
//! in the head ([`chunk`]) and denser packed chunks (decimal mantissas, bit-packed deltas) in
//! blocks and WAL checkpoints ([`packed`]), an inverted index of postings per label pair with Prometheus's matcher
//! semantics ([`index`]), an in-memory head fed WAL-first through the shared `wal` crate
//! ([`head`], [`Tsdb`]), immutable on-disk blocks with compaction and retention ([`block`]),
//! and the [`Querier`] trait the PromQL engine evaluates over.
//!
//! On disk, `dir/wal/` holds the WAL segments (self-contained sample records) and
//! `dir/blocks/<mint>_<maxt>.block` one file per block. The life of a sample: validated
//! against its series, written to the WAL, appended to the head's open chunk; once the head
//! spans 1.5 block ranges its oldest range is written as a block and dropped from the head,
//! the head's remaining samples are checkpointed into the WAL as packed chunks, and the
//! segments before that checkpoint are deleted; settled blocks are merged into 3x and 9x ranges;
//! blocks older than the retention (or past the size limit) are deleted.
//!
//! Storage crates never see HTTP or wire formats: callers hand in validated [`Labels`] and
//! samples and get typed errors back ([`TsdbError`], whose sample rejections use
//! Prometheus's wording so API layers can pass them on).
//!
//! Native histograms (`model::histogram::FloatHistogram`) are samples like floats: a series
//! holds one sample per timestamp, float or histogram, and may switch between them (the
//! switch closes the open chunk). They live in their own chunks ([`histchunk`]) in the head,
//! WAL checkpoints and blocks, and in version-5 WAL records; [`Querier`] hands them out
//! decoded through `Series::histograms`. Out of order (within the window) they wait beside
//! the out-of-order floats until a block or a checkpoint puts them in order.
//!
//! Start timestamps (OTLP's start time, Prometheus 3's ST) are optional per sample: kept in
//! chunks of their own beside a series' data chunks ([`stchunk`]) in the head, blocks
//! (format 4) and WAL checkpoints, and in version-6 WAL records, so series without any pay
//! nothing; [`Querier`] hands them out through `Series::start_timestamps`. Out-of-order
//! samples do not keep theirs yet.
//!
//! The head holds each series' labels as ids of label pairs interned in its postings
//! ([`index::Postings`]), so a string such as `job="node"` is stored once, not once per
//! series.
//!
//! Not here yet: memory limits with back-pressure; compaction of blocks written out of
//! order (out-of-order samples older than the head's range are rejected as out of bounds).

pub mod block;
pub mod chunk;
mod codec;
mod db;
pub mod head;
pub mod histchunk;
pub mod index;
pub mod packed;
pub mod querier;
pub mod stchunk;

pub use db::{
    AppendReport, AppendValue, MaintenanceReport, SampleRejection, SampleValue, Tsdb, TsdbConfig,
    TsdbStats, WithStart, MAX_LISTED_REJECTIONS,
};
pub use head::Rejection;
pub use index::{CardinalityStats, MatchOp, Matcher, SeriesRef};
pub use model::labels::{self, Label, LabelError, LabelRef, Labels, LabelsBuilder, METRIC_NAME};
pub use querier::{Querier, Series, SeriesSet, VecQuerier};
pub use wal::{FsyncPolicy, WalOptions};

/// The bit pattern of Prometheus's staleness marker: a NaN that marks a series as gone.
/// Chunks store values as bits, so it survives storage exactly; compare bits, not values
/// (every NaN compares unequal).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Prometheus's staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not some other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Everything that can go wrong in the tsdb.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// A label set was refused.
    #[error(transparent)]
    Label(#[from] model::labels::LabelError),
    /// A regex matcher that does not compile.
    #[error("invalid regular expression {regex:?}: {reason}")]
    InvalidRegex { regex: String, reason: String },
    /// A sample with no labels at all.
    #[error("empty label set: every sample needs at least a metric name")]
    EmptyLabels,
    /// More samples in one append than the configured bound.
    #[error("batch of {len} samples exceeds the bound of {max}; send smaller batches")]
    BatchTooLarge { len: usize, max: usize },
    /// A sample was not stored; `reason` is Prometheus's wording (`out of order sample`,
    /// `duplicate sample for timestamp`, `out of bounds`).
    #[error("{reason}: series {series} at timestamp {timestamp_ms} ({total} samples rejected); send each series' samples in time order, once per timestamp")]
    SampleRejected {
        reason: &'static str,
        series: String,
        timestamp_ms: i64,
        total: usize,
    },
    /// Stored data that does not decode.
    #[error("corrupt {what}: {reason}; move the damaged file away to start without it")]
    Corrupt { what: String, reason: String },
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// A file operation failed.
    #[error("tsdb {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A background task died.
    #[error("tsdb background task failed: {0}")]
    Task(String),
}
