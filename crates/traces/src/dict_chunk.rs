//! Dictionary-encoded column chunks of a block's row group, for the columns whose values the
//! head has already interned: service and span name (string ids), kind, status code,
//! resource and scope. Encoded here from those ids instead of by Parquet's column writer,
//! and handed to the row group as finished chunks, like the `rest` column (`rest_chunk.rs`).
//!
//! Why: Parquet's writer builds each chunk's dictionary by hashing every row's value into a
//! table (for strings, after a reference-counted copy of the value per row), although the
//! head knows already which rows hold equal values. With ids, a row's dictionary index is one
//! array lookup. In a profile of block building (loadgen spans), the six columns' hashing and
//! copies were about an eighth of it, and block building is about a third of the server's CPU
//! at full-speed ingest.
//!
//! The chunk is what Parquet writes for such a column: a dictionary page (PLAIN values, in
//! order of first appearance), then version 1 data pages of `rows_per_page` rows in
//! RLE_DICTIONARY encoding (a bit-width byte, then the indices in the RLE / bit-packing
//! hybrid), uncompressed, and an offset index. A dictionary past Parquet's default size
//! limit (a high-cardinality span name) is not encoded here: the caller writes that chunk
//! through Parquet's writer, which falls back to plain pages.

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::schema::types::ColumnDescPtr;

use crate::page::{
    data_page_header, dictionary_page_header, offset_index, to_i32, uleb128, PageSpan,
};

/// The largest dictionary page encoded here: Parquet's default limit, past which its writer
/// falls back to plain encoding.
pub(crate) const DICTIONARY_LIMIT: usize = 1 << 20;

/// `local` of an id not in the chunk's dictionary.
const NONE: u32 = u32::MAX;

/// Buffers kept from one chunk to the next.
pub(crate) struct DictChunkWriter {
    descr: ColumnDescPtr,
    rows_per_page: usize,
    /// Each id's index in the current chunk's dictionary, [`NONE`] if not in it.
    local: Vec<u32>,
    /// The dictionary: ids in order of first appearance.
    order: Vec<u32>,
    /// The dictionary page's PLAIN values.
    dict: Vec<u8>,
    /// Each row's dictionary index.
    indices: Vec<u32>,
    /// A data page's body.
    body: Vec<u8>,
    chunk: Vec<u8>,
    pages: Vec<PageSpan>,
}

impl DictChunkWriter {
    /// A writer of chunks of column `descr` with data pages of `rows_per_page` rows.
    pub(crate) fn new(rows_per_page: usize, descr: ColumnDescPtr) -> DictChunkWriter {
        DictChunkWriter {
            descr,
            rows_per_page: rows_per_page.max(1),
            local: Vec::new(),
            order: Vec::new(),
            dict: Vec::new(),
            indices: Vec::new(),
            body: Vec::new(),
            chunk: Vec::new(),
            pages: Vec::new(),
        }
    }

    /// The chunk whose row `i` holds the value of id `ids[i]`, which `plain` appends to the
    /// dictionary page in PLAIN encoding (see [`plain_bytes`] and [`plain_i32`]), with the
    /// metadata that `SerializedRowGroupWriter::append_column` takes with it. `None` when
    /// the dictionary would pass [`DICTIONARY_LIMIT`].
    pub(crate) fn chunk(
        &mut self,
        ids: &[u32],
        plain: impl FnMut(u32, &mut Vec<u8>),
    ) -> Result<Option<(Bytes, ColumnCloseResult)>> {
        let chunk = self.encode(ids, plain);
        for id in self.order.drain(..) {
            self.local[id as usize] = NONE;
        }
        self.dict.clear();
        self.indices.clear();
        self.pages.clear();
        chunk
    }

