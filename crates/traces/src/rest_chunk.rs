//! The `rest` column chunk of a block's row group, encoded here instead of by Parquet's column
//! writer: PLAIN-encoded pages of a fixed number of rows, each compressed with ZSTD, handed to
//! the row group as a finished chunk ([`SerializedRowGroupWriter::append_column`]).
//!
//! [`SerializedRowGroupWriter::append_column`]:
//!     parquet::file::writer::SerializedRowGroupWriter::append_column
//!
//! Why: rest blobs are most of a block's bytes, and Parquet's writer handled each one several
//! times. Every blob was a reference-counted `ByteArray`; its PLAIN encoder grew a fresh
//! buffer page after page, copying what it held each time; and the compressor's output grew
//! the same way. Here each blob is copied once, into a page buffer that is kept from page to
//! page, and the page is compressed into a buffer sized for the worst case, by one ZSTD
//! context for the whole block. In full-speed ingest profiles the column's share of the
//! server's CPU went from 15% to 12%; what is left is mostly the copy out of the head's
//! memory (cold by then) and the compression itself.
//!
//! The chunk is what Parquet itself writes for this column (`required binary`, no
//! dictionary, no statistics): version 1 data pages (headers from `page.rs`) and an offset
//! index, so any Parquet reader reads it like the other columns.

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::schema::types::ColumnDescPtr;

use crate::page::{data_page_header, offset_index, to_i32, PageSpan};

/// Buffers and the compression context, kept from one row group (and page) to the next.
pub(crate) struct RestChunkWriter {
    descr: ColumnDescPtr,
    level: ZstdLevel,
    compressor: zstd::bulk::Compressor<'static>,
    /// The page being filled, PLAIN-encoded: each blob's length (4 bytes, little-endian),
    /// then its bytes.
    page: Vec<u8>,
    page_rows: usize,
    /// The compressed page.
    compressed: Vec<u8>,
    /// The chunk: page headers and compressed pages.
    chunk: Vec<u8>,
    pages: Vec<PageSpan>,
    uncompressed_bytes: usize,
    rows_per_page: usize,
}

impl RestChunkWriter {
    /// A writer of chunks of column `descr` with pages of `rows_per_page` rows, compressed at
    /// `level`.
    pub(crate) fn new(
        level: ZstdLevel,
        rows_per_page: usize,
        descr: ColumnDescPtr,
    ) -> Result<RestChunkWriter> {
        let compressor = zstd::bulk::Compressor::new(level.compression_level())
            .map_err(|e| ParquetError::General(format!("ZSTD context: {e}")))?;
        Ok(RestChunkWriter {
            descr,
            level,
            compressor,
            page: Vec::new(),
            page_rows: 0,
            compressed: Vec::new(),
            chunk: Vec::new(),
            pages: Vec::new(),
            uncompressed_bytes: 0,
            rows_per_page: rows_per_page.max(1),
        })
    }

    /// Adds the next rows' blobs to the chunk; a page is cut once it holds `rows_per_page`
    /// rows (at the end of a call, so calls with a divisor of that many rows give pages of
    /// exactly that many).
    pub(crate) fn push(&mut self, blobs: &[&[u8]]) -> Result<()> {
        let bytes: usize = blobs.iter().map(|b| 4 + b.len()).sum();
        self.page.reserve(bytes);
        for blob in blobs {
            let len = u32::try_from(blob.len())
                .map_err(|_| ParquetError::General("a rest blob of 4 GiB or more".into()))?;
            self.page.extend_from_slice(&len.to_le_bytes());
            self.page.extend_from_slice(blob);
        }
        self.page_rows += blobs.len();
        if self.page_rows >= self.rows_per_page {
            self.cut_page()?;
        }
        Ok(())
    }

