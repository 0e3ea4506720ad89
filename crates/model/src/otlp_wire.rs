//! A validating pass over the protobuf bytes of an `ExportTraceServiceRequest` that builds
//! nothing: it checks the request exactly as far as decoding it with prost and then running
//! [`crate::otlp`]'s validation would, and records where each span, name and status message
//! sits in the bytes.
//!
//! Why we own this: decoding a request into prost's owned messages (a `String` per attribute
//! key and value, a `Vec` per id) and freeing them again was over a third of the CPU of trace
//! ingest, yet the trace store only needs a handful of columns per span and copies the rest
//! as bytes. This pass reads the columns in place and leaves the bytes where they are.
//!
//! Invariant: when [`scan`] accepts a request, decoding it with prost succeeds, validation
//! succeeds with the same [`SpanHeader`]s, and every span's attributes are "clean" (their
//! conversion to the model and back changes nothing), so the span's received bytes are its
//! stored form. The pass is deliberately narrow to keep that easy to see: anything unusual
//! (a singular message sent twice, which prost merges; profiles-only string-table fields;
//! attribute values nested more than four deep; groups; any error at all) makes it give up
//! with [`Unsupported`], and the caller decodes with prost instead, which either accepts the
//! request or names the exact error.

use std::ops::Range;

use crate::otlp::{check_time, parse_parent, parse_span_id, parse_trace_id, SpanHeader};
use crate::{SpanKind, StatusCode};

/// The pass gave up; decode with prost for the answer (and the precise error, if any).
#[derive(Debug)]
pub(crate) struct Unsupported;

type Res<T> = Result<T, Unsupported>;

/// Where the parts of one span sit in the request bytes.
#[derive(Clone, Debug)]
pub(crate) struct SpanPos {
    /// The span message.
    pub span: Range<usize>,
    /// Its name (UTF-8 checked).
    pub name: Range<usize>,
    /// Its status message (UTF-8 checked), empty when absent.
    pub status_message: Range<usize>,
    /// Indices into [`Scan::runs`]: the byte runs of its non-column fields.
    pub runs: Range<usize>,
    /// How many of those runs precede the status field (where its message goes).
    pub status_at: usize,
}

/// One `ScopeSpans`: its scope message (if sent), schema URL and spans.
#[derive(Debug)]
pub(crate) struct ScopePos {
    pub scope: Option<Range<usize>>,
    pub schema_url: Range<usize>,
    /// Indices into [`Scan::spans`].
    pub spans: Range<usize>,
}

/// One `ResourceSpans`: its resource message (if sent), schema URL and scopes.
#[derive(Debug)]
pub(crate) struct ResourcePos {
    pub resource: Option<Range<usize>>,
    pub schema_url: Range<usize>,
    pub scopes: Vec<ScopePos>,
}

/// What [`scan`] found in an acceptable request.
#[derive(Debug)]
pub(crate) struct Scan {
    pub resources: Vec<ResourcePos>,
    pub headers: Vec<SpanHeader>,
    pub spans: Vec<SpanPos>,
    /// Byte runs of every span's non-column fields (trace state, attributes, events, links,
    /// dropped counts, flags) as received, adjacent fields merged into one run.
    pub runs: Vec<Range<usize>>,
}

/// One field's value, as its wire type carries it.
enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// The payload's range in the whole buffer.
    Len(Range<usize>),
}

/// Reads the fields of the message in `buf[pos..end]`.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], r: Range<usize>) -> Fields<'a> {
        Fields {
            buf,
            pos: r.start,
            end: r.end,
        }
    }

    /// A varint; one-byte varints (most keys and lengths) take no call.
    #[inline(always)]
    fn varint(&mut self) -> Res<u64> {
        if self.pos < self.end {
            if let Some(&b) = self.buf.get(self.pos) {
                if b < 0x80 {
                    self.pos += 1;
                    return Ok(u64::from(b));
                }
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Res<u64> {
        let mut b = self.buf.get(self.pos..self.end).ok_or(Unsupported)?;
        let v = prost::encoding::decode_varint(&mut b).map_err(|_| Unsupported)?;
        self.pos = self.end - b.len();
        Ok(v)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Res<Range<usize>> {
        let from = self.pos;
        let to = from.checked_add(n).filter(|&to| to <= self.end);
        let to = to.ok_or(Unsupported)?;
        self.pos = to;
        Ok(from..to)
    }

    /// The next field as `(tag, value)`, with prost's checks on keys; groups and invalid
    /// wire types give up.
    #[inline(always)]
    fn next(&mut self) -> Res<Option<(u32, Value)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(Unsupported);
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(Unsupported);
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let r = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(
                    self.buf[r].try_into().map_err(|_| Unsupported)?,
                ))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
                Value::Len(self.take(len)?)
            }
            5 => {
                let r = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(
                    self.buf[r].try_into().map_err(|_| Unsupported)?,
                ))
            }
            _ => return Err(Unsupported),
        };
        Ok(Some((tag, value)))
    }
}

