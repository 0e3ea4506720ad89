//! Blocks: immutable Parquet files of spans, plus a small sidecar that start-up reads.
//!
//! A block is a directory `blocks/<id>/` holding `data.parquet` (one row per span, ZSTD for
//! the attribute blobs, delta encoding for times, dictionaries for names), `meta.json` (time
//! bounds, counts, services, operations, `wal_through`, filter sizes), `traceids.bloom`
//! (one Bloom filter over the trace ids of each row group), `tags.bloom` (filters over the
//! attributes of each search window) and `resources.bin` (the block's distinct resources and
//! scopes). It is built in `<id>.tmp/`, every file fsynced, then renamed into place and the
//! parent directory fsynced, so a block is either wholly there or not at all. Opening a store
//! reads only `meta.json`; the filters, tables and the Parquet footer are loaded on first use
//! and then kept (a few bytes per trace).
//!
//! Rows are grouped by trace (spans of a trace adjacent, by start) and the traces ordered by
//! their first span's start. Row groups end only at trace boundaries, so a trace lives in
//! exactly one row group and a parent is addressed by its row distance (`parent_offset`)
//! instead of 8 more random bytes; `parent_span_id` is written only when the parent is not
//! in the block. Query columns are plain Parquet columns (anyone can open a block with
//! DuckDB); everything else of a span is the protobuf "rest" blob of [`crate::codec`], in a
//! column `rest_chunk.rs` encodes (without a dictionary: blobs rarely repeat, and a dictionary
//! page would have to be decoded whole before any row of the row group could be read).
//! Resources and scopes are protobuf blobs stored once per block in `resources.bin`, and the
//! `resource` and `scope` columns hold indices into it: the head has interned them already,
//! whereas handing Parquet the blobs (format 3) made its dictionary encoder hash and compare
//! a few hundred bytes per span, and counted references to them: 4% of the server's CPU at
//! full-speed ingest. `status_message` is null for spans without one (blocks written before
//! that hold empty strings; Lookout reads messages from the rest blob either way): an empty
//! string per span went through Parquet's dictionary encoder, a tenth of block building.
//!
//! Why time order: a Jaeger search wants the newest `limit` traces with a matching span, so
//! with rows in time order row groups and pages are narrow time slices, and a search walks
//! them newest first and stops as soon as what is left starts before the `limit`-th trace it
//! has (row-group start statistics, then per window of two pages). Usually that is the last
//! row group of the newest block; time-range filters skip row groups the same way. The cost
//! is that a trace id no longer says where a trace is: hence a filter per row group (instead
//! of one per block plus a sparse id index), and a lookup reads the trace-id column (plain
//! 16-byte values behind a dictionary, uncompressed) of the row groups whose filter says
//! maybe, then only the pages that hold the trace's rows.
//!
//! How a row group is searched ([`Block::search`]): predicates run cheapest first, each
//! narrowing the rows the next reads. Service and span name are decided on the column
//! chunk's dictionary (read page by page in [`read_bytes`], not through Parquet's record
//! reader, so rows are compared as dictionary indices and no value is copied or
//! reference-counted per row); a row group without the wanted value stops there. Then start,
//! duration and kind; then tags, first per distinct resource and scope (dictionary values
//! again), and only for rows their resource did not decide, the rest blob, matched on its
//! undecoded protobuf bytes ([`Matcher::tags_raw`]), read only from the pages holding such
//! rows. Trace ids are read last, for matching rows only. Result traces are then fetched per
//! block in one pass ([`Block::traces`]), since they mostly share the newest pages.
//!
//! Format 1 blocks (rows in trace-id order, one block-wide filter, `traceids.fences`: the
//! trace id at every page start), format 2 blocks (format 3 with 7-hash filters) and
//! format 3 blocks (the resource and scope blobs in their columns, dictionary-encoded) are
//! still read; only format 4 is written.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use model::{Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId, UnixNanos};
use parking_lot::Mutex;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::page::Page;
use parquet::column::reader::ColumnReader;
use parquet::data_type::{
    ByteArray, ByteArrayType, DataType, FixedLenByteArray, FixedLenByteArrayType, Int32Type,
    Int64Type,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{ChunkReader, FileReader, Length, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use serde::{Deserialize, Serialize};

use crate::codec::{self, SpanColumns};
use crate::dict_chunk::{plain_bytes, plain_i32, DictChunkWriter};
use crate::head::Head;
use crate::query::Matcher;
use crate::rest_chunk::RestChunkWriter;
use crate::TraceError;

const SCHEMA: &str = "
message lookout_span {
  required fixed_len_byte_array(16) trace_id;
  required fixed_len_byte_array(8) span_id;
  required int32 parent_offset;
  optional fixed_len_byte_array(8) parent_span_id;
  required binary service (UTF8);
  required binary name (UTF8);
  required int32 kind;
  required int64 start_unix_nano;
  required int64 duration_nano;
  required int32 status_code;
  optional binary status_message (UTF8);
  required int32 resource;
  required int32 scope;
  required binary rest;
}";

const C_TRACE: usize = 0;
const C_SPAN: usize = 1;
const C_PARENT_OFF: usize = 2;
const C_PARENT: usize = 3;
const C_SERVICE: usize = 4;
const C_NAME: usize = 5;
const C_KIND: usize = 6;
const C_START: usize = 7;
const C_DURATION: usize = 8;
const C_STATUS: usize = 9;
const C_STATUS_MSG: usize = 10;
const C_RESOURCE: usize = 11;
const C_SCOPE: usize = 12;
const C_REST: usize = 13;
const COLUMNS: usize = 14;

/// The format blocks are written in. Format 1 (rows in trace-id order, a block-wide trace-id
/// filter and `traceids.fences`), format 2 (format 3 with 7-hash row group filters) and
/// format 3 (resource and scope blobs in their columns) are still read.
const FORMAT: u32 = 4;
const PAGE_ROWS: usize = 1024;
/// Rows per step of a search's newest-first walk through a row group (two pages).
const SEARCH_WINDOW_ROWS: usize = 2 * PAGE_ROWS;
/// Rows of rest blobs written and then read for the tag filter at a time: about 50 KiB of
/// blobs, which stay in the core's cache between the two (a whole window did not).
const FILTER_SLICE_ROWS: usize = 128;
const _: () = assert!(PAGE_ROWS.is_multiple_of(FILTER_SLICE_ROWS));
/// Head rows read ahead together in block building ([`Head::warm`]); 16 did measurably
/// worse, 64 no better.
const WARM_ROWS: usize = 32;
const DATA: &str = "data.parquet";
const META: &str = "meta.json";
const FILTER: &str = "traceids.bloom";
const FENCES: &str = "traceids.fences";
const TAG_FILTER: &str = "tags.bloom";
/// Format 4: the block's distinct resources and scopes, which its `resource` and `scope`
/// columns index.
const TABLES: &str = "resources.bin";
/// Bits per distinct `key=value` of a search window's tag filter, and the cap on its size:
/// a window of high-cardinality values (ids in attributes) gets a fuller filter, which only
/// costs it fewer skips.
const TAG_BITS_PER_VALUE: u64 = 10;
const TAG_FILTER_MAX_BITS: u64 = 8 * 1024;
const TAG_FILTER_HASHES: u32 = 7;
const FENCE_BYTES: usize = 24;
/// Traces of up to this many spans find a parent by scanning their rows rather than a map.
const SCAN_TRACE_ROWS: usize = 32;
/// Format 1's block-wide filter: 10 bits and 7 hashes per trace, 1% false positives.
const FILTER_HASHES_V1: u32 = 7;
/// Format 2 has a filter per row group, and a lookup asks every one of them (62 for a
/// million spans), so each needs a rate 60 times lower for the block as a whole to answer
/// "maybe" to an absent trace about as rarely as format 1: 16 bits and 11 hashes per trace
/// (0.05% per row group, 3% per block), 2 bytes per trace.
const FILTER_HASHES: u32 = 11;
const FILTER_BITS_PER_TRACE: u64 = 16;

/// What start-up knows about a block without opening its data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BlockMeta {
    pub format: u32,
    pub id: u64,
    /// Every WAL segment below this id is covered by this block and older ones.
    pub wal_through: u64,
    pub spans: u64,
    pub traces: u64,
    pub min_start: UnixNanos,
    pub max_start: UnixNanos,
    pub max_end: UnixNanos,
    /// Bytes of all files of the block.
    pub bytes: u64,
    pub services: Vec<String>,
    /// `(service, span name, span kind)`.
    pub operations: Vec<(String, String, u8)>,
    pub filter_bits: u64,
    /// Formats 2 and 3: the bits of each row group's Bloom filter, in row group order; the filter
    /// file is their concatenation.
    #[serde(default)]
    pub rg_filter_bits: Vec<u64>,
}

/// A Bloom filter over trace ids.
struct Bloom {
    words: Vec<u64>,
    hashes: u32,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn id_hashes(id: &TraceId) -> (u64, u64) {
    let a = u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(id.0[8..].try_into().expect("8 bytes"));
    let h1 = mix(a ^ mix(b));
    let h2 = mix(b.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ a.rotate_left(17)) | 1;
    (h1, h2)
}

impl Bloom {
    fn with_traces(n: u64) -> Bloom {
        let bits = (n * FILTER_BITS_PER_TRACE).max(64);
        Bloom {
            words: vec![0; bits.div_ceil(64) as usize],
            hashes: FILTER_HASHES,
        }
    }

    fn bits(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    fn insert(&mut self, id: &TraceId) {
        self.insert_hashes(id_hashes(id));
    }

    fn insert_hashes(&mut self, (h1, h2): (u64, u64)) {
        let n = self.bits();
        for i in 0..self.hashes as u64 {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % n;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn contains(&self, id: &TraceId) -> bool {
        self.contains_hashes(id_hashes(id))
    }

    fn contains_hashes(&self, (h1, h2): (u64, u64)) -> bool {
        let n = self.bits();
        (0..self.hashes as u64).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % n;
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn from_bytes(b: &[u8], bits: u64, hashes: u32) -> Option<Bloom> {
        if bits == 0 || !bits.is_multiple_of(64) || b.len() as u64 != bits / 8 {
            return None;
        }
        Some(Bloom {
            hashes,
            words: b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        })
    }
}

/// A query tag's filter hashes; `None` for tags a filter cannot rule out.
type TagHash = Option<(u64, u64)>;

/// The tag filters of a block: `[row group][search window]`.
type TagFilters = Vec<Vec<Bloom>>;

/// Parses `tags.bloom`: per window, a u32 word count then the words, in row group order.
fn parse_tag_filters(b: &[u8], windows: &[usize]) -> Option<TagFilters> {
    let mut at = 0usize;
    let mut out = Vec::with_capacity(windows.len());
    for n in windows {
        let mut rg = Vec::with_capacity(*n);
        for _ in 0..*n {
            let words = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
            at += 4;
            let end = at.checked_add(words.checked_mul(8)?)?;
            let f = Bloom::from_bytes(b.get(at..end)?, words as u64 * 64, TAG_FILTER_HASHES)?;
            rg.push(f);
            at = end;
        }
        out.push(rg);
    }
    (at == b.len()).then_some(out)
}

/// A sparse index of trace ids: the id at the first row of every data page (pages hold
/// `PAGE_ROWS` rows), in row order, which is trace-id order. It narrows a trace lookup to
/// one or two pages, so the reader skips every other page without decompressing it.
struct Fences {
    /// `(row group, row in the row group, trace id)`.
    posts: Vec<(u32, u32, [u8; 16])>,
}

impl Fences {
    fn from_bytes(b: &[u8]) -> Option<Fences> {
        if !b.len().is_multiple_of(FENCE_BYTES) {
            return None;
        }
        let posts: Vec<(u32, u32, [u8; 16])> = b
            .chunks_exact(FENCE_BYTES)
            .map(|c| {
                (
                    u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
                    u32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
                    c[8..24].try_into().expect("16 bytes"),
                )
            })
            .collect();
        posts
            .windows(2)
            .all(|w| w[0].2 <= w[1].2)
            .then_some(Fences { posts })
    }

    /// The row group and the row range `[lo, hi)` (`hi == None`: to the row group's end)
    /// that must hold trace `id` if the block has it.
    fn locate(&self, id: &TraceId) -> Option<(usize, usize, Option<usize>)> {
        let j = self.posts.partition_point(|p| p.2 < id.0);
        let (rg, lo) = match self.posts.get(j) {
            // The trace starts exactly at a row group's first row.
            Some(p) if p.2 == id.0 && p.1 == 0 => (p.0, 0),
            _ if j > 0 => (self.posts[j - 1].0, self.posts[j - 1].1),
            _ => return None,
        };
        let k = j + self.posts[j..].partition_point(|p| p.2 <= id.0);
        let hi = match self.posts.get(k) {
            Some(p) if p.0 == rg => Some(p.1 as usize),
            _ => None,
        };
        Some((rg as usize, lo as usize, hi))
    }
}

/// The data file of a block as Parquet's reader sees it: positioned reads (`pread`) on one
/// shared descriptor. The `File` reader of the parquet crate duplicates the descriptor,
/// seeks and closes it for every page it opens, which was most of a trace lookup's time.
struct BlockFile {
    file: Arc<File>,
    len: u64,
}

/// A `Read` at an advancing offset of a shared file.
struct PRead {
    file: Arc<File>,
    pos: u64,
}

impl Read for PRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Length for BlockFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for BlockFile {
    type T = BufReader<PRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(BufReader::with_capacity(
            4096,
            PRead {
                file: self.file.clone(),
                pos: start,
            },
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut buf = vec![0; length];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(Bytes::from(buf))
    }
}

/// A format 4 block's distinct resources and scopes, as encoded by [`crate::codec`]; row `i`
/// of the `resource` column holds an index into `resources`.
///
/// On disk: for the resources, then the scopes, a little-endian `u32` count, then every blob
/// as a little-endian `u32` length and its bytes.
struct Tables {
    resources: Vec<Bytes>,
    scopes: Vec<Bytes>,
}

impl Tables {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for list in [&self.resources, &self.scopes] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for b in list {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// Parses what [`Tables::to_bytes`] wrote; `None` when it is truncated or has bytes left
    /// over. The blobs share `b`.
    fn from_bytes(b: &Bytes) -> Option<Tables> {
        let mut at = 0usize;
        let u32_at = |at: &mut usize| -> Option<usize> {
            let v = b.get(*at..*at + 4)?;
            *at += 4;
            Some(u32::from_le_bytes(v.try_into().ok()?) as usize)
        };
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = u32_at(&mut at)?;
            // Every entry takes at least its length field: a count beyond that is corrupt,
            // and checking first keeps it from sizing an allocation.
            if n > (b.len() - at) / 4 {
                return None;
            }
            list.reserve(n);
            for _ in 0..n {
                let len = u32_at(&mut at)?;
                let end = at.checked_add(len).filter(|e| *e <= b.len())?;
                list.push(b.slice(at..end));
                at = end;
            }
        }
        let [resources, scopes] = lists;
        (at == b.len()).then_some(Tables { resources, scopes })
    }

    /// The blob that `id`, a 4-byte little-endian index read from column `col`, stands for.
    fn blob(&self, col: usize, id: &[u8]) -> Result<&Bytes, String> {
        let list = if col == C_RESOURCE {
            &self.resources
        } else {
            &self.scopes
        };
        let i = <[u8; 4]>::try_from(id)
            .map(i32::from_le_bytes)
            .map_err(|_| format!("column {col}: an index of {} bytes", id.len()))?;
        usize::try_from(i)
            .ok()
            .and_then(|i| list.get(i))
            .ok_or_else(|| format!("column {col}: index {i} is not in the block's table"))
    }
}

/// An open block.
pub(crate) struct Block {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    services: HashSet<String>,
    /// Format 1: one filter for the block; format 2: one per row group.
    filter: Mutex<Option<Arc<Vec<Bloom>>>>,
    fences: Mutex<Option<Arc<Fences>>>,
    /// Per row group, per search window: a filter over the window's span and event
    /// attributes as `key=value` (`None` inside: not loaded yet or unusable).
    tag_filters: Mutex<Option<Arc<Option<TagFilters>>>>,
    /// Format 4: the resources and scopes its columns index.
    tables: Mutex<Option<Arc<Tables>>>,
    reader: Mutex<Option<Arc<SerializedFileReader<BlockFile>>>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TraceError + '_ {
    move |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fsync_dir(path: &Path) -> Result<(), TraceError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

/// The directory name of block `id`.
pub(crate) fn block_dir_name(id: u64) -> String {
    format!("{id:020}")
}

/// Options for writing blocks.
pub(crate) struct WriteOptions {
    pub row_group_spans: usize,
    pub zstd_level: i32,
}

/// Writes the spans of a frozen head as block `id` under `blocks_dir`. Runs for seconds on
/// big heads: call it from a blocking thread.
pub(crate) fn write_block(
    blocks_dir: &Path,
    id: u64,
    head: &Head,
    wal_through: u64,
    opts: &WriteOptions,
) -> Result<Block, TraceError> {
    write_block_as(blocks_dir, id, head, wal_through, opts, FORMAT)
}

/// [`write_block`] in `format`: [`FORMAT`], or 3 for tests that older blocks stay readable.
fn write_block_as(
    blocks_dir: &Path,
    id: u64,
    head: &Head,
    wal_through: u64,
    opts: &WriteOptions,
    format: u32,
) -> Result<Block, TraceError> {
    let indexed = format >= 4;
    let final_dir = blocks_dir.join(block_dir_name(id));
    let tmp_dir = blocks_dir.join(format!("{}.tmp", block_dir_name(id)));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
    }
    fs::create_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;

    // Group rows by trace (sorted by start, span id within it), then order the traces by
    // their first start, so that every row group and page covers a narrow time range.
    let order = head.block_order();

    let data_path = tmp_dir.join(DATA);
    let block_err = |reason: String| TraceError::Block {
        path: data_path.clone(),
        reason,
    };
    let schema = if indexed {
        SCHEMA.to_string()
    } else {
        SCHEMA
            .replace("int32 resource", "binary resource")
            .replace("int32 scope", "binary scope")
    };
    let schema = Arc::new(parse_message_type(&schema).map_err(|e| block_err(e.to_string()))?);
    let zstd = ZstdLevel::try_new(opts.zstd_level).map_err(|e| block_err(e.to_string()))?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("trace_id"), EnabledStatistics::Chunk)
        .set_column_statistics_enabled(
            ColumnPath::from("start_unix_nano"),
            EnabledStatistics::Chunk,
        )
        // Small pages let trace-by-id skip (without decompressing) all pages but the one
        // holding the trace.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_created_by("lookout traces".to_string());
    for c in [
        "span_id",
        "parent_span_id",
        "start_unix_nano",
        "duration_nano",
    ] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // Times and parent offsets are delta-encoded and bit-packed rather than ZSTD-compressed:
    // about as small (rows are in start order, and offsets are small), and reading them
    // needs no ZSTD context, which the Parquet reader creates afresh for every column chunk
    // it opens (a search and a trace lookup open several).
    for c in ["start_unix_nano", "duration_nano", "parent_offset"] {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    // Random ids do not compress, and dictionary-encoded columns are already a few bits per
    // row. Leaving those uncompressed also matters for reads: the Parquet reader builds a
    // fresh ZSTD context per column chunk it opens, which dominated trace-by-id.
    for c in [
        "trace_id",
        "span_id",
        "parent_span_id",
        "parent_offset",
        "start_unix_nano",
        "duration_nano",
        "service",
        "name",
        "kind",
        "status_code",
        "status_message",
        "resource",
        "scope",
    ] {
        props = props.set_column_compression(ColumnPath::from(c), Compression::UNCOMPRESSED);
    }
    let file = File::create(&data_path).map_err(io_err(&data_path))?;
    let mut writer =
        SerializedFileWriter::new(BufWriter::new(file), schema, Arc::new(props.build()))
            .map_err(|e| block_err(e.to_string()))?;
    let mut rest = RestColumn {
        chunks: RestChunkWriter::new(zstd, PAGE_ROWS, writer.schema_descr().column(C_REST))
            .map_err(|e| block_err(e.to_string()))?,
        tag_filters: WrittenTagFilters::default(),
    };
    let mut dict_columns = DictColumns::new(writer.schema_descr());

    let strings: Vec<Bytes> = head
        .strings
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    let mut filters = Vec::new();
    let mut rg_filter_bits = Vec::new();
    let mut start = 0;
    let mut t = 0;
    while t < order.traces.len() {
        // Take whole traces until the row group is full.
        let first = t;
        let mut end = start;
        while t < order.traces.len() && (end - start < opts.row_group_spans || end == start) {
            end = order.traces[t].1 as usize;
            t += 1;
        }
        let traces = &order.traces[first..t];
        // A search window's tag filter is built as its rest blobs are copied into the
        // column's pages, a slice at a time, while they are still in cache: as a second pass
        // over the row group it read every blob from memory again.
        write_row_group(
            &mut writer,
            head,
            &strings,
            &order.rows[start..end],
            traces
                .iter()
                .map(|(_, trace_end)| *trace_end as usize - start),
            indexed,
            &mut rest,
            &mut dict_columns,
        )
        .map_err(|e| block_err(e.to_string()))?;
        let mut bloom = Bloom::with_traces(traces.len() as u64);
        for (id, _) in traces {
            bloom.insert(id);
        }
        rg_filter_bits.push(bloom.bits());
        filters.push(bloom);
        start = end;
    }
    writer.close().map_err(|e| block_err(e.to_string()))?;
    File::open(&data_path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&data_path))?;

    let filter_path = tmp_dir.join(FILTER);
    let filter_bytes: Vec<u8> = filters.iter().flat_map(Bloom::to_bytes).collect();
    write_synced(&filter_path, &filter_bytes)?;
    let tag_filters = rest.tag_filters;
    write_synced(&tmp_dir.join(TAG_FILTER), &tag_filters.bytes)?;
    let tables_bytes = if indexed {
        let tables = Tables {
            resources: head.resources.iter().map(|r| r.bytes.clone()).collect(),
            scopes: head.scopes.iter().map(|s| s.bytes.clone()).collect(),
        }
        .to_bytes();
        write_synced(&tmp_dir.join(TABLES), &tables)?;
        tables.len() as u64
    } else {
        0
    };

    let mut services: Vec<String> = head
        .resources
        .iter()
        .map(|r| head.strings[r.service as usize].to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    services.sort();
    let mut operations: Vec<(String, String, u8)> = head
        .operations
        .iter()
        .map(|(s, n, k)| {
            (
                head.strings[*s as usize].to_string(),
                head.strings[*n as usize].to_string(),
                *k as u8,
            )
        })
        .collect();
    operations.sort();
    let data_bytes = fs::metadata(&data_path).map_err(io_err(&data_path))?.len();
    let mut meta = BlockMeta {
        format,
        id,
        wal_through,
        spans: head.len() as u64,
        traces: order.traces.len() as u64,
        min_start: head.min_start,
        max_start: head.max_start,
        max_end: head.max_end,
        bytes: data_bytes
            + filter_bytes.len() as u64
            + tag_filters.bytes.len() as u64
            + tables_bytes,
        services,
        operations,
        filter_bits: filter_bytes.len() as u64 * 8,
        rg_filter_bits,
    };
    let meta_path = tmp_dir.join(META);
    let mut json = serde_json::to_vec(&meta).map_err(|e| TraceError::Block {
        path: meta_path.clone(),
        reason: e.to_string(),
    })?;
    meta.bytes += json.len() as u64 + 16;
    json = serde_json::to_vec(&meta).map_err(|e| TraceError::Block {
        path: meta_path.clone(),
        reason: e.to_string(),
    })?;
    write_synced(&meta_path, &json)?;
    fsync_dir(&tmp_dir)?;
    fs::rename(&tmp_dir, &final_dir).map_err(io_err(&final_dir))?;
    fsync_dir(blocks_dir)?;
    let block = Block::new(final_dir, meta);
    *block.filter.lock() = Some(Arc::new(filters));
    Ok(block)
}

/// Builds the tag filter of one search window from its rest blobs, fed in slices as they are
/// written, into the form `tags.bloom` stores: its length in words, then the words.
///
/// The distinct encoded attributes of the window are each hashed once. Most attributes
/// repeat within a few spans, and a direct-mapped cache of recent ones answers those with
/// one comparison instead of hashing into the set; a slot only ever holds an attribute
/// already in `seen`.
struct WindowFilter<'a, 'p> {
    out: &'p mut WrittenTagFilters,
    seen: HashSet<&'a [u8], ahash::RandomState>,
    recent: [Option<&'a [u8]>; RECENT_SLOTS],
    broken: bool,
}

impl<'a, 'p> WindowFilter<'a, 'p> {
    fn new(out: &'p mut WrittenTagFilters) -> Self {
        out.pairs.clear();
        WindowFilter {
            out,
            seen: HashSet::default(),
            recent: [None; RECENT_SLOTS],
            broken: false,
        }
    }

    fn add(&mut self, blobs: &[&'a [u8]]) {
        for rest in blobs {
            let (recent, seen, pairs) = (&mut self.recent, &mut self.seen, &mut self.out.pairs);
            self.broken |= crate::query::rest_tag_kvs(rest, &mut |kv| {
                let slot = &mut recent[recent_slot(kv)];
                if *slot == Some(kv) {
                    return Ok(());
                }
                *slot = Some(kv);
                if seen.insert(kv) {
                    pairs.insert(crate::query::kv_tag_hash(kv)?);
                }
                Ok(())
            })
            .is_err();
        }
    }

    /// Appends the window's filter to the block's; the builder is ready for the next window.
    fn finish(&mut self) {
        let pairs = &mut self.out.pairs;
        let bits = (pairs.len() as u64 * TAG_BITS_PER_VALUE).clamp(64, TAG_FILTER_MAX_BITS);
        let mut f = Bloom {
            words: vec![0; bits.div_ceil(64) as usize],
            hashes: TAG_FILTER_HASHES,
        };
        for h in pairs.iter() {
            f.insert_hashes(*h);
        }
        if self.broken {
            // A blob that does not parse: the filter must never rule anything out.
            f.words.fill(u64::MAX);
        }
        pairs.clear();
        self.seen.clear();
        self.recent = [None; RECENT_SLOTS];
        self.broken = false;
        let bytes = &mut self.out.bytes;
        bytes.extend((f.words.len() as u32).to_le_bytes());
        bytes.extend(f.to_bytes());
    }
}

/// The tag filters of a block's search windows as they are written (`tags.bloom`), and the
/// distinct tags of the window being built, kept between windows as scratch space.
#[derive(Default)]
struct WrittenTagFilters {
    bytes: Vec<u8>,
    /// aHash rather than SipHash (which was a tenth of the filters' cost): still keyed per
    /// process, since clients choose the tags.
    pairs: HashSet<(u64, u64), ahash::RandomState>,
}

/// Slots of the tag filter's cache of recent attributes.
const RECENT_SLOTS: usize = 256;

/// The cache slot of an encoded attribute: its last eight bytes (where values differ) and
/// its length, mixed. Cheap rather than strong: a collision only costs a trip to the set.
/// The common case (eight bytes or more) is one unaligned load rather than a copy.
fn recent_slot(kv: &[u8]) -> usize {
    let tail = match kv.last_chunk::<8>() {
        Some(t) => u64::from_le_bytes(*t),
        None => kv.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)),
    };
    let mixed = (tail ^ kv.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 56) as usize % RECENT_SLOTS
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), TraceError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Where the rest blobs of a block's row groups go: the column's chunks, and the tag filters of
/// its search windows, built from the same blobs.
struct RestColumn {
    chunks: RestChunkWriter,
    tag_filters: WrittenTagFilters,
}

/// The chunk writers of the columns whose values the head has interned (`dict_chunk.rs`).
struct DictColumns {
    service: DictChunkWriter,
    name: DictChunkWriter,
    kind: DictChunkWriter,
    status: DictChunkWriter,
    resource: DictChunkWriter,
    scope: DictChunkWriter,
}

impl DictColumns {
    fn new(schema: &SchemaDescriptor) -> DictColumns {
        let writer = |col| DictChunkWriter::new(PAGE_ROWS, schema.column(col));
        DictColumns {
            service: writer(C_SERVICE),
            name: writer(C_NAME),
            kind: writer(C_KIND),
            status: writer(C_STATUS),
            resource: writer(C_RESOURCE),
            scope: writer(C_SCOPE),
        }
    }
}

/// Writes the spans `rows` of `head` as one row group, the rest column through `rest_column`,
/// which also gets each search window's tag filter (in row order), and the columns of interned
/// values through `dict_columns`. `trace_ends` says where each trace's rows end in `rows`.
#[allow(clippy::too_many_arguments)]
fn write_row_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    head: &Head,
    strings: &[Bytes],
    rows: &[u32],
    trace_ends: impl IntoIterator<Item = usize>,
    indexed: bool,
    rest_column: &mut RestColumn,
    dict_columns: &mut DictColumns,
) -> parquet::errors::Result<()> {
    let n = rows.len();
    let mut trace_id = Vec::with_capacity(n);
    let mut span_id = Vec::with_capacity(n);
    let mut parent_off = Vec::with_capacity(n);
    let mut parent = Vec::new();
    let mut parent_def = Vec::with_capacity(n);
    // Ids of interned values: string ids, kinds, status codes, resource and scope indices.
    let mut service = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut start = Vec::with_capacity(n);
    let mut duration = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut status_msg = Vec::new();
    let mut status_msg_def = Vec::with_capacity(n);
    let mut resource = Vec::with_capacity(n);
    let mut scope = Vec::with_capacity(n);
    // Format 3's blobs, for tests only.
    let (mut resource_blobs, mut scope_blobs) = (Vec::new(), Vec::new());
    let mut rest: Vec<&[u8]> = Vec::with_capacity(n);
    // Ids are copied into one buffer and handed to Parquet as slices of it: no allocation or
    // copy per span.
    let mut ids_buf = Vec::with_capacity(n * 24);
    // The rows of the current trace (contiguous in `rows`), for finding parents by span id.
    let mut trace_rows = 0..0;
    let mut trace_ends = trace_ends.into_iter();
    let mut by_id: HashMap<SpanId, usize, ahash::RandomState> = HashMap::default();
    for (row, idx) in rows.iter().enumerate() {
        if row % WARM_ROWS == 0 {
            head.warm(&rows[row..(row + WARM_ROWS).min(n)]);
        }
        let s = &head.spans[*idx as usize];
        if row == trace_rows.end {
            trace_rows = row..trace_ends.next().unwrap_or(n).clamp(row + 1, n);
            by_id.clear();
            if trace_rows.len() > SCAN_TRACE_ROWS {
                for r in trace_rows.clone() {
                    by_id
                        .entry(head.spans[rows[r] as usize].span_id)
                        .or_insert(r);
                }
            }
        }
        ids_buf.extend_from_slice(&s.trace_id.0);
        ids_buf.extend_from_slice(&s.span_id.0);
        match s.parent {
            None => {
                parent_off.push(0);
                parent_def.push(0);
            }
            Some(p) => {
                // The first row of the trace with that span id, as the map would give.
                let found = if trace_rows.len() > SCAN_TRACE_ROWS {
                    by_id.get(&p).copied()
                } else {
                    trace_rows
                        .clone()
                        .find(|r| head.spans[rows[*r] as usize].span_id == p)
                };
                match found {
                    Some(r) if r != row => {
                        parent_off.push(row as i32 - r as i32);
                        parent_def.push(0);
                    }
                    _ => {
                        parent_off.push(0);
                        parent_def.push(1);
                        parent.push(FixedLenByteArray::from(p.0.to_vec()));
                    }
                }
            }
        }
        let res = &head.resources[s.resource as usize];
        service.push(res.service);
        name.push(s.name);
        kind.push(s.kind as u32);
        start.push(s.start as i64);
        duration.push(s.end.saturating_sub(s.start) as i64);
        status.push(s.status as u32);
        // The message also rides in the rest blob; the column is for readers like DuckDB.
        // The head knows which spans have one, so only their blobs are read.
        let msg = head.status_message(s).unwrap_or_default();
        status_msg_def.push(i16::from(!msg.is_empty()));
        if !msg.is_empty() {
            status_msg.push(ByteArray::from(msg.as_bytes().to_vec()));
        }
        if indexed {
            resource.push(s.resource);
            scope.push(s.scope);
        } else {
            resource_blobs.push(ByteArray::from(res.bytes.clone()));
            scope_blobs.push(ByteArray::from(head.scopes[s.scope as usize].bytes.clone()));
        }
        rest.push(head.rest(s));
    }
    let ids_buf = Bytes::from(ids_buf);
    for row in 0..n {
        trace_id.push(FixedLenByteArray::from(ByteArray::from(
            ids_buf.slice(row * 24..row * 24 + 16),
        )));
        span_id.push(FixedLenByteArray::from(ByteArray::from(
            ids_buf.slice(row * 24 + 16..row * 24 + 24),
        )));
    }
    let mut rg = writer.next_row_group()?;
    for col in 0..COLUMNS {
        if col == C_REST {
            // A few rows per call, each slice's blobs read for the window's tag filter right
            // after they were copied into the page, from cache. Pages are cut every
            // `PAGE_ROWS` rows, a multiple of the slice.
            let chunks = &mut rest_column.chunks;
            let mut filter = WindowFilter::new(&mut rest_column.tag_filters);
            for window in rest.chunks(SEARCH_WINDOW_ROWS) {
                for slice in window.chunks(FILTER_SLICE_ROWS) {
                    chunks.push(slice)?;
                    filter.add(slice);
                }
                filter.finish();
            }
            let (chunk, close) = chunks.finish()?;
            rg.append_column(&chunk, close)?;
            continue;
        }
        // The columns of interned values: their writer, their ids, and whether the ids are
        // of strings (or are the values themselves).
        let d = &mut *dict_columns;
        let interned = match col {
            C_SERVICE => Some((&mut d.service, &service, true)),
            C_NAME => Some((&mut d.name, &name, true)),
            C_KIND => Some((&mut d.kind, &kind, false)),
            C_STATUS => Some((&mut d.status, &status, false)),
            C_RESOURCE if indexed => Some((&mut d.resource, &resource, false)),
            C_SCOPE if indexed => Some((&mut d.scope, &scope, false)),
            _ => None,
        };
        // Those `dict_chunk.rs` declines (dictionaries too large for it) go through Parquet.
        let mut declined = None;
        if let Some((writer, ids, of_strings)) = interned {
            let chunk = if of_strings {
                writer.chunk(ids, |id, out| plain_bytes(out, &strings[id as usize]))?
            } else {
                writer.chunk(ids, |id, out| plain_i32(out, id as i32))?
            };
            if let Some((chunk, close)) = chunk {
                rg.append_column(&chunk, close)?;
                continue;
            }
            declined = Some((ids, of_strings));
        }
        let Some(mut c) = rg.next_column()? else {
            return Err(parquet::errors::ParquetError::General(format!(
                "the schema ends before column {col}"
            )));
        };
        if let Some((ids, of_strings)) = declined {
            if of_strings {
                let texts: Vec<ByteArray> = ids
                    .iter()
                    .map(|id| ByteArray::from(strings[*id as usize].clone()))
                    .collect();
                c.typed::<ByteArrayType>().write_batch(&texts, None, None)?;
            } else {
                let ints: Vec<i32> = ids.iter().map(|id| *id as i32).collect();
                c.typed::<Int32Type>().write_batch(&ints, None, None)?;
            }
            c.close()?;
            continue;
        }
        // Columns Parquet encodes.
        match col {
            C_TRACE => c
                .typed::<FixedLenByteArrayType>()
                .write_batch(&trace_id, None, None)?,
            C_SPAN => c
                .typed::<FixedLenByteArrayType>()
                .write_batch(&span_id, None, None)?,
            C_PARENT_OFF => c
                .typed::<Int32Type>()
                .write_batch(&parent_off, None, None)?,
            C_PARENT => {
                c.typed::<FixedLenByteArrayType>()
                    .write_batch(&parent, Some(&parent_def), None)?
            }
            C_START => c.typed::<Int64Type>().write_batch(&start, None, None)?,
            C_DURATION => c.typed::<Int64Type>().write_batch(&duration, None, None)?,
            C_STATUS_MSG => {
                c.typed::<ByteArrayType>()
                    .write_batch(&status_msg, Some(&status_msg_def), None)?
            }
            // Format 3's blobs; an indexed block's ids were interned above.
            C_RESOURCE => c
                .typed::<ByteArrayType>()
                .write_batch(&resource_blobs, None, None)?,
            C_SCOPE => c
                .typed::<ByteArrayType>()
                .write_batch(&scope_blobs, None, None)?,
            _ => 0,
        };
        c.close()?;
    }
    rg.close()?;
    Ok(())
}

/// Reads `take` values of column `col` after skipping `skip` rows; for the optional column,
/// also returns the definition levels.
fn read_col<T: DataType>(
    rg: &dyn RowGroupReader,
    col: usize,
    skip: usize,
    take: usize,
) -> Result<(Vec<T::T>, Vec<i16>), String> {
    let range = skip..skip + take;
    read_col_ranges::<T>(rg, col, std::slice::from_ref(&range))
}

/// Reads the rows of `ranges` (ascending, disjoint) of column `col`, concatenated, with one
/// column reader: whole pages between ranges are skipped undecoded, and a page that holds
/// several ranges is decompressed once.
fn read_col_ranges<T: DataType>(
    rg: &dyn RowGroupReader,
    col: usize,
    ranges: &[std::ops::Range<usize>],
) -> Result<(Vec<T::T>, Vec<i16>), String> {
    let reader: ColumnReader = rg.get_column_reader(col).map_err(|e| e.to_string())?;
    let mut reader = T::get_column_reader(reader)
        .ok_or_else(|| format!("column {col} has an unexpected type"))?;
    let total: usize = ranges.iter().map(|r| r.len()).sum();
    let mut values = Vec::with_capacity(total);
    let mut defs = Vec::new();
    let mut pos = 0;
    for r in ranges {
        let skip = r
            .start
            .checked_sub(pos)
            .ok_or("row ranges are not ascending")?;
        if skip > 0 {
            let skipped = reader.skip_records(skip).map_err(|e| e.to_string())?;
            if skipped != skip {
                return Err(format!("column {col} is shorter than its row group"));
            }
        }
        let take = r.len();
        let mut got = 0;
        while got < take {
            let (records, _, _) = reader
                .read_records(take - got, Some(&mut defs), None, &mut values)
                .map_err(|e| e.to_string())?;
            if records == 0 {
                return Err(format!("column {col} is shorter than its row group"));
            }
            got += records;
        }
        pos = r.end;
    }
    Ok((values, defs))
}

/// How the values of a byte column are laid out in a PLAIN page.
#[derive(Clone, Copy)]
enum Width {
    /// `BYTE_ARRAY`: a 4-byte little-endian length before every value.
    Var,
    /// `FIXED_LEN_BYTE_ARRAY` of this many bytes.
    Fixed(usize),
}

/// Some rows of a byte column, read page by page: row `i` (of the rows asked for) holds
/// `values[ids[i]]`. For a dictionary-encoded column chunk, `values` is the chunk's
/// dictionary and `ids` its indices, so a predicate is decided once per distinct value and
/// rows are then compared as integers; PLAIN pages (the writer falls back to them when a
/// dictionary grows too big) append their values as they are.
struct ByteCol {
    values: Vec<Bytes>,
    ids: Vec<u32>,
}

/// Slices the PLAIN-encoded values of a page (`count` of them) and hands those whose index
/// `keep` accepts to `out`. The slices share the page buffer: no copy per value.
fn plain_values(
    buf: &Bytes,
    width: Width,
    count: usize,
    mut keep: impl FnMut(usize) -> bool,
    out: &mut Vec<Bytes>,
) -> Result<(), String> {
    let mut pos = 0usize;
    for i in 0..count {
        let (start, len) = match width {
            Width::Fixed(w) => (pos, w),
            Width::Var => {
                let l = buf
                    .get(pos..pos + 4)
                    .ok_or("byte array page is truncated")?;
                let l = u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize;
                (pos + 4, l)
            }
        };
        let end = start
            .checked_add(len)
            .filter(|e| *e <= buf.len())
            .ok_or("byte array page is truncated")?;
        if keep(i) {
            out.push(buf.slice(start..end));
        }
        pos = end;
    }
    Ok(())
}

/// Decodes `n` dictionary indices of an RLE_DICTIONARY data page (a bit-width byte, then
/// Parquet's RLE / bit-packing hybrid runs) into `out`.
fn dict_ids(buf: &[u8], n: usize, out: &mut Vec<u32>) -> Result<(), String> {
    let bad = || "bad dictionary indices in a page".to_string();
    let (&bw, mut rest) = buf.split_first().ok_or_else(bad)?;
    let bw = bw as usize;
    if bw > 32 {
        return Err(bad());
    }
    let end = out.len() + n;
    while out.len() < end {
        // ULEB128 run header.
        let mut h = 0u64;
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or_else(bad)?;
            rest = r;
            h |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 35 {
                return Err(bad());
            }
        }
        if h & 1 == 0 {
            // An RLE run: one value, little-endian in ceil(bw / 8) bytes.
            let len = (h >> 1) as usize;
            let nb = bw.div_ceil(8);
            let v = rest.get(..nb).ok_or_else(bad)?;
            rest = &rest[nb..];
            let mut x = 0u32;
            for (i, b) in v.iter().enumerate() {
                x |= (*b as u32) << (8 * i);
            }
            let take = len.min(end - out.len());
            out.extend(std::iter::repeat_n(x, take));
        } else {
            // A bit-packed run of groups of 8 values, least significant bit first.
            let groups = (h >> 1) as usize;
            let nbytes = groups.checked_mul(bw).ok_or_else(bad)?;
            let packed = rest.get(..nbytes).ok_or_else(bad)?;
            rest = &rest[nbytes..];
            let mut take = (groups * 8).min(end - out.len());
            let mask = if bw == 32 {
                u32::MAX as u64
            } else {
                (1u64 << bw) - 1
            };
            // Stream the bytes through a bit accumulator, least significant bit first.
            let (mut acc, mut have) = (0u64, 0usize);
            let mut bytes = packed.iter();
            while take > 0 {
                while have < bw {
                    let Some(b) = bytes.next() else {
                        return Err(bad());
                    };
                    acc |= (*b as u64) << have;
                    have += 8;
                }
                out.push((acc & mask) as u32);
                acc >>= bw;
                have -= bw;
                take -= 1;
            }
        }
    }
    Ok(())
}

/// Reads a required byte column of a row group page by page: every row when `rows` is
/// `None`, else only the given rows (ascending), in which case pages holding none of them
/// are skipped without being read or decompressed.
fn read_bytes(
    rg: &dyn RowGroupReader,
    col: usize,
    width: Width,
    rows: Option<&[u32]>,
) -> Result<ByteCol, String> {
    let mut pages = rg.get_column_page_reader(col).map_err(|e| e.to_string())?;
    let mut out = ByteCol {
        values: Vec::new(),
        ids: Vec::with_capacity(
            rows.map_or(rg.metadata().num_rows().max(0) as usize, <[u32]>::len),
        ),
    };
    let mut dict: Option<(u32, u32)> = None;
    let mut scratch = Vec::new();
    let (mut row, mut next) = (0usize, 0usize);
    while let Some(meta) = pages.peek_next_page().map_err(|e| e.to_string())? {
        if meta.is_dict {
            match pages.get_next_page().map_err(|e| e.to_string())? {
                Some(Page::DictionaryPage {
                    buf, num_values, ..
                }) => {
                    let base = out.values.len();
                    plain_values(&buf, width, num_values as usize, |_| true, &mut out.values)?;
                    dict = Some((base as u32, num_values));
                }
                _ => return Err(format!("column {col}: unexpected dictionary page")),
            }
            continue;
        }
        let n = meta
            .num_levels
            .or(meta.num_rows)
            .ok_or_else(|| format!("column {col}: a page without a row count"))?;
        if let Some(r) = rows {
            if next >= r.len() || r[next] as usize >= row + n {
                pages.skip_next_page().map_err(|e| e.to_string())?;
                row += n;
                continue;
            }
        }
        let Some(Page::DataPage {
            buf,
            num_values,
            encoding,
            ..
        }) = pages.get_next_page().map_err(|e| e.to_string())?
        else {
            return Err(format!("column {col}: unsupported page type"));
        };
        if num_values as usize != n {
            return Err(format!("column {col}: page row count mismatch"));
        }
        match encoding {
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let (base, len) =
                    dict.ok_or_else(|| format!("column {col}: indices without a dictionary"))?;
                scratch.clear();
                dict_ids(&buf, n, &mut scratch)?;
                if scratch.iter().any(|i| *i >= len) {
                    return Err(format!("column {col}: dictionary index out of range"));
                }
                match rows {
                    None => out.ids.extend(scratch.iter().map(|i| base + i)),
                    Some(r) => {
                        while next < r.len() && (r[next] as usize) < row + n {
                            let k = (r[next] as usize)
                                .checked_sub(row)
                                .ok_or("rows are not ascending")?;
                            out.ids.push(base + scratch[k]);
                            next += 1;
                        }
                    }
                }
            }
            Encoding::PLAIN => {
                let base = out.values.len() as u32;
                match rows {
                    None => {
                        plain_values(&buf, width, n, |_| true, &mut out.values)?;
                        out.ids.extend(base..base + n as u32);
                    }
                    Some(r) => {
                        let first = next;
                        while next < r.len() && (r[next] as usize) < row + n {
                            next += 1;
                        }
                        let want = &r[first..next];
                        let mut w = 0;
                        plain_values(
                            &buf,
                            width,
                            n,
                            |i| {
                                let hit = w < want.len() && want[w] as usize == row + i;
                                w += hit as usize;
                                hit
                            },
                            &mut out.values,
                        )?;
                        if w != want.len() {
                            return Err("rows are not ascending".into());
                        }
                        out.ids.extend(base..base + want.len() as u32);
                    }
                }
            }
            e => return Err(format!("column {col}: unsupported encoding {e}")),
        }
        row += n;
    }
    let expected = rows.map_or(rg.metadata().num_rows().max(0) as usize, <[u32]>::len);
    if out.ids.len() != expected {
        return Err(format!("column {col} is shorter than its row group"));
    }
    Ok(out)
}

/// The start of the `limit`-th newest trace of `hits` (`hits` has at least `limit`).
fn limit_floor(hits: &HashMap<TraceId, UnixNanos>, limit: usize) -> UnixNanos {
    let mut starts: Vec<UnixNanos> = hits.values().copied().collect();
    let k = limit.min(starts.len()) - 1;
    *starts.select_nth_unstable_by(k, |a, b| b.cmp(a)).1
}

fn to_i64(v: i64) -> u64 {
    v.max(0) as u64
}

/// Decoded values of one row range of a row group.
struct Rows {
    trace_id: Vec<FixedLenByteArray>,
    span_id: Vec<FixedLenByteArray>,
    parent_off: Vec<i32>,
    parent: Vec<Option<SpanId>>,
    service: Vec<ByteArray>,
    name: Vec<ByteArray>,
    kind: Vec<i32>,
    start: Vec<i64>,
    duration: Vec<i64>,
    status: Vec<i32>,
    resource: Vec<ByteArray>,
    scope: Vec<ByteArray>,
    rest: Vec<ByteArray>,
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("id of {} bytes, expected {N}", b.len()))
}

fn parents(
    values: Vec<FixedLenByteArray>,
    defs: &[i16],
    n: usize,
) -> Result<Vec<Option<SpanId>>, String> {
    let mut out = Vec::with_capacity(n);
    let mut it = values.into_iter();
    for d in defs.iter().take(n) {
        if *d > 0 {
            let v = it.next().ok_or("parent column is short")?;
            out.push(Some(SpanId(fixed::<8>(v.data())?)));
        } else {
            out.push(None);
        }
    }
    if out.len() != n {
        return Err("parent column is short".into());
    }
    Ok(out)
}

fn kind_of(v: i32) -> Result<SpanKind, String> {
    SpanKind::from_i32(v).ok_or_else(|| format!("bad span kind {v}"))
}

fn status_of(v: i32) -> Result<StatusCode, String> {
    StatusCode::from_i32(v).ok_or_else(|| format!("bad status code {v}"))
}

fn utf8(b: &ByteArray) -> Result<&str, String> {
    std::str::from_utf8(b.data()).map_err(|_| "bad utf-8 in a name".to_string())
}

/// Counts of service-to-service calls, and children whose parent lives elsewhere.
#[derive(Default)]
pub(crate) struct Deps {
    pub edges: HashMap<(String, String), u64>,
    /// `(trace, parent span, child service)` for parents not found next to the child.
    pub pending: Vec<(TraceId, SpanId, String)>,
}

impl Block {
    fn new(dir: PathBuf, meta: BlockMeta) -> Block {
        Block {
            services: meta.services.iter().cloned().collect(),
            dir,
            meta,
            filter: Mutex::new(None),
            fences: Mutex::new(None),
            tag_filters: Mutex::new(None),
            tables: Mutex::new(None),
            reader: Mutex::new(None),
        }
    }

    /// Opens a block directory by reading its sidecar only.
    pub fn open(dir: PathBuf) -> Result<Block, TraceError> {
        let meta_path = dir.join(META);
        let json = fs::read(&meta_path).map_err(io_err(&meta_path))?;
        let meta: BlockMeta = serde_json::from_slice(&json).map_err(|e| TraceError::Block {
            path: meta_path.clone(),
            reason: format!("bad block metadata: {e}"),
        })?;
        if !(1..=FORMAT).contains(&meta.format) {
            return Err(TraceError::Block {
                path: meta_path,
                reason: format!(
                    "block format {} is not {FORMAT}; upgrade Lookout or move the block away",
                    meta.format
                ),
            });
        }
        Ok(Block::new(dir, meta))
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join(DATA)
    }

    fn err(&self, reason: impl Into<String>) -> TraceError {
        TraceError::Block {
            path: self.data_path(),
            reason: reason.into(),
        }
    }

    pub fn has_service(&self, s: &str) -> bool {
        self.services.contains(s)
    }

    fn filter(&self) -> Option<Arc<Vec<Bloom>>> {
        let mut g = self.filter.lock();
        if g.is_none() {
            let path = self.dir.join(FILTER);
            *g = fs::read(&path)
                .ok()
                .and_then(|b| {
                    if self.meta.format == 1 {
                        return Bloom::from_bytes(&b, self.meta.filter_bits, FILTER_HASHES_V1)
                            .map(|f| vec![f]);
                    }
                    let mut out = Vec::with_capacity(self.meta.rg_filter_bits.len());
                    let mut at = 0usize;
                    for bits in &self.meta.rg_filter_bits {
                        let end = at.checked_add((bits / 8) as usize)?;
                        let hashes = if self.meta.format == 2 {
                            FILTER_HASHES_V1
                        } else {
                            FILTER_HASHES
                        };
                        out.push(Bloom::from_bytes(b.get(at..end)?, *bits, hashes)?);
                        at = end;
                    }
                    (at == b.len()).then_some(out)
                })
                .map(Arc::new);
        }
        g.clone()
    }

    fn fences(&self) -> Option<Arc<Fences>> {
        let mut g = self.fences.lock();
        if g.is_none() {
            *g = fs::read(self.dir.join(FENCES))
                .ok()
                .and_then(|b| Fences::from_bytes(&b))
                .map(Arc::new);
        }
        g.clone()
    }

    /// The block's tag filters, loaded on first use; `None` inside when the block has none
    /// (older formats) or they do not fit its row groups.
    fn tag_filters(&self, r: &SerializedFileReader<BlockFile>) -> Option<Arc<Option<TagFilters>>> {
        let mut g = self.tag_filters.lock();
        if g.is_none() {
            let windows: Vec<usize> = r
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| (rg.num_rows().max(0) as usize).div_ceil(SEARCH_WINDOW_ROWS))
                .collect();
            let parsed = if self.meta.format >= 3 {
                fs::read(self.dir.join(TAG_FILTER))
                    .ok()
                    .and_then(|b| parse_tag_filters(&b, &windows))
            } else {
                None
            };
            *g = Some(Arc::new(parsed));
        }
        g.clone()
    }

    /// The resources and scopes of a format 4 block, loaded on first use. Unlike a filter they
    /// are not optional: without them no span of the block can be rebuilt.
    fn tables(&self) -> Result<Arc<Tables>, String> {
        let mut g = self.tables.lock();
        if let Some(t) = &*g {
            return Ok(t.clone());
        }
        let path = self.dir.join(TABLES);
        let b = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let t = Tables::from_bytes(&Bytes::from(b))
            .map(Arc::new)
            .ok_or_else(|| format!("{} is corrupt", path.display()))?;
        *g = Some(t.clone());
        Ok(t)
    }

    /// Rows of the `resource` or `scope` column as [`read_bytes`] reads them, with the blobs
    /// as values whatever the format: format 4 stores indices into the block's table.
    fn read_blobs(
        &self,
        rg: &dyn RowGroupReader,
        col: usize,
        rows: Option<&[u32]>,
    ) -> Result<ByteCol, String> {
        if self.meta.format < 4 {
            return read_bytes(rg, col, Width::Var, rows);
        }
        let mut c = read_bytes(rg, col, Width::Fixed(4), rows)?;
        let tables = self.tables()?;
        for v in &mut c.values {
            *v = tables.blob(col, v)?.clone();
        }
        Ok(c)
    }

    /// Rows of `ranges` of the `resource` or `scope` column, one blob per row.
    fn read_blob_rows(
        &self,
        rg: &dyn RowGroupReader,
        col: usize,
        ranges: &[std::ops::Range<usize>],
    ) -> Result<Vec<ByteArray>, String> {
        if self.meta.format < 4 {
            return Ok(read_col_ranges::<ByteArrayType>(rg, col, ranges)?.0);
        }
        let tables = self.tables()?;
        read_col_ranges::<Int32Type>(rg, col, ranges)?
            .0
            .iter()
            .map(|i| Ok(ByteArray::from(tables.blob(col, &i.to_le_bytes())?.clone())))
            .collect()
    }

    /// Whether the block may hold the trace (false positives, never false negatives).
    pub fn may_contain(&self, id: &TraceId) -> bool {
        // A missing or broken filter only costs speed: fall back to reading.
        self.filter()
            .is_none_or(|f| f.iter().any(|f| f.contains(id)))
    }

    fn reader(&self) -> Result<Arc<SerializedFileReader<BlockFile>>, TraceError> {
        let mut g = self.reader.lock();
        if let Some(r) = &*g {
            return Ok(r.clone());
        }
        let path = self.data_path();
        let file = File::open(&path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let file = BlockFile {
            file: Arc::new(file),
            len,
        };
        let r = Arc::new(SerializedFileReader::new(file).map_err(|e| self.err(e.to_string()))?);
        if r.metadata().file_metadata().schema_descr().num_columns() != COLUMNS {
            return Err(self.err("unexpected columns; the file is not a Lookout span block"));
        }
        *g = Some(r.clone());
        Ok(r)
    }

    fn read_rows(
        &self,
        rg: &dyn RowGroupReader,
        skip: usize,
        take: usize,
        cols: &[usize],
    ) -> Result<Rows, String> {
        let range = skip..skip + take;
        self.read_row_ranges(rg, std::slice::from_ref(&range), cols)
    }

    /// The rows of `ranges` (ascending, disjoint) of the given columns, concatenated.
    fn read_row_ranges(
        &self,
        rg: &dyn RowGroupReader,
        ranges: &[std::ops::Range<usize>],
        cols: &[usize],
    ) -> Result<Rows, String> {
        let take: usize = ranges.iter().map(|r| r.len()).sum();
        let want = |c: usize| cols.contains(&c);
        let mut rows = Rows {
            trace_id: Vec::new(),
            span_id: Vec::new(),
            parent_off: Vec::new(),
            parent: Vec::new(),
            service: Vec::new(),
            name: Vec::new(),
            kind: Vec::new(),
            start: Vec::new(),
            duration: Vec::new(),
            status: Vec::new(),
            resource: Vec::new(),
            scope: Vec::new(),
            rest: Vec::new(),
        };
        if want(C_TRACE) {
            rows.trace_id = read_col_ranges::<FixedLenByteArrayType>(rg, C_TRACE, ranges)?.0;
        }
        if want(C_SPAN) {
            rows.span_id = read_col_ranges::<FixedLenByteArrayType>(rg, C_SPAN, ranges)?.0;
        }
        if want(C_PARENT_OFF) {
            rows.parent_off = read_col_ranges::<Int32Type>(rg, C_PARENT_OFF, ranges)?.0;
        }
        if want(C_PARENT) {
            let (v, d) = read_col_ranges::<FixedLenByteArrayType>(rg, C_PARENT, ranges)?;
            rows.parent = parents(v, &d, take)?;
        }
        if want(C_SERVICE) {
            rows.service = read_col_ranges::<ByteArrayType>(rg, C_SERVICE, ranges)?.0;
        }
        if want(C_NAME) {
            rows.name = read_col_ranges::<ByteArrayType>(rg, C_NAME, ranges)?.0;
        }
        if want(C_KIND) {
            rows.kind = read_col_ranges::<Int32Type>(rg, C_KIND, ranges)?.0;
        }
        if want(C_START) {
            rows.start = read_col_ranges::<Int64Type>(rg, C_START, ranges)?.0;
        }
        if want(C_DURATION) {
            rows.duration = read_col_ranges::<Int64Type>(rg, C_DURATION, ranges)?.0;
        }
        if want(C_STATUS) {
            rows.status = read_col_ranges::<Int32Type>(rg, C_STATUS, ranges)?.0;
        }
        if want(C_RESOURCE) {
            rows.resource = self.read_blob_rows(rg, C_RESOURCE, ranges)?;
        }
        if want(C_SCOPE) {
            rows.scope = self.read_blob_rows(rg, C_SCOPE, ranges)?;
        }
        if want(C_REST) {
            rows.rest = read_col_ranges::<ByteArrayType>(rg, C_REST, ranges)?.0;
        }
        Ok(rows)
    }

    /// Appends every span of trace `id` stored in this block.
    pub fn trace(&self, id: &TraceId, out: &mut Vec<Span>) -> Result<(), TraceError> {
        if !self.may_contain(id) {
            return Ok(());
        }
        let r = self.reader()?;
        let groups = r.metadata().row_groups();
        if self.meta.format >= 2 {
            let filters = self.filter().filter(|f| f.len() == groups.len());
            for i in 0..groups.len() {
                if filters.as_ref().is_some_and(|f| !f[i].contains(id)) {
                    continue;
                }
                let rg = r.get_row_group(i).map_err(|e| self.err(e.to_string()))?;
                let ids =
                    read_bytes(&*rg, C_TRACE, Width::Fixed(16), None).map_err(|e| self.err(e))?;
                let Some(v) = ids.values.iter().position(|v| v[..] == id.0) else {
                    continue;
                };
                // Where the id's value is (a dictionary holds each id once; PLAIN pages
                // hold it per row, and a trace's rows are adjacent either way).
                let is_id = |x: &u32| *x as usize == v || ids.values[*x as usize][..] == id.0;
                let Some(lo) = ids.ids.iter().position(is_id) else {
                    continue;
                };
                let hi = lo + ids.ids[lo..].iter().take_while(|x| is_id(x)).count();
                let all: Vec<usize> = (C_SPAN..COLUMNS).filter(|c| *c != C_STATUS_MSG).collect();
                let rows = self
                    .read_rows(&*rg, lo, hi - lo, &all)
                    .map_err(|e| self.err(e))?;
                self.assemble(id, &rows, 0..rows.span_id.len(), out)
                    .map_err(|e| self.err(e))?;
                // Row groups end at trace boundaries: the trace is nowhere else.
                break;
            }
            return Ok(());
        }
        if let Some(f) = self.fences() {
            if let Some((rg, lo, hi)) = f.locate(id) {
                let Some(rgm) = groups.get(rg) else {
                    return Err(self.err("trace id index names a missing row group"));
                };
                let n = rgm.num_rows().max(0) as usize;
                let hi = hi.unwrap_or(n).min(n);
                self.trace_in(&r, rg, lo.min(hi), hi, id, out)?;
            }
            return Ok(());
        }
        // No usable index: narrow by row-group statistics instead.
        for (i, rgm) in groups.iter().enumerate() {
            if let Some(Statistics::FixedLenByteArray(st)) = rgm.column(C_TRACE).statistics() {
                if let (Some(min), Some(max)) = (st.min_bytes_opt(), st.max_bytes_opt()) {
                    if id.0.as_slice() < min || id.0.as_slice() > max {
                        continue;
                    }
                }
            }
            let n = rgm.num_rows().max(0) as usize;
            if self.trace_in(&r, i, 0, n, id, out)? {
                // Row groups end at trace boundaries: the trace is nowhere else.
                break;
            }
        }
        Ok(())
    }

    /// Appends the spans of each of `ids` stored in this block to its entry of `out`, with
    /// one pass per row group for all of them: search results (the newest matching traces)
    /// mostly sit together at the end of the newest row groups, so one read of those pages
    /// serves them all, where a lookup per trace would decompress the same pages again.
    pub fn traces(
        &self,
        ids: &[TraceId],
        out: &mut HashMap<TraceId, Vec<Span>>,
    ) -> Result<(), TraceError> {
        let mut left: Vec<TraceId> = ids
            .iter()
            .copied()
            .filter(|id| self.may_contain(id))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if self.meta.format < 2 {
            for id in left {
                let mut spans = Vec::new();
                self.trace(&id, &mut spans)?;
                if !spans.is_empty() {
                    out.entry(id).or_default().extend(spans);
                }
            }
            return Ok(());
        }
        let r = self.reader()?;
        let groups = r.metadata().row_groups();
        let filters = self.filter().filter(|f| f.len() == groups.len());
        let all: Vec<usize> = (C_SPAN..COLUMNS).filter(|c| *c != C_STATUS_MSG).collect();
        for i in 0..groups.len() {
            if left.is_empty() {
                break;
            }
            let here: HashMap<[u8; 16], usize> = left
                .iter()
                .enumerate()
                .filter(|(_, id)| filters.as_ref().is_none_or(|f| f[i].contains(id)))
                .map(|(k, id)| (id.0, k))
                .collect();
            if here.is_empty() {
                continue;
            }
            let rg = r.get_row_group(i).map_err(|e| self.err(e.to_string()))?;
            let col = read_bytes(&*rg, C_TRACE, Width::Fixed(16), None).map_err(|e| self.err(e))?;
            let which: Vec<Option<usize>> = col
                .values
                .iter()
                .map(|v| {
                    <[u8; 16]>::try_from(&v[..])
                        .ok()
                        .and_then(|v| here.get(&v).copied())
                })
                .collect();
            // `left` index -> row range; a trace's rows are adjacent.
            let mut ranges: HashMap<usize, (usize, usize)> = HashMap::new();
            for (row, v) in col.ids.iter().enumerate() {
                if let Some(k) = which[*v as usize] {
                    let e = ranges.entry(k).or_insert((row, row));
                    e.1 = row + 1;
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let mut ranges: Vec<(usize, usize, usize)> = ranges
                .into_iter()
                .map(|(k, (lo, hi))| (lo, hi, k))
                .collect();
            ranges.sort_unstable();
            // One pass over the row group's columns for all the traces in it.
            let spans: Vec<std::ops::Range<usize>> = ranges.iter().map(|r| r.0..r.1).collect();
            let rows = self
                .read_row_ranges(&*rg, &spans, &all)
                .map_err(|e| self.err(e))?;
            let mut at = 0;
            for (a, b, k) in &ranges {
                let n = b - a;
                let spans = out.entry(left[*k]).or_default();
                self.assemble(&left[*k], &rows, at..at + n, spans)
                    .map_err(|e| self.err(e))?;
                at += n;
            }
            // Row groups end at trace boundaries: found traces are nowhere else.
            let done: HashSet<usize> = ranges.iter().map(|r| r.2).collect();
            left = left
                .into_iter()
                .enumerate()
                .filter(|(k, _)| !done.contains(k))
                .map(|(_, id)| id)
                .collect();
        }
        Ok(())
    }

    /// Reads trace `id` from rows `[lo, hi)` of row group `rg`; whether it was there.
    fn trace_in(
        &self,
        r: &SerializedFileReader<BlockFile>,
        rg: usize,
        lo: usize,
        hi: usize,
        id: &TraceId,
        out: &mut Vec<Span>,
    ) -> Result<bool, TraceError> {
        let rgr = r.get_row_group(rg).map_err(|e| self.err(e.to_string()))?;
        let ids = read_col::<FixedLenByteArrayType>(&*rgr, C_TRACE, lo, hi - lo)
            .map_err(|e| self.err(e))?
            .0;
        let a = ids.partition_point(|x| x.data() < id.0.as_slice());
        let b = ids.partition_point(|x| x.data() <= id.0.as_slice());
        if a == b {
            return Ok(false);
        }
        let all: Vec<usize> = (C_SPAN..COLUMNS).filter(|c| *c != C_STATUS_MSG).collect();
        let rows = self
            .read_rows(&*rgr, lo + a, b - a, &all)
            .map_err(|e| self.err(e))?;
        self.assemble(id, &rows, 0..rows.span_id.len(), out)
            .map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Appends the spans of trace `id`, rows `range` of `rows`, to `out`.
    fn assemble(
        &self,
        id: &TraceId,
        rows: &Rows,
        range: std::ops::Range<usize>,
        out: &mut Vec<Span>,
    ) -> Result<(), String> {
        let mut resources: Vec<(&[u8], Arc<Resource>)> = Vec::new();
        let mut scopes: Vec<(&[u8], Arc<Scope>)> = Vec::new();
        if range.end > rows.span_id.len() {
            return Err("trace rows out of range".into());
        }
        for i in range.clone() {
            let parent_span_id = match (rows.parent_off[i], rows.parent[i]) {
                (0, p) => p,
                (off, _) => {
                    let p = i as i64 - off as i64;
                    if p < range.start as i64 || p as usize >= range.end {
                        return Err(format!("parent offset {off} points outside the trace"));
                    }
                    Some(SpanId(fixed::<8>(rows.span_id[p as usize].data())?))
                }
            };
            let rb = rows.resource[i].data();
            let resource = match resources.iter().find(|(b, _)| *b == rb) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = Arc::new(codec::decode_resource(rb)?);
                    resources.push((rb, r.clone()));
                    r
                }
            };
            let sb = rows.scope[i].data();
            let scope = match scopes.iter().find(|(b, _)| *b == sb) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = Arc::new(codec::decode_scope(sb)?);
                    scopes.push((sb, s.clone()));
                    s
                }
            };
            let start = to_i64(rows.start[i]);
            let rest = codec::decode_rest(rows.rest[i].data())?;
            out.push(codec::assemble(
                SpanColumns {
                    trace_id: *id,
                    span_id: SpanId(fixed::<8>(rows.span_id[i].data())?),
                    parent_span_id,
                    name: utf8(&rows.name[i])?.to_string(),
                    kind: kind_of(rows.kind[i])?,
                    start,
                    end: start.saturating_add(to_i64(rows.duration[i])),
                    status_code: status_of(rows.status[i])?,
                },
                rest,
                resource,
                scope,
            )?);
        }
        Ok(())
    }

    /// Adds `(trace, start)` of every matching span to `hits`.
    ///
    /// Predicates run cheapest first, one row group at a time, and each narrows the rows the
    /// next one reads: the row group's start-time statistics; the service and span-name
    /// dictionaries (a row group without the wanted value is skipped before any of its data
    /// pages is read, and rows are then compared as dictionary indices); start, duration and
    /// kind; the resource and scope dictionaries (tags they satisfy are decided once per
    /// distinct value); and only then, for the rows left whose resource did not decide, the
    /// rest blobs, matched on their undecoded bytes and read only from the pages that hold
    /// such rows. Trace ids are read last, for the matching rows only.
    pub fn search(
        &self,
        m: &Matcher<'_>,
        hits: &mut HashMap<TraceId, UnixNanos>,
    ) -> Result<(), TraceError> {
        if !m.overlaps(self.meta.min_start, self.meta.max_start) {
            return Ok(());
        }
        if let Some(s) = &m.q.service {
            if !self.has_service(s) {
                return Ok(());
            }
        }
        if let Some(op) = &m.q.operation {
            let service = m.q.service.as_deref();
            if !self
                .meta
                .operations
                .iter()
                .any(|(s, n, _)| n == op && service.is_none_or(|want| want == s))
            {
                return Ok(());
            }
        }
        let r = self.reader()?;
        // Resources and scopes repeat across rows: which tags they satisfy is computed once
        // per distinct pair (few per block, so a linear list beats hashing the blobs).
        let mut res_tags: Vec<(Bytes, Bytes, Vec<bool>)> = Vec::new();
        let tag_filters = if m.has_tags() {
            self.tag_filters(&r)
        } else {
            None
        };
        let tag_filters = tag_filters.as_ref().and_then(|f| f.as_ref().as_ref());
        let tag_hashes = m.tag_hashes();
        // Row groups in the time range, newest first (by their newest span).
        let mut groups: Vec<(usize, UnixNanos)> = Vec::new();
        for (i, rgm) in r.metadata().row_groups().iter().enumerate() {
            let mut newest = UnixNanos::MAX;
            if let Some(Statistics::Int64(st)) = rgm.column(C_START).statistics() {
                if let (Some(min), Some(max)) = (st.min_opt(), st.max_opt()) {
                    if !m.overlaps(to_i64(*min), to_i64(*max)) {
                        continue;
                    }
                    newest = to_i64(*max);
                }
            }
            groups.push((i, newest));
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.1));
        // The start of the `limit`-th newest trace found so far (here or in sources the
        // caller searched before), recomputed only after `hits` grew.
        let mut floor: Option<UnixNanos> = None;
        let mut seen = usize::MAX;
        for (i, newest) in groups {
            if m.q.limit > 0 && hits.len() >= m.q.limit {
                if seen != hits.len() {
                    floor = Some(limit_floor(hits, m.q.limit));
                    seen = hits.len();
                }
                // Every span left starts before the `limit` traces at hand: done. (Equal
                // starts may still rank higher by trace id, so those are read.)
                if floor.is_some_and(|f| newest < f) {
                    break;
                }
            }
            let rg = r.get_row_group(i).map_err(|e| self.err(e.to_string()))?;
            let tf = tag_filters
                .as_ref()
                .and_then(|f| f.get(i))
                .map(Vec::as_slice);
            if let Some(tf) = tf {
                if self
                    .rules_out_row_group(&*rg, m, tf, &tag_hashes, &mut res_tags)
                    .map_err(|e| self.err(e))?
                {
                    continue;
                }
            }
            let tags = (tf, tag_hashes.as_slice());
            self.search_row_group(&*rg, m, tags, &mut res_tags, hits)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Whether a tag of the query is in no window filter of the row group and satisfied by
    /// none of its resources and scopes: then no span of it matches, and none of its data
    /// pages need reading. Decided on the resource and scope dictionaries alone, so only
    /// when every data page of those chunks is dictionary-encoded.
    fn rules_out_row_group(
        &self,
        rg: &dyn RowGroupReader,
        m: &Matcher<'_>,
        filters: &[Bloom],
        tag_hashes: &[TagHash],
        res_tags: &mut Vec<(Bytes, Bytes, Vec<bool>)>,
    ) -> Result<bool, String> {
        let absent: Vec<bool> = tag_hashes
            .iter()
            .map(|h| h.is_some_and(|h| filters.iter().all(|f| !f.contains_hashes(h))))
            .collect();
        if !absent.iter().any(|a| *a) {
            return Ok(false);
        }
        let all_dict = |c: usize| {
            let meta = rg.metadata().column(c);
            meta.dictionary_page_offset().is_some()
                && meta.page_encoding_stats_mask().is_some_and(|mask| {
                    mask.is_only(Encoding::RLE_DICTIONARY)
                        || mask.is_only(Encoding::PLAIN_DICTIONARY)
                })
        };
        if !all_dict(C_RESOURCE) || !all_dict(C_SCOPE) {
            return Ok(false);
        }
        // With no rows asked for, only the dictionary pages are read.
        let res = self.read_blobs(rg, C_RESOURCE, Some(&[]))?;
        let scope = self.read_blobs(rg, C_SCOPE, Some(&[]))?;
        let mut satisfied = vec![false; absent.len()];
        for rb in &res.values {
            for sb in &scope.values {
                let p = match res_tags.iter().position(|(r, s, _)| r == rb && s == sb) {
                    Some(p) => p,
                    None => {
                        let r = codec::decode_resource(rb)?;
                        let s = codec::decode_scope(sb)?;
                        res_tags.push((rb.clone(), sb.clone(), m.tags_from_resource(&r, &s)));
                        res_tags.len() - 1
                    }
                };
                for (sat, hit) in satisfied.iter_mut().zip(&res_tags[p].2) {
                    *sat |= *hit;
                }
            }
        }
        Ok(absent.iter().zip(&satisfied).any(|(a, sat)| *a && !sat))
    }

    fn search_row_group(
        &self,
        rg: &dyn RowGroupReader,
        m: &Matcher<'_>,
        (tag_filters, tag_hashes): (Option<&[Bloom]>, &[TagHash]),
        res_tags: &mut Vec<(Bytes, Bytes, Vec<bool>)>,
        hits: &mut HashMap<TraceId, UnixNanos>,
    ) -> Result<(), String> {
        let n = rg.metadata().num_rows().max(0) as usize;
        // Per-row "still a candidate" for the string columns, decided per dictionary value.
        let mut keep: Option<Vec<bool>> = None;
        for (col, want) in [(C_SERVICE, &m.q.service), (C_NAME, &m.q.operation)] {
            let Some(want) = want else { continue };
            let c = read_bytes(rg, col, Width::Var, None)?;
            let ok: Vec<bool> = c.values.iter().map(|v| v == want.as_bytes()).collect();
            if !ok.iter().any(|x| *x) {
                return Ok(());
            }
            let k = keep.get_or_insert_with(|| vec![true; n]);
            for (row, id) in c.ids.iter().enumerate() {
                k[row] &= ok[*id as usize];
            }
        }
        let start = read_col::<Int64Type>(rg, C_START, 0, n)?.0;
        let duration = if m.has_duration() {
            Some(read_col::<Int64Type>(rg, C_DURATION, 0, n)?.0)
        } else {
            None
        };
        // Kind is a tag only through the synthetic `span.kind`.
        let need_kind = m.q.span_kind.is_some() || m.q.tags.iter().any(|(k, _)| k == "span.kind");
        let kind = if need_kind {
            read_col::<Int32Type>(rg, C_KIND, 0, n)?.0
        } else {
            Vec::new()
        };
        let mut sel: Vec<u32> = Vec::new();
        for row in 0..n {
            if keep.as_ref().is_some_and(|k| !k[row])
                || !m.start_ok(to_i64(start[row]))
                || duration
                    .as_ref()
                    .is_some_and(|d| !m.duration_ok(to_i64(d[row])))
            {
                continue;
            }
            if m.q.span_kind.is_some() && !m.kind_ok(kind_of(kind[row])?) {
                continue;
            }
            sel.push(row as u32);
        }
        if sel.is_empty() {
            return Ok(());
        }
        let mut pair = Vec::new();
        if m.has_tags() {
            let res = self.read_blobs(rg, C_RESOURCE, Some(&sel))?;
            let scope = self.read_blobs(rg, C_SCOPE, Some(&sel))?;
            // Row-group-local (resource id, scope id) -> index into `res_tags`.
            let mut local: HashMap<(u32, u32), usize> = HashMap::new();
            pair.reserve(sel.len());
            for (ri, si) in res.ids.iter().zip(&scope.ids) {
                let p = match local.get(&(*ri, *si)) {
                    Some(p) => *p,
                    None => {
                        let (rb, sb) = (&res.values[*ri as usize], &scope.values[*si as usize]);
                        let p = match res_tags.iter().position(|(r, s, _)| r == rb && s == sb) {
                            Some(p) => p,
                            None => {
                                let r = codec::decode_resource(rb)?;
                                let s = codec::decode_scope(sb)?;
                                res_tags.push((
                                    rb.clone(),
                                    sb.clone(),
                                    m.tags_from_resource(&r, &s),
                                ));
                                res_tags.len() - 1
                            }
                        };
                        local.insert((*ri, *si), p);
                        p
                    }
                };
                pair.push(p);
            }
        }
        // Rows are in trace start order, so windows of rows are narrow time slices: with a
        // limit, the newest window goes first and a window whose candidates all start before
        // the `limit`-th trace at hand is skipped, with its rest pages never decompressed.
        let mut windows: Vec<std::ops::Range<usize>> = Vec::new();
        let mut at = 0;
        while at < sel.len() {
            let w = sel[at] as usize / SEARCH_WINDOW_ROWS;
            let end = at + sel[at..].partition_point(|r| *r as usize / SEARCH_WINDOW_ROWS == w);
            windows.push(at..end);
            at = end;
        }
        if m.q.limit > 0 {
            windows.reverse();
        }
        let mut status: Option<Vec<i32>> = None;
        for w in windows {
            if m.q.limit > 0 && hits.len() >= m.q.limit {
                let floor = limit_floor(hits, m.q.limit);
                let newest = sel[w.clone()]
                    .iter()
                    .map(|r| to_i64(start[*r as usize]))
                    .max();
                if newest.is_some_and(|t| t < floor) {
                    continue;
                }
            }
            let rows = &sel[w.clone()];
            let matched = if m.has_tags() {
                let window = rows[0] as usize / SEARCH_WINDOW_ROWS;
                let filter = tag_filters.and_then(|f| f.get(window));
                let pair = &pair[w];
                let tags = (filter, tag_hashes);
                self.match_tags(rg, m, rows, pair, tags, res_tags, &kind, &mut status)?
            } else {
                rows.to_vec()
            };
            if matched.is_empty() {
                continue;
            }
            let ids = read_bytes(rg, C_TRACE, Width::Fixed(16), Some(&matched))?;
            for (row, id) in matched.iter().zip(&ids.ids) {
                let t = TraceId(fixed::<16>(&ids.values[*id as usize])?);
                let s = to_i64(start[*row as usize]);
                let e = hits.entry(t).or_insert(0);
                *e = (*e).max(s);
            }
        }
        Ok(())
    }

    /// The rows (ascending) of `sel` that carry every tag of the query; `pair[i]` is the
    /// `res_tags` entry of row `sel[i]`'s resource and scope.
    #[allow(clippy::too_many_arguments)]
    fn match_tags(
        &self,
        rg: &dyn RowGroupReader,
        m: &Matcher<'_>,
        sel: &[u32],
        pair: &[usize],
        (filter, tag_hashes): (Option<&Bloom>, &[TagHash]),
        res_tags: &[(Bytes, Bytes, Vec<bool>)],
        kind: &[i32],
        status: &mut Option<Vec<i32>>,
    ) -> Result<Vec<u32>, String> {
        // Rows the resource decided keep their place; the others need their rest blob.
        let mut matched = Vec::with_capacity(sel.len());
        let mut open: Vec<u32> = Vec::new();
        let mut open_pair: Vec<usize> = Vec::new();
        // A tag the resource leaves open, that no span field can stand in for, and that the
        // window's filter says no span of the window carries, rules the row out unread.
        let ruled_out = |p: usize| {
            filter.is_some_and(|f| {
                res_tags[p]
                    .2
                    .iter()
                    .zip(tag_hashes)
                    .any(|(hit, h)| !hit && h.is_some_and(|h| !f.contains_hashes(h)))
            })
        };
        for (row, p) in sel.iter().zip(pair) {
            if res_tags[*p].2.iter().all(|hit| *hit) {
                matched.push(*row);
            } else if !ruled_out(*p) {
                open.push(*row);
                open_pair.push(*p);
            }
        }
        if !open.is_empty() {
            let n = rg.metadata().num_rows().max(0) as usize;
            if status.is_none() {
                *status = Some(read_col::<Int32Type>(rg, C_STATUS, 0, n)?.0);
            }
            let status = status.as_deref().unwrap_or_default();
            {
                let rest = read_bytes(rg, C_REST, Width::Var, Some(&open))?;
                for ((row, p), id) in open.iter().zip(&open_pair).zip(&rest.ids) {
                    let r = *row as usize;
                    if m.tags_raw(
                        &res_tags[*p].2,
                        // Unread unless a tag asks for it (see `need_kind`).
                        kind.get(r)
                            .map_or(Ok(SpanKind::Unspecified), |k| kind_of(*k))?,
                        status_of(status[r])?,
                        &rest.values[*id as usize],
                    )? {
                        matched.push(*row);
                    }
                }
            }
            matched.sort_unstable();
        }
        Ok(matched)
    }

    /// Counts parent→child service edges of spans that started in `[start, end]`.
    pub fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
        deps: &mut Deps,
    ) -> Result<(), TraceError> {
        if self.meta.min_start > end || self.meta.max_start < start {
            return Ok(());
        }
        let r = self.reader()?;
        let cols = [C_TRACE, C_PARENT_OFF, C_PARENT, C_SERVICE, C_START];
        for (i, rgm) in r.metadata().row_groups().iter().enumerate() {
            let rg = r.get_row_group(i).map_err(|e| self.err(e.to_string()))?;
            let n = rgm.num_rows().max(0) as usize;
            let rows = self.read_rows(&*rg, 0, n, &cols).map_err(|e| self.err(e))?;
            for j in 0..n {
                let t = to_i64(rows.start[j]);
                if t < start || t > end {
                    continue;
                }
                let child = utf8(&rows.service[j]).map_err(|e| self.err(e))?;
                match (rows.parent_off[j], rows.parent[j]) {
                    (0, None) => {}
                    (0, Some(p)) => {
                        let id =
                            TraceId(fixed::<16>(rows.trace_id[j].data()).map_err(|e| self.err(e))?);
                        deps.pending.push((id, p, child.to_string()));
                    }
                    (off, _) => {
                        let p = j as i64 - off as i64;
                        if p < 0 || p as usize >= n {
                            return Err(self.err("parent offset points outside the row group"));
                        }
                        let parent = utf8(&rows.service[p as usize]).map_err(|e| self.err(e))?;
                        if parent != child {
                            *deps
                                .edges
                                .entry((parent.to_string(), child.to_string()))
                                .or_insert(0) += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Records the service of every span of the given traces.
    pub fn services_of(
        &self,
        traces: &HashSet<TraceId>,
        out: &mut HashMap<(TraceId, SpanId), String>,
    ) -> Result<(), TraceError> {
        if !traces.iter().any(|t| self.may_contain(t)) {
            return Ok(());
        }
        let r = self.reader()?;
        for (i, rgm) in r.metadata().row_groups().iter().enumerate() {
            let rg = r.get_row_group(i).map_err(|e| self.err(e.to_string()))?;
            let n = rgm.num_rows().max(0) as usize;
            let rows = self
                .read_rows(&*rg, 0, n, &[C_TRACE, C_SPAN, C_SERVICE])
                .map_err(|e| self.err(e))?;
            for j in 0..n {
                let id = TraceId(fixed::<16>(rows.trace_id[j].data()).map_err(|e| self.err(e))?);
                if traces.contains(&id) {
                    let span = SpanId(fixed::<8>(rows.span_id[j].data()).map_err(|e| self.err(e))?);
                    let svc = utf8(&rows.service[j]).map_err(|e| self.err(e))?;
                    out.insert((id, span), svc.to_string());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Prepared;
    use crate::TraceQuery;
    use model::{AnyValue, KeyValue};
    use std::time::SystemTime;

    /// Row groups of 300 spans, so that [`mixed_head`] makes several.
    const MIXED_OPTS: WriteOptions = WriteOptions {
        row_group_spans: 300,
        zstd_level: 1,
    };

    /// The id of trace `t` of [`mixed_head`].
    fn mixed_trace_id(t: u64) -> TraceId {
        TraceId((u128::from(t) * 0x9e37_79b9_7f4a_7c15 + 1).to_le_bytes())
    }

    /// A head of 2000 spans in 400 traces over five resources and three scopes, with a
    /// low-cardinality span attribute, the same head for every call.
    fn mixed_head() -> Head {
        head_of(&mixed_spans())
    }

    /// The spans of [`mixed_head`].
    fn mixed_spans() -> Vec<Span> {
        let t0 = 1_700_000_000_000_000_000u64;
        let resources: Vec<Arc<Resource>> = (0..5)
            .map(|r| {
                Arc::new(Resource {
                    attributes: vec![
                        KeyValue::string("service.name", format!("svc{}", r % 3)),
                        KeyValue::string("service.namespace", format!("ns{r}")),
                    ],
                    dropped_attributes_count: 0,
                    schema_url: String::new(),
                })
            })
            .collect();
        let scopes: Vec<Arc<Scope>> = (0..3)
            .map(|s| {
                Arc::new(Scope {
                    name: format!("lib{s}"),
                    version: "1.0".into(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                    schema_url: String::new(),
                })
            })
            .collect();
        (0..2000u64)
            .map(|i| {
                let t = i / 5;
                Span {
                    trace_id: mixed_trace_id(t),
                    span_id: SpanId((i + 1).to_le_bytes()),
                    parent_span_id: (i % 5 > 0).then(|| SpanId((t * 5 + 1).to_le_bytes())),
                    trace_state: String::new(),
                    flags: 1,
                    name: format!("op{}", i % 4),
                    kind: SpanKind::Server,
                    start_unix_nano: t0 + t * 1_000_000 + i % 5,
                    end_unix_nano: t0 + t * 1_000_000 + 1000 * (i % 5 + 1),
                    attributes: vec![
                        KeyValue::string("user", format!("u{}", i % 7)),
                        KeyValue::new("n", AnyValue::Int(i as i64)),
                    ],
                    dropped_attributes_count: 0,
                    events: Vec::new(),
                    dropped_events_count: 0,
                    links: Vec::new(),
                    dropped_links_count: 0,
                    status_code: StatusCode::Unset,
                    status_message: String::new(),
                    resource: resources[(t % 5) as usize].clone(),
                    scope: scopes[(i % 3) as usize].clone(),
                }
            })
            .collect()
    }

    /// A head of `spans`, inserted 100 at a time.
    fn head_of(spans: &[Span]) -> Head {
        let mut head = Head::default();
        for chunk in spans.chunks(100) {
            head.insert(&mut Prepared::new(chunk.to_vec()), SystemTime::now());
        }
        head
    }

    fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
        spans.sort_by_key(|s| s.span_id);
        spans
    }

    /// Format 4 blocks (resources and scopes as indices into the block's table) and format 3
    /// blocks (the blobs in their columns) of the same head answer every lookup and search
    /// alike, and as the head does: older blocks stay readable.
    #[test]
    fn format_3_and_format_4_blocks_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let head = mixed_head();
        let opts = MIXED_OPTS;
        let v3 = write_block_as(dir.path(), 1, &head, 0, &opts, 3).unwrap();
        let v4 = write_block_as(dir.path(), 2, &head, 0, &opts, 4).unwrap();
        assert!(!v3.dir.join(TABLES).exists());
        assert!(v4.dir.join(TABLES).exists());
        // Reopened from disk, as a restart finds them.
        let (v3, v4) = (
            Block::open(v3.dir.clone()).unwrap(),
            Block::open(v4.dir.clone()).unwrap(),
        );
        assert_eq!((v3.meta.format, v4.meta.format), (3, FORMAT));
        let reader = v4.reader().unwrap();
        assert!(reader.metadata().num_row_groups() > 3);
        // Searches rule row groups out on the resource and scope dictionaries alone, which
        // needs every page of those chunks dictionary-encoded.
        for rg in reader.metadata().row_groups() {
            for c in [C_RESOURCE, C_SCOPE] {
                let mask = rg.column(c).page_encoding_stats_mask().unwrap();
                assert!(mask.is_only(Encoding::RLE_DICTIONARY), "column {c}");
            }
        }
        for t in (0..400u64).step_by(7) {
            let id = mixed_trace_id(t);
            let mut want = Vec::new();
            head.trace(&id, &mut want).unwrap();
            assert_eq!(want.len(), 5);
            for b in [&v3, &v4] {
                let mut got = Vec::new();
                b.trace(&id, &mut got).unwrap();
                assert_eq!(
                    sorted(got),
                    sorted(want.clone()),
                    "trace {t}, format {}",
                    b.meta.format
                );
            }
        }
        let tags = |kv: &[(&str, &str)]| TraceQuery {
            tags: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            limit: 1000,
            ..TraceQuery::default()
        };
        for q in [
            tags(&[("service.namespace", "ns3")]),
            tags(&[("service.namespace", "ns1"), ("user", "u3")]),
            tags(&[("otel.scope.name", "lib2"), ("user", "u0")]),
            tags(&[("service.namespace", "ns9")]),
            TraceQuery {
                service: Some("svc1".into()),
                ..tags(&[("user", "u6")])
            },
        ] {
            let m = Matcher::new(&q);
            let mut want = HashMap::new();
            head.search(&m, &mut want).unwrap();
            assert_eq!(want.is_empty(), q.tags[0].1 == "ns9", "{:?}", q.tags);
            for b in [&v3, &v4] {
                let mut got = HashMap::new();
                b.search(&m, &mut got).unwrap();
                assert_eq!(got, want, "{:?}, format {}", q.tags, b.meta.format);
            }
        }
    }

    /// A row group whose span names are too many for `dict_chunk.rs` (their dictionary would
    /// pass Parquet's limit) has its name column written by Parquet, in plain pages after
    /// its dictionary filled, and still answers as the head does; the other interned columns
    /// stay dictionary-encoded.
    #[test]
    fn span_names_past_the_dictionary_limit_go_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let mut spans = mixed_spans();
        let long = "x".repeat(1000);
        for (i, s) in spans.iter_mut().enumerate() {
            s.name = format!("op{i}-{long}");
        }
        let head = head_of(&spans);
        let opts = WriteOptions {
            row_group_spans: 2000,
            zstd_level: 1,
        };
        let block = write_block_as(dir.path(), 1, &head, 0, &opts, FORMAT).unwrap();
        let block = Block::open(block.dir.clone()).unwrap();
        let reader = block.reader().unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 1);
        let rg = reader.metadata().row_group(0);
        let names = rg.column(C_NAME).page_encoding_stats_mask().unwrap();
        assert!(names.is_set(Encoding::PLAIN) && !names.is_only(Encoding::RLE_DICTIONARY));
        for c in [C_SERVICE, C_KIND, C_STATUS, C_RESOURCE, C_SCOPE] {
            let mask = rg.column(c).page_encoding_stats_mask().unwrap();
            assert!(mask.is_only(Encoding::RLE_DICTIONARY), "column {c}");
        }
        for t in (0..400u64).step_by(13) {
            let id = mixed_trace_id(t);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            head.trace(&id, &mut want).unwrap();
            block.trace(&id, &mut got).unwrap();
            assert_eq!(sorted(got), sorted(want), "trace {t}");
        }
        for i in [0, 999, 1998] {
            let q = TraceQuery {
                service: Some(spans[i].resource.service_name().to_string()),
                operation: Some(spans[i].name.clone()),
                limit: 10,
                ..TraceQuery::default()
            };
            let m = Matcher::new(&q);
            let (mut want, mut got) = (HashMap::new(), HashMap::new());
            head.search(&m, &mut want).unwrap();
            block.search(&m, &mut got).unwrap();
            assert_eq!(want.len(), 1);
            assert_eq!(got, want, "span {i}");
        }
    }

    /// A window's tag filter holds the tags of all its rows, not only of the slice written
    /// last: a tag on a single span is found wherever in the window the span is.
    #[test]
    fn tag_filters_cover_every_slice_of_a_window() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_700_000_000_000_000_000u64;
        let spans: Vec<Span> = (0..600u64)
            .map(|i| Span {
                trace_id: mixed_trace_id(i),
                span_id: SpanId((i + 1).to_le_bytes()),
                name: "op".into(),
                start_unix_nano: t0 + i * 1000,
                end_unix_nano: t0 + i * 1000 + 10,
                attributes: vec![KeyValue::string("req", format!("r{i}"))],
                ..Span::default()
            })
            .collect();
        let mut head = Head::default();
        head.insert(&mut Prepared::new(spans), SystemTime::now());
        let opts = WriteOptions {
            row_group_spans: 4096,
            zstd_level: 1,
        };
        let b = write_block(dir.path(), 1, &head, 0, &opts).unwrap();
        let b = Block::open(b.dir.clone()).unwrap();
        for i in [0u64, 5, 127, 128, 300, 511, 599, 9999] {
            let q = TraceQuery {
                tags: vec![("req".into(), format!("r{i}"))],
                limit: 10,
                ..TraceQuery::default()
            };
            let mut got = HashMap::new();
            b.search(&Matcher::new(&q), &mut got).unwrap();
            let want: Vec<TraceId> = (i < 600).then(|| mixed_trace_id(i)).into_iter().collect();
            assert_eq!(got.into_keys().collect::<Vec<_>>(), want, "r{i}");
        }
    }

    /// A table that is missing or does not parse is an error for the block's lookups, never a
    /// panic or a wrong answer.
    #[test]
    fn a_broken_table_fails_lookups_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let head = mixed_head();
        let opts = MIXED_OPTS;
        let b = write_block(dir.path(), 1, &head, 0, &opts).unwrap();
        let table = fs::read(b.dir.join(TABLES)).unwrap();
        let parsed = Tables::from_bytes(&Bytes::from(table.clone())).unwrap();
        assert_eq!((parsed.resources.len(), parsed.scopes.len()), (5, 3));
        assert_eq!(parsed.to_bytes(), table);
        for bad in [
            table[..table.len() - 1].to_vec(),
            [&table[..], &[0]].concat(),
            u32::MAX.to_le_bytes().to_vec(),
            Vec::new(),
        ] {
            assert!(Tables::from_bytes(&Bytes::from(bad)).is_none());
        }
        fs::write(b.dir.join(TABLES), &table[..table.len() - 3]).unwrap();
        let b = Block::open(b.dir.clone()).unwrap();
        let id = mixed_trace_id(1);
        let err = b.trace(&id, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("resources.bin is corrupt"), "{err}");
        // An index past the table is refused too.
        let one = Tables {
            resources: vec![Bytes::from_static(b"r")],
            scopes: Vec::new(),
        };
        assert!(one.blob(C_RESOURCE, &0i32.to_le_bytes()).is_ok());
        assert!(one.blob(C_RESOURCE, &1i32.to_le_bytes()).is_err());
        assert!(one.blob(C_RESOURCE, &(-1i32).to_le_bytes()).is_err());
        assert!(one.blob(C_SCOPE, &0i32.to_le_bytes()).is_err());
    }

    /// Packs values into one bit-packed run of `bw`-bit values, least significant bit first.
    fn bitpack(values: &[u32], bw: usize) -> Vec<u8> {
        let groups = values.len().div_ceil(8);
        let mut out = vec![(groups << 1 | 1) as u8];
        let mut bits = vec![0u8; groups * bw];
        for (i, v) in values.iter().enumerate() {
            for b in 0..bw {
                if v >> b & 1 == 1 {
                    let bit = i * bw + b;
                    bits[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
        out.extend(bits);
        out
    }

    #[test]
    fn dictionary_indices_decode_rle_and_bit_packed_runs() {
        for bw in [1usize, 3, 8, 13, 32] {
            let mask = if bw == 32 { u32::MAX } else { (1 << bw) - 1 };
            let packed: Vec<u32> = (0..16u32)
                .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                .collect();
            let mut page = vec![bw as u8];
            // An RLE run of 5 copies of `mask`, then 16 bit-packed values.
            page.push(5 << 1);
            page.extend_from_slice(&mask.to_le_bytes()[..bw.div_ceil(8)]);
            page.extend(bitpack(&packed, bw));
            let mut out = Vec::new();
            dict_ids(&page, 21, &mut out).unwrap();
            let mut want = vec![mask; 5];
            want.extend(&packed);
            assert_eq!(out, want, "bit width {bw}");
            // Fewer values than the runs hold: the rest is padding.
            out.clear();
            dict_ids(&page, 7, &mut out).unwrap();
            assert_eq!(out, want[..7]);
            // Truncated pages are errors, not panics.
            for cut in 0..page.len() {
                out.clear();
                assert!(dict_ids(&page[..cut], 21, &mut out).is_err());
            }
        }
        assert!(dict_ids(&[33, 2, 0], 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn plain_values_slice_and_bound_check() {
        let mut page = Vec::new();
        for v in ["a", "", "xyz"] {
            page.extend_from_slice(&(v.len() as u32).to_le_bytes());
            page.extend_from_slice(v.as_bytes());
        }
        let page = Bytes::from(page);
        let mut out = Vec::new();
        plain_values(&page, Width::Var, 3, |i| i != 1, &mut out).unwrap();
        assert_eq!(out, vec![Bytes::from("a"), Bytes::from("xyz")]);
        assert!(plain_values(&page, Width::Var, 4, |_| true, &mut Vec::new()).is_err());
        assert!(plain_values(&page.slice(..9), Width::Var, 3, |_| true, &mut Vec::new()).is_err());
        let fixed = Bytes::from(vec![1u8; 32]);
        let mut out = Vec::new();
        plain_values(&fixed, Width::Fixed(16), 2, |_| true, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(plain_values(&fixed, Width::Fixed(16), 3, |_| true, &mut Vec::new()).is_err());
    }
}
