//! Query-string access with Go's `FormValue` semantics, and the parameter parsers both Jaeger
//! APIs share (trace ids, microsecond times), with Jaeger's error wording.
//!
//! Go's `r.FormValue(k)` returns the first value of `k`, or `""` when it is absent, and Jaeger
//! treats an empty value like a missing one; [`Params::get`] does the same. Repeated
//! parameters (`tag`, `traceID`) are read with [`Params::all`].

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use model::TraceId;

use crate::gocompat;

/// The decoded query string of a request, in order.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name`, or `""` when it is absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Jaeger's `prettyPrint`: any value but empty and `false` indents the answer.
    pub fn pretty(&self) -> bool {
        let v = self.get("prettyPrint");
        !v.is_empty() && v != "false"
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Params, Infallible> {
        // Decoding into string pairs replaces invalid percent-encoded UTF-8 instead of failing,
        // like Go's query parser, so an error here cannot really happen; an unreadable query
        // string reads as an empty one.
        Ok(Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .unwrap_or_default())
    }
}

/// Parses a trace id the way Jaeger's `model.TraceIDFromString` does: up to 32 hex digits,
/// shorter ids left-padded, errors worded by Go's `strconv`.
pub fn parse_trace_id(s: &str) -> Result<TraceId, String> {
    if s.len() > 32 {
        return Err(format!(
            "TraceID cannot be longer than 32 hex characters: {s}"
        ));
    }
    let (high, low) = if s.len() > 16 {
        // Only ASCII hex digits can pass below, so a split inside a character is an error.
        let split = s.len() - 16;
        if !s.is_char_boundary(split) {
            return Err(format!(
                "strconv.ParseUint: parsing {}: invalid syntax",
                model::gofmt::quote(s)
            ));
        }
        (
            gocompat::parse_hex_u64(&s[..split])?,
            gocompat::parse_hex_u64(&s[split..])?,
        )
    } else {
        (0, gocompat::parse_hex_u64(s)?)
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&high.to_be_bytes());
    out[8..].copy_from_slice(&low.to_be_bytes());
    Ok(TraceId(out))
}

/// Jaeger's `newParseError`: `unable to parse param 'name': cause`.
pub fn param_error(name: &str, cause: impl std::fmt::Display) -> String {
    format!("unable to parse param '{name}': {cause}")
}

/// A time given as an integer count of `unit_nanos` since the epoch (`start`/`end` in µs,
/// `endTs` in ms), or `None` when the parameter is empty. Times before the epoch clamp to it.
pub fn parse_epoch_time(p: &Params, name: &str, unit_nanos: i128) -> Result<Option<u64>, String> {
    let v = p.get(name);
    if v.is_empty() {
        return Ok(None);
    }
    let n = gocompat::parse_int(v, 64).map_err(|e| param_error(name, e))?;
    Ok(Some(clamp_nanos(i128::from(n) * unit_nanos)))
}

/// Clamps signed nanoseconds into the `u64` range stored times use.
pub fn clamp_nanos(n: i128) -> u64 {
    n.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_ids_like_jaeger() {
        assert_eq!(
            parse_trace_id("abc").unwrap().to_hex(),
            "00000000000000000000000000000abc"
        );
        assert_eq!(
            parse_trace_id("1234567890abcdef1").unwrap().to_hex(),
            "000000000000000123456789 0abcdef1".replace(' ', "")
        );
        assert_eq!(
            parse_trace_id("0123456789ABCDEF0123456789abcdef")
                .unwrap()
                .to_hex(),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            parse_trace_id("xyz").unwrap_err(),
            r#"strconv.ParseUint: parsing "xyz": invalid syntax"#
        );
        assert_eq!(
            parse_trace_id("").unwrap_err(),
            r#"strconv.ParseUint: parsing "": invalid syntax"#
        );
        assert_eq!(
            parse_trace_id("zz23456789abcdef0").unwrap_err(),
            r#"strconv.ParseUint: parsing "z": invalid syntax"#
        );
        let long = "1".repeat(33);
        assert_eq!(
            parse_trace_id(&long).unwrap_err(),
            format!("TraceID cannot be longer than 32 hex characters: {long}")
        );
        assert!(parse_trace_id("ééééééééé").is_err());
    }
}
