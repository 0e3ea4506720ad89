//! The write-ahead log every Lookout store writes through.
//!
//! SKELETON: the public API below is the contract the stores build on; the bodies are being
//! written by the WAL work item.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Identifies one segment file; ids only grow.
pub type SegmentId = u64;

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: SegmentId,
    pub offset: u64,
}

/// When appended records reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Group commit: every append returns only after an fsync that covers it; concurrent
    /// appends share one fsync. The default.
    Always,
    /// Appends return once written to the OS; a background fsync runs at this interval.
    Interval(Duration),
    /// Never fsync (tests, throwaway data).
    Never,
}

/// WAL settings.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// What went wrong, with the file involved.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write-ahead log {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("write-ahead log is closed")]
    Closed,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalStats {
    pub bytes_written: u64,
    pub records_written: u64,
    pub fsyncs: u64,
    pub segments: u64,
    pub bytes_on_disk: u64,
}

/// An open write-ahead log in one directory.
pub struct Wal {
    _dir: PathBuf,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`. A torn record at the tail of the last
    /// segment (a crash mid-write) is cut off; corruption elsewhere is an error.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        let _ = (dir, opts);
        todo!()
    }

    /// Calls `f` for every record in segments `>= from`, oldest first. Call before appending.
    pub fn replay(
        &self,
        from: SegmentId,
        f: impl FnMut(Position, &[u8]) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let _ = (from, f);
        todo!()
    }

    /// Appends one record; returns once it is durable as the fsync policy says.
    pub async fn append(&self, record: Vec<u8>) -> Result<Position, WalError> {
        let _ = record;
        todo!()
    }

    /// Closes the current segment and starts a new one; every append that completes after
    /// this returns lands in a segment `>=` the returned id.
    pub async fn rotate(&self) -> Result<SegmentId, WalError> {
        todo!()
    }

    /// Deletes every segment whose id is `< before` (their records are safe elsewhere).
    pub fn remove_segments_before(&self, before: SegmentId) -> Result<(), WalError> {
        let _ = before;
        todo!()
    }

    /// Flushes and fsyncs everything appended so far (for shutdown).
    pub async fn sync(&self) -> Result<(), WalError> {
        todo!()
    }

    pub fn stats(&self) -> WalStats {
        todo!()
    }
}
