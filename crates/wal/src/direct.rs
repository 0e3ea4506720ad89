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
//! block of zeros; closing cuts it to its real length, and open cuts such padding off after a
//! crash ([`is_padding`]).

use std::fs::File;
use std::io;
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

/// The aligned write buffer and the partial last block of the segment being written.
#[derive(Default)]
pub(crate) struct DirectBuf {
    raw: Vec<u8>,
    /// Bytes of the segment's last, partial block, kept at the aligned start of the buffer.
    tail: usize,
}

impl DirectBuf {
    /// Starts a new segment whose first bytes (its header) are `head`.
    pub(crate) fn start_segment(&mut self, head: &[u8]) {
        self.tail = 0;
        self.reserve(head.len());
        let at = self.aligned_start();
        self.raw[at..at + head.len()].copy_from_slice(head);
        self.tail = head.len();
    }

    /// Bytes of the partial last block: the file has padding past the data when non-zero.
    pub(crate) fn tail(&self) -> usize {
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

/// Whether `rest`, the bytes of a segment from the first unreadable record to the end of the
/// file, is the zero padding of a direct write rather than a torn record: all zeros, shorter
/// than a block, and ending the file at a block boundary.
pub(crate) fn is_padding(rest: &[u8], file_len: u64) -> bool {
    rest.len() < BLOCK && file_len.is_multiple_of(BLOCK as u64) && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    /// Appends through a `DirectBuf` into a plain file produce exactly the concatenation,
    /// whatever the write sizes, with at most a block of zeros after it.
    #[test]
    fn writes_rewrite_the_partial_block_and_pad_with_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let mut d = DirectBuf::default();
        d.start_segment(b"HEADER");
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
            assert_eq!(got.len(), expect.len().next_multiple_of(BLOCK), "write {i}");
            assert_eq!(&got[..expect.len()], &expect[..], "write {i}");
            assert!(is_padding(&got[expect.len()..], got.len() as u64));
            assert_eq!(d.tail(), expect.len() % BLOCK);
        }
        // The 9 MiB write grew the buffer past what is kept; it shrank again.
        assert!(d.raw.len() <= KEEP_BYTES);
    }

    #[test]
    fn padding_is_zeros_short_of_a_block_at_a_block_boundary() {
        assert!(is_padding(&[0; 10], 8192));
        assert!(is_padding(&[], 4096));
        assert!(!is_padding(&[0; 10], 8190));
        assert!(!is_padding(&[0, 0, 1], 8192));
        assert!(!is_padding(&[0; BLOCK], 8192));
    }
}