    fn encode(
        &mut self,
        ids: &[u32],
        mut plain: impl FnMut(u32, &mut Vec<u8>),
    ) -> Result<Option<(Bytes, ColumnCloseResult)>> {
        self.indices.reserve(ids.len());
        for &id in ids {
            let i = id as usize;
            if i >= self.local.len() {
                self.local.resize(i + 1, NONE);
            }
            if self.local[i] == NONE {
                self.local[i] = self.order.len() as u32;
                self.order.push(id);
                plain(id, &mut self.dict);
                if self.dict.len() > DICTIONARY_LIMIT {
                    return Ok(None);
                }
            }
            self.indices.push(self.local[i]);
        }

        self.chunk.clear();
        dictionary_page_header(
            &mut self.chunk,
            to_i32(self.dict.len())?,
            to_i32(self.order.len())?,
        );
        self.chunk.extend_from_slice(&self.dict);
        let data_offset = self.chunk.len();
        let width = bit_width(self.order.len());
        for page in self.indices.chunks(self.rows_per_page) {
            self.body.clear();
            self.body.push(width);
            rle_hybrid(&mut self.body, page, width);
            let offset = self.chunk.len();
            let len = to_i32(self.body.len())?;
            data_page_header(
                &mut self.chunk,
                len,
                len,
                to_i32(page.len())?,
                Encoding::RLE_DICTIONARY,
            );
            self.chunk.extend_from_slice(&self.body);
            self.pages.push(PageSpan {
                offset,
                len: self.chunk.len() - offset,
                rows: page.len(),
            });
        }

        let encodings = [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY];
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(vec![
                PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                },
                PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding: Encoding::RLE_DICTIONARY,
                    count: to_i32(self.pages.len())?,
                },
            ])
            .set_total_compressed_size(self.chunk.len() as i64)
            .set_total_uncompressed_size(self.chunk.len() as i64)
            .set_num_values(ids.len() as i64)
            .set_dictionary_page_offset(Some(0))
            .set_data_page_offset(data_offset as i64)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: self.chunk.len() as u64,
            rows_written: ids.len() as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offset_index(&self.pages)?),
        };
        // The chunk leaves with its bytes; the next one starts with room for as many.
        let next = Vec::with_capacity(self.chunk.len());
        Ok(Some((
            Bytes::from(std::mem::replace(&mut self.chunk, next)),
            close,
        )))
    }
}

/// Appends a byte array value in PLAIN encoding: its length (4 bytes, little-endian), then
/// its bytes. A value of 4 GiB or more cannot be written so, but it also passes
/// [`DICTIONARY_LIMIT`], which discards the chunk.
pub(crate) fn plain_bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Appends an `int32` value in PLAIN encoding.
pub(crate) fn plain_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Bits per index for a dictionary of `len` values, as Parquet computes it.
fn bit_width(len: usize) -> u8 {
    (usize::BITS - len.saturating_sub(1).leading_zeros()) as u8
}

/// Appends `values` in Parquet's RLE / bit-packing hybrid encoding at `width` bits each:
/// runs of eight or more equal values as RLE runs, the others bit-packed in groups of eight.
/// Only the last group may be partial; it is padded with zeros, which readers drop since a
/// page says how many values it holds.
fn rle_hybrid(out: &mut Vec<u8>, values: &[u32], width: u8) {
    let n = values.len();
    let mut i = 0;
    while i < n {
        let run = values[i..].iter().take_while(|v| **v == values[i]).count();
        if run >= 8 {
            uleb128(out, (run as u64) << 1);
            let bytes = usize::from(width).div_ceil(8);
            out.extend_from_slice(&values[i].to_le_bytes()[..bytes]);
            i += run;
            continue;
        }
        // Whole groups of eight until one starts a run of eight.
        let start = i;
        i = (i + 8).min(n);
        while i < n && !starts_run(&values[i..]) {
            i = (i + 8).min(n);
        }
        let groups = (i - start).div_ceil(8);
        uleb128(out, ((groups as u64) << 1) | 1);
        bit_pack(out, &values[start..i], groups * 8, width);
    }
}

/// Whether `values` starts with eight equal values.
fn starts_run(values: &[u32]) -> bool {
    values.len() >= 8 && values[1..8].iter().all(|v| *v == values[0])
}

