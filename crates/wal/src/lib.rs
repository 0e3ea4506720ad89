//! The write-ahead log every Lookout store writes through.
//!
//! A log is one directory of segment files named by zero-padded id
//! (`00000000000000000001.wal`); the format is in `format.rs`. Opening a log repairs a torn
//! tail of the last segment (a crash mid-write), then starts a fresh segment for appends, so
//! replay only ever reads closed files and never races the writer. Appends go through a
//! dedicated writer thread (`writer.rs`) that batches everything queued into one write and one
//! `fsync` (group commit): the ingest hot path pays for durability once per batch, not once per
//! record. Everything else here is bookkeeping that must stay cheap: statistics are atomics and
//! the list of closed segments is a small map behind a mutex.
//!
//! The intended life cycle of a store is: [`Wal::open`], [`Wal::replay`] from its last
//! checkpoint (before any append), then [`Wal::append`] for every write; to checkpoint,
//! [`Wal::rotate`], persist everything the store holds, then [`Wal::remove_segments_before`]
//! the id that `rotate` returned.

mod direct;
mod format;
mod writer;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

pub use format::MAX_RECORD_BYTES;
use format::{parse_segment_file_name, segment_file_name, ReadError, SegmentReader};

/// Identifies one segment file; ids only grow.
pub type SegmentId = u64;

/// Where a record landed: its segment and the byte offset of its frame in that file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The segment file holding the record.
    pub segment: SegmentId,
    /// Byte offset of the record's frame (its length field) in that file.
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
    /// When appends reach stable storage.
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
    /// The operating system failed a file operation.
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A segment holds bytes that are not a valid header or record (outside the torn tail
    /// that open repairs); move the file away to start without it.
    #[error("write-ahead log {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The writer thread is gone.
    #[error("write-ahead log is closed")]
    Closed,
    /// An append larger than [`MAX_RECORD_BYTES`].
    #[error("write-ahead log record of {len} bytes exceeds the bound of {max} bytes; append smaller batches")]
    TooLarge { len: usize, max: usize },
    /// An earlier write or fsync failed; a failed fsync cannot be retried safely, so the log
    /// refuses everything after it.
    #[error("write-ahead log refuses appends after an earlier failure ({reason}); restart to recover from what is on disk")]
    Failed { reason: String },
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalStats {
    /// Bytes of records written since open, framing included, segment headers excluded.
    pub bytes_written: u64,
    /// Records written since open.
    pub records_written: u64,
    /// Data fsyncs of segment files since open (directory fsyncs are not counted).
    pub fsyncs: u64,
    /// Segment files in the directory, the current one included.
    pub segments: u64,
    /// Total size of all segment files.
    pub bytes_on_disk: u64,
}

/// One operation queued for the writer thread.
pub(crate) enum Op {
    Append {
        header: [u8; format::FRAME_HEADER_LEN as usize],
        record: Bytes,
        /// Filled in by the writer.
        pos: Position,
        tx: oneshot::Sender<Result<Position, WalError>>,
    },
    Rotate {
        /// Filled in by the writer.
        id: SegmentId,
        tx: oneshot::Sender<Result<SegmentId, WalError>>,
    },
    Sync {
        tx: oneshot::Sender<Result<(), WalError>>,
    },
}

impl Op {
    /// Completes the operation with an error.
    fn fail(self, err: impl Fn() -> WalError) {
        match self {
            Op::Append { tx, .. } => {
                let _ = tx.send(Err(err()));
            }
            Op::Rotate { tx, .. } => {
                let _ = tx.send(Err(err()));
            }
            Op::Sync { tx } => {
                let _ = tx.send(Err(err()));
            }
        }
    }
}

/// The queue between appenders and the writer thread.
#[derive(Default)]
pub(crate) struct Queue {
    ops: Vec<Op>,
    /// The writer is waiting on the condition variable; only then is a notify needed.
    writer_idle: bool,
    shutdown: bool,
    /// Set once a write or fsync failed; the reason is repeated to every later caller.
    failed: Option<String>,
}

#[derive(Default)]
pub(crate) struct Counters {
    bytes_written: AtomicU64,
    records_written: AtomicU64,
    fsyncs: AtomicU64,
    segments: AtomicU64,
    bytes_on_disk: AtomicU64,
}

/// State shared by the handle and the writer thread.
pub(crate) struct Shared {
    dir: PathBuf,
    opts: WalOptions,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The segment appends currently go to.
    current: AtomicU64,
    /// Closed segments and their sizes.
    closed: Mutex<BTreeMap<SegmentId, u64>>,
    stats: Counters,
}

impl Shared {
    fn segment_path(&self, id: SegmentId) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }
}

