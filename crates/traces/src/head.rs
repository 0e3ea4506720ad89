//! The head: recent spans in memory, as compact rows.
//!
//! A head row keeps the query columns as plain values and everything else as the protobuf
//! "rest" blob of [`crate::codec`]; names, resources and scopes are interned per head, so a
//! span costs roughly its fixed row (~90 bytes) plus its attributes' protobuf size instead of a
//! tree of `String`s. Spans of one trace are chained through `next` from a per-trace entry,
//! which costs one map entry per trace instead of one `Vec` per trace.
//!
//! A head is mutable while it takes writes; when it is cut it becomes immutable (shared as
//! `Arc<Head>`) until its block is visible, so queries keep seeing it without locks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use model::otlp::{SpanBody, SpanHeader, ValidTraces};
use model::{Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId, UnixNanos};

use crate::codec::{self, SpanColumns};
use crate::query::Matcher;
use crate::TraceError;

const NONE: u32 = u32::MAX;

/// One span in the head.
pub(crate) struct HeadSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub start: UnixNanos,
    pub end: UnixNanos,
    pub name: u32,
    pub resource: u32,
    pub scope: u32,
    pub kind: SpanKind,
    pub status: StatusCode,
    /// Whether the span has a status message (in its rest blob), so that block building
    /// reads the blob for it only then: it is almost always empty.
    pub status_message: bool,
    /// The next span of the same trace, or `NONE`.
    next: u32,
    /// The trace's ordinal in this head (0 for the first trace to arrive, and so on), so
    /// that [`Head::block_order`] groups spans by trace in sequential passes.
    trace: u32,
    /// Where the span's rest blob is in the head's [`Head::rest`] buffers.
    rest: RestRef,
}

/// Where a rest blob is: a buffer of a [`Rests`] and a byte range in it.
#[derive(Clone, Copy)]
struct RestRef {
    chunk: u32,
    start: u32,
    len: u32,
}

/// Rest blobs back to back in a few large buffers, in the order they were written.
///
/// A blob per allocation cost a `malloc` and a `free` per span, allocator rounding, and, at
/// block building, a cache miss per span on memory scattered by allocation order. A batch's
/// blobs are encoded into its own buffer outside the head lock, and the head adopts the
/// buffer as it is, so spans of one request (often whole traces) stay adjacent.
#[derive(Default)]
struct Rests {
    chunks: Vec<Vec<u8>>,
    refs: Vec<RestRef>,
}

/// A buffer takes no more blobs once it holds this many bytes, so that offsets fit in `u32`
/// (a blob is bounded by the request size, far below this).
const REST_CHUNK_LIMIT: usize = 1 << 30;

impl Rests {
    /// Room for `bytes` of blobs in the first buffer: the blobs of a request are sized before
    /// they are copied, since growing the buffer blob by blob copied it over and over (and
    /// touched fresh pages each time), about half the cost of preparing a request.
    fn with_capacity(bytes: usize) -> Rests {
        Rests {
            chunks: vec![Vec::with_capacity(bytes.min(REST_CHUNK_LIMIT))],
            refs: Vec::new(),
        }
    }

    /// Appends one blob, written by `write` at the end of the current buffer.
    fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() >= REST_CHUNK_LIMIT)
        {
            self.chunks.push(Vec::new());
        }
        let chunk = self.chunks.len() - 1;
        let buf = &mut self.chunks[chunk];
        let start = buf.len();
        write(buf);
        self.refs.push(RestRef {
            chunk: chunk as u32,
            start: start as u32,
            len: (buf.len() - start) as u32,
        });
    }
}

/// The rows of a head's block, from [`Head::block_order`].
pub(crate) struct BlockOrder {
    /// Span indices, trace by trace.
    pub rows: Vec<u32>,
    /// Every trace, in `rows` order, with where its rows end in `rows`: block building
    /// groups rows by trace without reading each span's trace id again (a cache miss per
    /// span on a big head).
    pub traces: Vec<(TraceId, u32)>,
}

/// An interned resource: the value, its encoding (the block column value) and its service.
pub(crate) struct HeadResource {
    pub value: Arc<Resource>,
    pub bytes: Bytes,
    pub service: u32,
}

/// An interned scope.
pub(crate) struct HeadScope {
    pub value: Arc<Scope>,
    pub bytes: Bytes,
}

/// A batch encoded outside any lock, ready to insert.
pub(crate) struct Prepared {
    batch: Batch,
    /// One rest blob per span, in span order.
    rests: Rests,
}

enum Batch {
    /// Spans written through the model API.
    Spans(Vec<Span>),
    /// A validated OTLP request, read in place, and one converted resource and scope per
    /// group.
    Request {
        traces: ValidTraces,
        groups: Vec<Group>,
    },
}

