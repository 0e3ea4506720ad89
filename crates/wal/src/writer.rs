//! The writer thread: the only code that writes segment files.
//!
//! Appenders push operations onto one shared queue; this thread takes everything queued at
//! once, writes all records of the batch with one vectored write per segment touched, issues a
//! single `fsync` for the whole batch when the policy asks for it, and only then completes the
//! waiters, in queue order. That is group commit: under load, many appends share one `fsync`
//! and the batch size grows with the `fsync` latency. Rotation goes through the same queue so
//! that its position relative to appends is exact. A failed write or `fsync` poisons the log:
//! after a failed `fsync` the kernel may have dropped the dirty pages, so retrying could
//! acknowledge data that is not on disk.
//!
//! Under [`FsyncPolicy::Always`] segments are written with direct I/O where the file system
//! allows it (`direct.rs` says why and how); the other policies keep the page cache, whose
//! write-behind is what they trade durability for.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::direct::{self, DirectBuf};
use crate::format::{segment_header, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::{sync_dir, FsyncPolicy, Op, Position, SegmentId, Shared, WalError};

/// A failure while writing: the file involved and what the OS said.
type Failure = (PathBuf, io::Error);

/// State owned by the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    file: File,
    id: SegmentId,
    path: PathBuf,
    /// Bytes of the current segment, including records assigned but not yet written.
    size: u64,
    /// Bytes of the current segment written to the file (its real length).
    written: u64,
    /// The aligned buffer of direct writes, when the current segment is written that way.
    direct: Option<DirectBuf>,
    /// When the current segment first got bytes that are not yet fsynced.
    dirty_since: Option<Instant>,
    /// Closed segments never fsynced (only under [`FsyncPolicy::Never`]); `sync` covers them.
    unsynced_closed: Vec<SegmentId>,
}

/// A newly created segment file.
pub(crate) struct NewSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// For a segment written with direct I/O (the file holds the header padded to a block),
    /// the buffer that wrote the header, ready for the first append.
    pub(crate) direct: Option<DirectBuf>,
}

/// Creates segment `id` in the log directory with its header and makes the name durable.
/// Under [`FsyncPolicy::Always`] the file is opened for direct I/O if the file system
/// supports it.
pub(crate) fn create_segment(shared: &Shared, id: SegmentId) -> Result<NewSegment, Failure> {
    let path = shared.segment_path(id);
    let fail = |e| (path.clone(), e);
    let direct_file = if shared.opts.fsync == FsyncPolicy::Always {
        direct::create(&path).map_err(fail)?
    } else {
        None
    };
    let (file, direct) = match direct_file {
        Some(file) => {
            let mut buf = DirectBuf::default();
            buf.start_segment(&segment_header(), shared.opts.segment_bytes);
            match buf.write(&file, SEGMENT_HEADER_LEN, &[]) {
                Ok(()) => (file, Some(buf)),
                // The file system took the flag but not our alignment: write through the
                // page cache instead.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    drop(file);
                    fs::remove_file(&path).map_err(fail)?;
                    (create_buffered(&path).map_err(fail)?, None)
                }
                Err(e) => return Err(fail(e)),
            }
        }
        None => (create_buffered(&path).map_err(fail)?, None),
    };
    // The header itself is covered by the first fsync of a record in this segment; a crash
    // before that leaves a short file that open recognises as a torn creation.
    sync_dir(&shared.dir).map_err(|e| (shared.dir.clone(), e))?;
    Ok(NewSegment { file, path, direct })
}