fn len(v: Value) -> Res<Range<usize>> {
    match v {
        Value::Len(r) => Ok(r),
        _ => Err(Unsupported),
    }
}

fn varint(v: Value) -> Res<u64> {
    match v {
        Value::Varint(x) => Ok(x),
        _ => Err(Unsupported),
    }
}

fn fixed64(v: Value) -> Res<u64> {
    match v {
        Value::Fixed64(x) => Ok(x),
        _ => Err(Unsupported),
    }
}

fn fixed32(v: Value) -> Res<u32> {
    match v {
        Value::Fixed32(x) => Ok(x),
        _ => Err(Unsupported),
    }
}

/// A length-delimited field that prost decodes as a `String`.
#[inline]
fn string(buf: &[u8], v: Value) -> Res<Range<usize>> {
    let r = len(v)?;
    if utf8(&buf[r.clone()]) {
        Ok(r)
    } else {
        Err(Unsupported)
    }
}

/// Whether `b` is UTF-8. Attribute keys and values are short and nearly always ASCII,
/// which a word-at-a-time check settles faster than the general validator's set-up.
#[inline]
fn utf8(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    let mut high = 0u64;
    for w in &mut words {
        high |= u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    }
    for &x in words.remainder() {
        high |= u64::from(x);
    }
    high & 0x8080_8080_8080_8080 == 0 || std::str::from_utf8(b).is_ok()
}

/// Records a singular message field; a second occurrence (which prost merges) gives up.
fn once(slot: &mut Option<Range<usize>>, v: Value) -> Res<()> {
    if slot.is_some() {
        return Err(Unsupported);
    }
    *slot = Some(len(v)?);
    Ok(())
}

/// Encoded bytes per span that [`scan`] reserves room for: a little under what the load
/// generator's spans take (about 290 bytes, with a dozen attributes), so that such requests
/// never regrow the scan's vectors. Smaller spans still grow them as needed, and the body
/// limit bounds the reservation.
const RESERVE_SPAN_BYTES: usize = 256;

/// Checks an encoded `ExportTraceServiceRequest`; see the module docs for what acceptance
/// promises.
pub(crate) fn scan(buf: &[u8]) -> Result<Scan, Unsupported> {
    // Sized up front from the body: pushed into from empty, the vectors were regrown (and
    // copied) several times per request, about 2% of the server's CPU at full-speed ingest.
    let spans = buf.len() / RESERVE_SPAN_BYTES;
    let mut out = Scan {
        resources: Vec::new(),
        headers: Vec::with_capacity(spans),
        spans: Vec::with_capacity(spans),
        runs: Vec::with_capacity(spans),
    };
    let mut f = Fields::new(buf, 0..buf.len());
    while let Some((tag, v)) = f.next()? {
        if tag == 1 {
            let r = len(v)?;
            resource_spans(buf, r, &mut out)?;
        }
    }
    Ok(out)
}

fn resource_spans(buf: &[u8], r: Range<usize>, out: &mut Scan) -> Res<()> {
    let mut resource = None;
    let mut schema_url = 0..0;
    let mut scopes = Vec::new();
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => {
                once(&mut resource, v)?;
                if let Some(r) = &resource {
                    resource_msg(buf, r.clone())?;
                }
            }
            2 => scopes.push(scope_spans(buf, len(v)?, out)?),
            3 => schema_url = string(buf, v)?,
            _ => {}
        }
    }
    out.resources.push(ResourcePos {
        resource,
        schema_url,
        scopes,
    });
    Ok(())
}

/// `Resource`: attributes and their dropped count; entity references give up.
fn resource_msg(buf: &[u8], r: Range<usize>) -> Res<()> {
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => key_value(buf, len(v)?, 0)?,
            2 => {
                varint(v)?;
            }
            3 => return Err(Unsupported),
            _ => {}
        }
    }
    Ok(())
}

