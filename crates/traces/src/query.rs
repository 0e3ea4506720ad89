//! Span predicates of a [`TraceQuery`], shared by the head scan and the block scan.
//!
//! A query is checked in two steps so scans stay cheap: first the column fields every span
//! has as plain values (service, name, kind, start, duration), then, only for spans that pass
//! and only when the query has tags, the decoded attributes. Tags that a resource satisfies are
//! computed once per distinct resource, since resources repeat across thousands of spans.
//!
//! Blocks match tags on the stored protobuf "rest" blob without decoding it
//! ([`Matcher::tags_raw`]): a walk over the wire format that compares attribute keys and
//! string, integer and boolean values in place, allocating nothing. Values whose tag string
//! needs formatting (doubles, bytes, arrays, maps) and the status message fall back to a full
//! decode, so both paths answer exactly the same.

use model::otlp::proto::common::v1 as pc;
use model::otlp::proto::trace::v1 as pt;
use model::otlp::value_from_proto;
use model::{KeyValue, Resource, Scope, SpanKind, StatusCode, UnixNanos};

use crate::TraceQuery;

/// A [`TraceQuery`] prepared for matching spans.
pub(crate) struct Matcher<'q> {
    pub q: &'q TraceQuery,
    pub start_min: UnixNanos,
    pub start_max: UnixNanos,
    dur_min: u64,
    dur_max: u64,
    /// Per tag, its value as an integer when an `int_value` attribute would print as it.
    tag_ints: Vec<Option<i64>>,
}

/// What the raw scan of a rest blob found for one tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    Found,
    Absent,
    /// A value with the key whose tag string the scan does not build: decode and check.
    Unsure,
}

impl<'q> Matcher<'q> {
    pub fn new(q: &'q TraceQuery) -> Matcher<'q> {
        Matcher {
            q,
            start_min: q.start_min.unwrap_or(0),
            start_max: q.start_max.unwrap_or(u64::MAX),
            dur_min: q
                .duration_min
                .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                .unwrap_or(0),
            dur_max: q
                .duration_max
                .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                .unwrap_or(u64::MAX),
            tag_ints: q
                .tags
                .iter()
                .map(|(_, v)| v.parse::<i64>().ok().filter(|i| i.to_string() == *v))
                .collect(),
        }
    }

    /// Whether a span starting at `start` is in the query's time range.
    pub fn start_ok(&self, start: UnixNanos) -> bool {
        start >= self.start_min && start <= self.start_max
    }

    /// Per tag, its [`tag_hash`], or `None` for a key a span can match without carrying it.
    pub fn tag_hashes(&self) -> Vec<Option<(u64, u64)>> {
        self.q
            .tags
            .iter()
            .map(|(k, v)| (!is_synthetic_key(k)).then(|| tag_hash(k.as_bytes(), v.as_bytes())))
            .collect()
    }

    /// Whether the query bounds span durations at all.
    pub fn has_duration(&self) -> bool {
        self.dur_min > 0 || self.dur_max < u64::MAX
    }

    /// Whether a span of this duration passes the query's duration bounds.
    pub fn duration_ok(&self, duration: u64) -> bool {
        duration >= self.dur_min && duration <= self.dur_max
    }

    /// Whether a span of this kind passes the query's kind.
    pub fn kind_ok(&self, kind: SpanKind) -> bool {
        self.q.span_kind.is_none_or(|k| k == kind)
    }

    /// Whether the query has tags, i.e. whether spans' rest blobs must be decoded.
    pub fn has_tags(&self) -> bool {
        !self.q.tags.is_empty()
    }

    /// Whether a source whose spans start in `[min, max]` can hold a match.
    pub fn overlaps(&self, min: UnixNanos, max: UnixNanos) -> bool {
        min <= self.start_max && max >= self.start_min
    }

    /// The checks on plain column values.
    pub fn columns(
        &self,
        service: &str,
        name: &str,
        kind: SpanKind,
        start: UnixNanos,
        duration: u64,
    ) -> bool {
        if start < self.start_min || start > self.start_max {
            return false;
        }
        if duration < self.dur_min || duration > self.dur_max {
            return false;
        }
        if let Some(k) = self.q.span_kind {
            if k != kind {
                return false;
            }
        }
        if let Some(s) = &self.q.service {
            if s != service {
                return false;
            }
        }
        if let Some(o) = &self.q.operation {
            if o != name {
                return false;
            }
        }
        true
    }

    /// For each tag, whether the resource or scope alone satisfies it.
    pub fn tags_from_resource(&self, resource: &Resource, scope: &Scope) -> Vec<bool> {
        self.q
            .tags
            .iter()
            .map(|(k, v)| {
                model_attrs_match(&resource.attributes, k, v)
                    || (k == "otel.scope.name" && scope.name == *v)
                    || (k == "otel.scope.version" && scope.version == *v)
            })
            .collect()
    }

    /// Whether every tag matches this span, given what its resource already satisfies.
    pub fn tags(
        &self,
        from_resource: &[bool],
        kind: SpanKind,
        status: StatusCode,
        rest: &pt::Span,
    ) -> bool {
        self.q.tags.iter().zip(from_resource).all(|((k, v), hit)| {
            *hit || synthetic_match(k, v, kind, status, rest)
                || proto_attrs_match(&rest.attributes, k, v)
                || rest
                    .events
                    .iter()
                    .any(|e| proto_attrs_match(&e.attributes, k, v))
        })
    }
}

impl Matcher<'_> {
    /// [`Matcher::tags`] on an undecoded rest blob (the protobuf `Span` of [`crate::codec`]).
    pub fn tags_raw(
        &self,
        from_resource: &[bool],
        kind: SpanKind,
        status: StatusCode,
        rest: &[u8],
    ) -> Result<bool, String> {
        for (((k, v), hit), int) in self.q.tags.iter().zip(from_resource).zip(&self.tag_ints) {
            if *hit || (k != "otel.status_description" && synthetic_match_plain(k, v, kind, status))
            {
                continue;
            }
            let found = if k == "otel.status_description" {
                Scan::Unsure
            } else {
                scan_span(rest, k.as_bytes(), v.as_bytes(), *int)?
            };
            match found {
                Scan::Found => {}
                Scan::Absent => return Ok(false),
                Scan::Unsure => {
                    let rest = crate::codec::decode_rest(rest)?;
                    return Ok(self.tags(from_resource, kind, status, &rest));
                }
            }
        }
        Ok(true)
    }
}

