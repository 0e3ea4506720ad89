//! The body of Alertmanager's `POST /api/v2/alerts`, as Prometheus writes it.
//!
//! Prometheus marshals go-openapi's `PostableAlerts`: per alert `annotations` (left out
//! when empty), `endsAt`, `startsAt` (RFC 3339 in UTC with milliseconds, strfmt's
//! `DateTime`), then the embedded `Alert`'s `generatorURL` (left out when empty) and
//! `labels`, keys of both maps sorted. We write the same keys in the same order, and escape
//! as Go's encoder does (`<`, `>`, `&`, U+2028 and U+2029 as `\u003c`…), so a body is byte
//! for byte the one Prometheus would send for the same alerts.

use std::time::{Duration, UNIX_EPOCH};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::Alert;

/// The JSON body Alertmanager's API v2 takes for `alerts`.
pub fn encode_alerts(alerts: &[Alert]) -> Vec<u8> {
    // Serializing strings and maps into a Vec cannot fail.
    go_html_escape(serde_json::to_vec(&Alerts(alerts)).unwrap_or_default())
}

/// Escapes JSON text as Go's `json.Marshal` does beyond serde_json: `<`, `>` and `&` (only
/// ever inside strings in JSON), and the line and paragraph separators U+2028 and U+2029.
fn go_html_escape(json: Vec<u8>) -> Vec<u8> {
    let special = |w: &[u8]| matches!(w, [0xE2, 0x80, 0xA8 | 0xA9]);
    if !json.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) && !json.windows(3).any(special) {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if json.get(i..i + 3).is_some_and(special) => {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A time as strfmt's `DateTime` marshals it: `2006-01-02T15:04:05.000Z` in UTC. Times
/// before 1970 are written as the epoch.
pub fn format_time_ms(ms: i64) -> String {
    let ms = ms.max(0) as u64;
    let whole = UNIX_EPOCH + Duration::from_secs(ms / 1000);
    // ingest's formatter gives `…:05Z` for a whole second; the milliseconds go before Z.
    let mut s = ingest::scrape::manager::rfc3339(whole);
    s.pop();
    s.push_str(&format!(".{:03}Z", ms % 1000));
    s
}

struct Alerts<'a>(&'a [Alert]);

impl Serialize for Alerts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&PostableAlert(a))?;
        }
        seq.end()
    }
}

struct PostableAlert<'a>(&'a Alert);

impl Serialize for PostableAlert<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut m = s.serialize_map(None)?;
        if !a.annotations.is_empty() {
            m.serialize_entry("annotations", &Annotations(&a.annotations))?;
        }
        m.serialize_entry("endsAt", &format_time_ms(a.ends_at_ms))?;
        m.serialize_entry("startsAt", &format_time_ms(a.starts_at_ms))?;
        if !a.generator_url.is_empty() {
            m.serialize_entry("generatorURL", &a.generator_url)?;
        }
        m.serialize_entry("labels", &LabelMap(&a.labels))?;
        m.end()
    }
}

struct Annotations<'a>(&'a [(String, String)]);

impl Serialize for Annotations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorted, a later duplicate winning, as Go's map would hold them.
        let mut pairs: Vec<&(String, String)> = self.0.iter().collect();
        pairs.sort_by(|x, y| x.0.cmp(&y.0));
        pairs.reverse();
        pairs.dedup_by(|x, y| x.0 == y.0);
        pairs.reverse();
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, v) in pairs {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct LabelMap<'a>(&'a model::labels::Labels);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in self.0.iter() {
            m.serialize_entry(l.name, l.value)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels::Labels;

    #[test]
    fn times_have_milliseconds_in_utc() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format_time_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(format_time_ms(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn body_has_prometheus_keys_in_prometheus_order() {
        let alerts = vec![
            Alert {
                labels: Labels::new([("alertname", "HighLatency"), ("a", "x\"y")]).unwrap(),
                annotations: vec![
                    ("summary".into(), "slow".into()),
                    ("description".into(), "p99 > 1s".into()),
                ],
                starts_at_ms: 1_700_000_000_000,
                ends_at_ms: 1_700_000_060_500,
                generator_url: "http://lookout/graph?g0.expr=up".into(),
            },
            Alert {
                labels: Labels::new([("alertname", "Bare")]).unwrap(),
                annotations: vec![],
                starts_at_ms: 1_700_000_000_000,
                ends_at_ms: 1_700_000_000_000,
                generator_url: String::new(),
            },
        ];
        let body = String::from_utf8(encode_alerts(&alerts)).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"[{"annotations":{"description":"p99 \u003e 1s","summary":"slow"},"#,
                r#""endsAt":"2023-11-14T22:14:20.500Z","startsAt":"2023-11-14T22:13:20.000Z","#,
                r#""generatorURL":"http://lookout/graph?g0.expr=up","#,
                r#""labels":{"a":"x\"y","alertname":"HighLatency"}},"#,
                r#"{"endsAt":"2023-11-14T22:13:20.000Z","startsAt":"2023-11-14T22:13:20.000Z","#,
                r#""labels":{"alertname":"Bare"}}]"#
            )
        );
        assert_eq!(encode_alerts(&[]), b"[]");
    }

    #[test]
    fn escapes_like_go() {
        let a = Alert {
            labels: Labels::new([("alertname", "A<&>\u{2028}\u{2029}é")]).unwrap(),
            annotations: vec![],
            starts_at_ms: 0,
            ends_at_ms: 0,
            generator_url: "http://x/graph?g0.expr=up&g0.tab=1".into(),
        };
        let body = String::from_utf8(encode_alerts(&[a])).unwrap();
        assert!(
            body.contains(r#""generatorURL":"http://x/graph?g0.expr=up\u0026g0.tab=1""#),
            "{body}"
        );
        assert!(
            body.contains(r#""alertname":"A\u003c\u0026\u003e\u2028\u2029é""#),
            "{body}"
        );
        let back: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back[0]["labels"]["alertname"], "A<&>\u{2028}\u{2029}é");
    }
}