    /// Compresses the page and appends it, with its header, to the chunk.
    fn cut_page(&mut self) -> Result<()> {
        if self.page_rows == 0 {
            return Ok(());
        }
        let raw_len = self.page.len();
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(raw_len));
        self.compressor
            .compress_to_buffer(&self.page, &mut self.compressed)
            .map_err(|e| ParquetError::General(format!("ZSTD compression: {e}")))?;
        let offset = self.chunk.len();
        data_page_header(
            &mut self.chunk,
            to_i32(raw_len)?,
            to_i32(self.compressed.len())?,
            to_i32(self.page_rows)?,
            Encoding::PLAIN,
        );
        let header_len = self.chunk.len() - offset;
        self.chunk.extend_from_slice(&self.compressed);
        self.pages.push(PageSpan {
            offset,
            len: self.chunk.len() - offset,
            rows: self.page_rows,
        });
        self.uncompressed_bytes += header_len + raw_len;
        self.page.clear();
        self.page_rows = 0;
        Ok(())
    }

    /// Ends the chunk: its bytes and the metadata that
    /// [`SerializedRowGroupWriter::append_column`] takes with them. The writer is ready for the
    /// next chunk.
    ///
    /// [`SerializedRowGroupWriter::append_column`]:
    ///     parquet::file::writer::SerializedRowGroupWriter::append_column
    pub(crate) fn finish(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        self.cut_page()?;
        let rows: usize = self.pages.iter().map(|p| p.rows).sum();
        let encodings = [Encoding::PLAIN, Encoding::RLE];
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(Compression::ZSTD(self.level))
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(vec![PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::PLAIN,
                count: to_i32(self.pages.len())?,
            }])
            .set_total_compressed_size(self.chunk.len() as i64)
            .set_total_uncompressed_size(self.uncompressed_bytes as i64)
            .set_num_values(rows as i64)
            .set_data_page_offset(0)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: self.chunk.len() as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offset_index(&self.pages)?),
        };
        // The chunk leaves with its bytes; the next one starts with room for as many.
        let next = Vec::with_capacity(self.chunk.len());
        let bytes = Bytes::from(std::mem::replace(&mut self.chunk, next));
        self.pages.clear();
        self.uncompressed_bytes = 0;
        Ok((bytes, close))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::record::Field;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    fn blob(i: usize) -> Vec<u8> {
        (0..i % 700).map(|j| (i * 7 + j) as u8).collect()
    }

    /// Writes `rows` blobs in `rows_per_call` calls through the chunk writer, between two
    /// columns Parquet writes itself.
    fn file(rows: usize, rows_per_call: usize, row_groups: usize) -> Bytes {
        let schema = Arc::new(
            parse_message_type(
                "message m { required int32 a; required binary rest; required int32 b; }",
            )
            .unwrap(),
        );
        let props = Arc::new(parquet::file::properties::WriterProperties::builder().build());
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(&mut out, schema, props).unwrap();
        let level = ZstdLevel::try_new(3).unwrap();
        let mut chunks = RestChunkWriter::new(level, 64, w.schema_descr().column(1)).unwrap();
        for g in 0..row_groups {
            let mut rg = w.next_row_group().unwrap();
            let ints: Vec<i32> = (0..rows as i32).collect();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<parquet::data_type::Int32Type>()
                .write_batch(&ints, None, None)
                .unwrap();
            c.close().unwrap();
            let blobs: Vec<Vec<u8>> = (0..rows).map(|i| blob(g * rows + i)).collect();
            let refs: Vec<&[u8]> = blobs.iter().map(|b| &b[..]).collect();
            for part in refs.chunks(rows_per_call) {
                chunks.push(part).unwrap();
            }
            let (bytes, close) = chunks.finish().unwrap();
            rg.append_column(&bytes, close).unwrap();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<parquet::data_type::Int32Type>()
                .write_batch(&ints, None, None)
                .unwrap();
            c.close().unwrap();
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn parquet_reads_the_chunk_back_row_by_row_and_page_by_page() {
        let rows = 300;
        let bytes = file(rows, 16, 3);
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader = SerializedFileReader::new_with_options(bytes, options).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 3);
        for g in 0..3 {
            let rg = reader.get_row_group(g).unwrap();
            let col = rg.metadata().column(1);
            assert!(matches!(col.compression(), Compression::ZSTD(_)));
            assert_eq!(col.num_values(), rows as i64);
            // Pages of 64 rows: four full ones and the rest.
            let mut pages = rg.get_column_page_reader(1).unwrap();
            let sizes = crate::page::data_page_rows(&mut *pages, Encoding::PLAIN);
            assert_eq!(sizes, [64, 64, 64, 64, 44]);
            let index = meta.page_index_for_row_group(g);
            let locations = index.offset_index(1).unwrap().page_locations();
            let firsts: Vec<i64> = locations.iter().map(|l| l.first_row_index).collect();
            assert_eq!(firsts, [0, 64, 128, 192, 256]);
            // Every row, with the columns around it intact.
            for (i, row) in rg.get_row_iter(None).unwrap().enumerate() {
                let row = row.unwrap();
                let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
                assert_eq!(*fields[0], Field::Int(i as i32));
                assert_eq!(*fields[1], Field::Bytes(blob(g * rows + i).into()));
                assert_eq!(*fields[2], Field::Int(i as i32));
            }
        }
    }
}
