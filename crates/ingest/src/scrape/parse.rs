//! Exposition format parsers: Prometheus text format 0.0.4 and OpenMetrics 1.0 (the
//! protobuf format is [`super::proto`]'s).
//!
//! Owned because it is the scrape hot path: the parser walks the body once, without
//! allocating per sample. Each sample comes out as its series text (`name{labels}`, the
//! scrape loop's cache key, so a series seen before is never re-labelled), its value and its
//! optional timestamp; the labels are unescaped into owned strings only when the loop asks
//! ([`Parser::labels`]), which it does on a cache miss.
//!
//! Syntax follows Prometheus's own parsers (`model/textparse`), including their leniencies
//! (text format: blank lines, whitespace between tokens, trailing commas in label sets) and
//! their strictness (the last line must end with a newline; OpenMetrics: single spaces, no
//! blank lines, `# EOF` last). Errors say what was expected and what was found, in
//! Prometheus's words, with the line number in front; the scrape loop stores nothing of a
//! scrape whose body has one.
//!
//! A body can be parsed as it arrives ([`Windows`]): the parser is handed what has come so
//! far and stops before the first entry whose parse reached the end of those bytes (and
//! so might read differently once more arrive), to resume there with more. Every entry,
//! error and line number comes out as parsing the whole body at once gives them; a test
//! holds the two to each other on bodies cut at every byte.
//!
//! OpenMetrics specifics: timestamps are seconds (converted to milliseconds), exemplars are
//! checked for shape and skipped, `# UNIT` must be a suffix of the family name, and
//! `_created` series are kept as ordinary series, as Prometheus does unless its
//! created-timestamp feature flag is on.

use std::cell::Cell;
use std::fmt;

use crate::metrics::MetricType;

/// Which parser a body needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (and anything unrecognised, as Prometheus 2.x does).
    Text,
    /// `application/openmetrics-text`.
    OpenMetrics,
    /// `application/vnd.google.protobuf` (delimited `io.prometheus.client.MetricFamily`
    /// messages): read by [`super::proto::ProtoParser`], not by [`Parser`].
    Protobuf,
}

impl Format {
    /// The format a response's `Content-Type` names.
    pub fn from_content_type(ct: &str) -> Format {
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
            Format::Protobuf
        } else {
            Format::Text
        }
    }
}

/// A syntax error: the line (1-based) and Prometheus's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// One entry of an exposition.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text` (text unescaped).
    Help { name: &'a str, help: String },
    /// `# TYPE name type`.
    Type { name: &'a str, kind: MetricType },
    /// `# UNIT name unit` (OpenMetrics).
    Unit { name: &'a str, unit: &'a str },
    /// A sample: its series text, value and timestamp in milliseconds if it has one.
    Sample {
        series: &'a [u8],
        value: f64,
        timestamp: Option<i64>,
    },
}

/// Prometheus's canonical NaN (`value.NormalNaN`): distinct from the staleness marker.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Longest error message kept (the rest of a quoted line is cut).
const MAX_ERROR_BYTES: usize = 512;

/// What [`Parser::next`] found.
enum Step<'a> {
    Entry(Entry<'a>),
    /// A blank line or a comment.
    Skipped,
    End,
}

/// Where a parse stands between two windows of a body: the line number and the type of
/// the latest `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    line: usize,
    mtype: MetricType,
}

impl Resume {
    /// The start of a body.
    pub const START: Resume = Resume {
        line: 1,
        mtype: MetricType::Unknown,
    };
}

/// Byte ranges of the current sample's name and label pairs in the body.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

/// Walks an exposition body entry by entry.
pub struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
    format: Format,
    done: bool,
    /// More of the body may follow `b`: an entry whose parse reached the end of `b` is not
    /// given out (nor its error); `next` stops before it.
    more: bool,
    /// The current entry's parse looked at (or for) a byte past the end of `b`.
    short: Cell<bool>,
    name: Span,
    /// Name and value spans of the current sample's labels, in order.
    labels: Vec<(Span, Span)>,
    /// The type of the latest `# TYPE` line, for `le`/`quantile` normalisation.
    mtype: MetricType,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}
fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Parses a float as Prometheus does: Go's `strconv.ParseFloat` syntax without hex floats or
/// underscores; NaN normalised.
pub fn parse_float(s: &str) -> Result<f64, String> {
    if s.contains(['p', 'P', '_']) {
        return Err("unsupported character in float".into());
    }
    let v: f64 = match s.parse() {
        Ok(v) => v,
        Err(_) => {
            // Go spells infinity "Inf" with an optional sign; Rust accepts "inf" too, so only
            // what Rust refuses reaches here.
            return Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"));
        }
    };
    if v.is_nan() {
        return Ok(f64::from_bits(NORMAL_NAN_BITS));
    }
    Ok(v)
}

/// Formats a float as Prometheus's `FormatOpenMetricsFloat`: Go's shortest `%g` (exponent
/// form below 1e-4 and from 1e6 on, at least two exponent digits), with `.0` appended when
/// the result has neither `.` nor `e`.
pub fn format_om_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let s = if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    };
    if s.contains(['.', 'e']) {
        s
    } else {
        s + ".0"
    }
}