/// The resource of one `ResourceSpans` and the scopes of its `ScopeSpans`, converted and
/// encoded once per request.
struct Group {
    resource: (Arc<Resource>, Bytes),
    scopes: Vec<(Arc<Scope>, Bytes)>,
}

impl Prepared {
    pub fn new(spans: Vec<Span>) -> Prepared {
        let mut rests = Rests::default();
        for s in &spans {
            rests.push_with(|buf| buf.extend_from_slice(&codec::encode_rest(s)));
        }
        Prepared {
            batch: Batch::Spans(spans),
            rests,
        }
    }

    /// Prepares a validated request without converting its spans to [`Span`]s: each rest
    /// blob is copied from the span's received protobuf bytes when the request has them,
    /// otherwise encoded straight from the decoded protobuf span.
    pub fn from_request(traces: ValidTraces) -> Prepared {
        // For a request prost decoded from bytes: the byte range of each span, when they
        // line up with the decoded spans.
        let decoded = !traces.is_empty() && matches!(traces.span(0).body, SpanBody::Decoded(_));
        let ranges = traces
            .encoded()
            .filter(|_| decoded)
            .and_then(|raw| Some((raw.clone(), codec::span_ranges(raw)?)))
            .filter(|(_, r)| r.len() == traces.len());
        // Exact for encoded spans; decoded ones (OTLP/JSON, prost's fallback) grow the buffer.
        let rest_bytes = (0..traces.len())
            .map(|i| traces.encoded_rest(i).map_or(0, |rest| rest.encoded_len()))
            .sum();
        let mut rests = Rests::with_capacity(rest_bytes);
        rests.refs.reserve(traces.len());
        let mut groups = Vec::with_capacity(traces.groups().len());
        for g in traces.groups() {
            let mut scopes = Vec::with_capacity(g.scopes.len());
            for sg in &g.scopes {
                scopes.push((sg.scope.clone(), codec::encode_scope(&sg.scope)));
                for i in sg.spans.clone() {
                    rests.push_with(|buf| {
                        if let Some(rest) = traces.encoded_rest(i) {
                            // The scan recorded where the rest fields are: copy them.
                            rest.write_to(buf);
                        } else if let SpanBody::Decoded(span) = traces.span(i).body {
                            let start = buf.len();
                            let copied = ranges.as_ref().is_some_and(|(raw, r)| {
                                codec::copy_rest_proto(&raw[r[i].clone()], span, buf)
                            });
                            if !copied {
                                buf.truncate(start);
                                codec::encode_rest_proto(span, buf);
                            }
                        }
                    });
                }
            }
            groups.push(Group {
                resource: (g.resource.clone(), codec::encode_resource(&g.resource)),
                scopes,
            });
        }
        Prepared {
            batch: Batch::Request { traces, groups },
            rests,
        }
    }

    pub fn len(&self) -> usize {
        match &self.batch {
            Batch::Spans(s) => s.len(),
            Batch::Request { traces, .. } => traces.len(),
        }
    }
}

/// An operation first seen by a head: `(service, span name, kind)`.
pub(crate) type NewOperation = (Arc<str>, Arc<str>, SpanKind);

/// The rows of a head, in fixed-size chunks.
///
/// A head grows to a million rows and more; one `Vec` would double, copying every row and
/// touching fresh memory for all of them at each step, while the write lock is held.
/// Chunks never move, and a chunk's memory is reused by the allocator once a cut head is
/// dropped. Indexing and iteration look like a slice's.
#[derive(Default)]
pub(crate) struct Rows {
    chunks: Vec<Vec<HeadSpan>>,
    len: usize,
}

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Rows {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<HeadSpan>>> {
        self.chunks.iter().flatten()
    }

    fn push(&mut self, row: HeadSpan) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(row),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(row);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    fn get_mut(&mut self, i: usize) -> &mut HeadSpan {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    /// Heap bytes of the rows themselves (not their rest blobs).
    fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<HeadSpan>()
    }
}

impl std::ops::Index<usize> for Rows {
    type Output = HeadSpan;

