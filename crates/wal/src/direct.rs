//! Appends that bypass the page cache (`O_DIRECT`), used when every append is fsynced.
//!
//! Why: a log is written once and read back only after a restart, so caching its pages buys
//! nothing, while the buffered path made the writer thread about a tenth of the server's CPU
//! at full trace ingest (page-cache allocation, ext4 delayed allocation, dirty accounting,
//! then reclaiming gigabytes of cache nobody reads). A direct write hands the device our own
//! memory, so it costs one copy into an aligned buffer instead.
//!
//! Direct I/O wants block-aligned memory, file offsets and lengths. So every write starts at
//! the block that holds the segment's current end, first rewriting the bytes of that partial
//! block (kept in the buffer from the previous write), and pads its last block with zeros that
//! the next write overwrites. Rewriting acknowledged bytes with the same values is safe even
//! if the device tears the write. Until a segment is closed its file therefore ends in up to a
//! block of zeros, and after small writes also in the zeros written ahead ([`PREALLOCATE`]);
//! closing cuts it to its real length, and open cuts such padding off after a crash
//! ([`is_padding`]).

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Alignment of memory, offsets and lengths: the largest logical block size in common use,
/// so it suits 512-byte and 4 KiB devices alike.
pub(crate) const BLOCK: usize = 4096;

/// The buffer shrinks back after a write larger than this (one huge batch should not pin its
/// memory for the life of the process).
const KEEP_BYTES: usize = 8 << 20;

/// Creates `path` (which must not exist) for direct writes. `Ok(None)` when the file system
/// does not support direct I/O (older tmpfs, some network file systems) or the platform has
/// no `O_DIRECT`; nothing is left behind then.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn create(_path: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Creates `path` (which must not exist) for direct writes. `Ok(None)` when the file system
/// does not support direct I/O (older tmpfs, some network file systems); nothing is left
/// behind then.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn create(path: &Path) -> io::Result<Option<File>> {
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    let flags = rustix::fs::OFlags::DIRECT.bits() as i32;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        // Linux checks the flag only after creating the file.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            crate::writer::remove_file(path)?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Zeros written ahead of the data after a small write that reached the end of what the
/// segment had allocated, so that the appends after it overwrite blocks the file system has
/// already allocated, up to the segment's size limit.
///
/// Why: a write that extends a file makes its `fdatasync` also write the allocation's
/// metadata (on ext4 without a journal, the block bitmap and group descriptor; with one, a
/// journal commit), the reason databases preallocate their logs. At a steady 10k spans/s (a
/// write and an `fdatasync` per request) device writes per request fell from 3.6-3.9 to 3.2
/// on this machine's journal-less ext4, and from 3.0 to 2.3 on a journaled one; the inode's
/// write stays, as ext4 makes `fdatasync` write it for the new modification time too. Big
/// writes (full-speed group commit) extend the file themselves: zeros ahead of them would
/// only double the bytes written.
pub(crate) const PREALLOCATE: usize = 1 << 20;

/// The aligned write buffer and the partial last block of the segment being written.
#[derive(Default)]
pub(crate) struct DirectBuf {
    raw: Vec<u8>,
    /// Bytes of the segment's last, partial block, kept at the aligned start of the buffer.
    tail: usize,
    /// The file's length: the data, the zeros padding its last block and any zeros written
    /// ahead.
    file_len: u64,
    /// The segment's size limit, rounded up to a block: zeros are never written past it.
    limit: u64,
    /// [`ZEROS`] zeros and room to align them, allocated on first use.
    zeros: Vec<u8>,
}

impl DirectBuf {
    /// Starts a new segment, with a size limit of `limit` bytes, whose first bytes (its
    /// header) are `head`.
    pub(crate) fn start_segment(&mut self, head: &[u8], limit: u64) {
        self.tail = 0;
        self.file_len = 0;
        self.limit = limit.next_multiple_of(BLOCK as u64);
        self.reserve(head.len());
        let at = self.aligned_start();
        self.raw[at..at + head.len()].copy_from_slice(head);
        self.tail = head.len();
    }

    /// Whether the file holds zeros past `end`, its real length.
    pub(crate) fn padded_past(&self, end: u64) -> bool {
        self.file_len > end
    }

