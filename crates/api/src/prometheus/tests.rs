//! Unit tests of the shared pieces: time parsing, selectors, the envelope.

use axum::response::IntoResponse as _;
use http_body_util::BodyExt as _;

use super::*;

#[test]
fn times_parse_as_prometheus_parses_them() {
    assert_eq!(parse_time_ms("1700000000").unwrap(), 1_700_000_000_000);
    assert_eq!(parse_time_ms("1700000000.1234").unwrap(), 1_700_000_000_123);
    assert_eq!(parse_time_ms("-1.5").unwrap(), -1_500);
    assert_eq!(
        parse_time_ms("2023-11-14T22:13:20.5Z").unwrap(),
        1_700_000_000_500
    );
    assert_eq!(
        parse_time_ms("2023-11-14T23:13:20+01:00").unwrap(),
        1_700_000_000_000
    );
    for bad in ["yesterday", "NaN", "Inf", "1e300", ""] {
        assert_eq!(
            parse_time_ms(bad).unwrap_err(),
            format!("cannot parse {bad:?} to a valid timestamp")
        );
    }
}

#[test]
fn selectors_become_matcher_sets() {
    let sets = parse_selector(r#"up{job="a",instance=~"x.*"}"#).unwrap();
    assert_eq!(sets.len(), 1);
    let l = tsdb::Labels::new([("__name__", "up"), ("job", "a"), ("instance", "xy")]).unwrap();
    assert!(sets[0].iter().all(|m| m.matches_labels(&l)));
    let l2 = tsdb::Labels::new([("__name__", "up"), ("job", "b")]).unwrap();
    assert!(!sets[0].iter().all(|m| m.matches_labels(&l2)));
    for (bad, words) in [
        ("rate(up[5m])", "expected a series selector"),
        ("up{", "parse error"),
        (r#"{job=~".*"}"#, "at least one non-empty matcher"),
        (r#"{a=~"("}"#, "parse error"),
    ] {
        let e = parse_selector(bad).unwrap_err();
        assert_eq!(e.kind, ErrorType::BadData);
        assert!(
            e.message.starts_with("invalid parameter \"match[]\": "),
            "{bad}: {e:?}"
        );
        assert!(e.message.contains(words), "{bad}: {e:?}");
    }
}

async fn body(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn envelopes_have_prometheus_shapes() {
    let ok = Success::new(&vec!["a<b"])
        .unwrap()
        .warn("w")
        .into_response();
    assert_eq!(
        body(ok).await,
        (
            StatusCode::OK,
            r#"{"status":"success","data":["a\u003cb"],"warnings":["w"]}"#.to_string()
        )
    );
    for (kind, status) in [
        (ErrorType::BadData, 400),
        (ErrorType::Execution, 422),
        (ErrorType::Timeout, 503),
        (ErrorType::Canceled, 499),
        (ErrorType::Internal, 500),
    ] {
        let e = PromError {
            kind,
            message: "m".into(),
        };
        let (s, b) = body(e.into_response()).await;
        assert_eq!(s.as_u16(), status);
        assert_eq!(
            b,
            format!(
                r#"{{"status":"error","errorType":"{}","error":"m"}}"#,
                kind.as_str()
            )
        );
    }
}