    fn index(&self, i: usize) -> &HeadSpan {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a HeadSpan;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<HeadSpan>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The hasher of the head's per-span maps: several lookups per span made SipHash a few
/// percent of ingest CPU; aHash is several times cheaper and still keyed randomly per
/// process, so clients choosing trace ids cannot aim for collisions.
type Hasher = ahash::RandomState;

/// Recent spans, indexed by trace id.
#[derive(Default)]
pub(crate) struct Head {
    pub spans: Rows,
    /// First and last span of each trace.
    traces: HashMap<TraceId, (u32, u32), Hasher>,
    pub strings: Vec<Arc<str>>,
    string_ids: HashMap<Arc<str>, u32, Hasher>,
    pub resources: Vec<HeadResource>,
    resource_ids: HashMap<Bytes, u32>,
    pub scopes: Vec<HeadScope>,
    scope_ids: HashMap<Bytes, u32>,
    /// Distinct (service, name, kind) triples, for the operations catalog.
    pub operations: HashSet<(u32, u32, SpanKind), Hasher>,
    pub min_start: UnixNanos,
    pub max_start: UnixNanos,
    pub max_end: UnixNanos,
    /// When the first span arrived (for cutting by age).
    pub first_write: Option<SystemTime>,
    /// The rest blobs of the rows, in the buffers their batches encoded them into (as
    /// `Bytes`, so a block hands slices of them to Parquet without copying).
    rests: Vec<Bytes>,
    rest_bytes: usize,
}

impl Head {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// A rough count of the heap bytes this head holds.
    pub fn approx_bytes(&self) -> usize {
        self.spans.heap_bytes()
            + self.rest_bytes
            + self.traces.capacity() * 40
            + self
                .resources
                .iter()
                .map(|r| r.bytes.len() * 3)
                .sum::<usize>()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.strings.push(a.clone());
        self.string_ids.insert(a, id);
        id
    }

    /// The id of an interned string, if the head has it.
    pub fn string_id(&self, s: &str) -> Option<u32> {
        self.string_ids.get(s).copied()
    }

    fn intern_resource(&mut self, r: &Arc<Resource>) -> u32 {
        self.intern_resource_bytes(r, codec::encode_resource(r))
    }

    fn intern_resource_bytes(&mut self, r: &Arc<Resource>, bytes: Bytes) -> u32 {
        if let Some(id) = self.resource_ids.get(&bytes) {
            return *id;
        }
        let service = self.intern(r.service_name());
        let id = self.resources.len() as u32;
        self.resources.push(HeadResource {
            value: r.clone(),
            bytes: bytes.clone(),
            service,
        });
        self.resource_ids.insert(bytes, id);
        id
    }

    fn intern_scope(&mut self, s: &Arc<Scope>) -> u32 {
        self.intern_scope_bytes(s, codec::encode_scope(s))
    }

    fn intern_scope_bytes(&mut self, s: &Arc<Scope>, bytes: Bytes) -> u32 {
        if let Some(id) = self.scope_ids.get(&bytes) {
            return *id;
        }
        let id = self.scopes.len() as u32;
        self.scopes.push(HeadScope {
            value: s.clone(),
            bytes: bytes.clone(),
        });
        self.scope_ids.insert(bytes, id);
        id
    }

    /// Adds a batch, and returns the operations this head had not seen before (for the
    /// store's catalog; usually none).
    ///
    /// The rows take the batch's rest blobs; the rest of the batch (the decoded request,
    /// thousands of small allocations) stays with the caller, to be freed after the write
    /// lock is released.
    pub fn insert(&mut self, batch: &mut Prepared, now: SystemTime) -> Vec<NewOperation> {
        let mut new_ops = Vec::new();
        if batch.len() == 0 {
            return new_ops;
        }
        if self.first_write.is_none() {
            self.first_write = Some(now);
            self.min_start = u64::MAX;
        }
        // Adopt the batch's blob buffers; its spans' references move by `chunk0`.
        let chunk0 = self.rests.len() as u32;
        for mut c in std::mem::take(&mut batch.rests.chunks) {
            if c.capacity() - c.len() > c.len() / 8 {
                c.shrink_to_fit();
            }
            self.rest_bytes += c.capacity();
            self.rests.push(Bytes::from(c));
        }
        let mut refs = std::mem::take(&mut batch.rests.refs)
            .into_iter()
            .map(|r| RestRef {
                chunk: r.chunk + chunk0,
                ..r
            });
        match &mut batch.batch {
            Batch::Spans(spans) => {
                // Spans of one batch usually share their resource and scope `Arc`s, so
                // those are interned once per distinct pointer.
                let mut res_cache: Vec<(*const Resource, u32)> = Vec::new();
                let mut scope_cache: Vec<(*const Scope, u32)> = Vec::new();
                let mut names = NameCache::default();
                for (s, rest) in spans.iter().zip(refs.by_ref()) {
                    let rp = Arc::as_ptr(&s.resource);
                    let resource = match res_cache.iter().find(|(p, _)| *p == rp) {
                        Some((_, id)) => *id,
                        None => {
                            let id = self.intern_resource(&s.resource);
                            res_cache.push((rp, id));
                            id
                        }
                    };
                    let sp = Arc::as_ptr(&s.scope);
                    let scope = match scope_cache.iter().find(|(p, _)| *p == sp) {
                        Some((_, id)) => *id,
                        None => {
                            let id = self.intern_scope(&s.scope);
                            scope_cache.push((sp, id));
                            id
                        }
                    };
                    let h = SpanHeader {
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        kind: s.kind,
                        start_unix_nano: s.start_unix_nano,
                        end_unix_nano: s.end_unix_nano,
                        status_code: s.status_code,
                    };
                    let has_msg = !s.status_message.is_empty();
                    self.push(
                        &h,
                        &s.name,
                        has_msg,
                        resource,
                        scope,
                        rest,
                        &mut names,
                        &mut new_ops,
                    );
                }
            }
            Batch::Request { traces, groups } => {
                let mut names = NameCache::default();
                for (rg, g) in traces.groups().iter().zip(groups.iter()) {
                    let resource = self.intern_resource_bytes(&g.resource.0, g.resource.1.clone());
                    for (sg, (sc, sb)) in rg.scopes.iter().zip(&g.scopes) {
                        let scope = self.intern_scope_bytes(sc, sb.clone());
                        for (i, rest) in sg.spans.clone().zip(refs.by_ref()) {
                            let span = traces.span(i);
                            self.push(
                                span.header,
                                span.name,
                                !span.body.status_message().is_empty(),
                                resource,
                                scope,
                                rest,
                                &mut names,
                                &mut new_ops,
                            );
                        }
                    }
                }
            }
        }
        new_ops
    }

    /// Appends one span row.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        h: &SpanHeader,
        name: &str,
        status_message: bool,
        resource: u32,
        scope: u32,
        rest: RestRef,
        names: &mut NameCache,
        new_ops: &mut Vec<NewOperation>,
    ) {
        let name = match names.get(name) {
            Some(id) => id,
            None => {
                let id = self.intern(name);
                names.put(&self.strings[id as usize], id);
                id
            }
        };
        let service = self.resources[resource as usize].service;
        if self.operations.insert((service, name, h.kind)) {
            new_ops.push((
                self.strings[service as usize].clone(),
                self.strings[name as usize].clone(),
                h.kind,
            ));
        }
        let idx = self.spans.len() as u32;
        let trace = match self.traces.get_mut(&h.trace_id) {
            Some((_, last)) => {
                let prev = *last;
                *last = idx;
                let prev = self.spans.get_mut(prev as usize);
                prev.next = idx;
                prev.trace
            }
            None => {
                let trace = self.traces.len() as u32;
                self.traces.insert(h.trace_id, (idx, idx));
                trace
            }
        };
        self.min_start = self.min_start.min(h.start_unix_nano);
        self.max_start = self.max_start.max(h.start_unix_nano);
        self.max_end = self.max_end.max(h.end_unix_nano);
        self.spans.push(HeadSpan {
            trace_id: h.trace_id,
            span_id: h.span_id,
            parent: h.parent_span_id,
            start: h.start_unix_nano,
            end: h.end_unix_nano,
            name,
            resource,
            scope,
            kind: h.kind,
            status: h.status_code,
            status_message,
            next: NONE,
            trace,
            rest,
        });
    }

    /// Reads a few bytes of each of the spans `rows`, so that their cache misses overlap.
    ///
    /// Block building reads rows in block order, which jumps around the head: a trace's
    /// spans arrive spread over requests and, within one, over its services' groups. Read one
    /// at a time, each row's cache miss stalled the loop in turn: the first read of a row was
    /// 6% of the server's CPU at full-speed ingest. The independent loads of this loop wait
    /// for memory together instead; block building took about a sixth less CPU. (A prefetch
    /// instruction would also let the wait overlap work, but stable Rust offers it only as
    /// an `unsafe` intrinsic.)
    pub(crate) fn warm(&self, rows: &[u32]) {
        let mut acc = 0u32;
        for i in rows {
            let s = &self.spans[*i as usize];
            // An 88-byte row covers two or three cache lines: fields at its start, middle
            // and end as laid out today.
            acc ^= u32::from(s.trace_id.0[0]) ^ s.rest.start ^ u32::from(s.status_message);
        }
        std::hint::black_box(acc);
    }

    /// The rest blob of a span of this head.
    pub fn rest(&self, s: &HeadSpan) -> &[u8] {
        let r = s.rest;
        &self.rests[r.chunk as usize][r.start as usize..(r.start + r.len) as usize]
    }

    /// The status message of a span of this head, empty when it has none.
    pub fn status_message(&self, s: &HeadSpan) -> Result<&str, String> {
        if !s.status_message {
            return Ok("");
        }
        crate::query::rest_status_message(self.rest(s))
    }

    /// The service name of a span.
    pub fn service_of(&self, s: &HeadSpan) -> &str {
        &self.strings[self.resources[s.resource as usize].service as usize]
    }

    /// Indices of the spans of a trace, in insertion order.
    pub fn trace_indices(&self, id: &TraceId) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some((first, _)) = self.traces.get(id) {
            let mut i = *first;
            while i != NONE {
                out.push(i);
                i = self.spans[i as usize].next;
            }
        }
        out
    }

