//! Tests pinning Go's and Prometheus's outputs: the cases of Prometheus's
//! `template/template_test.go` with their expected strings, Go `text/template` semantics,
//! the bounds, and a comparison against the real Prometheus binary.

use std::rc::Rc;

use model::labels::Labels;

use super::exec::execute;
use super::funcs::{Env, Func};
use super::parse::parse;
use super::value::{AlertValue, Value};
use super::*;

const EXT_URL: &str = "http://testhost:9090/path/prefix";

fn sample(pairs: &[(&str, &str)], value: f64) -> QuerySample {
    QuerySample {
        labels: Labels::new(pairs.iter().map(|(n, v)| (*n, *v))).unwrap(),
        value,
    }
}

/// Prometheus's `Expander.Expand` on a template named `test` with `data` and a query that
/// answers `result`: the test harness of template_test.go.
fn expand_with(text: &str, data: Value, result: Vec<QuerySample>) -> Result<String, String> {
    let query = move |_: &str| Ok(result.clone());
    let env = Env {
        ts_ms: 0,
        query: Some(&query),
        external_url: EXT_URL,
    };
    let trees = parse("test", text, &|f| Func::lookup(f).is_some())
        .map_err(|e| format!("error parsing template test: {e}"))?;
    execute(text, "test", &trees, data, &env)
        .map_err(|e| format!("error executing template test: {e}"))
}

fn expand(text: &str) -> Result<String, String> {
    expand_with(text, Value::Invalid, Vec::new())
}

fn ok(text: &str, want: &str) {
    assert_eq!(expand(text).as_deref(), Ok(want), "template {text:?}");
}

fn fails(text: &str, want: &str) {
    assert_eq!(expand(text), Err(want.to_string()), "template {text:?}");
}

#[test]
fn prometheus_template_test_cases() {
    ok("plain text", "plain text");
    ok("{{ 1 }}", "1");
    fails(
        "{{\u{a0}}}",
        "error parsing template test: template: test:1: unrecognized character in action: U+00A0",
    );
    ok("{{ \"<b>\" }}", "<b>");
    ok(
        "{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1 \"2\")}}",
        "1 2",
    );
    let q = |text: &str, result: Vec<QuerySample>| expand_with(text, Value::Invalid, result);
    assert_eq!(
        q(
            "{{ query \"1.5\" | first | value }}",
            vec![sample(&[], 1.5)]
        )
        .unwrap(),
        "1.5"
    );
    let metric_a = || vec![sample(&[("__name__", "metric"), ("instance", "a")], 11.0)];
    assert_eq!(
        q(
            "{{ query \"metric{instance='a'}\" | first | value }}",
            metric_a()
        )
        .unwrap(),
        "11"
    );
    assert_eq!(
        q(
            "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
            metric_a()
        )
        .unwrap(),
        "a"
    );
    assert_eq!(
        q(
            "{{ query \"metric{__value__='a'}\" | first | strvalue }}",
            vec![sample(&[("__name__", "metric"), ("__value__", "a")], 11.0)]
        )
        .unwrap(),
        "a"
    );
    assert_eq!(
        q(
            "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}",
            metric_a()
        )
        .unwrap(),
        ""
    );
    assert_eq!(
        q(
            "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}",
            metric_a()
        )
        .unwrap(),
        ""
    );
    assert_eq!(
        q(
            "{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}",
            vec![
                sample(&[("__name__", "metric"), ("instance", "b")], 21.0),
                sample(&[("__name__", "metric"), ("instance", "a")], 11.0),
            ]
        )
        .unwrap(),
        "a:11: b:21: "
    );
    for (input, port, domain) in [
        ("foo.example.com", "foo.example.com", "foo"),
        ("foo.example.com:12345", "foo.example.com", "foo:12345"),
        ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
        ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
        (
            "[2001:0DB8::1]:12345",
            "2001:0DB8::1",
            "[2001:0DB8::1]:12345",
        ),
        (
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
        ),
    ] {
        ok(&format!("{{{{ \"{input}\" | stripPort }}}}"), port);
        ok(&format!("{{{{ \"{input}\" | stripDomain }}}}"), domain);
    }
    ok("{{ .Foo }}", "<no value>");
    fails(
        "{{",
        "error parsing template test: template: test:1: unclosed action",
    );
    fails(
        "{{ query \"missing\" | first }}",
        "error executing template test: template: test:1:21: executing \"test\" at <first>: error calling first: first() called on vector with no elements",
    );
    fails(
        "{{ (query \"missing\").banana }}",
        "error executing template test: template: test:1:10: executing \"test\" at <\"missing\">: can't evaluate field banana in type template.queryResult",
    );
    ok("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa");
}