fn unescape(raw: &str, help: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if !help => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl<'a> Parser<'a> {
    /// A parser over the whole of `body` in `format` (a text format: [`Format::Protobuf`]
    /// is read as [`Format::Text`], which fails on the first byte that is not text).
    pub fn new(body: &'a [u8], format: Format) -> Parser<'a> {
        Parser::window(body, format, false, Resume::START)
    }

    /// A parser over `window`, the bytes of a body from where `from` was taken on; `more`
    /// says whether the body goes on past it. With `more`, `next` returns `None` before
    /// the first entry that reaches the window's end; [`Parser::consumed`] and
    /// [`Parser::resume`] say where the next window starts. [`Format::Protobuf`] is read as
    /// [`Format::Text`], as by [`Parser::new`].
    pub fn window(window: &'a [u8], format: Format, more: bool, from: Resume) -> Parser<'a> {
        let format = match format {
            Format::Protobuf => Format::Text,
            f => f,
        };
        Parser {
            b: window,
            pos: 0,
            line: from.line,
            format,
            done: false,
            more,
            short: Cell::new(false),
            name: Span::default(),
            labels: Vec::new(),
            mtype: from.mtype,
        }
    }

    /// Bytes of the window fully parsed: the next window starts with the byte after them.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// What the next window's parser needs to know of this one.
    pub fn resume(&self) -> Resume {
        Resume {
            line: self.line,
            mtype: self.mtype,
        }
    }

    fn err(&self, mut message: String) -> ParseError {
        // A hostile body can make a line as long as the body; the error quotes it, bounded.
        if message.len() > MAX_ERROR_BYTES {
            let mut end = MAX_ERROR_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        ParseError {
            line: self.line,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        let c = self.b.get(self.pos).copied();
        if c.is_none() {
            self.short.set(true);
        }
        c
    }

    /// `b[i]`, noting a look past the end.
    fn at(&self, i: usize) -> Option<u8> {
        let c = self.b.get(i).copied();
        if c.is_none() {
            self.short.set(true);
        }
        c
    }

    /// Prometheus's `parseError`: what was expected, what came, and the line so far.
    fn expected(&self, what: &str, line_start: usize) -> ParseError {
        if self.pos >= self.b.len() {
            self.short.set(true);
        }
        let end = (self.pos + 1).min(self.b.len());
        let got = String::from_utf8_lossy(&self.b[self.pos.min(end)..end]);
        let ctx_start = line_start.min(end);
        let mut ctx = &self.b[ctx_start..end];
        if ctx.len() > 200 {
            ctx = &ctx[ctx.len() - 200..];
        }
        let got = if got.is_empty() {
            "end of data".to_string()
        } else {
            format!("{got:?}")
        };
        self.err(format!(
            "{what}, got {got} while parsing: {:?}",
            String::from_utf8_lossy(ctx)
        ))
    }

    fn skip_ws(&mut self) {
        if self.format == Format::Text {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
        }
    }

    /// Consumes the single space OpenMetrics requires, or any run of blanks in text format.
    fn sep(&mut self, what: &str, line_start: usize) -> Result<(), ParseError> {
        match self.format {
            Format::Text | Format::Protobuf => {
                if !matches!(self.peek(), Some(b' ' | b'\t')) {
                    return Err(self.expected(what, line_start));
                }
                self.skip_ws();
            }
            Format::OpenMetrics => {
                if self.peek() != Some(b' ') {
                    return Err(self.expected(what, line_start));
                }
                self.pos += 1;
            }
        }
        Ok(())
    }

    fn read_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Only ASCII predicates are used, so the slice is valid UTF-8.
        std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("")
    }

    /// A token up to the next blank or line end.
    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    /// Reads a quoted string starting at `"`; returns the span inside the quotes.
    fn quoted(&mut self, line_start: usize) -> Result<Span, ParseError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.expected("unterminated quoted string", line_start)),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                    if self.pos > self.b.len() {
                        self.pos = self.b.len();
                    }
                }
                Some(b'\n') if self.format == Format::OpenMetrics => {
                    return Err(self.expected("newline inside a quoted string", line_start));
                }
                Some(_) => self.pos += 1,
            }
        }
        let span = Span {
            start,
            end: self.pos,
            escaped,
        };
        self.pos += 1;
        if std::str::from_utf8(&self.b[span.start..span.end]).is_err() {
            return Err(self.err(format!(
                "invalid UTF-8 label value: {:?}",
                String::from_utf8_lossy(&self.b[span.start..span.end])
            )));
        }
        Ok(span)
    }

    /// The next entry; `None` at the end of a well-formed body, or (for a window with
    /// more to come) before an entry that may continue past the window.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let (pos, line, mtype) = (self.pos, self.line, self.mtype);
            self.short.set(false);
            let step = self.step();
            if self.more && self.short.get() {
                // What was read may read differently with the rest of the body: take this
                // entry again from its start in the next window.
                (self.pos, self.line, self.mtype) = (pos, line, mtype);
                self.done = true;
                return Ok(None);
            }
            match step {
                Ok(Step::Entry(e)) => return Ok(Some(e)),
                Ok(Step::Skipped) => continue,
                Ok(Step::End) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// One entry, blank line or comment.
    fn step(&mut self) -> Result<Step<'a>, ParseError> {
        let line_start = self.pos;
        if self.format == Format::Text {
            self.skip_ws();
        }
        match self.peek() {
            None => {
                if self.format == Format::OpenMetrics {
                    return Err(self.err("data does not end with # EOF".into()));
                }
                self.done = true;
                Ok(Step::End)
            }
            Some(b'\n') if self.format == Format::Text => {
                self.pos += 1;
                self.line += 1;
                Ok(Step::Skipped)
            }
            Some(b'#') => Ok(match self.comment(line_start)? {
                Some(e) => Step::Entry(e),
                None if self.done => Step::End,
                None => Step::Skipped,
            }),
            Some(c) if is_name_start(c) || c == b'{' => {
                if self.pos != line_start {
                    // Prometheus's text parser takes the blanks as part of the name.
                    let mut end = self.pos;
                    while self.at(end).is_some_and(is_name_char) {
                        end += 1;
                    }
                    return Err(self.err(format!(
                        "invalid metric name {:?}: a sample line must not start with blanks",
                        String::from_utf8_lossy(&self.b[line_start..end])
                    )));
                }
                self.sample(line_start).map(Step::Entry)
            }
            Some(_) => Err(self.expected("expected a valid start token", line_start)),
        }
    }

    fn comment(&mut self, line_start: usize) -> Result<Option<Entry<'a>>, ParseError> {
        self.pos += 1; // '#'
        let rest = &self.b[self.pos..];
        // Every look-ahead below stays inside the line once its end is in the window.
        if !rest.contains(&b'\n') {
            self.short.set(true);
        }
        let kw = |k: &[u8]| rest.len() > k.len() + 1 && rest[0] == b' ' && rest[1..].starts_with(k);
        if self.format == Format::OpenMetrics {
            if rest.starts_with(b" EOF") && matches!(rest.get(4), None | Some(b'\n')) {
                let after = if rest.get(4).is_some() { 5 } else { 4 };
                if self.pos + after >= self.b.len() {
                    // Whether data follows is for the rest of the body to say.
                    self.short.set(true);
                }
                if self.pos + after < self.b.len() {
                    self.pos += after;
                    self.line += 1;
                    return Err(self.err("unexpected data after # EOF".into()));
                }
                self.pos = self.b.len();
                self.done = true;
                return Ok(None);
            }
            let which = if kw(b"HELP ") {
                "HELP"
            } else if kw(b"TYPE ") {
                "TYPE"
            } else if kw(b"UNIT ") {
                "UNIT"
            } else {
                self.pos -= 1;
                return Err(self.expected("expected # HELP, # TYPE, # UNIT or # EOF", line_start));
            };
            self.pos += 6;
            return self.metadata(which, line_start).map(Some);
        }
        // Text format: `#[ \t]+(HELP|TYPE)[ \t]+` is metadata, anything else a comment.
        let blanks = rest
            .iter()
            .take_while(|c| **c == b' ' || **c == b'\t')
            .count();
        let after = &rest[blanks..];
        let meta = if blanks > 0 && after.len() > 4 && matches!(after[4], b' ' | b'\t') {
            if after.starts_with(b"HELP") {
                Some("HELP")
            } else if after.starts_with(b"TYPE") {
                Some("TYPE")
            } else {
                None
            }
        } else {
            None
        };
        match meta {
            Some(which) => {
                self.pos += blanks + 4;
                self.skip_ws();
                self.metadata(which, line_start).map(Some)
            }
            None => {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
                // The last line may end without a newline, as Prometheus's lexer allows.
                if self.peek().is_some() {
                    self.pos += 1;
                    self.line += 1;
                }
                Ok(None)
            }
        }
    }

    fn metadata(&mut self, which: &str, line_start: usize) -> Result<Entry<'a>, ParseError> {
        if !self.peek().is_some_and(is_name_start) {
            return Err(self.expected(&format!("expected metric name after {which}"), line_start));
        }
        let name = self.read_while(is_name_char);
        // One blank separates the name from the text; the text runs to the end of the line.
        let text = match self.peek() {
            Some(b' ') | Some(b'\t')
                if self.format == Format::Text || self.peek() == Some(b' ') =>
            {
                self.pos += 1;
                let start = self.pos;
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
                &self.b[start..self.pos]
            }
            Some(b'\n') | None if which == "HELP" && self.format == Format::Text => &[][..],
            _ => {
                return Err(self.expected(&format!("expected text in {which}"), line_start));
            }
        };
        match self.peek() {
            Some(b'\n') => self.pos += 1,
            None if self.format == Format::Text => {}
            _ => return Err(self.expected("linebreak expected after metadata", line_start)),
        }
        self.line += 1;
        let text = std::str::from_utf8(text).map_err(|_| ParseError {
            line: self.line - 1,
            message: format!(
                "{} text {:?} is not a valid utf8 string",
                which.to_lowercase(),
                String::from_utf8_lossy(text)
            ),
        })?;
        match which {
            "HELP" => Ok(Entry::Help {
                name,
                help: unescape(text, true),
            }),
            "UNIT" => {
                if !text.is_empty() && !name.ends_with(&format!("_{text}")) {
                    return Err(ParseError {
                        line: self.line - 1,
                        message: format!("unit {text:?} not a suffix of metric {name:?}"),
                    });
                }
                Ok(Entry::Unit { name, unit: text })
            }
            _ => {
                let kind = match (self.format, text) {
                    (_, "counter") => MetricType::Counter,
                    (_, "gauge") => MetricType::Gauge,
                    (_, "histogram") => MetricType::Histogram,
                    (_, "summary") => MetricType::Summary,
                    (Format::Text, "untyped") => MetricType::Unknown,
                    (Format::OpenMetrics, "unknown") => MetricType::Unknown,
                    (Format::OpenMetrics, "gaugehistogram") => MetricType::GaugeHistogram,
                    (Format::OpenMetrics, "info") => MetricType::Info,
                    (Format::OpenMetrics, "stateset") => MetricType::StateSet,
                    _ => {
                        return Err(ParseError {
                            line: self.line - 1,
                            message: format!("invalid metric type {text:?}"),
                        })
                    }
                };
                self.mtype = kind;
                Ok(Entry::Type { name, kind })
            }
        }
    }

    /// Parses `{...}` starting after `{`; fills `self.labels` (and the name, for a quoted
    /// name inside the braces).
    fn label_set(&mut self, line_start: usize, exemplar: bool) -> Result<(), ParseError> {
        let mut first = true;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) if !first && self.format == Format::OpenMetrics && c != b',' => {
                    return Err(self.expected("expected comma or closing brace", line_start));
                }
                _ => {}
            }
            if !first && self.format == Format::OpenMetrics {
                self.pos += 1; // ','
                if self.peek() == Some(b'}') {
                    // OpenMetrics has no trailing comma.
                    return Err(self.expected("expected label name", line_start));
                }
            }
            first = false;
            let (name, quoted) = match self.peek() {
                Some(c) if is_label_start(c) => {
                    let start = self.pos;
                    self.read_while(is_label_char);
                    (
                        Span {
                            start,
                            end: self.pos,
                            escaped: false,
                        },
                        false,
                    )
                }
                Some(b'"') => (self.quoted(line_start)?, true),
                _ => return Err(self.expected("expected label name", line_start)),
            };
            self.skip_ws();
            if quoted && matches!(self.peek(), Some(b',' | b'}')) && !exemplar {
                if self.name.end != 0 {
                    return Err(self.err("metric name already set".into()));
                }
                self.name = name;
                if self.format == Format::Text && self.peek() == Some(b',') {
                    self.pos += 1;
                }
                continue;
            }
            if self.peek() != Some(b'=') {
                return Err(self.expected("expected equal", line_start));
            }
            self.pos += 1;
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.expected("expected label value", line_start));
            }
            let value = self.quoted(line_start)?;
            if !exemplar {
                self.labels.push((name, value));
            }
            self.skip_ws();
            if self.format == Format::Text && self.peek() == Some(b',') {
                self.pos += 1;
            }
        }
    }

    fn sample(&mut self, line_start: usize) -> Result<Entry<'a>, ParseError> {
        let series_start = self.pos;
        self.labels.clear();
        self.name = Span::default();
        if self.peek() != Some(b'{') {
            let start = self.pos;
            self.read_while(is_name_char);
            self.name = Span {
                start,
                end: self.pos,
                escaped: false,
            };
            // Text format allows blanks between the name and `{`.
            let before = self.pos;
            self.skip_ws();
            if self.peek() != Some(b'{') {
                self.pos = before;
            }
        }
        if self.peek() == Some(b'{') {
            self.pos += 1;
            self.label_set(line_start, false)?;
        }
        if self.name.end == 0 {
            return Err(self.err(format!(
                "metric name not set while parsing: {:?}",
                String::from_utf8_lossy(&self.b[line_start..self.pos])
            )));
        }
        let series_end = self.pos;
        if self.format == Format::Text && self.b[series_end - 1] == b'}' {
            // The text format needs no blank between `}` and the value.
            self.skip_ws();
        } else {
            self.sep("expected value after metric", line_start)?;
        }
        let v = self.token();
        if v.is_empty() {
            return Err(self.expected("expected value after metric", line_start));
        }
        let vs = std::str::from_utf8(v).unwrap_or("\u{fffd}");
        let value = parse_float(vs).map_err(|e| {
            self.err(format!(
                "{e} while parsing: {:?}",
                String::from_utf8_lossy(&self.b[line_start..self.pos])
            ))
        })?;
        let mut timestamp = None;
        match self.format {
            Format::Text | Format::Protobuf => {
                // The last line may end without a newline (Prometheus's lexer ends the
                // line at the end of data).
                self.skip_ws();
                match self.peek() {
                    Some(b'\n') | None => {}
                    Some(c) if c.is_ascii_digit() => {
                        let start = self.pos;
                        let t = self.read_while(|c| c.is_ascii_digit());
                        timestamp = Some(t.parse::<i64>().map_err(|_| {
                            self.err(format!(
                                "strconv.ParseInt: parsing {t:?}: value out of range while parsing: {:?}",
                                String::from_utf8_lossy(&self.b[line_start..start + t.len()])
                            ))
                        })?);
                    }
                    Some(_) => {
                        // Timestamps are digits only: no sign, no fraction.
                        return Err(self.expected("expected timestamp or new record", line_start));
                    }
                }
                self.skip_ws();
                match self.peek() {
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                    }
                    None => {}
                    Some(_) => {
                        return Err(self.expected("expected next entry after timestamp", line_start))
                    }
                }
            }
            Format::OpenMetrics => {
                if self.peek() == Some(b' ') && self.at(self.pos + 1) != Some(b'#') {
                    self.pos += 1;
                    let t = std::str::from_utf8(self.token()).unwrap_or("\u{fffd}");
                    let secs = parse_float(t).map_err(|e| {
                        self.err(format!(
                            "{e} while parsing: {:?}",
                            String::from_utf8_lossy(&self.b[line_start..self.pos])
                        ))
                    })?;
                    if !secs.is_finite() {
                        return Err(self.err(format!("invalid timestamp {t}")));
                    }
                    timestamp = Some((secs * 1000.0) as i64);
                }
                if self.peek() == Some(b' ') {
                    let name = &self.b[self.name.start..self.name.end];
                    if !name.ends_with(b"_total") && !name.ends_with(b"_bucket") {
                        return Err(self.err(format!(
                            "metric name {} does not support exemplars",
                            String::from_utf8_lossy(name)
                        )));
                    }
                    self.exemplar(line_start)?;
                }
                match self.peek() {
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                    }
                    _ => return Err(self.expected("expected timestamp or # symbol", line_start)),
                }
            }
        }
        Ok(Entry::Sample {
            series: &self.b[series_start..series_end],
            value,
            timestamp,
        })
    }

    /// Checks and skips ` # {labels} value [timestamp]`.
    fn exemplar(&mut self, line_start: usize) -> Result<(), ParseError> {
        if self.b.len() < self.pos + 4 {
            self.short.set(true);
        }
        if !self.b[self.pos..].starts_with(b" # {") {
            return Err(self.expected("expected timestamp or # symbol", line_start));
        }
        self.pos += 4;
        let saved = std::mem::take(&mut self.labels);
        let r = self.label_set(line_start, true);
        self.labels = saved;
        r?;
        self.sep("expected value after exemplar labels", line_start)?;
        let v = std::str::from_utf8(self.token()).unwrap_or("\u{fffd}");
        parse_float(v).map_err(|e| self.err(format!("{e} in exemplar value")))?;
        if self.peek() == Some(b' ') {
            self.pos += 1;
            let t = std::str::from_utf8(self.token()).unwrap_or("\u{fffd}");
            let ts = parse_float(t).map_err(|e| self.err(format!("{e} in exemplar timestamp")))?;
            if !ts.is_finite() {
                return Err(self.err(format!("invalid exemplar timestamp {t}")));
            }
        }
        Ok(())
    }

    /// The current sample's metric name and labels, unescaped, `__name__` first, in
    /// exposition order (duplicates are the caller's to reject).
    pub fn labels(&self, out: &mut Vec<(String, String)>) {
        let get = |s: Span| -> String {
            // Spans were checked to be UTF-8 when parsed.
            let raw = std::str::from_utf8(&self.b[s.start..s.end]).unwrap_or("");
            if s.escaped {
                unescape(raw, false)
            } else {
                raw.to_string()
            }
        };
        out.clear();
        out.push((model::labels::METRIC_NAME.to_string(), get(self.name)));
        for (n, v) in &self.labels {
            let name = get(*n);
            let mut value = get(*v);
            // Prometheus 3.x writes bucket bounds and quantiles in one canonical form, so
            // `le="1"` and `le="1.0"` are the same series (2.x kept them as exposed).
            if (self.mtype == MetricType::Histogram && name == "le")
                || (self.mtype == MetricType::Summary && name == "quantile")
            {
                if let Ok(f) = parse_float(&value) {
                    value = format_om_float(f);
                }
            }
            out.push((name, value));
        }
    }

    /// The current line number (1-based).
    pub fn line(&self) -> usize {
        self.line
    }
}

