//! Parquet pages written byte by byte, for the column chunks this crate encodes itself
//! (`rest_chunk.rs`, `dict_chunk.rs`): page headers in Thrift's compact encoding, and the
//! offset index of a chunk's data pages.
//!
//! Only what those chunks need: version 1 pages of required, unnested columns (so without
//! levels), without checksums or statistics.

use parquet::basic::{Encoding, PageType};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::OffsetIndexBuilder;
use parquet::file::page_index::offset_index::OffsetIndexMetaData;

/// Where a data page of a chunk is, for the offset index.
pub(crate) struct PageSpan {
    pub offset: usize,
    pub len: usize,
    pub rows: usize,
}

/// The offset index of a chunk's data pages.
pub(crate) fn offset_index(pages: &[PageSpan]) -> Result<OffsetIndexMetaData> {
    let mut offsets = OffsetIndexBuilder::new();
    for p in pages {
        offsets.append_offset_and_size(p.offset as i64, to_i32(p.len)?);
        offsets.append_row_count(p.rows as i64);
    }
    Ok(offsets.build())
}

pub(crate) fn to_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| ParquetError::General(format!("{n} does not fit a page")))
}

/// A field header is the field id's delta from the previous one (high nibble) and the type
/// (low nibble): 5 is i32, 12 a struct, 2 a false bool. 0 ends a struct.
const I32_NEXT: u8 = 0x15;
const STOP: u8 = 0;

/// Appends a `PageHeader` for a version 1 data page of `values` values in `encoding`:
///
/// ```text
/// PageHeader { 1: type = DATA_PAGE, 2: uncompressed_page_size, 3: compressed_page_size,
///              5: data_page_header = DataPageHeader { 1: num_values, 2: encoding,
///                  3: definition_level_encoding = RLE, 4: repetition_level_encoding = RLE } }
/// ```
pub(crate) fn data_page_header(
    out: &mut Vec<u8>,
    uncompressed: i32,
    compressed: i32,
    values: i32,
    encoding: Encoding,
) {
    const STRUCT_TWO_ON: u8 = 0x2c;
    sizes(out, PageType::DATA_PAGE, uncompressed, compressed);
    out.push(STRUCT_TWO_ON);
    for v in [
        values,
        encoding as i32,
        Encoding::RLE as i32,
        Encoding::RLE as i32,
    ] {
        next_i32(out, v);
    }
    out.push(STOP);
    out.push(STOP);
}

/// Appends a `PageHeader` for an uncompressed dictionary page of `values` PLAIN values:
///
/// ```text
/// PageHeader { 1: type = DICTIONARY_PAGE, 2: uncompressed_page_size, 3: compressed_page_size,
///              7: dictionary_page_header = DictionaryPageHeader { 1: num_values,
///                  2: encoding = PLAIN, 3: is_sorted = false } }
/// ```
pub(crate) fn dictionary_page_header(out: &mut Vec<u8>, size: i32, values: i32) {
    const STRUCT_FOUR_ON: u8 = 0x4c;
    const FALSE_NEXT: u8 = 0x12;
    sizes(out, PageType::DICTIONARY_PAGE, size, size);
    out.push(STRUCT_FOUR_ON);
    next_i32(out, values);
    next_i32(out, Encoding::PLAIN as i32);
    out.push(FALSE_NEXT);
    out.push(STOP);
    out.push(STOP);
}

/// Fields 1 to 3 of a `PageHeader`.
fn sizes(out: &mut Vec<u8>, page: PageType, uncompressed: i32, compressed: i32) {
    for v in [page as i32, uncompressed, compressed] {
        next_i32(out, v);
    }
}

/// The next field of a struct, an `i32`.
fn next_i32(out: &mut Vec<u8>, v: i32) {
    out.push(I32_NEXT);
    zigzag(out, v);
}

/// A Thrift compact `i32`: zigzag, then a base-128 varint.
fn zigzag(out: &mut Vec<u8>, v: i32) {
    uleb128(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// A base-128 varint, least significant group first (Thrift's and Parquet's).
pub(crate) fn uleb128(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The row counts of the data pages `pages` reads, each checked to be a version 1 page in
/// `encoding`.
#[cfg(test)]
pub(crate) fn data_page_rows(
    pages: &mut dyn parquet::column::page::PageReader,
    encoding: Encoding,
) -> Vec<u32> {
    use parquet::column::page::Page;
    let mut rows = Vec::new();
    while let Some(page) = pages.get_next_page().unwrap() {
        let Page::DataPage {
            num_values,
            encoding: e,
            ..
        } = page
        else {
            panic!("not a v1 data page: {page:?}");
        };
        assert_eq!(e, encoding);
        rows.push(num_values);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints_match_thrift() {
        let enc = |v| {
            let mut out = Vec::new();
            zigzag(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(63), [126]);
        assert_eq!(enc(64), [0x80, 1]);
        assert_eq!(enc(300_000), [0xc0, 0xcf, 0x24]);
        assert_eq!(enc(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
    }
}