#[test]
fn prometheus_humanize_cases() {
    // template_test.go ranges over typed slices; literals and strings stand in for them.
    ok(
        "{{ humanize 0.0 }}:{{ humanize 1.0 }}:{{ humanize 1234567.0 }}:{{ humanize .12 }}:",
        "0:1:1.235M:120m:",
    );
    ok(
        r#"{{ range (args "0.0" "1.0" "1234567.0" ".12") }}{{ humanize . }}:{{ end }}"#,
        "0:1:1.235M:120m:",
    );
    fails(
        r#"{{ humanize "one" }}"#,
        r#"error executing template test: template: test:1:3: executing "test" at <humanize "one">: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#,
    );
    ok("{{ humanize 0 }}:{{ humanize -1 }}:{{ humanize 1 }}:{{ humanize 1234567 }}:{{ humanize 9223372036854775807 }}:", "0:-1:1:1.235M:9.223E:");
    ok("{{ humanize1024 0.0 }}:{{ humanize1024 1.0 }}:{{ humanize1024 1048576.0 }}:{{ humanize1024 .12 }}:", "0:1:1Mi:0.12:");
    ok(
        r#"{{ humanize1024 "1048576.0" }}:{{ humanize1024 ".12" }}"#,
        "1Mi:0.12",
    );
    ok("{{ humanize1024 0 }}:{{ humanize1024 -1 }}:{{ humanize1024 1 }}:{{ humanize1024 1234567 }}:{{ humanize1024 9223372036854775807 }}:", "0:-1:1:1.177Mi:8Ei:");
    let durations = [
        ("0", "0s"),
        ("1", "1s"),
        ("60", "1m 0s"),
        ("3600", "1h 0m 0s"),
        ("86400", "1d 0h 0m 0s"),
        ("90000", "1d 1h 0m 0s"),
        ("-183845", "-2d 3h 4m 5s"),
        ("899.99", "14m 59s"),
        (".1", "100ms"),
        (".0001", "100us"),
        (".12345", "123.5ms"),
        ("60.1", "1m 0s"),
        ("60.5", "1m 0s"),
        ("1.2345", "1.234s"),
        ("12.345", "12.35s"),
        ("1234567", "14d 6h 56m 7s"),
    ];
    for (input, want) in durations {
        ok(&format!("{{{{ humanizeDuration \"{input}\" }}}}"), want);
        let literal = if input.contains('.') {
            input.to_string()
        } else {
            format!("{input}.0")
        };
        ok(&format!("{{{{ humanizeDuration {literal} }}}}"), want);
    }
    ok(
        "{{ humanizeDuration -1 }}:{{ humanizeDuration 1234567 }}",
        "-1s:14d 6h 56m 7s",
    );
    ok(
        r#"{{ range (args "+Inf" "-Inf" "NaN") }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}"#,
        "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
    );
    ok(
        "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
        "-22.22%:0%:12.35%:123.5%",
    );
    ok(
        "{{ humanizePercentage 0 }}:{{ humanizePercentage -1 }}:{{ humanizePercentage 1 }}:{{ humanizePercentage 1234567 }}:{{ humanizePercentage 9223372036854775807 }}:",
        "0%:-100%:100%:1.235e+08%:9.223e+20%:",
    );
    ok(
        r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#,
        "-22.22%:0%:12.35%:123.5%",
    );
    fails(
        r#"{{ "one" | humanizePercentage }}"#,
        r#"error executing template test: template: test:1:11: executing "test" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax"#,
    );
    ok(
        "{{ humanizeTimestamp 0 }}:{{ humanizeTimestamp -1 }}:{{ humanizeTimestamp 1 }}:{{ humanizeTimestamp 1234567 }}:{{ humanizeTimestamp 9223372036 }}:",
        "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
    );
    fails(
        "{{ humanizeTimestamp -9223372036854775808 }}",
        r#"error executing template test: template: test:1:3: executing "test" at <humanizeTimestamp -9223372036854775808>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"#,
    );
    ok(
        "{{ 1435065584.128 | humanizeTimestamp }}",
        "2015-06-23 13:19:44.128 +0000 UTC",
    );
    ok(
        r#"{{ "1435065584.128" | humanizeTimestamp }}"#,
        "2015-06-23 13:19:44.128 +0000 UTC",
    );
    ok(r#"{{ (1435065584.128 | toTime).Format "2006" }}"#, "2015");
    ok(r#"{{ ("1435065584.128" | toTime).Format "2006" }}"#, "2015");
    ok("{{ 1657155181 | toTime }}", "2022-07-07 00:53:01 +0000 UTC");
}

#[test]
fn prometheus_string_and_url_cases() {
    ok("{{ \"aa bb CC\" | title }}", "Aa Bb CC");
    ok("{{ \"aa bb CC\" | toUpper }}", "AA BB CC");
    ok("{{ \"aA bB CC\" | toLower }}", "aa bb cc");
    ok(
        "{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}",
        "true false",
    );
    ok("{{ graphLink \"up\" }}", "/graph?g0.expr=up&g0.tab=0");
    ok("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1");
    ok("{{ pathPrefix }}", "/path/prefix");
    ok("{{ externalURL }}", "http://testhost:9090/path/prefix");
    ok(
        "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
        "3720.01",
    );
    ok(
        "{{ (1800 | toDuration).String }} {{ toDuration 90.5 }} {{ (toDuration 3).Seconds }}",
        "30m0s 1m30.5s 3",
    );
    ok("{{ now }}", "0");
    ok(
        "{{ graphLink \"rate(x{a=\\\"b c\\\"}[5m])\" }}",
        "/graph?g0.expr=rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29&g0.tab=0",
    );
}

#[test]
fn go_text_template_semantics() {
    ok("a  {{- 1 -}}  b", "a1b");
    ok("a {{/* comment */}} b", "a  b");
    ok("a {{- /* comment */ -}} b", "ab");
    ok("{{if false}}a{{else if true}}b{{else}}c{{end}}", "b");
    ok("{{with \"\"}}a{{else with \"x\"}}{{.}}{{end}}", "x");
    ok("{{with $x := \"v\"}}{{$x}}{{.}}{{end}}", "vv");
    ok(
        "{{range $i, $v := args \"a\" \"b\"}}{{$i}}={{$v}};{{end}}",
        "arg0=a;arg1=b;",
    );
    ok(
        "{{range 3}}{{.}}{{end}}|{{range $i := 2}}{{$i}}{{end}}|{{range 0}}x{{else}}none{{end}}",
        "012|01|none",
    );
    ok(
        "{{range 10}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}",
        "013",
    );
    ok(
        "{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}",
        "2",
    );
    fails(
        "{{if true}}{{$y := 3}}{{end}}{{$y}}",
        "error parsing template test: template: test:1: undefined variable \"$y\"",
    );
    ok(
        "{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" 5}}{{block \"b\" \"x\"}}<{{.}}>{{end}}",
        "[5]<x>",
    );
    ok("{{print 1 2 \"a\" 3 nil}}|{{println \"a\" 1}}|{{printf \"%5.1f|%-4s|%03d|%q|%v\" 3.14159 \"ab\" 7 \"q\" 1e6}}", "1 2a3 <nil>|a 1\n|  3.1|ab  |007|\"q\"|1e+06");
    ok(
        "{{eq 1 2 3 1}} {{ne \"a\" \"b\"}} {{lt 1 2}} {{le 2 2}} {{gt 1.5 2.5}} {{ge \"b\" \"a\"}}",
        "true true true true false true",
    );
    ok(
        "{{and 1 0 2}} {{or 0 \"\" \"x\"}} {{not 0}} {{and 1 2}}",
        "0 x true 2",
    );
    ok("{{len \"abc\"}} {{index \"abc\" 1}} {{slice \"abcdef\" 1 3}} {{index (args 1 2) \"arg1\"}}", "3 98 bc 2");
    ok(
        "{{html \"<a href='x'>\"}} {{js \"a'b\"}} {{urlquery \"a b&c\"}}",
        "&lt;a href=&#39;x&#39;&gt; a\\'b a+b%26c",
    );
    ok(
        "{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 1e3 }} {{ .5 }} {{ -2 }} {{ true }}",
        "97 31 1000 1000 0.5 -2 true",
    );
    ok("{{ `raw\\n` }} {{ \"tab\\there\" }}", "raw\\n tab\there");
    ok(
        "{{ (args).missing }}|{{ index (args) \"missing\" }}",
        "<no value>|<no value>",
    );
    ok("{{ $x := args 1.5 }}{{ $x }}", "map[arg0:1.5]");
    ok(
        "{{ printf \"%d %s\" 1.5 2 }}",
        "%!d(float64=1.5) %!s(int=2)",
    );
    fails("{{ nil }}", "error executing template test: template: test:1:3: executing \"test\" at <nil>: nil is not a command");
    fails(
        "{{ foo }}",
        "error parsing template test: template: test:1: function \"foo\" not defined",
    );
    fails(
        "{{ 1 | 2 }}",
        "error parsing template test: template: test:1: non executable command in pipeline stage 2",
    );
    fails(
        "{{ end }}",
        "error parsing template test: template: test:1: unexpected {{end}}",
    );
    fails(
        "{{ if true }}x",
        "error parsing template test: template: test:1: unexpected EOF",
    );
    fails(
        "{{ break }}",
        "error parsing template test: template: test:1: {{break}} outside {{range}}",
    );
    fails(
        "a\n{{ \"x }}",
        "error parsing template test: template: test:2: unterminated quoted string",
    );
    fails("{{ template \"nope\" }}", "error executing template test: template: test:1:12: executing \"test\" at <{{template \"nope\"}}>: template \"nope\" not defined");
    fails("{{ gt 1.5 1 }}", "error executing template test: template: test:1:3: executing \"test\" at <gt 1.5 1>: error calling gt: incompatible types for comparison");
    fails("{{ lt (args) 1 }}", "error executing template test: template: test:1:3: executing \"test\" at <lt (args) 1>: error calling lt: invalid type for comparison");
    fails("{{ toUpper 1 }}", "error executing template test: template: test:1:11: executing \"test\" at <1>: expected string; found 1");
    fails("{{ 1.5 | toUpper }}", "error executing template test: template: test:1:9: executing \"test\" at <toUpper>: wrong type for value; expected string; got float64");
    fails("{{ first }}", "error executing template test: template: test:1:3: executing \"test\" at <first>: wrong number of args for first: want 1 got 0");
    fails("{{ \"x\" | len 1 }}", "error executing template test: template: test:1:9: executing \"test\" at <len>: wrong number of args for len: want 1 got 2");
    fails("{{ reReplaceAll \"(\" \"\" \"\" }}", "error executing template test: template: test:1:3: executing \"test\" at <reReplaceAll \"(\" \"\" \"\">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`");
    fails("{{ (args 1).arg0.x }}", "error executing template test: template: test:1:9: executing \"test\" at <1>: can't evaluate field x in type interface {}");
}

fn alert_data() -> (Labels, Labels) {
    (
        Labels::new([("instance", "node-1.example.com:9100"), ("job", "node")]).unwrap(),
        Labels::new([("cluster", "c1")]).unwrap(),
    )
}

fn expand_alert_value(text: &str, value: f64) -> Result<String, String> {
    let (labels, ext) = alert_data();
    let data = AlertData {
        labels: &labels,
        external_labels: &ext,
        external_url: "http://prom.example:9090/prefix",
        value,
    };
    let none = |_: &str| -> Result<Vec<QuerySample>, String> { Ok(Vec::new()) };
    expand_alert("HighLoad", text, &data, 1_700_000_000_000, &none).map_err(|e| e.to_string())
}

#[test]
fn alert_templates() {
    let e = |t: &str| expand_alert_value(t, 1234.5678);
    assert_eq!(
        e("{{ $labels.instance }} of {{ .Labels.job }} in {{ $externalLabels.cluster }}").unwrap(),
        "node-1.example.com:9100 of node in c1"
    );
    assert_eq!(
        e("{{ $value }} {{ .Value | humanize }} {{ printf \"%.2f\" $value }}").unwrap(),
        "1234.5678 1.235k 1234.57"
    );
    assert_eq!(
        e("{{ $labels }} {{ $labels.missing }}|{{ len $labels }}").unwrap(),
        "map[instance:node-1.example.com:9100 job:node] |2"
    );
    assert_eq!(
        e("{{ $externalURL }} {{ now | humanizeTimestamp }}").unwrap(),
        "http://prom.example:9090/prefix 2023-11-14 22:13:20 +0000 UTC"
    );
    assert_eq!(
        e("{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}").unwrap(),
        "instance=node-1.example.com:9100,job=node,"
    );
    assert_eq!(expand_alert_value("{{ $value }}", 1e6).unwrap(), "1e+06");
    assert_eq!(
        expand_alert_value("{{ $value }}", f64::INFINITY).unwrap(),
        "+Inf"
    );
    assert_eq!(expand_alert_value("{{ humanize $value }}:{{ humanize1024 $value }}:{{ humanizeDuration $value }}:{{humanizeTimestamp $value}}", f64::NEG_INFINITY).unwrap(), "-Inf:-Inf:-Inf:-Inf");
    let off = ALERT_DEFS.len();
    assert_eq!(
        e("{{ if gt $value 5 }}x{{ end }}").unwrap_err(),
        format!("error executing template __alert_HighLoad: template: __alert_HighLoad:1:{}: executing \"__alert_HighLoad\" at <gt $value 5>: error calling gt: incompatible types for comparison", off + 6)
    );
    assert_eq!(
        e("{{ .Nope }}").unwrap_err(),
        format!("error executing template __alert_HighLoad: template: __alert_HighLoad:1:{}: executing \"__alert_HighLoad\" at <.Nope>: can't evaluate field Nope in type {}", off + 3, super::value::ALERT_TYPE)
    );
    assert_eq!(
        check("HighLoad", "{{ foo }}").unwrap_err().to_string(),
        "template: __alert_HighLoad:1: function \"foo\" not defined"
    );
    assert_eq!(
        e("{{ foo }}").unwrap_err(),
        "error parsing template __alert_HighLoad: template: __alert_HighLoad:1: function \"foo\" not defined"
    );
    assert!(check("HighLoad", "{{ $labels.job }} {{ $value | humanize }}").is_ok());
    assert_eq!(
        check("X", "line1\n{{ if }}").unwrap_err().to_string(),
        "template: __alert_X:2: missing value for if"
    );
}

#[test]
fn bounds_stop_hostile_templates() {
    let err = expand("{{ range 1000000000 }}{{ end }}").unwrap_err();
    assert!(err.contains("more than 1000000 steps"), "{err}");
    let err = expand("{{ range 100000 }}0123456789abcdefghij{{ end }}").unwrap_err();
    assert!(err.contains("output exceeds 1048576 bytes"), "{err}");
    let err = expand("{{ $x := \"ab\" }}{{ range 64 }}{{ $x = printf \"%s%s\" $x $x }}{{ end }}")
        .unwrap_err();
    assert!(err.contains("returned more than 1048576 bytes"), "{err}");
    let err = expand("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" }}")
        .unwrap_err();
    assert!(
        err.contains("exceeded maximum template depth (100)"),
        "{err}"
    );
    let err = expand(&format!(
        "{{{{ {}1{} }}}}",
        "(".repeat(5000),
        ")".repeat(5000)
    ))
    .unwrap_err();
    assert!(err.contains("nests deeper than"), "{err}");
    let deep_ifs = format!(
        "{{{{ define \"r\" }}}}{}{{{{ template \"r\" . }}}}{}{{{{ end }}}}{{{{ template \"r\" 1 }}}}",
        "{{ if 1 }}".repeat(99),
        "{{ end }}".repeat(99)
    );
    let err = expand(&deep_ifs).unwrap_err();
    assert!(err.contains("nests deeper than"), "{err}");
    let err = expand("{{ printf \"%1000001d\" 1 }}").unwrap();
    assert_eq!(err, "%!(BADWIDTH)1");
    let many = format!(
        "{{{{ $x := printf \"%900000s\" \"\" }}}}{{{{ print{} }}}}",
        " $x".repeat(20_000)
    );
    assert!(expand(&many).unwrap_err().contains("returned more than"));
    let many = format!(
        "{{{{ $x := printf \"%900000s\" \"\" }}}}{{{{ args{} }}}}",
        " $x".repeat(20_000)
    );
    assert!(expand(&many).unwrap_err().contains("output exceeds"));
    let many = format!(
        "{{{{ printf \"{}\"{} }}}}",
        "%900000d".repeat(2_000),
        " 1".repeat(2_000)
    );
    assert!(expand(&many).unwrap_err().contains("returned more than"));
    let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    assert!(check("X", &big)
        .unwrap_err()
        .to_string()
        .contains("shorten it"));
    assert!(
        expand("{{ reReplaceAll \"\" (printf \"%900000s\" \"\") \"abc\" }}")
            .unwrap_err()
            .contains("exceeds")
    );
}

#[test]
fn fuzzed_inputs_never_panic() {
    // Every prefix of templates that exercise the whole grammar: truncation must give an
    // error or a result, never a panic.
    let corpus = [
        "{{- range $i, $v := (args 1 \"x\" 2.5 nil) -}}{{ if and $i (ne $i \"arg0\") }}{{ printf \"%-5s|%q\" $i $v }}{{ else }}{{ $v }}{{ end }}{{ end }}",
        "{{ define \"a\" }}{{ .x | html }}{{ end }}{{ block \"b\" (args 'c' 0x1F 1e3 -.5) }}{{ template \"a\" . }}{{ end }}{{/* c */}}",
        "{{ with $x := `raw` }}{{ $x | title }}{{ else with 1 }}{{ . }}{{ end }}{{ (query \"up\" | first).Labels.job }}",
    ];
    for text in corpus {
        for end in 0..=text.len() {
            if text.is_char_boundary(end) {
                let _ = expand(&text[..end]);
                let _ = check("X", &text[..end]);
            }
        }
    }
}

#[test]
fn type_names_match_go() {
    let data = Value::Alert(Rc::new(AlertValue {
        labels: Rc::default(),
        external_labels: Rc::default(),
        external_url: "".into(),
        value: 1.0,
    }));
    assert_eq!(
        expand_with(
            "{{ printf \"%T %T %T %T %T\" . .Labels .Value (args) (safeHtml \"\") }}",
            data,
            Vec::new()
        )
        .unwrap(),
        format!(
            "{} map[string]string float64 map[string]interface {{}} template.HTML",
            super::value::ALERT_TYPE
        )
    );
}

/// Templates that real Prometheus 2.42 (Go 1.19) must expand exactly as we do. All parse
/// (a rule file with a template that does not parse is refused); some fail while executing,
/// which Prometheus writes into the annotation.
const LIVE_CASES: &[&str] = &[
    "{{ $labels.instance }} {{ $labels.job }} {{ $externalLabels.cluster }} {{ $externalURL }}",
    "{{ $value }} {{ .Value }} {{ $value | humanize }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizePercentage $value }} {{ humanizeTimestamp $value }}",
    "{{ printf \"%.2f|%5.1f|%-8s|%08.3f|%e|%g|%x|%q|%v|%T\" $value $value \"ab\" $value $value $value 255 \"q\\n\" $labels $value }}",
    "{{ printf \"%d %s|%s\" $value 3 }}{{ printf \"%s\" \"a\" 1 }}{{ printf \"100%% %\" }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
    "{{ if gt $value 1000.0 }}big{{ else if gt $value 1.0 }}medium{{ else }}small{{ end }}",
    "{{ if gt $value 5 }}x{{ end }}",
    "{{ .Nope }}",
    "{{ $labels.nope }}|{{ index $labels \"job\" }}|{{ len $labels }}|{{ .Labels }}|{{ . }}",
    "{{ with query \"vector(2)\" }}{{ . | first | value }}{{ end }}|{{ query \"vector(2)\" | first }}",
    "{{ range query \"label_replace(vector(7), 'instance', 'b', '', '') or label_replace(vector(3), 'instance', 'a', '', '')\" | sortByLabel \"instance\" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}",
    "{{ query \"absent_metric\" | first }}",
    "{{ \"foo.example.com:1234\" | stripPort }} {{ stripDomain \"a.b.c:80\" }} {{ title \"hello world-x_y\" }} {{ toUpper \"abc\" }} {{ reReplaceAll \"(\\\\w+)-(\\\\d+)\" \"$2/$1\" \"node-42\" }} {{ match \"^node\" \"node-1\" }}",
    "{{ graphLink \"rate(x[5m])\" }} {{ tableLink \"up\" }} {{ pathPrefix }} {{ externalURL }}",
    "{{ parseDuration \"1h30m\" }} {{ toTime 1435065584.128 }} {{ (toTime 1435065584).Format \"Mon Jan 2 15:04:05 2006\" }}",
    "{{ 1e6 }} {{ 0.1 }} {{ 3.0 }} {{ 1e-7 }} {{ 123456789.0 }} {{ -0.0 }} {{ 0x10 }} {{ 'x' }}",
    "{{ print 1 2 \"a\" 3 }}{{ println \"x\" 1 }}{{ html \"<a&b>\" }}{{ js \"a'b<\" }}{{ urlquery \"a b/c\" }}",
    "{{ eq 1 2 3 1 }} {{ ne \"a\" \"b\" }} {{ and 1 0 }} {{ or 0 \"\" \"x\" }} {{ not \"\" }} {{ slice \"abcdef\" 1 3 }} {{ index \"abc\" 1 }}",
    "{{ range $i, $v := args \"a\" 1 2.5 }}{{ $i }}:{{ $v }} {{ end }}{{ printf \"%v\" (args 1 \"x\") }}",
    "{{ define \"t\" }}[{{ .arg0 }}|{{ .arg1 }}|{{ .arg2 }}]{{ end }}{{ template \"t\" (args $labels.job $value) }}",
    "a  {{- $labels.job -}}  b  {{- /* c */ -}}  c {{/* d */}} e",
    "{{ $x := 1 }}{{ range $labels }}{{ $x = 2 }}{{ end }}{{ $x }}",
    "{{ range $k, $v := $labels }}{{ if eq $k \"job\" }}{{ break }}{{ end }}{{ $k }}{{ end }}|{{ range $labels }}{{ if eq . \"node\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
    "{{ humanize \"1234\" }} {{ humanize \"abc\" }}",
    "{{ len 3 }}",
    "{{ index $labels 1 }}",
    "{{ toUpper $value }}",
    "{{ $value | printf \"%.3f\" }} {{ \"x\" | printf \"%s-%s\" \"y\" }}",
    // Not `{{ range 3 }}`: ranging over an int needs Go 1.22 (Prometheus 3); 2.42 refuses it.
    "{{ with $labels.nope }}x{{ else }}y{{ end }}{{ index (query \"vector(2)\") 0 }}{{ printf \"%v\" (query \"vector(2)\" | first) }}{{ sortByLabel \"x\" (query \"absent_metric\") }}",
    "line one\n{{ $labels.job\n | printf \"%s!\" }}\n{{ .Nope }}",
    "{{ $labels.instance | printf \"%s\" | len }} {{ not $value }} {{ and $value \"\" }} {{ or nil 0 }}",
    "{{ if and (gt $value 100.0) (eq $labels.job \"node\") }}both{{ end }} {{ eq $labels.job \"node\" \"x\" }} {{ ge $value 1234.5678 }}",
    "{{ humanizeTimestamp \"nope\" }}",
    "{{ define \"x\" }}{{ .Nope }}{{ end }}{{ template \"x\" . }}",
    "{{ lt \"a\" 1 }}",
    "{{ (query \"vector(2)\").x }}",
    "{{ humanize 1234567 }} {{ humanize 0.000012 }} {{ humanize1024 1048576 }} {{ humanizeDuration 90061 }} {{ humanizeDuration 0.0005 }} {{ humanizePercentage 0.5 }}",
    "{{ printf \"%6.2f%%|%+d|% d|%x|%X|%o|%b|%c|%U|%t|%5t|%-5d|%05d\" 99.5 5 5 \"hi\" 255 8 5 65 65 true false 42 -42 }}",
    "{{ printf \"%.3g|%.10g|%g|%G|%e|%.0f|%10.4e\" 1234.5678 0.333333333333 1e21 1e-7 0.0 2.5 123456.789 }}",
    "{{ template \"missing\" }}",
    "{{ $labels.instance | reReplaceAll \":.*\" \"\" | toUpper | printf \"host=%s\" }}",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// What real Prometheus answers for the queries in [`LIVE_CASES`].
fn live_query(q: &str) -> Result<Vec<QuerySample>, String> {
    Ok(match q {
        "vector(2)" => vec![sample(&[], 2.0)],
        "absent_metric" => vec![],
        _ if q.starts_with("label_replace(vector(7)") => vec![
            sample(&[("instance", "b")], 7.0),
            sample(&[("instance", "a")], 3.0),
        ],
        _ => return Err(format!("unexpected query {q}")),
    })
}

/// Runs real Prometheus with an alert whose annotations are [`LIVE_CASES`], reads the
/// expanded annotations from its API, and requires ours to be identical.
#[test]
fn expansions_match_real_prometheus() {
    let bin = std::path::Path::new("/usr/bin/prometheus");
    if !bin.exists() {
        eprintln!("skipping: /usr/bin/prometheus is missing (install prometheus to compare templates with it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let annotations: serde_json::Map<String, serde_json::Value> = LIVE_CASES
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("a{i:03}"), serde_json::Value::from(*t)))
        .collect();
    let expr = "label_replace(label_replace(vector(1234.5678), \"instance\", \"node-1.example.com:9100\", \"\", \"\"), \"job\", \"node\", \"\", \"\")";
    let rules = serde_json::json!({"groups": [{"name": "g", "rules": [
        {"alert": "TemplateCheck", "expr": expr, "annotations": annotations}
    ]}]});
    std::fs::write(dir.path().join("rules.yml"), rules.to_string()).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\nrule_files: [rules.yml]\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.external-url=http://prom.example:9090/prefix/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got = None;
    for _ in 0..600 {
        if let Some(body) = http_get(port, "/prefix/api/v1/alerts") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(a) = v["data"]["alerts"].get(0) {
                got = Some(a["annotations"].clone());
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let got = got.expect("Prometheus reported the alert within a minute");

    let labels = Labels::new([("instance", "node-1.example.com:9100"), ("job", "node")]).unwrap();
    let ext = Labels::new([("cluster", "c1")]).unwrap();
    let data = AlertData {
        labels: &labels,
        external_labels: &ext,
        external_url: "http://prom.example:9090/prefix",
        value: 1234.5678,
    };
    let mut mismatches = Vec::new();
    for (i, text) in LIVE_CASES.iter().enumerate() {
        let want = got[format!("a{i:03}")]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ours = match expand_alert("TemplateCheck", text, &data, 0, &live_query) {
            Ok(s) => s,
            Err(e) => format!("<error expanding template: {e}>"),
        };
        if ours != want {
            mismatches.push(format!(
                "{text}\n  prometheus: {want:?}\n  ours:       {ours:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} differ:\n{}",
        mismatches.len(),
        LIVE_CASES.len(),
        mismatches.join("\n")
    );
}

/// Templates that do not parse, each of which `promtool check rules` (Prometheus 2.42) must
/// reject with the same message as [`check`].
const PARSE_ERROR_CASES: &[&str] = &[
    "{{ foo }}",
    "{{",
    "{{ if }}",
    "{{ end }}",
    "{{ $x }}",
    "{{ 1 | 2 }}",
    "{{ \"x }}",
    "{{ .a | }}",
    "{{ (1 }}",
    "{{ 1) }}",
    "{{ break }}",
    "line1\n{{ range }}",
    "{{ define \"a\" }}x{{ end }}{{ define \"a\" }}y{{ end }}",
    "{{ else }}",
    "{{ 1.2.3 }}",
    "{{ $x := }}",
    "{{/* x }}",
    "{{/* x */ }}",
    "{{ nil.x }}",
    "{{ 08 }}",
    "{{ 1e }}",
    "{{ @ }}",
    "{{ 'ab' }}",
    "{{ template foo }}",
    "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
    "{{ range $a, $b, $c := 1 }}{{ end }}",
    "{{ $a, $b := 1 }}",
    "{{ 99999999999999999999 }}",
    "{{ .a.b c }}{{ .x$ }}",
    "{{ \"\\q\" }}",
    "{{ if 1 }}\n\nunclosed",
    "{{ with }}{{ end }}",
    "{{ \u{2192} }}",
];

#[test]
fn parse_errors_match_promtool() {
    let bin = std::path::Path::new("/usr/bin/promtool");
    if !bin.exists() {
        eprintln!("skipping: /usr/bin/promtool is missing (install prometheus to compare templates with it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    for (i, text) in PARSE_ERROR_CASES.iter().enumerate() {
        let path = dir.path().join(format!("r{i}.json"));
        let rules = serde_json::json!({"groups": [{"name": "g", "rules": [
            {"alert": "X", "expr": "vector(1)", "annotations": {"a": text}}
        ]}]});
        std::fs::write(&path, rules.to_string()).unwrap();
        let out = std::process::Command::new(bin)
            .arg("check")
            .arg("rules")
            .arg(&path)
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let want = all.lines().find_map(|l| {
            l.split_once("annotation \"a\": ")
                .map(|(_, m)| m.to_string())
        });
        let ours = check("X", text).err().map(|e| e.to_string());
        if want != ours {
            mismatches.push(format!(
                "{text:?}\n  promtool: {want:?}\n  ours:     {ours:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} differ:\n{}",
        mismatches.len(),
        PARSE_ERROR_CASES.len(),
        mismatches.join("\n")
    );
}
