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
    /// The next span of the same trace, or `NONE`.
    next: u32,
    pub rest: Box<[u8]>,
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
    spans: Vec<(Span, Box<[u8]>)>,
}

impl Prepared {
    pub fn new(spans: Vec<Span>) -> Prepared {
        Prepared {
            spans: spans
                .into_iter()
                .map(|s| {
                    let rest = codec::encode_rest(&s);
                    (s, rest)
                })
                .collect(),
        }
    }
}

/// Recent spans, indexed by trace id.
#[derive(Default)]
pub(crate) struct Head {
    pub spans: Vec<HeadSpan>,
    /// First and last span of each trace.
    traces: HashMap<TraceId, (u32, u32)>,
    pub strings: Vec<Arc<str>>,
    string_ids: HashMap<Arc<str>, u32>,
    pub resources: Vec<HeadResource>,
    resource_ids: HashMap<Bytes, u32>,
    pub scopes: Vec<HeadScope>,
    scope_ids: HashMap<Bytes, u32>,
    /// Distinct (service, name, kind) triples, for the operations catalog.
    pub operations: HashSet<(u32, u32, SpanKind)>,
    pub min_start: UnixNanos,
    pub max_start: UnixNanos,
    pub max_end: UnixNanos,
    /// When the first span arrived (for cutting by age).
    pub first_write: Option<SystemTime>,
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
        self.spans.capacity() * std::mem::size_of::<HeadSpan>()
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
        let bytes = codec::encode_resource(r);
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
        let bytes = codec::encode_scope(s);
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

    /// Adds a batch. Spans of one batch usually share their resource and scope `Arc`s, so
    /// those are interned once per distinct pointer.
    pub fn insert(&mut self, batch: Prepared, now: SystemTime) {
        if batch.spans.is_empty() {
            return;
        }
        if self.first_write.is_none() {
            self.first_write = Some(now);
            self.min_start = u64::MAX;
        }
        let mut res_cache: Vec<(*const Resource, u32)> = Vec::new();
        let mut scope_cache: Vec<(*const Scope, u32)> = Vec::new();
        self.spans.reserve(batch.spans.len());
        for (s, rest) in batch.spans {
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
            let name = self.intern(&s.name);
            let service = self.resources[resource as usize].service;
            self.operations.insert((service, name, s.kind));
            let idx = self.spans.len() as u32;
            match self.traces.get_mut(&s.trace_id) {
                Some((_, last)) => {
                    let prev = *last;
                    *last = idx;
                    self.spans[prev as usize].next = idx;
                }
                None => {
                    self.traces.insert(s.trace_id, (idx, idx));
                }
            }
            self.min_start = self.min_start.min(s.start_unix_nano);
            self.max_start = self.max_start.max(s.start_unix_nano);
            self.max_end = self.max_end.max(s.end_unix_nano);
            self.rest_bytes += rest.len();
            self.spans.push(HeadSpan {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent: s.parent_span_id,
                start: s.start_unix_nano,
                end: s.end_unix_nano,
                name,
                resource,
                scope,
                kind: s.kind,
                status: s.status_code,
                next: NONE,
                rest,
            });
        }
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

    /// Rebuilds the full span at `idx`.
    pub fn span(&self, idx: u32) -> Result<Span, TraceError> {
        let s = &self.spans[idx as usize];
        let rest = codec::decode_rest(&s.rest).map_err(TraceError::Corrupt)?;
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
                    let rest = codec::decode_rest(&s.rest).map_err(TraceError::Corrupt)?;
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

/// The column checks other than service and operation (which the head compares by id).
fn column_only(m: &Matcher<'_>, s: &HeadSpan) -> bool {
    let dur = s.end.saturating_sub(s.start);
    let service = m.q.service.as_deref().unwrap_or("");
    let name = m.q.operation.as_deref().unwrap_or("");
    m.columns(service, name, s.kind, s.start, dur)
}
