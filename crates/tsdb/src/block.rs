//! Immutable on-disk blocks: one file per block time range, in our own format.
//!
//! Layout of `blocks/<mint>-<maxt>.block` (integers little-endian, varints LEB128):
//! ```text
//! magic "LKTSDB04" (format 4)
//! chunk data: the chunks of every series, series by series, in time order (by first
//!   sample); a float chunk holds up to BLOCK_CHUNK_SAMPLES samples, packed (`packed.rs`) or
//!   XOR, whichever is smaller; a native histogram chunk (`histchunk.rs`) up to
//!   SAMPLES_PER_CHUNK histograms or about BLOCK_HIST_CHUNK_BYTES; a start-timestamp chunk
//!   (`stchunk.rs`) up to MAX_ST_ENTRIES start timestamps of the series' samples; the first
//!   byte of a chunk says which
//! index:
//!   symbols: uvarint count, then every label name and value once, sorted, as strings
//!   uvarint series count; per series (sorted by labels): uvarint label count, per label
//!     uvarint name symbol and value symbol; uvarint chunk count, per chunk: zigzag varint
//!     (min_t - block mint), uvarint (max_t - min_t), uvarint length, u32 crc32 (chunks lie
//!     back to back after the magic, in this order, so offsets are implicit)
//! footer (40 bytes): i64 mint, i64 maxt, u64 index offset, u64 index length,
//!   u32 index crc32, 4 bytes "LKTE"
//! ```
//! Opening a block reads only the footer and the index and builds the postings from the
//! series table (the series and postings stay in memory, the same shape as the head's index); chunk bytes are read on demand with
//! positioned reads and checked against their CRC, so a block costs memory for its index,
//! not its samples. A block is written to a temporary name, fsynced and renamed, so a crash
//! leaves either the whole block or none of it (leftover temporaries are deleted at open).
//!
//! Writing a block (from the head or by compaction) decodes each series' samples and
//! re-encodes them, so compaction also turns many short chunks into few long ones. Blocks of
//! format 1 (magic `LKTSDB01`, XOR chunks only, before any release) are refused with an error
//! that says to delete them. Format 3 differs from format 2 only in that its chunks may be
//! histogram chunks: format-2 blocks are read as they are, and the new magic makes a version
//! without histograms refuse a format-3 block at open instead of failing on its chunks.
//! Format 4 likewise adds start-timestamp chunks; formats 2 and 3 are read as they are.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk::{chunk_len, ChunkIter};
use crate::codec::{put_bytes, put_uvarint, Reader};
use crate::head::{ClosedChunk, SeriesChunks};
use crate::histchunk;
use crate::index::{Matcher, Postings, SeriesRef};
use crate::labels::Label;
use crate::packed;
use crate::querier::Series;
use crate::stchunk;
use crate::{Labels, TsdbError};

const MAGIC: &[u8; 8] = b"LKTSDB04";
/// Magic of format 3 (float and histogram chunks, no start timestamps), still read.
const MAGIC_V3: &[u8; 8] = b"LKTSDB03";
/// Magic of format 2 (float chunks only), still read.
const MAGIC_V2: &[u8; 8] = b"LKTSDB02";
/// Most bytes in one block histogram chunk before the next begins (the index allows 1 MiB).
const BLOCK_HIST_CHUNK_BYTES: usize = 64 * 1024;
/// Magic of the first block format (XOR chunks only), which this version no longer reads.
const MAGIC_V1: &[u8; 8] = b"LKTSDB01";
/// Most samples in one block chunk: packed chunks pay a few dozen bytes of header and index
/// entry each, so blocks use longer chunks than the head (four head chunks' worth); a query
/// decodes at most this many samples it does not need at each end of its range.
pub const BLOCK_CHUNK_SAMPLES: usize = 4 * crate::chunk::SAMPLES_PER_CHUNK;
const FOOTER_MAGIC: &[u8; 4] = b"LKTE";
const FOOTER_LEN: u64 = 40;
/// Largest index section a block may have; a bigger one is a damaged footer.
const MAX_INDEX_BYTES: u64 = 4 << 30;

#[derive(Clone, Debug)]
struct ChunkMeta {
    min_t: i64,
    max_t: i64,
    offset: u64,
    len: u32,
    crc: u32,
}

#[derive(Debug)]
struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkMeta>,
}