/// Makes creations and removals of files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// An open write-ahead log in one directory.
///
/// Share it between tasks behind an `Arc`; dropping the last handle writes what is queued,
/// fsyncs it (unless the policy is [`FsyncPolicy::Never`]) and stops the writer thread.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// What open found in the last segment.
enum Tail {
    /// Records up to this size are intact.
    Kept(u64),
    /// No records (possibly after cutting a torn tail, or a torn header); delete the file.
    Empty,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`. A torn record at the tail of the last
    /// segment (a crash mid-write) is cut off; corruption elsewhere is an error. Appends go to
    /// a new segment whose id is one past every existing one.
    ///
    /// Open checks the header of every segment and every record of the last one; records of
    /// earlier segments are checked by [`Wal::replay`], which reports corruption as
    /// [`WalError::Corrupt`] naming the file and offset. This way a log is read once at start,
    /// not twice, and segments a store no longer replays are never read at all.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let mut closed = BTreeMap::new();
        let mut doomed = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let path = dir.join(segment_file_name(id));
            if i + 1 == ids.len() {
                match recover_tail(&path)? {
                    Tail::Kept(size) => {
                        closed.insert(id, size);
                    }
                    Tail::Empty => doomed.push(path),
                }
                continue;
            }
            // Opening the reader checks the header.
            SegmentReader::open(&path).map_err(|e| read_error(&path, e))?;
            let size = fs::metadata(&path).map_err(io_err(&path))?.len();
            if size == format::SEGMENT_HEADER_LEN {
                // Rotated without records: worth nothing, and removing it keeps restarts from
                // piling up empty files.
                doomed.push(path);
            } else {
                closed.insert(id, size);
            }
        }

        let current = ids.last().map_or(1, |&id| id + 1);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            current: AtomicU64::new(current),
            closed: Mutex::new(BTreeMap::new()),
            stats: Counters::default(),
        });
        // Create the new segment before deleting empty ones, so a file with the highest id
        // ever used always exists and ids never repeat across restarts.
        let segment = writer::create_segment(&shared, current)
            .map_err(|(path, source)| WalError::Io { path, source })?;
        for path in &doomed {
            writer::remove_file(path).map_err(io_err(path))?;
        }
        if !doomed.is_empty() {
            sync_dir(dir).map_err(io_err(dir))?;
        }

        let on_disk: u64 = closed.values().sum::<u64>() + format::SEGMENT_HEADER_LEN;
        shared
            .stats
            .segments
            .store(closed.len() as u64 + 1, Ordering::Relaxed);
        shared.stats.bytes_on_disk.store(on_disk, Ordering::Relaxed);
        *shared.closed.lock() = closed;

        let w = writer::Writer::new(shared.clone(), segment, current);
        let handle = std::thread::Builder::new()
            .name("wal-writer".to_string())
            .spawn(move || w.run())
            .map_err(io_err(dir))?;
        Ok(Wal {
            shared,
            writer: Some(handle),
        })
    }

    /// Calls `f` for every record in segments `>= from`, oldest first. Call before appending.
    ///
    /// Only closed segments are read (after [`Wal::open`], that is every segment that existed),
    /// one record at a time with one reused buffer, so memory stays bounded by the largest
    /// record. An error from `f` stops the replay and is returned as is. Do not run it at the
    /// same time as [`Wal::remove_segments_before`].
    pub fn replay(
        &self,
        from: SegmentId,
        mut f: impl FnMut(Position, &[u8]) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let ids: Vec<SegmentId> = self
            .shared
            .closed
            .lock()
            .range(from..)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let path = self.shared.segment_path(id);
            let mut reader = SegmentReader::open(&path).map_err(|e| read_error(&path, e))?;
            while let Some((offset, record)) =
                reader.next_record().map_err(|e| read_error(&path, e))?
            {
                f(
                    Position {
                        segment: id,
                        offset,
                    },
                    record,
                )?;
            }
        }
        Ok(())
    }

    /// Appends one record; returns once it is durable as the fsync policy says.
    ///
    /// If the future is dropped before it completes, the record may still be written.
    /// On an error the record may or may not be in the log; the log then refuses further
    /// appends ([`WalError::Failed`]).
    ///
    /// `record` is anything that turns into [`Bytes`] without a copy (a `Vec<u8>`, or the
    /// `Bytes` a receiver already holds, shared with whoever else reads it).
    pub async fn append(&self, record: impl Into<Bytes>) -> Result<Position, WalError> {
        let rx = self.submit_append(record.into())?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// [`Wal::append`] for threads outside an async runtime.
    ///
    /// Panics if called from within an async runtime's worker (use `append` there).
    pub fn append_blocking(&self, record: impl Into<Bytes>) -> Result<Position, WalError> {
        let rx = self.submit_append(record.into())?;
        rx.blocking_recv().map_err(|_| WalError::Closed)?
    }

    /// Closes the current segment and starts a new one; every append that completes after
    /// this returns lands in a segment `>=` the returned id.
    ///
    /// More exactly: appends submitted before the rotation land in older segments and their
    /// results are sent before the rotation's; appends submitted after it land in the new
    /// segment or later. A closed segment is fsynced unless the policy is `Never`.
    pub async fn rotate(&self) -> Result<SegmentId, WalError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Rotate { id: 0, tx })?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Deletes every segment whose id is `< before` (their records are safe elsewhere).
    /// The current segment is never deleted.
    pub fn remove_segments_before(&self, before: SegmentId) -> Result<(), WalError> {
        // Unlinking large files can take a while; the writer needs the map to rotate, so the
        // files are removed without holding the lock.
        let doomed: Vec<SegmentId> = self
            .shared
            .closed
            .lock()
            .range(..before)
            .map(|(&id, _)| id)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        let mut removed = Vec::with_capacity(doomed.len());
        for id in doomed {
            let path = self.shared.segment_path(id);
            match writer::remove_file(&path) {
                Ok(_) => removed.push(id),
                Err(source) => {
                    result = Err(WalError::Io { path, source });
                    break;
                }
            }
        }
        {
            let mut closed = self.shared.closed.lock();
            let stats = &self.shared.stats;
            for id in removed {
                // A concurrent call may have accounted for it already.
                if let Some(size) = closed.remove(&id) {
                    stats.segments.fetch_sub(1, Ordering::Relaxed);
                    stats.bytes_on_disk.fetch_sub(size, Ordering::Relaxed);
                }
            }
        }
        result?;
        sync_dir(&self.shared.dir).map_err(|source| WalError::Io {
            path: self.shared.dir.clone(),
            source,
        })
    }

    /// Flushes and fsyncs everything appended so far (for shutdown), whatever the policy.
    pub async fn sync(&self) -> Result<(), WalError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Sync { tx })?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Counters since open; a few atomic loads.
    pub fn stats(&self) -> WalStats {
        let s = &self.shared.stats;
        WalStats {
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            records_written: s.records_written.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            segments: s.segments.load(Ordering::Relaxed),
            bytes_on_disk: s.bytes_on_disk.load(Ordering::Relaxed),
        }
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The segment appends currently go to.
    pub fn current_segment(&self) -> SegmentId {
        self.shared.current.load(Ordering::Acquire)
    }

    /// The ids of closed segments (those [`Wal::replay`] reads), oldest first.
    pub fn closed_segments(&self) -> Vec<SegmentId> {
        self.shared.closed.lock().keys().copied().collect()
    }

    fn submit_append(
        &self,
        record: Bytes,
    ) -> Result<oneshot::Receiver<Result<Position, WalError>>, WalError> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(WalError::TooLarge {
                len: record.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        // The checksum is computed here, on the caller's thread, so that concurrent appenders
        // share the work instead of queueing it on the single writer.
        let header = format::frame_header(&record);
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Append {
            header,
            record,
            pos: Position {
                segment: 0,
                offset: 0,
            },
            tx,
        })?;
        Ok(rx)
    }

    fn submit(&self, op: Op) -> Result<(), WalError> {
        let mut q = self.shared.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(WalError::Failed {
                reason: reason.clone(),
            });
        }
        if q.shutdown {
            return Err(WalError::Closed);
        }
        q.ops.push(op);
        if q.writer_idle {
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared.queue.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("write-ahead log writer thread panicked");
            }
        }
    }
}

/// Checks the last segment and cuts off a torn tail.
fn recover_tail(path: &Path) -> Result<Tail, WalError> {
    let mut reader = match SegmentReader::open(path) {
        Ok(r) => r,
        Err(ReadError::ShortHeader { .. }) => {
            // The crash came while the segment was being created; it never held a record.
            tracing::warn!(path = %path.display(), "write-ahead log: removing a segment torn at creation");
            return Ok(Tail::Empty);
        }
        Err(e) => return Err(read_error(path, e)),
    };
    let mut records = 0u64;
    let cut = loop {
        match reader.next_record() {
            Ok(Some(_)) => records += 1,
            Ok(None) => break None,
            Err(ReadError::Bad { offset, reason }) => break Some((offset, reason)),
            Err(e) => return Err(read_error(path, e)),
        }
    };
    let size = reader.offset();
    drop(reader);
    if let Some((offset, reason)) = cut {
        let io_err = |source| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if padding_from(path, offset, len).map_err(io_err)? {
            tracing::debug!(path = %path.display(), offset, "write-ahead log: cutting off the padding of the last direct write");
        } else {
            tracing::warn!(
                path = %path.display(),
                offset,
                dropped_bytes = len - offset,
                %reason,
                "write-ahead log: cutting off a torn tail left by a crash"
            );
        }
        file.set_len(offset).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    Ok(if records == 0 {
        Tail::Empty
    } else {
        Tail::Kept(size)
    })
}

/// Whether the `len`-byte file at `path` holds only the zero padding of a direct write from
/// `offset` on (what a crash leaves after the last record of a segment written that way).
fn padding_from(path: &Path, offset: u64, len: u64) -> io::Result<bool> {
    let rest = len.saturating_sub(offset);
    if rest >= direct::MAX_PADDING as u64 {
        return Ok(false);
    }
    let mut buf = vec![0u8; rest as usize];
    std::os::unix::fs::FileExt::read_exact_at(&fs::File::open(path)?, &mut buf, offset)?;
    Ok(direct::is_padding(&buf, len))
}

fn read_error(path: &Path, e: ReadError) -> WalError {
    match e {
        ReadError::Io(source) => WalError::Io {
            path: path.to_path_buf(),
            source,
        },
        ReadError::Bad { offset, reason } => WalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        },
        ReadError::ShortHeader { got } => WalError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: format!(
                "truncated segment header ({got} of {} bytes)",
                format::SEGMENT_HEADER_LEN
            ),
        },
    }
}