    /// The file was cut to `len` bytes.
    pub(crate) fn cut(&mut self, len: u64) {
        self.file_len = len;
    }

    #[cfg(test)]
    fn tail(&self) -> usize {
        self.tail
    }

    /// Writes `parts` after the `end` bytes already in the file (`end` is the segment's real
    /// length, which the buffer's tail ends at) with one aligned write.
    pub(crate) fn write(&mut self, file: &File, end: u64, parts: &[&[u8]]) -> io::Result<()> {
        let new: usize = parts.iter().map(|p| p.len()).sum();
        let used = self.tail + new;
        let padded = used.next_multiple_of(BLOCK);
        self.reserve(padded);
        let at = self.aligned_start();
        let buf = &mut self.raw[at..at + padded];
        let mut pos = self.tail;
        for p in parts {
            buf[pos..pos + p.len()].copy_from_slice(p);
            pos += p.len();
        }
        buf[used..].fill(0);
        let offset = end - self.tail as u64;
        debug_assert!(offset.is_multiple_of(BLOCK as u64));
        file.write_all_at(buf, offset)?;
        let tail = used % BLOCK;
        buf.copy_within(used - tail..used, 0);
        self.tail = tail;
        if self.raw.len() > KEEP_BYTES {
            self.shrink();
        }
        // Writes that reach the end of the file, not only those past it: the next write
        // would extend it.
        let end = offset + padded as u64;
        if end >= self.file_len {
            self.file_len = end;
            // Not after the header alone: a crash before the first fsync must leave a
            // segment that is short, not one whose header may read as zeros.
            if new > 0 && padded < PREALLOCATE {
                // Only a hint: a full disk refuses the data writes themselves soon enough,
                // and the log must not fail for zeros nobody asked for.
                if let Err(e) = self.write_zeros(file) {
                    tracing::debug!(error = %e, "write-ahead log: could not write zeros ahead");
                }
            }
        }
        Ok(())
    }

    /// Writes up to [`PREALLOCATE`] zeros at the end of the file, short of the limit, in one
    /// vectored write that repeats a smaller buffer (a megabyte of zeros in memory would
    /// have added as much to the idle server's memory).
    fn write_zeros(&mut self, file: &File) -> io::Result<()> {
        let len = (self.limit.saturating_sub(self.file_len) as usize).min(PREALLOCATE);
        if len == 0 {
            return Ok(());
        }
        if self.zeros.is_empty() {
            self.zeros = vec![0; ZEROS + BLOCK];
        }
        let at = self.zeros.as_ptr().align_offset(BLOCK);
        let zeros = &self.zeros[at..at + ZEROS];
        let slices: Vec<IoSlice> = (0..len)
            .step_by(ZEROS)
            .map(|from| IoSlice::new(&zeros[..ZEROS.min(len - from)]))
            .collect();
        // A short write only leaves fewer zeros ahead: appends never depend on them.
        let n = rustix::io::pwritev(file, &slices, self.file_len)?;
        self.file_len += n as u64;
        Ok(())
    }

    /// Index of the first block-aligned byte of `raw`.
    fn aligned_start(&self) -> usize {
        self.raw.as_ptr().align_offset(BLOCK)
    }

    /// Makes room for `len` aligned bytes, keeping the tail bytes at the aligned start.
    fn reserve(&mut self, len: usize) {
        if self.aligned_start() + len <= self.raw.len() {
            return;
        }
        self.reallocate((len + BLOCK).next_power_of_two());
    }

    fn shrink(&mut self) {
        self.reallocate(2 * BLOCK);
    }

    fn reallocate(&mut self, size: usize) {
        let mut raw = vec![0u8; size];
        if self.tail > 0 {
            let from = self.aligned_start();
            let to = raw.as_ptr().align_offset(BLOCK);
            raw[to..to + self.tail].copy_from_slice(&self.raw[from..from + self.tail]);
        }
        self.raw = raw;
    }
}

/// The zero buffer that [`DirectBuf::write_zeros`] repeats.
const ZEROS: usize = 64 << 10;
const _: () = assert!(PREALLOCATE.is_multiple_of(ZEROS));

/// The most zeros a segment written here can end in: a block's padding and the zeros
/// written ahead.
pub(crate) const MAX_PADDING: usize = BLOCK + PREALLOCATE;