const BAD_BLOB: &str = "bad span attributes: malformed protobuf";

/// Whether a tag key is one Jaeger derives from span fields, which a span can match without
/// carrying it as an attribute.
pub(crate) fn is_synthetic_key(k: &str) -> bool {
    matches!(
        k,
        "span.kind" | "otel.status_code" | "otel.status_description" | "error"
    )
}

/// The two Bloom hashes of a `key=value` tag (FNV-1a over key, a separator, value; mixed).
pub(crate) fn tag_hash(k: &[u8], v: &[u8]) -> (u64, u64) {
    // Three plain loops rather than one over chained iterators, which did not optimize as
    // well; block building hashes every attribute of every span.
    let step = |h: u64, b: u8| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in k {
        h = step(h, *b);
    }
    h = step(h, 0xff);
    for b in v {
        h = step(h, *b);
    }
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15) | 1)
}

/// Calls `f` with the encoded `KeyValue` of every attribute of a rest blob and of its
/// events: what a block's tag filter holds, one [`kv_tag_hash`] each. Handing out the bytes
/// lets block building hash each distinct attribute of a window once: most repeat from span
/// to span.
pub(crate) fn rest_tag_kvs<'a>(
    rest: &'a [u8],
    f: &mut impl FnMut(&'a [u8]) -> Result<(), String>,
) -> Result<(), String> {
    fields(rest, |field, wt, _, p| {
        match (field, wt) {
            (9, 2) => f(p)?,
            (11, 2) => fields(p, |f2, w2, _, q| {
                if (f2, w2) == (3, 2) {
                    f(q)?;
                }
                Ok(true)
            })?,
            _ => {}
        }
        Ok(true)
    })
}

/// The status message of a rest blob (`Span.status.message`), read from its bytes: what
/// decoding the blob and taking `status.message` gives (the last occurrence wins, as protobuf
/// merges repeated message fields), without decoding a dozen attributes to find it.
/// Block building needs it for every span and it is almost always empty.
pub(crate) fn rest_status_message(rest: &[u8]) -> Result<&str, String> {
    let mut msg: &[u8] = &[];
    fields(rest, |field, wt, _, p| {
        if (field, wt) == (15, 2) {
            fields(p, |f2, w2, _, q| {
                if (f2, w2) == (2, 2) {
                    msg = q;
                }
                Ok(true)
            })?;
        }
        Ok(true)
    })?;
    std::str::from_utf8(msg).map_err(|_| BAD_BLOB.to_string())
}