/// Creates a segment file written through the page cache, with its header.
fn create_buffered(path: &std::path::Path) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&segment_header())?;
    Ok(file)
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, segment: NewSegment, id: SegmentId) -> Writer {
        Writer {
            shared,
            file: segment.file,
            id,
            path: segment.path,
            size: SEGMENT_HEADER_LEN,
            written: SEGMENT_HEADER_LEN,
            direct: segment.direct,
            dirty_since: None,
            unsynced_closed: Vec::new(),
        }
    }

    /// Runs until the log is dropped or a write fails.
    pub(crate) fn run(mut self) {
        let _guard = PanicGuard(self.shared.clone());
        let mut batch: Vec<Op> = Vec::new();
        loop {
            let mut shutdown = false;
            {
                let mut q = self.shared.queue.lock();
                while q.ops.is_empty() && !q.shutdown {
                    match self.sync_deadline() {
                        Some(deadline) if Instant::now() >= deadline => break,
                        Some(deadline) => {
                            q.writer_idle = true;
                            self.shared.wake.wait_until(&mut q, deadline);
                        }
                        None => {
                            q.writer_idle = true;
                            self.shared.wake.wait(&mut q);
                        }
                    }
                    q.writer_idle = false;
                }
                if q.ops.is_empty() && q.shutdown {
                    shutdown = true;
                }
                std::mem::swap(&mut q.ops, &mut batch);
            }
            if !batch.is_empty() {
                let result = self.write_batch(&mut batch);
                if let Err(failure) = result {
                    self.fail(failure, &mut batch);
                    return;
                }
                complete(&mut batch);
            }
            if shutdown {
                self.finish();
                return;
            }
            if self.sync_deadline().is_some_and(|d| Instant::now() >= d) {
                if let Err(failure) = self.sync_current() {
                    self.fail(failure, &mut batch);
                    return;
                }
            }
        }
    }

    /// When the background fsync of the interval policy is due, if anything is dirty.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.shared.opts.fsync {
            // An interval too long to represent means never.
            FsyncPolicy::Interval(every) => self.dirty_since.and_then(|t| t.checked_add(every)),
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        }
    }

    /// Writes every record of `batch`, rotating as needed, and fsyncs once if asked to.
    /// Positions and new segment ids are stored into the operations for `complete`.
    fn write_batch(&mut self, batch: &mut [Op]) -> Result<(), Failure> {
        let segment_bytes = self.shared.opts.segment_bytes;
        let mut need_sync = self.shared.opts.fsync == FsyncPolicy::Always;
        let mut sync_closed = false;
        let mut start = 0;
        for i in 0..batch.len() {
            match &mut batch[i] {
                Op::Append { record, .. } => {
                    let frame = FRAME_HEADER_LEN + record.len() as u64;
                    if self.size > SEGMENT_HEADER_LEN && self.size + frame > segment_bytes {
                        self.write_group(&batch[start..i])?;
                        start = i;
                        self.roll()?;
                    }
                    if let Op::Append { pos, .. } = &mut batch[i] {
                        *pos = Position {
                            segment: self.id,
                            offset: self.size,
                        };
                    }
                    self.size += frame;
                }
                Op::Rotate { .. } => {
                    self.write_group(&batch[start..i])?;
                    start = i + 1;
                    self.roll()?;
                    if let Op::Rotate { id, .. } = &mut batch[i] {
                        *id = self.id;
                    }
                }
                Op::Sync { .. } => {
                    need_sync = true;
                    sync_closed = true;
                }
            }
        }
        self.write_group(&batch[start..])?;
        if need_sync {
            self.sync_current()?;
        }
        if sync_closed {
            self.sync_closed()?;
        }
        Ok(())
    }

    /// Writes the records among `ops` to the current segment in one vectored write.
    fn write_group(&mut self, ops: &[Op]) -> Result<(), Failure> {
        let mut slices = Vec::with_capacity(ops.len() * 2);
        let mut bytes = 0u64;
        let mut records = 0u64;
        for op in ops {
            if let Op::Append { header, record, .. } = op {
                slices.push(IoSlice::new(header));
                slices.push(IoSlice::new(record));
                bytes += FRAME_HEADER_LEN + record.len() as u64;
                records += 1;
            }
        }
        if records == 0 {
            return Ok(());
        }
        let written = match &mut self.direct {
            Some(buf) => {
                let parts: Vec<&[u8]> = slices.iter().map(|s| &s[..]).collect();
                buf.write(&self.file, self.written, &parts)
            }
            None => write_all_vectored(&mut self.file, &mut slices),
        };
        written.map_err(|e| (self.path.clone(), e))?;
        self.written += bytes;
        let stats = &self.shared.stats;
        stats.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        stats.records_written.fetch_add(records, Ordering::Relaxed);
        stats.bytes_on_disk.fetch_add(bytes, Ordering::Relaxed);
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
        Ok(())
    }

    /// Fsyncs the current segment if it has unsynced bytes.
    fn sync_current(&mut self) -> Result<(), Failure> {
        if self.dirty_since.is_some() {
            self.file.sync_data().map_err(|e| (self.path.clone(), e))?;
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.dirty_since = None;
        }
        Ok(())
    }

    /// Fsyncs closed segments that were left unsynced under the `Never` policy.
    fn sync_closed(&mut self) -> Result<(), Failure> {
        for id in std::mem::take(&mut self.unsynced_closed) {
            let path = self.shared.segment_path(id);
            match File::open(&path) {
                Ok(f) => {
                    f.sync_data().map_err(|e| (path.clone(), e))?;
                    self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                // Removed in the meantime: nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((path, e)),
            }
        }
        Ok(())
    }

    /// Closes the current segment and starts the next one.
    fn roll(&mut self) -> Result<(), Failure> {
        self.cut_padding()?;
        if self.dirty_since.is_some() {
            if self.shared.opts.fsync == FsyncPolicy::Never {
                self.unsynced_closed.push(self.id);
                self.dirty_since = None;
            } else {
                // A closed segment is always durable under Always and Interval, so recovery
                // only ever has to repair the tail of the last segment.
                self.sync_current()?;
            }
        }
        let next = self.id + 1;
        let segment = create_segment(&self.shared, next)?;
        {
            let mut closed = self.shared.closed.lock();
            closed.insert(self.id, self.size);
            self.shared.current.store(next, Ordering::Release);
        }
        self.file = segment.file;
        self.path = segment.path;
        self.id = next;
        self.size = SEGMENT_HEADER_LEN;
        self.written = SEGMENT_HEADER_LEN;
        self.direct = segment.direct;
        let stats = &self.shared.stats;
        stats.segments.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_on_disk
            .fetch_add(SEGMENT_HEADER_LEN, Ordering::Relaxed);
        Ok(())
    }

    /// Cuts the zero padding of direct writes off the current segment, leaving it to the
    /// next fsync of this segment, so that a closed segment ends at its last record.
    fn cut_padding(&mut self) -> Result<(), Failure> {
        if let Some(d) = self.direct.as_mut().filter(|d| d.padded_past(self.written)) {
            self.file
                .set_len(self.written)
                .map_err(|e| (self.path.clone(), e))?;
            d.cut(self.written);
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Final fsync when the log is dropped.
    fn finish(&mut self) {
        if self.shared.opts.fsync == FsyncPolicy::Never {
            return;
        }
        if let Err((path, e)) = self.cut_padding().and_then(|()| self.sync_current()) {
            tracing::error!(path = %path.display(), error = %e, "write-ahead log: final fsync failed");
        }
    }

    /// Poisons the log: the failed batch and everything still queued get an error, and no
    /// further operation is accepted.
    fn fail(&mut self, (path, e): Failure, batch: &mut Vec<Op>) {
        let reason = format!("{}: {e}", path.display());
        tracing::error!(error = %reason, "write-ahead log write failed; refusing further appends");
        let pending = {
            let mut q = self.shared.queue.lock();
            q.failed = Some(reason.clone());
            std::mem::take(&mut q.ops)
        };
        for op in batch.drain(..) {
            let err = || WalError::Io {
                path: path.clone(),
                source: io::Error::new(e.kind(), e.to_string()),
            };
            op.fail(err);
        }
        for op in pending {
            op.fail(|| WalError::Failed {
                reason: reason.clone(),
            });
        }
    }
}

/// Poisons the log if the writer thread panics, so that callers get an error instead of
/// waiting forever on operations nobody will process.
struct PanicGuard(Arc<Shared>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let reason = "the writer thread panicked".to_string();
        let pending = {
            let mut q = self.0.queue.lock();
            q.failed = Some(reason.clone());
            std::mem::take(&mut q.ops)
        };
        for op in pending {
            op.fail(|| WalError::Failed {
                reason: reason.clone(),
            });
        }
    }
}

/// Completes every operation of a successful batch, in queue order.
fn complete(batch: &mut Vec<Op>) {
    for op in batch.drain(..) {
        // A send fails only when the caller stopped waiting; the record is written anyway.
        match op {
            Op::Append { pos, tx, .. } => {
                let _ = tx.send(Ok(pos));
            }
            Op::Rotate { id, tx } => {
                let _ = tx.send(Ok(id));
            }
            Op::Sync { tx } => {
                let _ = tx.send(Ok(()));
            }
        }
    }
}

/// Writes all of `slices`, continuing after short writes.
fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the file accepted no more bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes a file and tolerates it being gone already.
pub(crate) fn remove_file(path: &std::path::Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
