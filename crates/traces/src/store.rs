//! The trace store: WAL, head, flushing heads and blocks, and the order of operations that
//! keeps an acknowledged span exactly once across crashes.
//!
//! Invariants:
//! - A write holds the `cut` read guard across its WAL append and its head insert; a cut
//!   takes the write guard, rotates the WAL to a new segment `S` and swaps the head. So every
//!   span of the old head is in segments `< S` and every later write lands in segments `>= S`.
//! - A frozen head stays queryable in `flushing` until its block is visible; the block records
//!   `wal_through = S`, and only then are segments `< S` deleted. Opening replays segments
//!   `>= max(wal_through)`, so a crash anywhere between those steps neither loses spans nor
//!   duplicates them.
//! - One block is written at a time (`flush` mutex), oldest frozen head first, so deleting
//!   segments below a block's `wal_through` never drops a segment an unwritten head needs.
//! - Block building and every read that scans blocks run on blocking threads; the services
//!   and operations catalog is a small in-memory index so those lists never touch blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use model::otlp::{request_from_spans, ValidTraces};
use model::{Span, SpanId, SpanKind, TraceId, UnixNanos};
use parking_lot::RwLock;
use prost::Message;
use wal::{SegmentId, Wal, WalOptions, WalStats};

use crate::block::{self, Block, Deps, WriteOptions};
use crate::head::{Head, Prepared};
use crate::query::Matcher;
use crate::{DependencyLink, Operation, TraceError, TraceQuery, TraceReader};

/// Settings of a [`TraceStore`].
#[derive(Clone, Debug)]
pub struct TraceStoreConfig {
    /// The store's directory; the WAL lives in `dir/wal`, blocks in `dir/blocks`.
    pub dir: PathBuf,
    pub wal: WalOptions,
    /// Blocks whose newest span ended longer ago than this are deleted.
    pub retention: Duration,
    /// When set, the oldest blocks are deleted while all blocks take more bytes than this.
    pub max_bytes: Option<u64>,
    /// The head is cut into a block once it holds this many spans...
    pub head_max_spans: usize,
    /// ...or once its first span arrived this long ago.
    pub head_max_age: Duration,
    /// Spans per Parquet row group (rounded up to a trace boundary). Smaller row groups make
    /// trace-by-id read less; larger ones compress better.
    pub row_group_spans: usize,
    /// ZSTD level of block columns.
    pub zstd_level: i32,
}

impl TraceStoreConfig {
    /// Defaults: 7 days of retention, no size limit, a block every million spans or 15
    /// minutes, group-commit WAL.
    pub fn new(dir: impl Into<PathBuf>) -> TraceStoreConfig {
        TraceStoreConfig {
            dir: dir.into(),
            wal: WalOptions::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_bytes: None,
            head_max_spans: 1_000_000,
            head_max_age: Duration::from_secs(15 * 60),
            row_group_spans: 16 * 1024,
            zstd_level: 3,
        }
    }
}

/// What one [`TraceStore::maintain`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Whether the head was cut.
    pub head_cut: bool,
    pub blocks_written: usize,
    pub blocks_deleted: usize,
    pub bytes_deleted: u64,
}

/// Cheap counters for `/metrics` and `lookout status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceStoreStats {
    pub head_spans: u64,
    pub head_traces: u64,
    /// Approximate heap bytes of the head.
    pub head_bytes: u64,
    /// Spans in heads that were cut and whose blocks are being written.
    pub flushing_spans: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    pub block_spans: u64,
    pub wal: WalStats,
}

struct Frozen {
    head: Arc<Head>,
    wal_through: SegmentId,
}

#[derive(Default)]
struct State {
    head: Head,
    /// Cut heads whose blocks are not written yet, oldest first.
    flushing: Vec<Frozen>,
    /// Visible blocks, by ascending id.
    blocks: Vec<Arc<Block>>,
}

type Catalog = BTreeMap<String, BTreeSet<Operation>>;

/// What a query reads besides the live head: frozen heads and blocks.
type Sources = (Vec<Arc<Head>>, Vec<Arc<Block>>);

/// Lookout's durable span store. See the module docs of this crate for the data flow.
pub struct TraceStore {
    cfg: TraceStoreConfig,
    blocks_dir: PathBuf,
    wal: Wal,
    cut: tokio::sync::RwLock<()>,
    flush: tokio::sync::Mutex<()>,
    state: RwLock<State>,
    catalog: RwLock<Catalog>,
    next_block_id: AtomicU64,
}