/// The key and the encoded `AnyValue` (absent when the field is) of one encoded `KeyValue`.
fn kv_parts(kv: &[u8]) -> Result<(&[u8], Option<&[u8]>), String> {
    let (mut key, mut value): (&[u8], Option<&[u8]>) = (&[], None);
    fields(kv, |n, w, _, p| {
        match (n, w) {
            (1, 2) => key = p,
            (2, 2) => value = Some(p),
            _ => {}
        }
        Ok(true)
    })?;
    Ok((key, value))
}

/// The [`tag_hash`] of an encoded `KeyValue`, with the value as the tag string a query
/// compares (what [`proto_attrs_match`] accepts).
pub(crate) fn kv_tag_hash(kv: &[u8]) -> Result<(u64, u64), String> {
    let (key, value) = kv_parts(kv)?;
    let Some(value) = value else {
        return Ok(tag_hash(key, b""));
    };
    let mut last: Option<(u64, u8, u64, &[u8])> = None;
    fields(value, |n, w, num, p| {
        last = Some((n, w, num, p));
        Ok(true)
    })?;
    Ok(match last {
        None => tag_hash(key, b""),
        Some((1, 2, _, p)) => tag_hash(key, p),
        Some((2, 0, num, _)) => tag_hash(key, if num != 0 { b"true" } else { b"false" }),
        Some((3, 0, num, _)) => tag_hash(key, (num as i64).to_string().as_bytes()),
        Some(_) => {
            use prost::Message;
            let v = pc::AnyValue::decode(value).map_err(|_| BAD_BLOB.to_string())?;
            let s = match &v.value {
                None => String::new(),
                Some(_) => value_from_proto(&v).to_tag_string(),
            };
            tag_hash(key, s.as_bytes())
        }
    })
}

/// Reads a protobuf varint at `*pos`.
#[inline]
fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    // Keys, lengths and most small numbers fit in one byte; block building reads several per
    // attribute of every span.
    match b.get(*pos) {
        Some(&byte) if byte < 0x80 => {
            *pos += 1;
            Ok(byte as u64)
        }
        _ => varint_long(b, pos),
    }
}

fn varint_long(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut x = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or(BAD_BLOB)?;
        *pos += 1;
        x |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(x);
        }
    }
    Err(BAD_BLOB.into())
}

/// Walks the fields of a protobuf message: `(field number, wire type, varint value or
/// length-delimited payload)` for each, skipping fixed-width fields' payloads.
fn fields<'a>(
    b: &'a [u8],
    mut f: impl FnMut(u64, u8, u64, &'a [u8]) -> Result<bool, String>,
) -> Result<(), String> {
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        let (field, wt) = (key >> 3, (key & 7) as u8);
        let (num, payload): (u64, &[u8]) = match wt {
            0 => (varint(b, &mut pos)?, &[]),
            1 | 5 => {
                let w = if wt == 1 { 8 } else { 4 };
                let p = b.get(pos..pos + w).ok_or(BAD_BLOB)?;
                pos += w;
                (0, p)
            }
            2 => {
                let len = varint(b, &mut pos)? as usize;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= b.len())
                    .ok_or(BAD_BLOB)?;
                let p = &b[pos..end];
                pos = end;
                (len as u64, p)
            }
            _ => return Err(BAD_BLOB.into()),
        };
        if !f(field, wt, num, payload)? {
            break;
        }
    }
    Ok(())
}

/// Looks for attribute `k` = `v` among a span's attributes (field 9) and its events'
/// attributes (field 11, then field 3 of the event).
fn scan_span(rest: &[u8], k: &[u8], v: &[u8], int: Option<i64>) -> Result<Scan, String> {
    let mut out = Scan::Absent;
    let mut note = |s: Scan| {
        if s == Scan::Found || (s == Scan::Unsure && out == Scan::Absent) {
            out = s;
        }
        out != Scan::Found
    };
    fields(rest, |field, wt, _, p| match (field, wt) {
        (9, 2) => Ok(note(scan_kv(p, k, v, int)?)),
        (11, 2) => {
            let mut more = true;
            fields(p, |f, w, _, q| {
                if (f, w) == (3, 2) {
                    more = note(scan_kv(q, k, v, int)?);
                }
                Ok(more)
            })?;
            Ok(more)
        }
        _ => Ok(true),
    })?;
    Ok(out)
}