/// Appends `count` (a multiple of eight) values of `width` bits, least significant bit
/// first: `values`, then zeros.
fn bit_pack(out: &mut Vec<u8>, values: &[u32], count: usize, width: u8) {
    let (mut acc, mut have) = (0u64, 0u8);
    for k in 0..count {
        acc |= u64::from(values.get(k).copied().unwrap_or(0)) << have;
        have += width;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::column::page::Page;
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::record::Field;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    const SCHEMA: &str =
        "message m { required int32 a; required binary s (UTF8); required int32 k; }";

    fn name(id: u32) -> String {
        format!("operation-{id}")
    }

    /// Ids with runs, repeats and singletons: row `i` of row group `g`.
    fn id(g: usize, i: usize, distinct: u32) -> u32 {
        let i = i as u32;
        match i % 97 {
            0..=40 => (i / 41 + g as u32) % distinct,
            41..=60 => 3 % distinct,
            _ => i.wrapping_mul(2_654_435_761) % distinct,
        }
    }

    /// A file of `groups` row groups of `rows` rows: column `a` by Parquet's writer, `s` and
    /// `k` from ids by ours, or all three by Parquet's when `ours` is false.
    fn file(rows: usize, groups: usize, distinct: u32, ours: bool) -> Bytes {
        let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::UNCOMPRESSED)
                .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
                .set_data_page_row_count_limit(64)
                .set_write_batch_size(64)
                .build(),
        );
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(&mut out, schema, props).unwrap();
        let mut strings = DictChunkWriter::new(64, w.schema_descr().column(1));
        let mut ints = DictChunkWriter::new(64, w.schema_descr().column(2));
        for g in 0..groups {
            let mut rg = w.next_row_group().unwrap();
            let a: Vec<i32> = (0..rows as i32).collect();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int32Type>().write_batch(&a, None, None).unwrap();
            c.close().unwrap();
            let ids: Vec<u32> = (0..rows).map(|i| id(g, i, distinct)).collect();
            if ours {
                let chunk = strings.chunk(&ids, |id, out| plain_bytes(out, name(id).as_bytes()));
                let (bytes, close) = chunk.unwrap().unwrap();
                rg.append_column(&bytes, close).unwrap();
                let chunk = ints.chunk(&ids, |id, out| plain_i32(out, id as i32 * 3));
                let (bytes, close) = chunk.unwrap().unwrap();
                rg.append_column(&bytes, close).unwrap();
            } else {
                let s: Vec<ByteArray> = ids.iter().map(|i| name(*i).as_str().into()).collect();
                let mut c = rg.next_column().unwrap().unwrap();
                c.typed::<ByteArrayType>()
                    .write_batch(&s, None, None)
                    .unwrap();
                c.close().unwrap();
                let k: Vec<i32> = ids.iter().map(|i| *i as i32 * 3).collect();
                let mut c = rg.next_column().unwrap().unwrap();
                c.typed::<Int32Type>().write_batch(&k, None, None).unwrap();
                c.close().unwrap();
            }
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn parquet_reads_the_chunks_back_row_by_row_and_page_by_page() {
        for distinct in [1, 2, 7, 300] {
            let rows = 1000;
            let bytes = file(rows, 3, distinct, true);
            let options = ReadOptionsBuilder::new().with_page_index().build();
            let reader = SerializedFileReader::new_with_options(bytes, options).unwrap();
            let meta = reader.metadata();
            for g in 0..3 {
                let rg = reader.get_row_group(g).unwrap();
                for col in [1, 2] {
                    let mut pages = rg.get_column_page_reader(col).unwrap();
                    let first = pages.get_next_page().unwrap().unwrap();
                    assert!(matches!(first, Page::DictionaryPage { .. }), "{first:?}");
                    let sizes = crate::page::data_page_rows(&mut *pages, Encoding::RLE_DICTIONARY);
                    assert_eq!(sizes.len(), 16);
                    assert!(sizes[..15].iter().all(|s| *s == 64));
                    assert_eq!(sizes[15], 40);
                    let index = meta.page_index_for_row_group(g);
                    let locations = index.offset_index(col).unwrap().page_locations();
                    let firsts: Vec<i64> = locations.iter().map(|l| l.first_row_index).collect();
                    assert_eq!(firsts, (0..16).map(|p| p * 64).collect::<Vec<i64>>());
                }
                for (i, row) in rg.get_row_iter(None).unwrap().enumerate() {
                    let row = row.unwrap();
                    let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
                    let want = id(g, i, distinct);
                    assert_eq!(*fields[0], Field::Int(i as i32));
                    assert_eq!(*fields[1], Field::Str(name(want)), "row {i} of {g}");
                    assert_eq!(*fields[2], Field::Int(want as i32 * 3));
                }
            }
        }
    }

    #[test]
    fn the_chunks_are_no_larger_than_parquets_own() {
        for distinct in [1, 7, 300] {
            let ours = file(4000, 2, distinct, true).len();
            let theirs = file(4000, 2, distinct, false).len();
            assert!(
                ours as f64 <= theirs as f64 * 1.02,
                "{distinct} values: {ours} bytes, Parquet {theirs}"
            );
        }
    }

    #[test]
    fn a_dictionary_past_the_limit_is_left_to_parquet() {
        let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
        let descr = parquet::schema::types::SchemaDescriptor::new(schema).column(1);
        let mut w = DictChunkWriter::new(64, descr);
        let big = vec![b'x'; 4096];
        let ids: Vec<u32> = (0..300).collect();
        assert!(w
            .chunk(&ids, |_, out| plain_bytes(out, &big))
            .unwrap()
            .is_none());
        // The writer is whole for the next chunk.
        let (bytes, close) = w
            .chunk(&[5, 5, 9], |_, out| plain_bytes(out, b"a"))
            .unwrap()
            .unwrap();
        assert_eq!(close.rows_written, 3);
        assert_eq!(bytes.len() as u64, close.bytes_written);
    }

    /// Decodes the hybrid encoding the way the specification describes it.
    fn decode(mut buf: &[u8], width: u8, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        while out.len() < n {
            let (mut h, mut shift) = (0u64, 0);
            loop {
                let b = buf[0];
                buf = &buf[1..];
                h |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            if h & 1 == 0 {
                let bytes = usize::from(width).div_ceil(8);
                let mut v = [0u8; 4];
                v[..bytes].copy_from_slice(&buf[..bytes]);
                buf = &buf[bytes..];
                out.extend(std::iter::repeat_n(
                    u32::from_le_bytes(v),
                    (h >> 1) as usize,
                ));
            } else {
                let count = (h >> 1) as usize * 8;
                for k in 0..count {
                    let mut v = 0u32;
                    for b in 0..usize::from(width) {
                        let bit = k * usize::from(width) + b;
                        v |= u32::from(buf[bit / 8] >> (bit % 8) & 1) << b;
                    }
                    out.push(v);
                }
                buf = &buf[count * usize::from(width) / 8..];
            }
        }
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        out.truncate(n);
        out
    }

    #[test]
    fn the_hybrid_encoding_round_trips_at_every_width() {
        for width in 0..=32u8 {
            let max = if width == 32 {
                u32::MAX
            } else {
                (1u32 << width).wrapping_sub(1)
            };
            let mut values: Vec<u32> = Vec::new();
            for i in 0..300u32 {
                let v = i.wrapping_mul(2_654_435_761) & max;
                // Runs of 1 to 20 equal values.
                values.extend(std::iter::repeat_n(v, (i % 20 + 1) as usize));
            }
            for n in [0, 1, 7, 8, 9, 63, values.len()] {
                let mut out = Vec::new();
                rle_hybrid(&mut out, &values[..n], width);
                assert_eq!(
                    decode(&out, width, n),
                    values[..n],
                    "width {width}, {n} values"
                );
            }
        }
    }

    #[test]
    fn bit_widths_are_parquets() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 0);
        assert_eq!(bit_width(2), 1);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(4), 2);
        assert_eq!(bit_width(5), 3);
        assert_eq!(bit_width(256), 8);
        assert_eq!(bit_width(257), 9);
    }
}