    /// The row order of this head's block: spans grouped by trace, a trace's spans by
    /// `(start, span id)`, traces by their earliest `(start, trace id)`.
    ///
    /// Built in sequential passes over the rows, as a counting sort on each span's trace
    /// ordinal: what is sorted is one key per trace and then each trace's few spans, copied
    /// next to each other with their keys. Walking each trace's chain instead missed the
    /// cache on nearly every span (block building of 1M spans took a tenth longer), and
    /// sorting every span through an index missed it on every comparison.
    pub fn block_order(&self) -> BlockOrder {
        let traces = self.traces.len();
        // Per trace ordinal: its id, earliest start and span count.
        let mut ids = vec![TraceId([0; 16]); traces];
        let mut earliest = vec![UnixNanos::MAX; traces];
        let mut count = vec![0u32; traces];
        for s in &self.spans {
            let t = s.trace as usize;
            ids[t] = s.trace_id;
            earliest[t] = earliest[t].min(s.start);
            count[t] += 1;
        }
        // Sorted with their keys at hand, not through the ordinals: a sort of 100k traces
        // that looks keys up misses the cache on most comparisons.
        let mut by_start: Vec<(UnixNanos, TraceId, u32)> = (0..traces)
            .map(|t| (earliest[t], ids[t], t as u32))
            .collect();
        by_start.sort_unstable();
        // Where each trace's rows go, and where they end.
        let mut at = vec![0u32; traces];
        let mut order = BlockOrder {
            rows: Vec::with_capacity(self.len()),
            traces: Vec::with_capacity(traces),
        };
        let mut end = 0;
        for (_, id, t) in by_start {
            at[t as usize] = end;
            end += count[t as usize];
            order.traces.push((id, end));
        }
        let mut keyed = vec![(0, SpanId([0; 8]), 0u32); self.len()];
        for (i, s) in self.spans.iter().enumerate() {
            let slot = &mut at[s.trace as usize];
            keyed[*slot as usize] = (s.start, s.span_id, i as u32);
            *slot += 1;
        }
        let mut from = 0;
        for &(_, end) in &order.traces {
            let rows = &mut keyed[from..end as usize];
            if rows.len() > 1 {
                rows.sort_unstable_by_key(|&(start, span, _)| (start, span));
            }
            from = end as usize;
        }
        order.rows.extend(keyed.iter().map(|&(_, _, i)| i));
        order
    }