/// Whether `rest`, the bytes of a segment from the first unreadable record to the end of the
/// file, is the zero padding of direct writes rather than a torn record: all zeros, shorter
/// than [`MAX_PADDING`], and ending the file at a block boundary.
pub(crate) fn is_padding(rest: &[u8], file_len: u64) -> bool {
    rest.len() < MAX_PADDING
        && file_len.is_multiple_of(BLOCK as u64)
        && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::path::PathBuf;

    /// A new plain file in `dir` (direct I/O is not needed to check what lands where).
    fn new_file(dir: &Path) -> (PathBuf, File) {
        let path = dir.join("seg");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    /// Appends through a `DirectBuf` into a plain file produce exactly the concatenation,
    /// whatever the write sizes, with nothing but padding zeros after it.
    #[test]
    fn writes_rewrite_the_partial_block_and_pad_with_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let mut d = DirectBuf::default();
        d.start_segment(b"HEADER", 64 << 20);
        let mut expect = b"HEADER".to_vec();
        for (i, len) in [1usize, 4089, 5000, 0, 4096, 3, 20_000, 4095, 9 << 20, 7]
            .into_iter()
            .enumerate()
        {
            let a: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8 | 1).collect();
            let b = vec![i as u8 + 1; i];
            d.write(&file, expect.len() as u64, &[&a, &b]).unwrap();
            expect.extend_from_slice(&a);
            expect.extend_from_slice(&b);
            let got = std::fs::read(&path).unwrap();
            assert!(
                got.len() >= expect.len().next_multiple_of(BLOCK),
                "write {i}"
            );
            assert_eq!(&got[..expect.len()], &expect[..], "write {i}");
            assert!(is_padding(&got[expect.len()..], got.len() as u64));
            assert_eq!(d.tail(), expect.len() % BLOCK);
            assert_eq!(d.file_len, got.len() as u64);
        }
        // The 9 MiB write grew the buffer past what is kept; it shrank again.
        assert!(d.raw.len() <= KEEP_BYTES);
    }

    /// A small write that reaches the end of the file writes zeros ahead of it, short of the
    /// segment's limit; the small writes after it stay within them, so the file does not
    /// grow; a big write extends the file by itself alone.
    #[test]
    fn small_writes_overwrite_zeros_written_ahead_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let len = || std::fs::metadata(&path).unwrap().len() as usize;
        let mut d = DirectBuf::default();
        d.start_segment(b"HEADER", 2 * PREALLOCATE as u64 - 10);
        d.write(&file, 6, &[]).unwrap();
        // The header alone gets no zeros ahead.
        assert_eq!(len(), BLOCK);
        let mut end = 6u64;
        d.write(&file, end, &[&[7; 100]]).unwrap();
        end += 100;
        assert_eq!(len(), BLOCK + PREALLOCATE);
        while (end as usize + 5000).next_multiple_of(BLOCK) < BLOCK + PREALLOCATE {
            d.write(&file, end, &[&[7; 5000]]).unwrap();
            end += 5000;
            assert_eq!(len(), BLOCK + PREALLOCATE, "at {end}");
        }
        // Zeros stop at the limit, rounded up to a block.
        d.write(&file, end, &[&[7; 5000]]).unwrap();
        end += 5000;
        assert_eq!(len(), 2 * PREALLOCATE);
        // A big write extends the file by itself.
        d.write(&file, end, &[&[7; PREALLOCATE * 2]]).unwrap();
        end += 2 * PREALLOCATE as u64;
        assert_eq!(len(), (end as usize).next_multiple_of(BLOCK));
        let got = std::fs::read(&path).unwrap();
        assert!(got[6..end as usize].iter().all(|&b| b == 7));
        assert!(is_padding(&got[end as usize..], got.len() as u64));
    }

    #[test]
    fn padding_is_zeros_short_of_the_most_at_a_block_boundary() {
        assert!(is_padding(&[0; 10], 8192));
        assert!(is_padding(&[], 4096));
        assert!(is_padding(&vec![0; MAX_PADDING - 1], 8192));
        assert!(!is_padding(&[0; 10], 8190));
        assert!(!is_padding(&[0, 0, 1], 8192));
        assert!(!is_padding(&vec![0; MAX_PADDING], 8192));
    }
}