fn scope_spans(buf: &[u8], r: Range<usize>, out: &mut Scan) -> Res<ScopePos> {
    let mut scope = None;
    let mut schema_url = 0..0;
    let first = out.spans.len();
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => {
                once(&mut scope, v)?;
                if let Some(r) = &scope {
                    scope_msg(buf, r.clone())?;
                }
            }
            2 => span(buf, len(v)?, out)?,
            3 => schema_url = string(buf, v)?,
            _ => {}
        }
    }
    Ok(ScopePos {
        scope,
        schema_url,
        spans: first..out.spans.len(),
    })
}

/// `InstrumentationScope`: name, version, attributes, dropped count.
fn scope_msg(buf: &[u8], r: Range<usize>) -> Res<()> {
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 | 2 => {
                string(buf, v)?;
            }
            3 => key_value(buf, len(v)?, 0)?,
            4 => {
                varint(v)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn span(buf: &[u8], r: Range<usize>, out: &mut Scan) -> Res<()> {
    let mut trace_id = 0..0;
    let mut span_id = 0..0;
    let mut parent = 0..0;
    let mut name = 0..0;
    let mut kind = 0i32;
    let mut start = 0u64;
    let mut end = 0u64;
    let mut status = None;
    let first_run = out.runs.len();
    let mut status_at = 0;
    let mut f = Fields::new(buf, r.clone());
    loop {
        let field_start = f.pos;
        let Some((tag, v)) = f.next()? else { break };
        if matches!(tag, 3 | 9..=14 | 16) {
            let mine = out.runs.len() > first_run;
            match out.runs.last_mut() {
                Some(run) if mine && run.end == field_start => run.end = f.pos,
                _ => out.runs.push(field_start..f.pos),
            }
        } else if tag == 15 {
            status_at = out.runs.len() - first_run;
        }
        // Scalars: the last occurrence wins, as in prost.
        match tag {
            1 => trace_id = len(v)?,
            2 => span_id = len(v)?,
            3 => {
                string(buf, v)?;
            }
            4 => parent = len(v)?,
            5 => name = string(buf, v)?,
            // prost reads an int32 as the low 32 bits of the varint.
            6 => kind = varint(v)? as i32,
            7 => start = fixed64(v)?,
            8 => end = fixed64(v)?,
            9 => key_value(buf, len(v)?, 0)?,
            10 | 12 | 14 => {
                varint(v)?;
            }
            11 => event(buf, len(v)?)?,
            13 => link(buf, len(v)?)?,
            15 => once(&mut status, v)?,
            16 => {
                fixed32(v)?;
            }
            _ => {}
        }
    }
    let (status_code, status_message) = match status {
        None => (StatusCode::Unset, 0..0),
        Some(r) => status_msg(buf, r)?,
    };
    // The checks of `otlp::span_header`; a failure is reported by the prost path.
    let trace_id = parse_trace_id(&buf[trace_id]).map_err(|_| Unsupported)?;
    let span_id = parse_span_id(&buf[span_id]).map_err(|_| Unsupported)?;
    let parent_span_id = parse_parent(&buf[parent]).map_err(|_| Unsupported)?;
    let kind = SpanKind::from_i32(kind).ok_or(Unsupported)?;
    check_time(start).map_err(|_| Unsupported)?;
    check_time(end).map_err(|_| Unsupported)?;
    if end < start {
        return Err(Unsupported);
    }
    out.headers.push(SpanHeader {
        trace_id,
        span_id,
        parent_span_id,
        kind,
        start_unix_nano: start,
        end_unix_nano: end,
        status_code,
    });
    out.spans.push(SpanPos {
        span: r,
        name,
        status_message,
        runs: first_run..out.runs.len(),
        status_at,
    });
    Ok(())
}

/// `Status`: the code and the message's range.
fn status_msg(buf: &[u8], r: Range<usize>) -> Res<(StatusCode, Range<usize>)> {
    let mut code = 0i32;
    let mut message = 0..0;
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            2 => message = string(buf, v)?,
            3 => code = varint(v)? as i32,
            _ => {}
        }
    }
    Ok((StatusCode::from_i32(code).ok_or(Unsupported)?, message))
}

/// `Span.Event`: its time must pass the span time checks.
fn event(buf: &[u8], r: Range<usize>) -> Res<()> {
    let mut time = 0u64;
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => time = fixed64(v)?,
            2 => {
                string(buf, v)?;
            }
            3 => key_value(buf, len(v)?, 0)?,
            4 => {
                varint(v)?;
            }
            _ => {}
        }
    }
    check_time(time).map_err(|_| Unsupported)
}