    /// Rebuilds the full span at `idx`.
    pub fn span(&self, idx: u32) -> Result<Span, TraceError> {
        let s = &self.spans[idx as usize];
        let rest = codec::decode_rest(self.rest(s)).map_err(TraceError::Corrupt)?;
        codec::assemble(
            SpanColumns {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent_span_id: s.parent,
                name: self.strings[s.name as usize].to_string(),
                kind: s.kind,
                start: s.start,
                end: s.end,
                status_code: s.status,
            },
            rest,
            self.resources[s.resource as usize].value.clone(),
            self.scopes[s.scope as usize].value.clone(),
        )
        .map_err(TraceError::Corrupt)
    }

    /// Every span of a trace.
    pub fn trace(&self, id: &TraceId, out: &mut Vec<Span>) -> Result<(), TraceError> {
        for i in self.trace_indices(id) {
            out.push(self.span(i)?);
        }
        Ok(())
    }

    /// Adds `(trace, start)` of every span that matches to `hits`.
    pub fn search(
        &self,
        m: &Matcher<'_>,
        hits: &mut HashMap<TraceId, UnixNanos>,
    ) -> Result<(), TraceError> {
        if self.is_empty() || !m.overlaps(self.min_start, self.max_start) {
            return Ok(());
        }
        // Resolve names to ids once, so the scan compares integers.
        let service = match &m.q.service {
            Some(s) => match self.string_id(s) {
                Some(id) => Some(id),
                None => return Ok(()),
            },
            None => None,
        };
        let operation = match &m.q.operation {
            Some(s) => match self.string_id(s) {
                Some(id) => Some(id),
                None => return Ok(()),
            },
            None => None,
        };
        let mut res_tags: HashMap<(u32, u32), Vec<bool>> = HashMap::new();
        for s in &self.spans {
            if let Some(id) = service {
                if self.resources[s.resource as usize].service != id {
                    continue;
                }
            }
            if let Some(id) = operation {
                if s.name != id {
                    continue;
                }
            }
            if !column_only(m, s) {
                continue;
            }
            if m.has_tags() {
                let from_res = res_tags.entry((s.resource, s.scope)).or_insert_with(|| {
                    m.tags_from_resource(
                        &self.resources[s.resource as usize].value,
                        &self.scopes[s.scope as usize].value,
                    )
                });
                // Decode the attributes only when the resource left a tag unmatched.
                if from_res.iter().any(|hit| !hit) {
                    let rest = codec::decode_rest(self.rest(s)).map_err(TraceError::Corrupt)?;
                    if !m.tags(from_res, s.kind, s.status, &rest) {
                        continue;
                    }
                }
            }
            let e = hits.entry(s.trace_id).or_insert(0);
            *e = (*e).max(s.start);
        }
        Ok(())
    }
}