/// One open block.
#[derive(Debug)]
pub struct Block {
    path: PathBuf,
    file: fs::File,
    /// Inclusive start of the block's range.
    pub mint: i64,
    /// Exclusive end of the block's range.
    pub maxt: i64,
    series: Vec<BlockSeries>,
    postings: Postings,
    /// Size of the file.
    pub bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TsdbError + '_ {
    move |source| TsdbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// File name of the block for `[mint, maxt)`.
pub fn file_name(mint: i64, maxt: i64) -> String {
    format!("{mint}_{maxt}.block")
}

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The checksum of the index and the footer fields before it (time range and offsets).
fn index_crc(index: &[u8], footer_fields: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(index);
    h.update(footer_fields);
    h.finalize()
}

/// Re-encodes a series' samples into block chunks of up to [`BLOCK_CHUNK_SAMPLES`], each
/// packed or XOR, whichever is smaller.
fn rechunk(samples: &[(i64, f64)]) -> Vec<ClosedChunk> {
    samples
        .chunks(BLOCK_CHUNK_SAMPLES)
        .map(|part| ClosedChunk {
            bytes: packed::encode_best(part).into(),
            min_t: part[0].0,
            max_t: part[part.len() - 1].0,
        })
        .collect()
}

/// A series' histogram samples from its histogram chunks, in time order, re-encoded as block
/// chunks. A chunk that does not decode is an error, as for floats.
fn rechunk_histograms(chunks: &[ClosedChunk]) -> Result<Vec<ClosedChunk>, TsdbError> {
    let all = merge_decoded(chunks, is_hist, "histogram chunk", histchunk::decode)?;
    Ok(closed(histchunk::encode_chunks(
        &all,
        crate::chunk::SAMPLES_PER_CHUNK,
        BLOCK_HIST_CHUNK_BYTES,
    )))
}

fn is_hist(c: &ClosedChunk) -> bool {
    c.bytes.first() == Some(&histchunk::ENC_HIST)
}

/// A series' start-timestamp chunks merged (sorted, the first of a time kept) and cut
/// again into block-sized chunks. A chunk that does not decode is an error, as for floats.
fn rechunk_sts(chunks: &[ClosedChunk]) -> Result<Vec<ClosedChunk>, TsdbError> {
    let all = merge_decoded(
        chunks,
        |c| stchunk::is_st(&c.bytes),
        "start timestamp chunk",
        stchunk::decode,
    )?;
    Ok(closed(stchunk::encode_chunks(&all)))
}

/// The entries of the chunks of one kind (`kind`), decoded and merged in time order, the
/// first of a time kept; a chunk that does not decode is an error naming `what`.
fn merge_decoded<T>(
    chunks: &[ClosedChunk],
    kind: impl Fn(&ClosedChunk) -> bool,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<Vec<(i64, T)>, TsdbError>,
) -> Result<Vec<(i64, T)>, TsdbError> {
    let mut all: Vec<(i64, T)> = Vec::new();
    for c in chunks.iter().filter(|c| kind(c)) {
        all.extend(decode(&c.bytes).map_err(|e| TsdbError::Corrupt {
            what: what.to_string(),
            reason: format!("chunk of [{}, {}] does not decode: {e}", c.min_t, c.max_t),
        })?);
    }
    if !all.windows(2).all(|p| p[0].0 < p[1].0) {
        all.sort_by_key(|s| s.0);
        all.dedup_by_key(|s| s.0);
    }
    Ok(all)
}

/// Encoded `(min_t, max_t, bytes)` chunks as block chunks.
fn closed(encoded: Vec<(i64, i64, Vec<u8>)>) -> Vec<ClosedChunk> {
    encoded
        .into_iter()
        .map(|(min_t, max_t, bytes)| ClosedChunk {
            bytes: bytes.into(),
            min_t,
            max_t,
        })
        .collect()
}

/// A series' float samples from its float chunks and out-of-order samples, in time order;
/// the in-order sample wins a tie. A chunk that does not decode whole is an error, so a
/// block is never written (or compacted) with a silent hole.
fn merge_samples(chunks: &[ClosedChunk], ooo: &[(i64, f64)]) -> Result<Vec<(i64, f64)>, TsdbError> {
    let mut all: Vec<(i64, f64)> =
        Vec::with_capacity(chunks.iter().map(|c| chunk_len(&c.bytes)).sum::<usize>() + ooo.len());
    for c in chunks
        .iter()
        .filter(|c| !is_hist(c) && !stchunk::is_st(&c.bytes))
    {
        let mut it = ChunkIter::new(&c.bytes);
        all.extend(it.by_ref());
        if it.is_corrupt() {
            return Err(TsdbError::Corrupt {
                what: "chunk".to_string(),
                reason: format!("chunk of [{}, {}] does not decode", c.min_t, c.max_t),
            });
        }
    }
    if ooo.is_empty() && all.windows(2).all(|p| p[0].0 < p[1].0) {
        return Ok(all);
    }
    all.extend_from_slice(ooo);
    // Stable sort keeps in-order samples (first) ahead of out-of-order ones at equal times.
    all.sort_by_key(|s| s.0);
    all.dedup_by_key(|s| s.0);
    Ok(all)
}

/// Writes a block for `[mint, maxt)` from series sorted by labels, and opens it.
pub fn write_block(
    dir: &Path,
    mint: i64,
    maxt: i64,
    series: Vec<SeriesChunks>,
) -> Result<Block, TsdbError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(file_name(mint, maxt));
    let tmp = dir.join(format!("{}.tmp", file_name(mint, maxt)));
    let mut data: Vec<u8> = Vec::new();
    data.extend_from_slice(MAGIC);
    let mut kept: Vec<(Labels, Vec<ClosedChunk>)> = Vec::with_capacity(series.len());
    for (labels, chunks, ooo) in series {
        let hists = rechunk_histograms(&chunks)?;
        let sts = rechunk_sts(&chunks)?;
        let mut chunks = rechunk(&merge_samples(&chunks, &ooo)?);
        if !hists.is_empty() || !sts.is_empty() {
            chunks.extend(hists);
            chunks.extend(sts);
            chunks.sort_by_key(|c| c.min_t);
        }
        if !chunks.is_empty() {
            kept.push((labels, chunks));
        }
    }
    // The symbol table: every label name and value once, sorted; series refer to them by
    // number.
    let mut symbols: Vec<&str> = kept
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|p| [p.name, p.value]))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let ids: HashMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u64))
        .collect();
    let mut index: Vec<u8> = Vec::new();
    put_uvarint(&mut index, symbols.len() as u64);
    for s in &symbols {
        put_bytes(&mut index, s.as_bytes());
    }
    put_uvarint(&mut index, kept.len() as u64);
    for (labels, chunks) in &kept {
        put_uvarint(&mut index, labels.len() as u64);
        for l in labels {
            put_uvarint(&mut index, ids.get(l.name).copied().unwrap_or_default());
            put_uvarint(&mut index, ids.get(l.value).copied().unwrap_or_default());
        }
        put_uvarint(&mut index, chunks.len() as u64);
        for c in chunks {
            put_uvarint(&mut index, zz(c.min_t.wrapping_sub(mint)));
            put_uvarint(&mut index, c.max_t.wrapping_sub(c.min_t) as u64);
            put_uvarint(&mut index, c.bytes.len() as u64);
            index.extend_from_slice(&crc32fast::hash(&c.bytes).to_le_bytes());
            data.extend_from_slice(&c.bytes);
        }
    }
    let index_off = data.len() as u64;
    let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
    footer.extend_from_slice(&mint.to_le_bytes());
    footer.extend_from_slice(&maxt.to_le_bytes());
    footer.extend_from_slice(&index_off.to_le_bytes());
    footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
    footer.extend_from_slice(&index_crc(&index, &footer).to_le_bytes());
    footer.extend_from_slice(FOOTER_MAGIC);
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&data).map_err(io_err(&tmp))?;
        f.write_all(&index).map_err(io_err(&tmp))?;
        f.write_all(&footer).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Block::open(&path)
}