fn unix_nanos(t: SystemTime) -> UnixNanos {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

fn io_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> TraceError {
    move |source| TraceError::Io { path, source }
}

impl TraceStore {
    /// Opens (creating if needed) the store in `cfg.dir`: reads block sidecars (never block
    /// data) and replays the WAL segments no block covers into the head. Blocking.
    pub fn open(cfg: TraceStoreConfig) -> Result<TraceStore, TraceError> {
        let blocks_dir = cfg.dir.join("blocks");
        fs::create_dir_all(&blocks_dir).map_err(io_err(blocks_dir.clone()))?;
        let mut blocks = Vec::new();
        for entry in fs::read_dir(&blocks_dir).map_err(io_err(blocks_dir.clone()))? {
            let entry = entry.map_err(io_err(blocks_dir.clone()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".tmp") || name.ends_with(".deleted") {
                // A block that was never finished, or one retention was deleting.
                fs::remove_dir_all(&path).map_err(io_err(path.clone()))?;
                continue;
            }
            if name.parse::<u64>().is_err() {
                continue;
            }
            match Block::open(path) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable trace block"),
            }
        }
        blocks.sort_by_key(|b| b.meta.id);
        let wal_through = blocks.iter().map(|b| b.meta.wal_through).max().unwrap_or(0);
        let next_id = blocks.last().map(|b| b.meta.id + 1).unwrap_or(1);

        let wal = Wal::open(&cfg.dir.join("wal"), cfg.wal.clone())?;
        let mut head = Head::default();
        let now = SystemTime::now();
        let mut skipped = 0u64;
        wal.replay(wal_through, |pos, rec| {
            match ValidTraces::from_protobuf(Bytes::copy_from_slice(rec)) {
                Ok(traces) => {
                    // The catalog is rebuilt from the head below.
                    head.insert(&mut Prepared::from_request(traces), now);
                }
                Err(e) => {
                    // The WAL's CRC passed, so this is a bug, not a torn write: keep going
                    // rather than refuse to start, and say so.
                    skipped += 1;
                    tracing::warn!(segment = pos.segment, offset = pos.offset, error = %e, "skipping undecodable trace WAL record");
                }
            }
            Ok(())
        })?;
        if wal_through > 0 {
            // Segments a block covers but that a crash kept from being deleted.
            wal.remove_segments_before(wal_through)?;
        }
        let store = TraceStore {
            blocks_dir,
            wal,
            cut: tokio::sync::RwLock::new(()),
            flush: tokio::sync::Mutex::new(()),
            state: RwLock::new(State {
                head,
                flushing: Vec::new(),
                blocks,
            }),
            catalog: RwLock::new(Catalog::new()),
            next_block_id: AtomicU64::new(next_id),
            cfg,
        };
        store.rebuild_catalog();
        Ok(store)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &TraceStoreConfig {
        &self.cfg
    }

    /// Stores a batch durably: returns `Ok` only once the WAL says the batch is on disk
    /// (per the WAL's fsync policy), and the spans are then visible to queries.
    pub async fn write(&self, spans: Vec<Span>) -> Result<(), TraceError> {
        if spans.is_empty() {
            return Ok(());
        }
        let otlp = request_from_spans(&spans).encode_to_vec();
        self.write_encoded(spans, otlp).await
    }

    /// Like [`TraceStore::write`], with the batch's OTLP `ExportTraceServiceRequest`
    /// protobuf bytes already at hand (a receiver has them), which the WAL stores as they
    /// are. `otlp` must decode to exactly `spans`.
    pub async fn write_encoded(&self, spans: Vec<Span>, otlp: Vec<u8>) -> Result<(), TraceError> {
        if spans.is_empty() {
            return Ok(());
        }
        self.write_prepared(Prepared::new(spans), otlp).await
    }

    /// Stores a validated OTLP request durably, like [`TraceStore::write`]: the head rows
    /// are built straight from the request (usually its received protobuf bytes), without
    /// converting to [`Span`]s. The WAL stores the request's protobuf encoding: `otlp` when
    /// given, else the bytes the request was validated from, else a fresh encoding.
    pub async fn write_request(
        &self,
        traces: ValidTraces,
        otlp: Option<Bytes>,
    ) -> Result<(), TraceError> {
        if traces.is_empty() {
            return Ok(());
        }
        let otlp = otlp.unwrap_or_else(|| traces.to_protobuf());
        let prepared = Prepared::from_request(traces);
        self.write_prepared(prepared, otlp).await
    }

    /// The WAL append and head insert under the cut guard, then the catalog update.
    ///
    /// Memory stays bounded when block building falls behind ingest (a head is not cut
    /// while the previous one is being written): past twice `head_max_spans` in the head,
    /// writes are refused with [`TraceError::Overloaded`] until the head is cut, and the
    /// receivers tell clients to retry later. The check is not atomic with the insert:
    /// writers that pass it together all insert, so the head can pass the bound by what is
    /// in flight at once, which the receivers bound in bytes (`max_inflight_bytes`).
    async fn write_prepared(
        &self,
        mut prepared: Prepared,
        otlp: impl Into<Bytes>,
    ) -> Result<(), TraceError> {
        let new_ops = {
            let _cut = self.cut.read().await;
            let spans = self.state.read().head.len();
            if spans >= self.cfg.head_max_spans.saturating_mul(2).max(1) {
                return Err(TraceError::Overloaded { spans });
            }
            self.wal.append(otlp).await?;
            self.state
                .write()
                .head
                .insert(&mut prepared, SystemTime::now())
        };
        // Freed here, outside the head's lock.
        drop(prepared);
        if !new_ops.is_empty() {
            // Operations new to the head; most are already in the catalog (from an older
            // head or a block), where inserting again changes nothing.
            let mut cat = self.catalog.write();
            for (service, name, kind) in new_ops {
                cat.entry(service.to_string())
                    .or_default()
                    .insert(Operation {
                        name: name.to_string(),
                        span_kind: kind,
                    });
            }
        }
        Ok(())
    }

    fn rebuild_catalog(&self) {
        let mut cat = Catalog::new();
        let st = self.state.read();
        for b in &st.blocks {
            for (service, name, kind) in &b.meta.operations {
                cat.entry(service.clone()).or_default().insert(Operation {
                    name: name.clone(),
                    span_kind: SpanKind::from_i32(*kind as i32).unwrap_or_default(),
                });
            }
        }
        let heads = std::iter::once(&st.head).chain(st.flushing.iter().map(|f| &*f.head));
        for h in heads {
            for (service, name, kind) in &h.operations {
                cat.entry(h.strings[*service as usize].to_string())
                    .or_default()
                    .insert(Operation {
                        name: h.strings[*name as usize].to_string(),
                        span_kind: *kind,
                    });
            }
        }
        *self.catalog.write() = cat;
    }

    /// Cuts the head (if it has spans) and writes every pending block now: for shutdown and
    /// tests.
    pub async fn flush(&self) -> Result<(), TraceError> {
        let _flush = self.flush.lock().await;
        self.cut_head().await?;
        self.write_pending().await?;
        Ok(())
    }

    /// Flushes the WAL (for shutdown; writes are already durable under the default policy).
    pub async fn sync(&self) -> Result<(), TraceError> {
        Ok(self.wal.sync().await?)
    }

    async fn cut_head(&self) -> Result<bool, TraceError> {
        let _cut = self.cut.write().await;
        if self.state.read().head.is_empty() {
            return Ok(false);
        }
        let wal_through = self.wal.rotate().await?;
        let mut st = self.state.write();
        let head = std::mem::take(&mut st.head);
        st.flushing.push(Frozen {
            head: Arc::new(head),
            wal_through,
        });
        Ok(true)
    }

    /// Writes blocks for the cut heads, oldest first. Caller holds the flush mutex.
    async fn write_pending(&self) -> Result<usize, TraceError> {
        let mut written = 0;
        loop {
            let Some((head, wal_through)) = self
                .state
                .read()
                .flushing
                .first()
                .map(|f| (f.head.clone(), f.wal_through))
            else {
                break;
            };
            let id = self.next_block_id.fetch_add(1, Ordering::Relaxed);
            let dir = self.blocks_dir.clone();
            let opts = WriteOptions {
                row_group_spans: self.cfg.row_group_spans.max(1),
                zstd_level: self.cfg.zstd_level,
            };
            let block = tokio::task::spawn_blocking(move || {
                block::write_block(&dir, id, &head, wal_through, &opts)
            })
            .await
            .map_err(|e| TraceError::Task(e.to_string()))??;
            {
                let mut st = self.state.write();
                st.blocks.push(Arc::new(block));
                st.flushing.remove(0);
            }
            self.wal.remove_segments_before(wal_through)?;
            written += 1;
        }
        Ok(written)
    }

    /// Housekeeping the binary runs every few seconds: cuts the head into a block when it
    /// passed `head_max_spans` or `head_max_age`, retries unwritten blocks, and applies
    /// retention by age (relative to `now`) and by size.
    pub async fn maintain(&self, now: SystemTime) -> Result<MaintenanceReport, TraceError> {
        let _flush = self.flush.lock().await;
        let mut report = MaintenanceReport::default();
        let due = {
            let st = self.state.read();
            let h = &st.head;
            !h.is_empty()
                && (h.len() >= self.cfg.head_max_spans
                    || h.first_write.is_some_and(|t| {
                        now.duration_since(t).unwrap_or_default() >= self.cfg.head_max_age
                    }))
        };
        if due {
            report.head_cut = self.cut_head().await?;
        }
        report.blocks_written = self.write_pending().await?;
        let (n, bytes) = self.apply_retention(now)?;
        report.blocks_deleted = n;
        report.bytes_deleted = bytes;
        Ok(report)
    }

    fn apply_retention(&self, now: SystemTime) -> Result<(usize, u64), TraceError> {
        let cutoff = unix_nanos(now)
            .saturating_sub(self.cfg.retention.as_nanos().min(u64::MAX as u128) as u64);
        let doomed: Vec<Arc<Block>> = {
            let mut st = self.state.write();
            let (old, mut keep): (Vec<_>, Vec<_>) =
                st.blocks.drain(..).partition(|b| b.meta.max_end < cutoff);
            let mut doomed = old;
            if let Some(max) = self.cfg.max_bytes {
                let mut total: u64 = keep.iter().map(|b| b.meta.bytes).sum();
                while total > max && !keep.is_empty() {
                    let b = keep.remove(0);
                    total -= b.meta.bytes;
                    doomed.push(b);
                }
            }
            st.blocks = keep;
            doomed
        };
        if doomed.is_empty() {
            return Ok((0, 0));
        }
        let mut bytes = 0;
        for b in &doomed {
            bytes += b.meta.bytes;
            // Rename first so a crash mid-delete leaves no half block that looks whole.
            let gone = b.dir.with_extension("deleted");
            fs::rename(&b.dir, &gone).map_err(io_err(b.dir.clone()))?;
            fs::remove_dir_all(&gone).map_err(io_err(gone.clone()))?;
        }
        self.rebuild_catalog();
        Ok((doomed.len(), bytes))
    }

    /// Counters; cheap (one short read lock).
    pub fn stats(&self) -> TraceStoreStats {
        let st = self.state.read();
        TraceStoreStats {
            head_spans: st.head.len() as u64,
            head_traces: st.head.trace_count() as u64,
            head_bytes: st.head.approx_bytes() as u64,
            flushing_spans: st.flushing.iter().map(|f| f.head.len() as u64).sum(),
            blocks: st.blocks.len() as u64,
            block_bytes: st.blocks.iter().map(|b| b.meta.bytes).sum(),
            block_spans: st.blocks.iter().map(|b| b.meta.spans).sum(),
            wal: self.wal.stats(),
        }
    }

    /// A consistent view of the frozen heads and blocks (the live head is read under the
    /// lock by the caller's closure).
    fn snapshot<T>(
        &self,
        live: impl FnOnce(&Head) -> Result<T, TraceError>,
    ) -> Result<(T, Sources), TraceError> {
        let st = self.state.read();
        let t = live(&st.head)?;
        Ok((
            t,
            (
                st.flushing.iter().map(|f| f.head.clone()).collect(),
                st.blocks.clone(),
            ),
        ))
    }

    /// A query that raced retention may find its block's files gone: that block simply
    /// has nothing to contribute any more.
    fn unless_deleted(&self, b: &Block, r: Result<(), TraceError>) -> Result<(), TraceError> {
        match r {
            Err(e)
                if !self
                    .state
                    .read()
                    .blocks
                    .iter()
                    .any(|x| x.meta.id == b.meta.id) =>
            {
                tracing::debug!(error = %e, "ignoring a block deleted during a query");
                Ok(())
            }
            r => r,
        }
    }

    fn head_dependencies(h: &Head, start: UnixNanos, end: UnixNanos, deps: &mut Deps) {
        for s in &h.spans {
            let Some(p) = s.parent else { continue };
            if s.start < start || s.start > end {
                continue;
            }
            let child = h.service_of(s);
            let parent = h
                .trace_indices(&s.trace_id)
                .into_iter()
                .map(|i| &h.spans[i as usize])
                .find(|x| x.span_id == p);
            match parent {
                Some(ps) => {
                    let parent = h.service_of(ps);
                    if parent != child {
                        *deps
                            .edges
                            .entry((parent.to_string(), child.to_string()))
                            .or_insert(0) += 1;
                    }
                }
                None => deps.pending.push((s.trace_id, p, child.to_string())),
            }
        }
    }

    fn head_services_of(
        h: &Head,
        traces: &HashSet<TraceId>,
        out: &mut HashMap<(TraceId, SpanId), String>,
    ) {
        for t in traces {
            for i in h.trace_indices(t) {
                let s = &h.spans[i as usize];
                out.insert((s.trace_id, s.span_id), h.service_of(s).to_string());
            }
        }
    }
}

impl TraceReader for TraceStore {
    fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, TraceError> {
        let (mut out, (heads, blocks)) = self.snapshot(|h| {
            let mut out = Vec::new();
            h.trace(&id, &mut out)?;
            Ok(out)
        })?;
        for h in heads.iter().rev() {
            h.trace(&id, &mut out)?;
        }
        for b in blocks.iter().rev() {
            self.unless_deleted(b, b.trace(&id, &mut out))?;
        }
        if out.is_empty() {
            return Ok(None);
        }
        // A span written twice (a client retry, or a replay overlap) shows up once.
        let mut seen = HashSet::with_capacity(out.len());
        out.retain(|s| seen.insert(s.span_id));
        out.sort_by_key(|s| (s.start_unix_nano, s.span_id));
        Ok(Some(out))
    }

    fn search(&self, q: &TraceQuery) -> Result<Vec<Vec<Span>>, TraceError> {
        let m = Matcher::new(q);
        let (mut hits, (heads, mut blocks)) = self.snapshot(|h| {
            let mut hits = HashMap::new();
            h.search(&m, &mut hits)?;
            Ok(hits)
        })?;
        for h in &heads {
            h.search(&m, &mut hits)?;
        }
        // Newest blocks first, so once `limit` traces are found, blocks that are entirely
        // older than the limit-th newest hit can be skipped.
        blocks.sort_by_key(|b| std::cmp::Reverse(b.meta.max_start));
        for b in &blocks {
            if q.limit > 0 && hits.len() >= q.limit {
                let mut starts: Vec<UnixNanos> = hits.values().copied().collect();
                starts.sort_unstable_by(|a, b| b.cmp(a));
                if b.meta.max_start < starts[q.limit - 1] {
                    continue;
                }
            }
            self.unless_deleted(b, b.search(&m, &mut hits))?;
        }
        let mut ranked: Vec<(TraceId, UnixNanos)> = hits.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if q.limit > 0 {
            ranked.truncate(q.limit);
        }
        // Fetch the hits together, in the sources' order of `trace`: a block reads the
        // pages that hold several of them once instead of once per trace.
        let ids: Vec<TraceId> = ranked.iter().map(|r| r.0).collect();
        let (mut found, (heads, blocks)) = self.snapshot(|h| {
            let mut found: HashMap<TraceId, Vec<Span>> = HashMap::new();
            for id in &ids {
                h.trace(id, found.entry(*id).or_default())?;
            }
            Ok(found)
        })?;
        for h in heads.iter().rev() {
            for id in &ids {
                h.trace(id, found.entry(*id).or_default())?;
            }
        }
        for b in blocks.iter().rev() {
            self.unless_deleted(b, b.traces(&ids, &mut found))?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(mut t) = found.remove(&id).filter(|t| !t.is_empty()) else {
                continue;
            };
            // As in `trace`: a span written twice shows up once.
            let mut seen = HashSet::with_capacity(t.len());
            t.retain(|s| seen.insert(s.span_id));
            t.sort_by_key(|s| (s.start_unix_nano, s.span_id));
            out.push(t);
        }
        Ok(out)
    }

    fn services(&self) -> Result<Vec<String>, TraceError> {
        Ok(self.catalog.read().keys().cloned().collect())
    }

    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, TraceError> {
        Ok(self
            .catalog
            .read()
            .get(service)
            .map(|ops| {
                ops.iter()
                    .filter(|o| kind.is_none_or(|k| o.span_kind == k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<DependencyLink>, TraceError> {
        let mut deps = Deps::default();
        let ((), (heads, blocks)) = self.snapshot(|h| {
            Self::head_dependencies(h, start, end, &mut deps);
            Ok(())
        })?;
        for h in &heads {
            Self::head_dependencies(h, start, end, &mut deps);
        }
        for b in &blocks {
            self.unless_deleted(b, b.dependencies(start, end, &mut deps))?;
        }
        if !deps.pending.is_empty() {
            // Parents stored in another head or block than their child: find them by trace.
            let traces: HashSet<TraceId> = deps.pending.iter().map(|p| p.0).collect();
            let mut services = HashMap::new();
            let ((), (heads, blocks)) = self.snapshot(|h| {
                Self::head_services_of(h, &traces, &mut services);
                Ok(())
            })?;
            for h in &heads {
                Self::head_services_of(h, &traces, &mut services);
            }
            for b in &blocks {
                self.unless_deleted(b, b.services_of(&traces, &mut services))?;
            }
            for (t, p, child) in std::mem::take(&mut deps.pending) {
                if let Some(parent) = services.get(&(t, p)) {
                    if *parent != child {
                        *deps.edges.entry((parent.clone(), child)).or_insert(0) += 1;
                    }
                }
            }
        }
        let mut out: Vec<DependencyLink> = deps
            .edges
            .into_iter()
            .map(|((parent, child), call_count)| DependencyLink {
                parent,
                child,
                call_count,
            })
            .collect();
        out.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        Ok(out)
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use model::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
    use model::otlp::proto::common::v1 as pc;
    use model::otlp::proto::trace::v1 as pt;

    fn request(service: &str, trace: u8, spans: u8) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(model::otlp::proto::resource::v1::Resource {
                    attributes: vec![pc::KeyValue {
                        key: "service.name".into(),
                        value: Some(pc::AnyValue {
                            value: Some(pc::any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![pt::ScopeSpans {
                    spans: (1..=spans)
                        .map(|i| pt::Span {
                            trace_id: vec![trace; 16],
                            span_id: vec![i; 8],
                            name: format!("op{i}"),
                            kind: 2,
                            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
                            end_time_unix_nano: 1_700_000_000_000_000_100,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[tokio::test]
    async fn a_written_request_is_readable_listed_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TraceStoreConfig::new(dir.path());
        cfg.wal.fsync = wal::FsyncPolicy::Never;
        let req = request("cart", 3, 2);
        let want = model::otlp::spans_from_request(&req).unwrap();
        {
            let store = TraceStore::open(cfg.clone()).unwrap();
            let traces = ValidTraces::new(req.clone()).unwrap();
            store.write_request(traces, None).await.unwrap();
            let raw = req.encode_to_vec();
            let other = ValidTraces::new(request("pay", 4, 1)).unwrap();
            store.write_request(other, None).await.unwrap();
            assert_eq!(store.trace(TraceId([3; 16])).unwrap().unwrap(), want);
            assert_eq!(store.services().unwrap(), ["cart", "pay"]);
            assert_eq!(store.operations("cart", None).unwrap().len(), 2);
            // The bytes a receiver hands over are what the WAL keeps; a retry is shown once.
            let again = ValidTraces::from_protobuf(raw.clone().into()).unwrap();
            store.write_request(again, Some(raw.into())).await.unwrap();
            assert_eq!(store.stats().head_spans, 5);
            assert_eq!(store.trace(TraceId([3; 16])).unwrap().unwrap(), want);
        }
        let store = TraceStore::open(cfg).unwrap();
        assert_eq!(store.stats().head_spans, 5);
        assert_eq!(store.trace(TraceId([3; 16])).unwrap().unwrap(), want);
        assert_eq!(store.services().unwrap(), ["cart", "pay"]);
    }
}