/// `Span.Link`: its ids must be valid.
fn link(buf: &[u8], r: Range<usize>) -> Res<()> {
    let mut trace_id = 0..0;
    let mut span_id = 0..0;
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => trace_id = len(v)?,
            2 => span_id = len(v)?,
            3 => {
                string(buf, v)?;
            }
            4 => key_value(buf, len(v)?, 0)?,
            5 => {
                varint(v)?;
            }
            6 => {
                fixed32(v)?;
            }
            _ => {}
        }
    }
    parse_trace_id(&buf[trace_id]).map_err(|_| Unsupported)?;
    parse_span_id(&buf[span_id]).map_err(|_| Unsupported)?;
    Ok(())
}

/// Values nested deeper than this (arrays in arrays...) give up, as `traces`' cleanliness
/// check does.
const MAX_DEPTH: usize = 4;

/// `KeyValue`, which must be clean: a key, a value, no string-table index.
fn key_value(buf: &[u8], r: Range<usize>, depth: usize) -> Res<()> {
    if plain_key_value(&buf[r.clone()]) {
        return Ok(());
    }
    let mut value = None;
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        match tag {
            1 => {
                string(buf, v)?;
            }
            2 => once(&mut value, v)?,
            // `key_strindex`: profiles only; conversion drops it. Zero is the default.
            3 if !matches!(v, Value::Varint(0)) => return Err(Unsupported),
            _ => {}
        }
    }
    match value {
        Some(r) => any_value(buf, r, depth),
        // Conversion turns a missing value into an empty one: not clean.
        None => Err(Unsupported),
    }
}

/// Whether `b` is a `KeyValue` in the shape nearly every attribute has: field 1 (the key),
/// then field 2 (the value) holding a string, bool, int or double, lengths under 128 bytes,
/// nothing else. Those are accepted here without the general field loop; `false` only
/// means "not this shape", and the general path decides.
#[inline]
fn plain_key_value(b: &[u8]) -> bool {
    let [0x0A, klen, ..] = *b else { return false };
    let key_end = 2 + usize::from(klen);
    let Some(&[0x12, vlen]) = b.get(key_end..key_end + 2) else {
        return false;
    };
    let v = &b[key_end + 2..];
    if klen >= 0x80 || vlen >= 0x80 || v.len() != usize::from(vlen) || !utf8(&b[2..key_end]) {
        return false;
    }
    match *v {
        // string_value
        [0x0A, slen, ref text @ ..] => slen < 0x80 && text.len() == usize::from(slen) && utf8(text),
        // bool_value, int_value: one varint filling the rest
        [0x10 | 0x18, ref x @ ..] => whole_varint(x),
        // double_value
        [0x21, ref x @ ..] => x.len() == 8,
        _ => false,
    }
}

/// Whether `x` is exactly one varint as prost reads them (at most ten bytes, the tenth
/// at most 1).
#[inline]
fn whole_varint(x: &[u8]) -> bool {
    match x.split_last() {
        Some((&last, body)) => {
            last < 0x80
                && body.len() < 10
                && body.iter().all(|&b| b >= 0x80)
                && (body.len() < 9 || last <= 1)
        }
        None => false,
    }
}

/// `AnyValue` at nesting `depth`; more than one member of the oneof (which prost resolves
/// by replacing or merging) gives up.
fn any_value(buf: &[u8], r: Range<usize>, depth: usize) -> Res<()> {
    let mut seen = false;
    let mut f = Fields::new(buf, r);
    while let Some((tag, v)) = f.next()? {
        if (1..=8).contains(&tag) {
            if seen {
                return Err(Unsupported);
            }
            seen = true;
        }
        match tag {
            1 => {
                string(buf, v)?;
            }
            2 | 3 => {
                varint(v)?;
            }
            4 => {
                fixed64(v)?;
            }
            5 | 6 if depth >= MAX_DEPTH => return Err(Unsupported),
            5 => {
                let mut items = Fields::new(buf, len(v)?);
                while let Some((tag, v)) = items.next()? {
                    if tag == 1 {
                        any_value(buf, len(v)?, depth + 1)?;
                    }
                }
            }
            6 => {
                let mut items = Fields::new(buf, len(v)?);
                while let Some((tag, v)) = items.next()? {
                    if tag == 1 {
                        key_value(buf, len(v)?, depth + 1)?;
                    }
                }
            }
            7 => {
                len(v)?;
            }
            // `string_value_strindex`: profiles only.
            8 => return Err(Unsupported),
            _ => {}
        }
    }
    Ok(())
}