/// The last few span names a batch interned, so a batch of spans with a handful of
/// distinct names hashes each name once instead of once per span.
#[derive(Default)]
struct NameCache {
    entries: Vec<(Arc<str>, u32)>,
}

impl NameCache {
    const CAP: usize = 16;

    fn get(&self, name: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, id)| *id)
    }

    fn put(&mut self, name: &Arc<str>, id: u32) {
        if self.entries.len() < Self::CAP {
            self.entries.push((name.clone(), id));
        }
    }
}

/// The column checks other than service and operation (which the head compares by id).
fn column_only(m: &Matcher<'_>, s: &HeadSpan) -> bool {
    let dur = s.end.saturating_sub(s.start);
    let service = m.q.service.as_deref().unwrap_or("");
    let name = m.q.operation.as_deref().unwrap_or("");
    m.columns(service, name, s.kind, s.start, dur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::otlp::proto::common::v1 as pc;
    use model::otlp::proto::trace::v1 as pt;
    use model::otlp::{request_from_spans, spans_from_request};
    use model::{AnyValue, Event, KeyValue, Link};

    const T0: u64 = 1_700_000_000_000_000_000;

    /// Spans with every field set, in two resources, with repeated names.
    fn rich_spans() -> Vec<Span> {
        let attrs = vec![
            KeyValue::string("str", "text ✓"),
            KeyValue::new("bool", AnyValue::Bool(false)),
            KeyValue::new("int", AnyValue::Int(-42)),
            KeyValue::new("double", AnyValue::Double(3.25)),
            KeyValue::new("bytes", AnyValue::Bytes(vec![0, 1, 255])),
            KeyValue::new(
                "array",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Str("two".into())]),
            ),
            KeyValue::new(
                "map",
                AnyValue::Map(vec![KeyValue::new("nested", AnyValue::Empty)]),
            ),
            KeyValue::new("empty", AnyValue::Empty),
        ];
        let mut out = Vec::new();
        for r in 0..2u8 {
            let resource = Arc::new(Resource {
                attributes: vec![KeyValue::string("service.name", format!("svc{r}"))],
                dropped_attributes_count: r.into(),
                schema_url: "https://example.com/r".into(),
            });
            let scope = Arc::new(Scope {
                name: "lib".into(),
                version: "1.0".into(),
                attributes: attrs.clone(),
                dropped_attributes_count: 1,
                schema_url: String::new(),
            });
            for i in 0..5u8 {
                out.push(Span {
                    trace_id: TraceId([i % 2 + 1; 16]),
                    span_id: SpanId([r * 10 + i + 1; 8]),
                    parent_span_id: (i > 0).then_some(SpanId([r * 10 + 1; 8])),
                    trace_state: if i == 1 { "k=v".into() } else { String::new() },
                    flags: u32::from(i) * 0x101,
                    name: format!("op{}", i % 3),
                    kind: SpanKind::from_i32(i32::from(i)).unwrap(),
                    start_unix_nano: T0 + u64::from(i),
                    end_unix_nano: T0 + 1000 * u64::from(i) + 5,
                    attributes: attrs.clone(),
                    dropped_attributes_count: i.into(),
                    events: vec![Event {
                        time_unix_nano: T0 + 7,
                        name: "ev".into(),
                        attributes: attrs.clone(),
                        dropped_attributes_count: 2,
                    }],
                    dropped_events_count: 3,
                    links: vec![Link {
                        trace_id: TraceId([9; 16]),
                        span_id: SpanId([9; 8]),
                        trace_state: "l=1".into(),
                        attributes: attrs.clone(),
                        dropped_attributes_count: 4,
                        flags: 1,
                    }],
                    dropped_links_count: u32::from(i),
                    status_code: StatusCode::from_i32(i32::from(i % 3)).unwrap(),
                    status_message: if i % 2 == 0 {
                        "msg".into()
                    } else {
                        String::new()
                    },
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
        out
    }

    fn all_spans(h: &Head) -> Vec<Span> {
        (0..h.len() as u32).map(|i| h.span(i).unwrap()).collect()
    }

    #[test]
    fn rows_span_chunks() {
        let spans = rich_spans();
        let mut h = Head::default();
        let rounds = CHUNK / spans.len() + 2;
        for _ in 0..rounds {
            h.insert(&mut Prepared::new(spans.clone()), SystemTime::now());
        }
        assert_eq!(h.len(), rounds * spans.len());
        assert!(h.len() > CHUNK);
        assert_eq!(h.spans.iter().count(), h.len());
        // Trace 1 holds 6 of every 10 spans, chained across the chunk boundary.
        let chain = h.trace_indices(&TraceId([1; 16]));
        assert_eq!(chain.len(), rounds * 6);
        assert!(chain.windows(2).all(|w| w[0] < w[1]));
        let last = h.len() as u32 - 1;
        assert_eq!(h.span(last).unwrap(), spans[spans.len() - 1]);
    }

    /// The block order is the order a sort of every span by (trace, start,
    /// span id), then of the traces by their first (start, trace id), gives.
    #[test]
    fn block_order_is_the_sorted_order() {
        let mut spans = Vec::new();
        let base = rich_spans();
        // Interleaved traces, starts out of order, shared starts broken by span id, and a
        // trace whose first span arrives last.
        for n in 0..300u32 {
            let mut s = base[n as usize % base.len()].clone();
            s.trace_id = TraceId([(n % 37) as u8; 16]);
            s.span_id = SpanId((n.wrapping_mul(2_654_435_761) as u64).to_le_bytes());
            s.start_unix_nano = T0 + u64::from((n * 7919) % 101);
            spans.push(s);
        }
        let mut h = Head::default();
        for chunk in spans.chunks(50) {
            h.insert(&mut Prepared::new(chunk.to_vec()), SystemTime::now());
        }
        let mut by_trace: Vec<u32> = (0..h.len() as u32).collect();
        let key = |i: &u32| {
            let s = &h.spans[*i as usize];
            (s.trace_id, s.start, s.span_id)
        };
        by_trace.sort_by_key(key);
        let mut runs: Vec<&[u32]> = by_trace
            .chunk_by(|a, b| h.spans[*a as usize].trace_id == h.spans[*b as usize].trace_id)
            .collect();
        runs.sort_by_key(|r| {
            (
                h.spans[r[0] as usize].start,
                h.spans[r[0] as usize].trace_id,
            )
        });
        let want: Vec<u32> = runs.concat();
        let order = h.block_order();
        assert_eq!(order.rows, want);
        let mut at = 0;
        for (id, end) in &order.traces {
            assert!(at < *end as usize);
            for i in &order.rows[at..*end as usize] {
                assert_eq!(h.spans[*i as usize].trace_id, *id);
            }
            at = *end as usize;
        }
        assert_eq!(at, want.len());
        assert_eq!(order.traces.len(), runs.len());
        let empty = Head::default().block_order();
        assert!(empty.rows.is_empty() && empty.traces.is_empty());
    }

    #[test]
    fn proto_rest_is_byte_identical_to_model_rest() {
        let spans = rich_spans();
        let req = request_from_spans(&spans);
        let mut buf = Vec::new();
        let protos = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans);
        let raw = prost::Message::encode_to_vec(&req);
        let ranges = codec::span_ranges(&raw).unwrap();
        assert_eq!(ranges.len(), spans.len());
        for ((s, p), r) in spans.iter().zip(protos).zip(ranges) {
            buf.clear();
            codec::encode_rest_proto(p, &mut buf);
            assert_eq!(buf, &*codec::encode_rest(s));
            buf.clear();
            assert!(codec::copy_rest_proto(&raw[r], p, &mut buf));
            assert_eq!(buf, &*codec::encode_rest(s));
        }
        // Requests read in place give the same bytes from the runs the scan recorded.
        let v = ValidTraces::from_protobuf(raw.into()).unwrap();
        for (i, s) in spans.iter().enumerate() {
            let SpanBody::Encoded { rest, .. } = v.span(i).body else {
                panic!("span {i} was not read in place");
            };
            buf.clear();
            rest.write_to(&mut buf);
            assert_eq!(buf, &*codec::encode_rest(s), "span {i}");
        }
    }

    #[test]
    fn copied_rest_of_a_reordered_span_decodes_the_same() {
        use prost::Message;
        let spans = rich_spans();
        let p = model::otlp::span_to_proto(&spans[2]);
        // The same span with its fields written highest tag first, status twice, as a client
        // may legally send them.
        let mut raw = Vec::new();
        let mut fields = Vec::new();
        let whole = p.encode_to_vec();
        let mut b = &whole[..];
        while !b.is_empty() {
            let start = b;
            let (tag, wt) = prost::encoding::decode_key(&mut b).unwrap();
            prost::encoding::skip_field(wt, tag, &mut b, Default::default()).unwrap();
            fields.push((tag, start[..start.len() - b.len()].to_vec()));
        }
        let status = fields.iter().find(|f| f.0 == 15).unwrap().1.clone();
        // Stable, so repeated fields keep their order.
        fields.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (_, f) in &fields {
            raw.extend_from_slice(f);
        }
        raw.extend_from_slice(&status);
        assert_eq!(pt::Span::decode(&raw[..]).unwrap(), p);
        let mut buf = Vec::new();
        assert!(codec::copy_rest_proto(&raw, &p, &mut buf));
        assert_eq!(
            codec::decode_rest(&buf).unwrap(),
            codec::decode_rest(&codec::encode_rest(&spans[2])).unwrap()
        );
        // Broken bytes are refused rather than copied.
        buf.clear();
        assert!(!codec::copy_rest_proto(&raw[..raw.len() - 1], &p, &mut buf));
    }

    #[test]
    fn unusual_attributes_encode_as_their_conversion_would() {
        use pc::any_value::Value as V;
        let odd = vec![
            // No value at all: the model has an empty value.
            pc::KeyValue {
                key: "none".into(),
                value: None,
                ..Default::default()
            },
            // Profiles-only string-table references.
            pc::KeyValue {
                key: "ref".into(),
                value: Some(pc::AnyValue {
                    value: Some(V::StringValueStrindex(3)),
                }),
                key_strindex: 2,
            },
            pc::KeyValue {
                key: "deep".into(),
                value: Some(pc::AnyValue {
                    value: Some(V::KvlistValue(pc::KeyValueList {
                        values: vec![pc::KeyValue {
                            key: "inner".into(),
                            value: None,
                            ..Default::default()
                        }],
                    })),
                }),
                ..Default::default()
            },
        ];
        let mut req = request_from_spans(&rich_spans()[..1]);
        let p = &mut req.resource_spans[0].scope_spans[0].spans[0];
        p.attributes = odd.clone();
        p.events[0].attributes = odd.clone();
        p.links[0].attributes = odd;
        let model = spans_from_request(&req).unwrap();
        let mut buf = Vec::new();
        codec::encode_rest_proto(&req.resource_spans[0].scope_spans[0].spans[0], &mut buf);
        assert_eq!(buf, &*codec::encode_rest(&model[0]));
    }

    #[test]
    fn request_and_model_batches_build_the_same_head() {
        let spans = rich_spans();
        let req = request_from_spans(&spans);
        let now = SystemTime::now();
        let mut a = Head::default();
        let ops_a = a.insert(&mut Prepared::new(spans.clone()), now);
        let mut b = Head::default();
        let raw = prost::Message::encode_to_vec(&req);
        let ops_b = b.insert(
            &mut Prepared::from_request(ValidTraces::from_protobuf(raw.into()).unwrap()),
            now,
        );
        assert_eq!(all_spans(&a), spans);
        assert_eq!(all_spans(&b), spans);
        assert_eq!(ops_a, ops_b);
        // Two services, three names, kinds 0..5 as written.
        assert_eq!(ops_b.len(), 10);
        assert_eq!(a.trace_indices(&TraceId([1; 16])).len(), 6);
        assert_eq!(b.trace_indices(&TraceId([1; 16])).len(), 6);
        assert_eq!((b.resources.len(), b.scopes.len()), (2, 1));
        // A second identical batch adds rows but no operation, resource or scope.
        let again = request_from_spans(&spans);
        let ops = b.insert(
            &mut Prepared::from_request(ValidTraces::new(again).unwrap()),
            now,
        );
        assert!(ops.is_empty());
        assert_eq!((b.len(), b.resources.len(), b.scopes.len()), (20, 2, 1));
        assert_eq!(b.trace_indices(&TraceId([1; 16])).len(), 12);
    }
}