/// Matches one encoded `KeyValue` against `k` = `v` the way [`proto_attrs_match`] does.
fn scan_kv(kv: &[u8], k: &[u8], v: &[u8], int: Option<i64>) -> Result<Scan, String> {
    let (key, value) = kv_parts(kv)?;
    if key != k {
        return Ok(Scan::Absent);
    }
    let Some(value) = value else {
        return Ok(if v.is_empty() {
            Scan::Found
        } else {
            Scan::Absent
        });
    };
    // The last field of the `AnyValue` oneof wins, as in protobuf decoding.
    let mut got = if v.is_empty() {
        Scan::Found
    } else {
        Scan::Absent
    };
    fields(value, |f, w, num, p| {
        got = match (f, w) {
            (1, 2) => {
                if p == v {
                    Scan::Found
                } else {
                    Scan::Absent
                }
            }
            (2, 0) => {
                let b: &[u8] = if num != 0 { b"true" } else { b"false" };
                if b == v {
                    Scan::Found
                } else {
                    Scan::Absent
                }
            }
            (3, 0) => {
                if int == Some(num as i64) {
                    Scan::Found
                } else {
                    Scan::Absent
                }
            }
            _ => Scan::Unsure,
        };
        Ok(true)
    })?;
    Ok(got)
}

/// [`synthetic_match`] for the synthetic tags that need nothing of the rest blob.
fn synthetic_match_plain(k: &str, v: &str, kind: SpanKind, status: StatusCode) -> bool {
    match k {
        "span.kind" => kind != SpanKind::Unspecified && kind.jaeger_name() == v,
        "otel.status_code" => match status {
            StatusCode::Ok => v == "OK",
            StatusCode::Error => v == "ERROR",
            StatusCode::Unset => false,
        },
        "error" => status == StatusCode::Error && v == "true",
        _ => false,
    }
}

fn synthetic_match(k: &str, v: &str, kind: SpanKind, status: StatusCode, rest: &pt::Span) -> bool {
    match k {
        "span.kind" => kind != SpanKind::Unspecified && kind.jaeger_name() == v,
        "otel.status_code" => match status {
            StatusCode::Ok => v == "OK",
            StatusCode::Error => v == "ERROR",
            StatusCode::Unset => false,
        },
        "otel.status_description" => rest
            .status
            .as_ref()
            .is_some_and(|s| !s.message.is_empty() && s.message == v),
        "error" => status == StatusCode::Error && v == "true",
        _ => false,
    }
}

fn proto_attrs_match(attrs: &[pc::KeyValue], k: &str, v: &str) -> bool {
    attrs.iter().any(|kv| {
        kv.key == k
            && match kv.value.as_ref().and_then(|x| x.value.as_ref()) {
                Some(pc::any_value::Value::StringValue(s)) => s == v,
                None => v.is_empty(),
                Some(_) => kv
                    .value
                    .as_ref()
                    .map(|x| value_from_proto(x).to_tag_string() == v)
                    .unwrap_or(false),
            }
    })
}