impl Block {
    /// Opens a block file, reading its index.
    pub fn open(path: &Path) -> Result<Block, TsdbError> {
        let file = fs::File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        let corrupt = |reason: &str| TsdbError::Corrupt {
            what: format!("block {}", path.display()),
            reason: reason.to_string(),
        };
        if size < MAGIC.len() as u64 + FOOTER_LEN {
            return Err(corrupt("file too short"));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0).map_err(io_err(path))?;
        if &magic == MAGIC_V1 {
            return Err(TsdbError::Corrupt {
                what: format!("block {}", path.display()),
                reason:
                    "written in block format 1 (XOR chunks), which this version no longer reads; \
                         delete the blocks directory (or this file) to start without it"
                        .to_string(),
            });
        }
        if &magic != MAGIC && &magic != MAGIC_V3 && &magic != MAGIC_V2 {
            return Err(corrupt("not a block file (bad magic)"));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, size - FOOTER_LEN)
            .map_err(io_err(path))?;
        if &footer[36..40] != FOOTER_MAGIC {
            return Err(corrupt("bad footer magic"));
        }
        let word = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&footer[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let (mint, maxt, index_off, index_len) =
            (word(0) as i64, word(8) as i64, word(16), word(24));
        let crc = u32::from_le_bytes([footer[32], footer[33], footer[34], footer[35]]);
        if index_len > MAX_INDEX_BYTES
            || index_off.checked_add(index_len) != Some(size - FOOTER_LEN)
        {
            return Err(corrupt("index bounds do not match the file size"));
        }
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_off)
            .map_err(io_err(path))?;
        if index_crc(&index, &footer[..32]) != crc {
            return Err(corrupt("index checksum mismatch"));
        }
        let mut r = Reader::new(&index, "block index");
        let nsym = r.len(r.remaining())?;
        let mut symbols: Vec<String> = Vec::with_capacity(nsym);
        for _ in 0..nsym {
            symbols.push(r.string()?);
        }
        let n = r.len(r.remaining())?;
        let mut series = Vec::with_capacity(n);
        let mut postings = Postings::new();
        // Chunks lie back to back after the magic, in index order.
        let mut offset = MAGIC.len() as u64;
        for i in 0..n {
            let nl = r.len(crate::labels::MAX_LABELS)?;
            let mut pairs: Vec<Label> = Vec::with_capacity(nl);
            for _ in 0..nl {
                let mut symbol = || -> Result<&String, TsdbError> {
                    let id = r.uvarint()?;
                    symbols
                        .get(usize::try_from(id).unwrap_or(usize::MAX))
                        .ok_or_else(|| r.err("unknown symbol"))
                };
                let name = symbol()?;
                let value = symbol()?;
                if !crate::labels::is_valid_label_name(name) || value.is_empty() {
                    return Err(r.err("invalid label"));
                }
                if pairs.last().is_some_and(|p| p.name >= *name) {
                    return Err(r.err("labels out of order"));
                }
                pairs.push(Label {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
            let labels = Labels::from_sorted_unchecked(pairs);
            let nc = r.len(r.remaining() / 7)?;
            let mut chunks = Vec::with_capacity(nc);
            for _ in 0..nc {
                let min_t = mint.wrapping_add(unzz(r.uvarint()?));
                let max_t = min_t.wrapping_add(r.uvarint()? as i64);
                let len = r.len(1 << 20)? as u32;
                let crc =
                    u32::from_le_bytes(r.bytes(4)?.try_into().map_err(|_| r.err("short crc"))?);
                let end = offset + u64::from(len);
                if end > index_off {
                    return Err(r.err("chunk outside the data section"));
                }
                chunks.push(ChunkMeta {
                    min_t,
                    max_t,
                    offset,
                    len,
                    crc,
                });
                offset = end;
            }
            postings.add(i as SeriesRef, &labels);
            series.push(BlockSeries { labels, chunks });
        }
        if !r.is_empty() {
            return Err(r.err("trailing bytes"));
        }
        Ok(Block {
            path: path.to_path_buf(),
            file,
            mint,
            maxt,
            series,
            postings,
            bytes: size,
        })
    }

    /// The block's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Number of samples (from the chunk headers).
    pub fn num_samples(&self) -> Result<u64, TsdbError> {
        let mut n = 0;
        for s in &self.series {
            for c in &s.chunks {
                n += chunk_len(&self.read_chunk(c)?) as u64;
            }
        }
        Ok(n)
    }

    /// Every series with all its chunks (read from disk), sorted by labels: the input of
    /// compaction.
    pub fn all_series(&self) -> Result<Vec<SeriesChunks>, TsdbError> {
        let mut out = Vec::with_capacity(self.series.len());
        for s in &self.series {
            let mut chunks = Vec::with_capacity(s.chunks.len());
            for c in &s.chunks {
                chunks.push(ClosedChunk {
                    bytes: self.read_chunk(c)?,
                    min_t: c.min_t,
                    max_t: c.max_t,
                });
            }
            out.push((s.labels.clone(), chunks, Vec::new()));
        }
        Ok(out)
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.mint <= end && self.maxt > start
    }

    fn read_chunk(&self, c: &ChunkMeta) -> Result<Arc<[u8]>, TsdbError> {
        let mut buf = vec![0u8; c.len as usize];
        self.file
            .read_exact_at(&mut buf, c.offset)
            .map_err(io_err(&self.path))?;
        if crc32fast::hash(&buf) != c.crc {
            return Err(TsdbError::Corrupt {
                what: format!("block {}", self.path.display()),
                reason: format!("chunk checksum mismatch at offset {}", c.offset),
            });
        }
        Ok(buf.into())
    }

    /// Series matching `matchers` with chunks overlapping `[start, end]`, sorted by labels.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>, TsdbError> {
        if !self.overlaps(start, end) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for r in self.postings.select(matchers) {
            let s = &self.series[r as usize];
            let mut chunks = Vec::new();
            for c in s
                .chunks
                .iter()
                .filter(|c| c.max_t >= start && c.min_t <= end)
            {
                chunks.push(self.read_chunk(c)?);
            }
            if chunks.is_empty() {
                continue;
            }
            let series = Series::from_parts(s.labels.clone(), chunks, Vec::new(), start, end);
            if !series.is_empty() {
                out.push(series);
            }
        }
        // Refs were assigned in label order, so `out` is sorted already.
        Ok(out)
    }

    /// Label names of matching series with data in range.
    pub fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        if !self.overlaps(start, end) {
            return Vec::new();
        }
        if matchers.is_empty() {
            return self.postings.label_names().map(str::to_string).collect();
        }
        let mut names: Vec<String> = self
            .postings
            .select(matchers)
            .into_iter()
            .flat_map(|r| {
                self.series[r as usize]
                    .labels
                    .iter()
                    .map(|l| l.name.to_string())
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Values of label `name` over matching series with data in range.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<String> {
        if !self.overlaps(start, end) {
            return Vec::new();
        }
        if matchers.is_empty() {
            return self
                .postings
                .label_values(name)
                .map(str::to_string)
                .collect();
        }
        let mut values: Vec<String> = self
            .postings
            .select(matchers)
            .into_iter()
            .filter_map(|r| self.series[r as usize].labels.get(name).map(str::to_string))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }
}

/// Opens every block in `dir`, oldest first, deleting leftover temporaries.
pub fn open_all(dir: &Path) -> Result<Vec<Arc<Block>>, TsdbError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") {
            // A block write that did not finish; its samples are still in the WAL.
            fs::remove_file(&path).map_err(io_err(&path))?;
        } else if name.ends_with(".block") {
            blocks.push(Arc::new(Block::open(&path)?));
        }
    }
    blocks.sort_by_key(|b| b.mint);
    // A crash between writing a compacted block and deleting its sources leaves both; the
    // compacted one was complete before its rename, so the sources inside its range go.
    let mut kept: Vec<Arc<Block>> = Vec::with_capacity(blocks.len());
    for b in &blocks {
        let covered = blocks.iter().any(|o| {
            !Arc::ptr_eq(o, b)
                && o.mint <= b.mint
                && b.maxt <= o.maxt
                && (o.maxt - o.mint) > (b.maxt - b.mint)
        });
        if covered {
            fs::remove_file(b.path()).map_err(io_err(b.path()))?;
        } else {
            kept.push(b.clone());
        }
    }
    Ok(kept)
}

/// Merges blocks (sorted by time, inside `[mint, maxt)`) into one block for that range.
pub fn compact(
    dir: &Path,
    mint: i64,
    maxt: i64,
    sources: &[Arc<Block>],
) -> Result<Block, TsdbError> {
    let mut merged: BTreeMap<Labels, Vec<ClosedChunk>> = BTreeMap::new();
    for b in sources {
        for (labels, chunks, _) in b.all_series()? {
            merged.entry(labels).or_default().extend(chunks);
        }
    }
    let series = merged
        .into_iter()
        .map(|(l, c)| (l, c, Vec::new()))
        .collect();
    write_block(dir, mint, maxt, series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MatchOp;

    fn chunks(samples: &[(i64, f64)]) -> Vec<ClosedChunk> {
        rechunk(samples)
    }

    #[test]
    fn write_open_select() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::new([("__name__", "a"), ("job", "x")]).unwrap();
        let b = Labels::new([("__name__", "b"), ("job", "y")]).unwrap();
        let sa: Vec<(i64, f64)> = (0..300).map(|i| (i * 10, i as f64)).collect();
        let series = vec![
            (a.clone(), chunks(&sa), vec![(5, 0.5), (10, 99.0)]),
            (b.clone(), chunks(&[(100, 1.0)]), Vec::new()),
        ];
        let block = write_block(dir.path(), 0, 3000, series).unwrap();
        let block = Block::open(block.path()).unwrap();
        assert_eq!(block.num_series(), 2);
        assert_eq!(block.num_samples().unwrap(), 302);
        let got = block.select(&[Matcher::equal("job", "x")], 0, 20).unwrap();
        assert_eq!(
            got[0].samples().collect::<Vec<_>>(),
            [(0, 0.0), (5, 0.5), (10, 1.0), (20, 2.0)]
        );
        let all = block
            .select(
                &[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()],
                i64::MIN,
                i64::MAX,
            )
            .unwrap();
        assert_eq!(
            all.iter().map(|s| s.labels.clone()).collect::<Vec<_>>(),
            [a, b]
        );
        assert_eq!(block.label_values("job", &[], 0, 10), ["x", "y"]);
        assert!(block.label_values("job", &[], 3000, 4000).is_empty());
        assert_eq!(
            block.label_names(&[Matcher::equal("job", "y")], 0, 3000),
            ["__name__", "job"]
        );
    }

    #[test]
    fn format_1_blocks_are_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0, 100));
        let mut bytes = MAGIC_V1.to_vec();
        bytes.resize(200, 0);
        fs::write(&path, bytes).unwrap();
        let err = Block::open(&path).unwrap_err().to_string();
        assert!(err.contains("block format 1"), "{err}");
        assert!(err.contains("delete"), "{err}");
    }

    /// Blocks are written with packed chunks of up to `BLOCK_CHUNK_SAMPLES`, merging the
    /// head's short XOR chunks, and read back bit for bit.
    #[test]
    fn blocks_hold_long_packed_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::new([("__name__", "a")]).unwrap();
        let samples: Vec<(i64, f64)> = (0..1000)
            .map(|i| {
                (
                    i * 30_000,
                    if i == 500 {
                        crate::stale_nan()
                    } else {
                        i as f64 / 10.0
                    },
                )
            })
            .collect();
        let head_chunks: Vec<ClosedChunk> = samples
            .chunks(crate::chunk::SAMPLES_PER_CHUNK)
            .map(|part| {
                let mut c = crate::chunk::XorChunk::new();
                for &(t, v) in part {
                    c.append(t, v);
                }
                ClosedChunk {
                    bytes: c.bytes().into(),
                    min_t: part[0].0,
                    max_t: part[part.len() - 1].0,
                }
            })
            .collect();
        let xor_bytes: usize = head_chunks.iter().map(|c| c.bytes.len()).sum();
        let block = write_block(
            dir.path(),
            0,
            30_000_000,
            vec![(a, head_chunks, Vec::new())],
        )
        .unwrap();
        assert_eq!(
            block.series[0].chunks.len(),
            1000usize.div_ceil(BLOCK_CHUNK_SAMPLES)
        );
        let chunk_bytes: u32 = block.series[0].chunks.iter().map(|c| c.len).sum();
        assert!(
            (chunk_bytes as usize) < xor_bytes / 3,
            "{chunk_bytes} vs {xor_bytes}"
        );
        let got = block
            .select(&[Matcher::equal("__name__", "a")], i64::MIN, i64::MAX)
            .unwrap();
        let got: Vec<(i64, u64)> = got[0].samples().map(|s| (s.0, s.1.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|s| (s.0, s.1.to_bits())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::new([("__name__", "a")]).unwrap();
        let block = write_block(
            dir.path(),
            0,
            100,
            vec![(a, chunks(&[(1, 1.0), (2, 2.0)]), Vec::new())],
        )
        .unwrap();
        let path = block.path().to_path_buf();
        drop(block);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            fs::write(&path, &bad).unwrap();
            // Either the open fails, or reading the chunk does (its CRC), never a panic.
            if let Ok(b) = Block::open(&path) {
                assert!(
                    b.select(&[Matcher::equal("__name__", "a")], 0, 100)
                        .is_err(),
                    "byte {i}"
                );
            }
        }
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            assert!(Block::open(&path).is_err());
        }
    }
}