/// A body parsed as it arrives: holds the bytes not parsed yet and hands out a parser over
/// them once enough have come. A window waits for [`Windows::MIN`] bytes, or twice what the
/// previous one left over, so an entry longer than a window is parsed again only a few
/// times (the work stays linear in the body) and what is held stays a window or two
/// entries long.
pub struct Windows {
    buf: Vec<u8>,
    format: Format,
    resume: Resume,
    min: usize,
    want: usize,
}

impl Windows {
    /// The smallest window parsed while more of the body is to come.
    pub const MIN: usize = 64 << 10;

    /// Nothing arrived yet of a body in `format`.
    pub fn new(format: Format) -> Windows {
        Windows::with_min(format, Windows::MIN)
    }

    fn with_min(format: Format, min: usize) -> Windows {
        Windows {
            buf: Vec::new(),
            format,
            resume: Resume::START,
            min,
            want: min,
        }
    }

    /// Where arriving bytes are appended.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Whether enough has arrived for the next window.
    pub fn ready(&self) -> bool {
        self.buf.len() >= self.want
    }

    /// A parser over what has arrived; `last` once the body is complete.
    pub fn parser(&self, last: bool) -> Parser<'_> {
        Parser::window(&self.buf, self.format, !last, self.resume)
    }

    /// Forgets the bytes a window's parser consumed; the parse goes on from `resume`.
    pub fn advance(&mut self, consumed: usize, resume: Resume) {
        self.buf.drain(..consumed.min(self.buf.len()));
        self.resume = resume;
        self.want = self.min.max(self.buf.len().saturating_mul(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct S {
        labels: Vec<(String, String)>,
        value: f64,
        ts: Option<i64>,
    }

    fn all(body: &str, format: Format) -> Result<(Vec<S>, Vec<String>), ParseError> {
        let mut p = Parser::new(body.as_bytes(), format);
        let mut samples = Vec::new();
        let mut meta = Vec::new();
        while let Some(e) = p.next()? {
            match e {
                Entry::Sample {
                    value, timestamp, ..
                } => {
                    let mut labels = Vec::new();
                    p.labels(&mut labels);
                    samples.push(S {
                        labels,
                        value,
                        ts: timestamp,
                    });
                }
                Entry::Help { name, help } => meta.push(format!("help {name} {help}")),
                Entry::Type { name, kind } => meta.push(format!("type {name} {}", kind.as_str())),
                Entry::Unit { name, unit } => meta.push(format!("unit {name} {unit}")),
            }
        }
        Ok((samples, meta))
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn text_format() {
        let body = "# HELP go_gc_duration_seconds A summary of the GC invocation durations.\n\
# \tTYPE go_gc_duration_seconds summary\n\
go_gc_duration_seconds{quantile=\"0\"} 4.9351e-05\n\
go_gc_duration_seconds{quantile=\"0.25\",} 7.424100000000001e-05\n\
  go_gc_duration_seconds_sum 0.000235 1520879607789\n\
\n\
# Hash comment\n\
#\n\
# HELP nohelp \n\
esc{a=\"x\\\"y\\\\z\\nw\", b = \"\\t\"} +Inf\n\
nan NaN\n\
neg -1.5e3 3\n\
{\"quoted.name\",b=\"c\"} 1\n";
        let (s, meta) = all(body, Format::Text).unwrap();
        assert_eq!(
            meta[0],
            "help go_gc_duration_seconds A summary of the GC invocation durations."
        );
        assert_eq!(meta[1], "type go_gc_duration_seconds summary");
        assert_eq!(
            s[0].labels,
            l(&[("__name__", "go_gc_duration_seconds"), ("quantile", "0.0")])
        );
        assert_eq!(s[1].value, 7.424100000000001e-05);
        assert_eq!(s[2].ts, Some(1520879607789));
        assert_eq!(
            s[3].labels,
            l(&[("__name__", "esc"), ("a", "x\"y\\z\nw"), ("b", "\\t")])
        );
        assert_eq!(s[3].value, f64::INFINITY);
        assert_eq!(s[4].value.to_bits(), NORMAL_NAN_BITS);
        assert_eq!((s[5].value, s[5].ts), (-1500.0, Some(3)));
        assert_eq!(s[6].labels, l(&[("__name__", "quoted.name"), ("b", "c")]));
        assert_eq!(s.len(), 7);
        assert!(all("", Format::Text).unwrap().0.is_empty());
        // Prometheus's lexer ends the last line at the end of data.
        for body in [
            "a 1",
            "a 1 2",
            "# TYPE a gauge",
            "a 1\n# comment",
            "# HELP a",
        ] {
            assert!(all(body, Format::Text).is_ok(), "{body:?}");
        }
        let (s, _) = all("a{b=\"c\"}1\n", Format::Text).unwrap();
        assert_eq!(s[0].value, 1.0);
    }

    /// Each syntax error kind of the text format, with Prometheus's message.
    #[test]
    fn text_format_errors() {
        let cases = [
            (
                "a 1\nb",
                "line 2: expected value after metric, got end of data while parsing: \"b\"",
            ),
            ("a 1 -5\n", "expected timestamp or new record, got \"-\""),
            ("a 1 +5\n", "expected timestamp or new record, got \"+\""),
            (
                "  a 1\n",
                "invalid metric name \"  a\": a sample line must not start with blanks",
            ),
            ("a 1 99999999999999999999\n", "value out of range"),
            (
                "a\n",
                "line 1: expected value after metric, got \"\\n\" while parsing: \"a\\n\"",
            ),
            ("a{b=\"c\"}\n", "expected value after metric"),
            ("a{b \"c\"} 1\n", "expected equal, got \"\\\"\""),
            ("a{b=\"c\" 1\n", "expected label name, got \"1\""),
            ("a{1b=\"c\"} 1\n", "expected label name, got \"1\""),
            ("a{b=c} 1\n", "expected label value, got \"c\""),
            ("a{b=\"c} 1\n", "unterminated quoted string"),
            (
                "a abc\n",
                "strconv.ParseFloat: parsing \"abc\": invalid syntax while parsing: \"a abc\"",
            ),
            ("a 0x1p3\n", "unsupported character in float"),
            ("a 1_000\n", "unsupported character in float"),
            ("a 1 abc\n", "expected timestamp or new record, got \"a\""),
            (
                "a 1 1.5\n",
                "expected next entry after timestamp, got \".\"",
            ),
            (
                "a 1 2 3\n",
                "expected next entry after timestamp, got \"3\"",
            ),
            (
                "# TYPE a countr\n",
                "line 1: invalid metric type \"countr\"",
            ),
            ("# TYPE a\n", "expected text in TYPE"),
            ("# TYPE 1a counter\n", "expected metric name after TYPE"),
            ("# HELP a \u{fffd}\n", ""),
            ("=1\n", "expected a valid start token, got \"=\""),
            ("{b=\"c\"} 1\n", "metric name not set while parsing"),
        ];
        for (body, want) in cases {
            match all(body, Format::Text) {
                Ok(_) if want.is_empty() => {}
                Ok(_) => panic!("{body:?}: parsed"),
                Err(e) => assert!(e.to_string().contains(want), "{body:?}: {e}"),
            }
        }
        let mut bad = b"a{b=\"".to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        bad.extend_from_slice(b"\"} 1\n");
        let mut p = Parser::new(&bad, Format::Text);
        let e = p.next().unwrap_err();
        assert!(e.message.starts_with("invalid UTF-8 label value"), "{e}");
        let mut bad = b"# HELP a ".to_vec();
        bad.extend_from_slice(&[0xff, b'\n']);
        let e = Parser::new(&bad, Format::Text).next().unwrap_err();
        assert!(e.message.contains("is not a valid utf8 string"), "{e}");
    }

    #[test]
    fn openmetrics() {
        let body = "# TYPE foo_seconds counter\n\
# UNIT foo_seconds seconds\n\
# HELP foo_seconds Help \\\\ text\\n.\n\
foo_seconds_total{a=\"b\"} 17.0 1520879607.789 # {id=\"c\"} 1.0 1520879607.7\n\
foo_seconds_created{a=\"b\"} 1520430000.123\n\
# TYPE s stateset\n\
s{s=\"a\"} 1\n\
s{s=\"b\"} 0\n\
# TYPE i info\n\
i_info{v=\"1\"} 1\n\
# TYPE h histogram\n\
h_bucket{le=\"+Inf\"} 3 # {} 1\n\
# EOF\n";
        let (s, meta) = all(body, Format::OpenMetrics).unwrap();
        assert_eq!(meta[0], "type foo_seconds counter");
        assert_eq!(meta[1], "unit foo_seconds seconds");
        assert_eq!(meta[2], "help foo_seconds Help \\ text\n.");
        assert_eq!(
            s[0].labels,
            l(&[("__name__", "foo_seconds_total"), ("a", "b")])
        );
        assert_eq!(s[0].ts, Some(1520879607789));
        assert_eq!(s[1].labels[0].1, "foo_seconds_created");
        assert_eq!(s.len(), 6);
        assert_eq!(meta[4], "type i info");
        // # EOF without a newline is fine.
        assert_eq!(all("a 1\n# EOF", Format::OpenMetrics).unwrap().0.len(), 1);
    }

    /// Each syntax error kind of OpenMetrics.
    #[test]
    fn openmetrics_errors() {
        let cases = [
            ("a 1\n", "data does not end with # EOF"),
            ("a 1\n# EOF\nb 1\n", "line 3: unexpected data after # EOF"),
            (
                "\na 1\n# EOF\n",
                "expected a valid start token, got \"\\n\"",
            ),
            ("a  1\n# EOF\n", "expected value after metric, got \" \""),
            (
                "# random comment\n# EOF\n",
                "expected # HELP, # TYPE, # UNIT or # EOF",
            ),
            (
                "# TYPE a untyped\n# EOF\n",
                "invalid metric type \"untyped\"",
            ),
            (
                "# UNIT a_bytes seconds\n# EOF\n",
                "unit \"seconds\" not a suffix of metric \"a_bytes\"",
            ),
            (
                "a{b=\"c\" c=\"d\"} 1\n# EOF\n",
                "expected comma or closing brace",
            ),
            ("a 1 NaN\n# EOF\n", "invalid timestamp NaN"),
            (
                "a_total 1 # {x=\"y\"}\n# EOF\n",
                "expected value after exemplar labels",
            ),
            (
                "a_total 1 #{x=\"y\"} 1\n# EOF\n",
                "expected timestamp or # symbol",
            ),
            ("a_total 1 # x\n# EOF\n", "expected timestamp or # symbol"),
            (
                "a 1 # {x=\"y\"} 1\n# EOF\n",
                "metric name a does not support exemplars",
            ),
            ("a{b=\"c\",} 1\n# EOF\n", "expected label name, got \"}\""),
            ("# HELP a\n# EOF\n", "expected text in HELP"),
            ("a{b=\"\nc\"} 1\n# EOF\n", "newline inside a quoted string"),
        ];
        for (body, want) in cases {
            let e = all(body, Format::OpenMetrics)
                .err()
                .unwrap_or_else(|| panic!("{body:?} parsed"));
            assert!(e.to_string().contains(want), "{body:?}: {e}");
        }
    }

    #[test]
    fn om_float_format_matches_go() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (0.5, "0.5"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-7, "2.5e-07"),
            (123456789.0, "1.23456789e+08"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_om_float(f), want, "{f}");
        }
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+inf\"} 1\n# TYPE s summary\ns{quantile=\"0.50\"} 1\n# TYPE g gauge\ng{le=\"1\"} 1\n";
        let (s, _) = all(body, Format::Text).unwrap();
        assert_eq!(s[0].labels[1].1, "1.0");
        assert_eq!(s[1].labels[1].1, "+Inf");
        assert_eq!(s[2].labels[1].1, "0.5");
        assert_eq!(s[3].labels[1].1, "1");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4"),
            Format::Text
        );
        assert_eq!(Format::from_content_type(""), Format::Text);
        assert_eq!(
            Format::from_content_type(
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            ),
            Format::Protobuf
        );
    }

    #[test]
    fn errors_on_huge_lines_stay_short() {
        let body = format!("a {}\n", "9".repeat(1 << 20) + "x");
        let e = all(&body, Format::Text).unwrap_err();
        assert!(
            e.message.len() <= MAX_ERROR_BYTES + 3,
            "{}",
            e.message.len()
        );
        assert!(e.message.starts_with("strconv.ParseFloat"), "{e}");
    }

    /// Everything a parse gives out, as text (NaN payloads included), up to its error.
    fn outcome(p: &mut Parser<'_>, out: &mut Vec<String>) -> Option<ParseError> {
        loop {
            match p.next() {
                Ok(None) => return None,
                Ok(Some(Entry::Sample {
                    series,
                    value,
                    timestamp,
                })) => {
                    let mut labels = Vec::new();
                    p.labels(&mut labels);
                    out.push(format!(
                        "{} {labels:?} {:x} {timestamp:?} line {}",
                        String::from_utf8_lossy(series),
                        value.to_bits(),
                        p.line()
                    ));
                }
                Ok(Some(e)) => out.push(format!("{e:?} line {}", p.line())),
                Err(e) => return Some(e),
            }
        }
    }

    /// `body` arriving `step` bytes at a time, parsed in windows of at least `min` bytes.
    fn windowed(body: &[u8], format: Format, min: usize, step: usize) -> Vec<String> {
        let mut w = Windows::with_min(format, min);
        let mut out = Vec::new();
        let mut sent = 0;
        loop {
            while !w.ready() && sent < body.len() {
                let n = step.min(body.len() - sent);
                w.buffer().extend_from_slice(&body[sent..sent + n]);
                sent += n;
            }
            let last = sent == body.len();
            let mut p = w.parser(last);
            if let Some(e) = outcome(&mut p, &mut out) {
                out.push(format!("error {e}"));
                return out;
            }
            if last {
                return out;
            }
            let (consumed, resume) = (p.consumed(), p.resume());
            w.advance(consumed, resume);
        }
    }

    /// Parsing a body as it arrives gives what parsing it whole gives: the same entries,
    /// line numbers and errors, however the body is cut.
    #[test]
    fn windows_parse_as_the_whole_body() {
        let mut bodies: Vec<(Vec<u8>, Format)> = vec![
            (b"# HELP go_gc A summary.\n# \tTYPE go_gc summary\ngo_gc{quantile=\"0\"} 4.9e-05\n  go_gc_sum 0.000235 1520879607789\n\n# Hash comment\n#\n# HELP nohelp \nesc{a=\"x\\\"y\\\\z\\nw\", b = \"\\t\"} +Inf\nnan NaN\nneg -1.5e3 3\n{\"quoted.name\",b=\"c\"} 1\nmulti{a=\"line\none\"} 2\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nlast 1".to_vec(), Format::Text),
            (b"# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Help \\\\ text\\n.\nfoo_seconds_total{a=\"b\"} 17.0 1520879607.789 # {id=\"c\"} 1.0 1520879607.7\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3 # {} 1\n# EOF\n".to_vec(), Format::OpenMetrics),
            (b"a 1\n# EOF".to_vec(), Format::OpenMetrics),
            (b"a 1\n# EOF\nb 1\n".to_vec(), Format::OpenMetrics),
            (b"a 1\n# EOF\n\n".to_vec(), Format::OpenMetrics),
            (b"a 1\nb 2\n".to_vec(), Format::OpenMetrics),
            (b"a 1\n  b 2\n".to_vec(), Format::Text),
            (b"a 1\nb{c=\"d\" 2\nc 3\n".to_vec(), Format::Text),
            (b"# HELP \n# HELP x\n".to_vec(), Format::OpenMetrics),
            (b"a_total 1 # {x=\"y\"} 1\n# EOF\n".to_vec(), Format::OpenMetrics),
            (b"a_total 1 #".to_vec(), Format::OpenMetrics),
        ];
        let mut seed = 11u64;
        for _ in 0..300 {
            let mut b = Vec::new();
            for _ in 0..(seed % 60) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let alphabet = b"a{}=\", #\n\\1.eE+-_\tHELPTYPEOF";
                b.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            bodies.push((b.clone(), Format::Text));
            bodies.push((b, Format::OpenMetrics));
        }
        for (body, format) in &bodies {
            let mut whole = Vec::new();
            if let Some(e) = outcome(&mut Parser::new(body, *format), &mut whole) {
                whole.push(format!("error {e}"));
            }
            for (min, step) in [(1, 1), (2, 1), (3, 5), (7, 2), (16, 13), (1 << 20, 4)] {
                assert_eq!(
                    windowed(body, *format, min, step),
                    whole,
                    "{:?} {format:?} min {min} step {step}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    /// Hostile bodies never panic: every prefix of a valid body and random bytes parse to a
    /// result or an error.
    #[test]
    fn truncations_and_garbage_never_panic() {
        let body = "# TYPE a counter\na_total{x=\"1\\\"\",y=\"2\"} 3 4 # {z=\"\"} 1 2\n# EOF\n";
        for fmt in [Format::Text, Format::OpenMetrics] {
            for i in 0..=body.len() {
                let _ = all(&body[..i], fmt);
            }
            let mut seed = 7u64;
            for _ in 0..2000 {
                let mut b = Vec::new();
                for _ in 0..(seed % 40) {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let alphabet = b"a{}=\", #\n\\1.eE+-_\t\xff";
                    b.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
                }
                let mut p = Parser::new(&b, fmt);
                let mut out = Vec::new();
                for _ in 0..100 {
                    match p.next() {
                        Ok(Some(Entry::Sample { .. })) => p.labels(&mut out),
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }
    }
}