fn model_attrs_match(attrs: &[KeyValue], k: &str, v: &str) -> bool {
    attrs.iter().any(|kv| {
        kv.key == k
            && match kv.value.as_str() {
                Some(s) => s == v,
                None => kv.value.to_tag_string() == v,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn kv(k: &str, v: Option<pc::any_value::Value>) -> pc::KeyValue {
        pc::KeyValue {
            key: k.into(),
            value: v.map(|v| pc::AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn rest() -> pt::Span {
        use pc::any_value::Value as V;
        pt::Span {
            attributes: vec![
                kv("s", Some(V::StringValue("x".into()))),
                kv("i", Some(V::IntValue(-42))),
                kv("b", Some(V::BoolValue(true))),
                kv("d", Some(V::DoubleValue(1.5))),
                kv("bytes", Some(V::BytesValue(vec![0xab, 0xcd]))),
                kv("none", None),
            ],
            events: vec![pt::span::Event {
                name: "e".into(),
                attributes: vec![kv("ev", Some(V::StringValue("y".into())))],
                ..Default::default()
            }],
            status: Some(pt::Status {
                message: "boom".into(),
                code: 0,
            }),
            ..Default::default()
        }
    }

    /// The raw scan answers exactly what decoding and matching answers.
    #[test]
    fn raw_tag_match_agrees_with_decoded_match() {
        let span = rest();
        let blob = span.encode_to_vec();
        let cases = [
            ("s", "x"),
            ("s", "y"),
            ("i", "-42"),
            ("i", "-042"),
            ("b", "true"),
            ("b", "false"),
            ("d", "1.5"),
            ("d", "1.50"),
            ("bytes", "abcd"),
            ("none", ""),
            ("none", "x"),
            ("ev", "y"),
            ("missing", ""),
            ("otel.status_description", "boom"),
            ("error", "true"),
            ("span.kind", "server"),
        ];
        let mut hashes = std::collections::HashSet::new();
        rest_tag_kvs(&blob, &mut |kv| {
            hashes.insert(kv_tag_hash(kv)?);
            Ok(())
        })
        .unwrap();
        for (k, v) in cases {
            // A block's tag filter holds every attribute a query can match.
            if !is_synthetic_key(k) {
                let q = TraceQuery {
                    tags: vec![(k.into(), v.into())],
                    ..Default::default()
                };
                let hit =
                    Matcher::new(&q).tags(&[false], SpanKind::Server, StatusCode::Unset, &span);
                assert_eq!(
                    hashes.contains(&tag_hash(k.as_bytes(), v.as_bytes())),
                    hit,
                    "{k}={v}"
                );
            }
            let q = TraceQuery {
                tags: vec![(k.into(), v.into())],
                ..Default::default()
            };
            let m = Matcher::new(&q);
            for status in [StatusCode::Unset, StatusCode::Error] {
                let want = m.tags(&[false], SpanKind::Server, status, &span);
                let got = m
                    .tags_raw(&[false], SpanKind::Server, status, &blob)
                    .unwrap();
                assert_eq!(got, want, "{k}={v} {status:?}");
            }
        }
    }

    /// The status message read from a blob's bytes is what decoding it gives: absent,
    /// present, repeated (the last wins), and in every truncation or flipped byte of the
    /// blob, either the decoded message or an error, never a panic.
    #[test]
    fn raw_status_message_agrees_with_decoding() {
        let decoded = |b: &[u8]| {
            pt::Span::decode(b)
                .ok()
                .map(|s| s.status.unwrap_or_default().message)
        };
        let with = rest();
        let mut without = rest();
        without.status = None;
        let mut twice = with.encode_to_vec();
        twice.extend(
            pt::Span {
                status: Some(pt::Status {
                    message: "second".into(),
                    code: 2,
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(rest_status_message(&with.encode_to_vec()), Ok("boom"));
        assert_eq!(rest_status_message(&without.encode_to_vec()), Ok(""));
        assert_eq!(rest_status_message(&twice), Ok("second"));
        assert_eq!(decoded(&twice).as_deref(), Some("second"));
        let blob = with.encode_to_vec();
        for cut in 0..blob.len() {
            let mut flipped = blob.clone();
            flipped[cut] ^= 0xff;
            for b in [&blob[..cut], &flipped[..]] {
                if let Ok(got) = rest_status_message(b) {
                    if let Some(want) = decoded(b) {
                        assert_eq!(got, want, "{b:?}");
                    }
                }
            }
        }
    }

    /// Tag hashes are in every block's tag filter, so they never change: FNV-1a over key,
    /// 0xff, value, then mixed (values computed independently of this code).
    #[test]
    fn tag_hashes_are_pinned() {
        assert_eq!(
            tag_hash(b"", b""),
            (0x4f2d_b50f_1240_40cd, 0xc247_6c29_b2a5_df41)
        );
        assert_eq!(
            tag_hash(b"http.method", b"GET"),
            (0x219e_76ab_2195_2e35, 0x2a87_7380_afca_3be7)
        );
        assert_eq!(
            tag_hash("ü".as_bytes(), b"\0"),
            (0x3b1b_0d2d_8201_ba15, 0x8d64_a6ff_c4cc_e5df)
        );
    }

    /// Varints of every length read back, and overlong or cut ones are errors.
    #[test]
    fn varints_of_every_length() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX.into(),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            prost::encoding::encode_varint(v, &mut b);
            let mut pos = 0;
            assert_eq!(varint(&b, &mut pos), Ok(v));
            assert_eq!(pos, b.len());
            let mut pos = 0;
            assert!(varint(&b[..b.len() - 1], &mut pos).is_err());
        }
        let mut pos = 0;
        assert!(varint(&[0xff; 11], &mut pos).is_err());
    }

    /// Broken blobs are errors or answers, never panics.
    #[test]
    fn raw_tag_match_survives_broken_blobs() {
        let blob = rest().encode_to_vec();
        let q = TraceQuery {
            tags: vec![("ev".into(), "y".into())],
            ..Default::default()
        };
        let m = Matcher::new(&q);
        for cut in 0..blob.len() {
            let _ = m.tags_raw(&[false], SpanKind::Server, StatusCode::Unset, &blob[..cut]);
            let mut flipped = blob.clone();
            flipped[cut] ^= 0xff;
            let _ = m.tags_raw(&[false], SpanKind::Server, StatusCode::Unset, &flipped);
        }
    }
}
