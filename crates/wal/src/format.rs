//! The on-disk format of a segment file and a streaming reader for it.
//!
//! A segment is a 16-byte header (8 magic bytes, a little-endian `u32` version, 4 reserved
//! zero bytes) followed by records. Each record is framed as a little-endian `u32` payload
//! length, a little-endian `u32` CRC32 and the payload. The CRC covers the length bytes as well
//! as the payload, so a run of zeros (what some filesystems leave after a crash) or a flipped
//! length never reads as a valid record. The format lives apart from the writer so that open,
//! replay and the tests all decode segments through exactly one reader.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::SegmentId;

/// Magic bytes at the start of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"LKOUTWAL";
/// Format version written into new segments; readers reject any other.
pub(crate) const VERSION: u32 = 1;
/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Bytes of framing in front of every record payload.
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// The largest record payload the log accepts; bigger appends are rejected and a bigger length
/// on disk is treated as corruption (or a torn tail), so a flipped bit never makes replay
/// allocate gigabytes.
pub const MAX_RECORD_BYTES: usize = 128 << 20;

/// Reading buffer size: large enough that replay issues few syscalls for typical records.
const READ_BUFFER: usize = 1 << 20;

/// The header every new segment starts with.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Checks a segment header, saying what is wrong with it.
fn check_segment_header(h: &[u8; SEGMENT_HEADER_LEN as usize]) -> Result<(), String> {
    if h[..8] != MAGIC {
        return Err("not a write-ahead log segment (bad magic bytes)".to_string());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(format!(
            "unsupported segment format version {version} (this build reads version {VERSION})"
        ));
    }
    Ok(())
}

/// The framing that precedes `payload` on disk: length, then CRC32 of length and payload.
/// Callers bound `payload.len()` by [`MAX_RECORD_BYTES`] first.
pub(crate) fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER_LEN as usize] {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    let mut h = [0u8; FRAME_HEADER_LEN as usize];
    h[..4].copy_from_slice(&len);
    h[4..].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// The file name of segment `id`: zero-padded so that names sort like ids.
pub(crate) fn segment_file_name(id: SegmentId) -> String {
    format!("{id:020}.wal")
}

/// The id of a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why a segment could not be read further.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The operating system failed the read.
    Io(io::Error),
    /// The file is shorter than a segment header: a crash while the segment was created.
    ShortHeader { got: usize },
    /// The bytes at `offset` are not a valid header or record.
    Bad { offset: u64, reason: String },
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Streams the records of one segment file, reusing one payload buffer.
pub(crate) struct SegmentReader {
    reader: BufReader<File>,
    /// Offset of the next record frame.
    offset: u64,
    /// File length when opened; frames that claim to run past it are torn.
    len: u64,
    buf: Vec<u8>,
}

impl SegmentReader {
    /// Opens `path` and checks its header.
    pub(crate) fn open(path: &Path) -> Result<SegmentReader, ReadError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        let got = read_full(&mut reader, &mut h)?;
        if got < h.len() {
            return Err(ReadError::ShortHeader { got });
        }
        check_segment_header(&h).map_err(|reason| ReadError::Bad { offset: 0, reason })?;
        Ok(SegmentReader {
            reader,
            offset: SEGMENT_HEADER_LEN,
            len,
            buf: Vec::new(),
        })
    }

    /// The offset just past the last record read successfully.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record and its offset, `None` at a clean end of file.
    pub(crate) fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, ReadError> {
        let at = self.offset;
        let mut h = [0u8; FRAME_HEADER_LEN as usize];
        let got = read_full(&mut self.reader, &mut h)?;
        if got == 0 {
            return Ok(None);
        }
        let bad = |reason: String| ReadError::Bad { offset: at, reason };
        if got < h.len() {
            return Err(bad(format!(
                "truncated record header ({got} of {FRAME_HEADER_LEN} bytes)"
            )));
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len > MAX_RECORD_BYTES {
            return Err(bad(format!(
                "record length {len} exceeds the bound of {MAX_RECORD_BYTES} bytes"
            )));
        }
        let end = at + FRAME_HEADER_LEN + len as u64;
        if end > self.len {
            return Err(bad(format!(
                "truncated record: {len}-byte payload runs past the end of the file ({} bytes)",
                self.len
            )));
        }
        self.buf.resize(len, 0);
        match self.reader.read_exact(&mut self.buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(bad(format!(
                    "truncated record: {len}-byte payload cut short"
                )));
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h[..4]);
        hasher.update(&self.buf);
        if hasher.finalize() != crc {
            return Err(bad(format!("checksum mismatch in a {len}-byte record")));
        }
        self.offset = end;
        Ok(Some((at, &self.buf)))
    }
}

/// Reads until `buf` is full or the file ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("1.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000a.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000000001.tmp"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn zeroed_frame_is_not_a_valid_record() {
        // A length-0 record's CRC is not zero, so zero fill after a crash reads as torn.
        assert_ne!(frame_header(b""), [0u8; 8]);
    }

    #[test]
    fn header_check_names_the_problem() {
        let mut h = segment_header();
        assert!(check_segment_header(&h).is_ok());
        h[8] = 9;
        assert!(check_segment_header(&h).unwrap_err().contains("version 9"));
        h[0] = b'X';
        assert!(check_segment_header(&h).unwrap_err().contains("magic"));
    }
}
