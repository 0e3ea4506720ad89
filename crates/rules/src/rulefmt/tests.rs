//! Rule files as Prometheus reads them; the messages are Prometheus's (rulefmt_test.go and
//! `promtool check rules` 2.42 on the same input).

use super::*;

fn ok(yaml: &str) -> RuleFile {
    parse("rules.yml", yaml.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// The errors of a file, without their positions (see `rule_errors_name_the_rules_line`).
fn errors(yaml: &str) -> Vec<String> {
    parse("rules.yml", yaml.as_bytes())
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| format!("{}: {}", e.file, e.message))
        .collect()
}

#[test]
fn rule_errors_name_the_rules_line() {
    let e = parse(
        "rules.yml",
        b"groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n  - name: h\n    rules:\n      - {record: b, expr: up}\n      - record: c\n        labels: {x: y}\n        expr: 'sum('\n",
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].position, Some((9, 9)), "{e}");
    assert!(
        e.to_string()
            .starts_with("rules.yml:9:9: group \"h\", rule 2, \"c\": could not parse expression"),
        "{e}"
    );
    // Group-level problems have no rule to point at.
    let e = parse("rules.yml", b"groups:\n  - name: ''\n    rules: []\n").unwrap_err();
    assert_eq!(e.0[0].position, None, "{e}");
}

#[test]
fn a_full_file_parses_with_every_field() {
    let f = ok(r#"
groups:
  - name: example
    interval: 30s
    query_offset: 1m
    limit: 10
    labels:
      team: db
    rules:
      - record: job:http_inprogress_requests:sum
        expr: sum by (job) (http_inprogress_requests)
        labels:
          env: ""
      - alert: HighRequestLatency
        expr: job:request_latency_seconds:mean5m{job="myjob"} > 0.5
        for: 10m
        keep_firing_for: 1h30m
        labels:
          severity: page
          priority: 1
          paging: true
        annotations:
          summary: High request latency on {{ $labels.instance }}
  - name: second
    rules:
"#);
    assert_eq!(f.groups.len(), 2);
    let g = &f.groups[0];
    assert_eq!(g.name, "example");
    assert_eq!(g.interval, Some(Duration::from_secs(30)));
    assert_eq!(g.query_offset, Some(Duration::from_secs(60)));
    assert_eq!(g.limit, 10);
    assert_eq!(g.labels, [("team".to_string(), "db".to_string())]);
    assert_eq!(
        g.rules[0].kind,
        RuleKind::Record("job:http_inprogress_requests:sum".into())
    );
    assert_eq!(g.rules[0].labels, [("env".to_string(), String::new())]);
    let a = &g.rules[1];
    assert_eq!(a.kind, RuleKind::Alert("HighRequestLatency".into()));
    assert_eq!(a.name(), "HighRequestLatency");
    assert_eq!(a.hold, Duration::from_secs(600));
    assert_eq!(a.keep_firing_for, Duration::from_secs(5400));
    // Go's YAML reads any scalar into a string field: numbers and booleans keep their text.
    let labels: Vec<(&str, &str)> = a
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("paging", "true"), ("priority", "1"), ("severity", "page")]
    );
    assert_eq!(a.annotations.len(), 1);
    let second = &f.groups[1];
    assert!(second.rules.is_empty());
    assert_eq!((second.interval, second.query_offset), (None, None));
}

#[test]
fn empty_files_and_zero_values_are_accepted() {
    assert_eq!(ok(""), RuleFile::default());
    assert_eq!(ok("# only a comment\n"), RuleFile::default());
    assert_eq!(ok("groups:\n"), RuleFile::default());
    let f = ok("groups:\n- name: g\n  interval: 0\n  limit: -1\n  rules:\n  - alert: x\n    expr: up\n    for: 0\n");
    let g = &f.groups[0];
    assert_eq!(g.interval, None, "interval 0 means the global interval");
    assert_eq!(g.limit, 0, "a negative limit is no limit");
    assert_eq!(g.rules[0].hold, Duration::ZERO);
}

#[test]
fn validation_reports_every_problem_with_prometheus_messages() {
    // The same file through promtool 2.42 gives these messages (after its positions).
    let got = errors(
        r#"
groups:
  - name: g
    rules:
      - record: job:up
        expr: sum by (job) (up)
        for: 5m
        keep_firing_for: 5m
        annotations:
          a: b
      - record: "bad-name"
        expr: up
        labels:
          __name__: x
          "1x": y
      - alert: Both
        record: both
        expr: up
      - expr: up
      - record: x
        expr: ""
      - record: y
        expr: "sum("
      - alert: Z
        expr: up
        annotations:
          "bad-annotation": x
  - name: g
    rules: []
  - name: ""
    labels:
      __name__: x
"#,
    );
    let want = [
        r#"rules.yml: group "g", rule 1, "job:up": invalid field 'annotations' in recording rule"#,
        r#"rules.yml: group "g", rule 1, "job:up": invalid field 'for' in recording rule"#,
        r#"rules.yml: group "g", rule 1, "job:up": invalid field 'keep_firing_for' in recording rule"#,
        r#"rules.yml: group "g", rule 2, "bad-name": invalid recording rule name: bad-name"#,
        r#"rules.yml: group "g", rule 2, "bad-name": invalid label name: 1x"#,
        r#"rules.yml: group "g", rule 2, "bad-name": invalid label name: __name__"#,
        r#"rules.yml: group "g", rule 3, "Both": only one of 'record' and 'alert' must be set"#,
        r#"rules.yml: group "g", rule 4, "": one of 'record' or 'alert' must be set"#,
        r#"rules.yml: group "g", rule 5, "x": field 'expr' must be set in rule"#,
        r#"rules.yml: group "g", rule 7, "Z": invalid annotation name: bad-annotation"#,
        r#"rules.yml: groupname: "g" is repeated in the same file"#,
        r#"rules.yml: Groupname must not be empty"#,
        r#"rules.yml: invalid label name: __name__"#,
    ];
    let parse_error = got
        .iter()
        .find(|e| e.contains(r#"rule 6, "y""#))
        .expect("the bad expression is reported");
    assert!(
        parse_error
            .starts_with(r#"rules.yml: group "g", rule 6, "y": could not parse expression: "#),
        "{parse_error}"
    );
    let rest: Vec<&str> = got
        .iter()
        .filter(|e| !e.contains(r#"rule 6, "y""#))
        .map(String::as_str)
        .collect();
    assert_eq!(rest, want);
}

#[test]
fn record_names_are_metric_names() {
    // Prometheus's invalid_record_name.bad.yaml: a selector where a name belongs.
    let got = errors(
        "groups:\n- name: g\n  rules:\n  - record: strawberry{flavor=\"sweet\"}\n    expr: 1\n",
    );
    assert_eq!(
        got,
        [
            r#"rules.yml: group "g", rule 1, "strawberry{flavor=\"sweet\"}": invalid recording rule name: strawberry{flavor="sweet"}"#
        ]
    );
    ok("groups:\n- name: g\n  rules:\n  - record: a:b_c:rate5m\n    expr: 1\n");
}

#[test]
fn yaml_errors_carry_their_position() {
    // Unknown fields are errors (Prometheus decodes with KnownFields).
    let e = parse(
        "f.yml",
        b"groups:\n  - name: g\n    foo: bar\n    rules: []\n",
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].position, Some((3, 5)));
    assert!(e.0[0].message.contains("unknown field `foo`"), "{e}");
    // serde_yaml names the path to the field.
    assert!(
        e.to_string()
            .starts_with("f.yml:3:5: groups[0]: unknown field `foo`"),
        "{e}"
    );

    let e = parse(
        "f.yml",
        b"groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n    annotation: {}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `annotation`"), "{e}");

    let e = parse("f.yml", b"grops: []\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `grops`"), "{e}");

    // A duration Prometheus cannot read: its message.
    let e = parse(
        "f.yml",
        b"groups:\n- name: g\n  rules:\n  - alert: x\n    expr: up\n    for: 5x\n",
    )
    .unwrap_err();
    assert_eq!(
        e.0[0].message,
        r#"groups[0].rules[0]: not a valid duration string: "5x""#
    );
    // serde_yaml places a field's own error at the start of the rule holding it.
    assert_eq!(e.0[0].position.map(|p| p.0), Some(4));

    // A mapping key given twice.
    let e = parse(
        "f.yml",
        b"groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n    labels:\n      a: 1\n      a: 2\n",
    )
    .unwrap_err();
    assert!(
        e.0[0]
            .message
            .contains(r#"mapping key "a" already defined"#),
        "{e}"
    );

    let e = parse(
        "f.yml",
        b"groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n    expr: down\n",
    )
    .unwrap_err();
    assert!(e.0[0].message.contains("duplicate field `expr`"), "{e}");

    // Wrong shapes and broken syntax.
    for bad in [
        &b"groups: 5\n"[..],
        b"groups:\n- name: g\n  rules: yes\n",
        b"groups:\n- name: [g]\n",
        b"groups: [\n",
        b"\xff\xfe",
    ] {
        assert!(
            parse("f.yml", bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn hostile_input_is_bounded() {
    let big = vec![b'#'; MAX_RULE_FILE_BYTES + 1];
    let e = parse("big.yml", &big).unwrap_err();
    assert!(e.to_string().contains("larger than 16 MiB"), "{e}");

    let mut many = String::from("groups:\n");
    for i in 0..=MAX_GROUPS {
        many.push_str(&format!("- name: g{i}\n"));
    }
    let e = parse("many.yml", many.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("more than the 10000 allowed"), "{e}");

    // A billion laughs stays an error, not a blow-up: nine levels of nine aliases each,
    // reached through a field that must be decoded.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let mut laughs = format!(
        "groups:\n- name: x\n  labels: &a [{}]\n",
        ["lol"; 9].join(",")
    );
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        laughs.push_str(&format!("- name: {n}\n  labels: &{n} [{refs}]\n", n = w[1]));
    }
    assert!(parse("laughs.yml", laughs.as_bytes()).is_err());

    // Deep nesting.
    let deep = format!("groups: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse("deep.yml", deep.as_bytes()).is_err());

    // Many errors are listed up to the bound, then counted.
    let mut bad = String::from("groups:\n- name: g\n  rules:\n");
    for _ in 0..(MAX_REPORTED_ERRORS + 5) {
        bad.push_str("  - expr: up\n");
    }
    let e = parse("bad.yml", bad.as_bytes()).unwrap_err();
    assert_eq!(e.0.len(), MAX_REPORTED_ERRORS + 1);
    assert_eq!(
        e.0.last().unwrap().to_string(),
        "bad.yml: 5 more errors not shown"
    );
}

#[test]
fn load_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.yml");
    std::fs::write(
        &p,
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: 1\n",
    )
    .unwrap();
    assert_eq!(load_file(&p).unwrap().groups[0].rules.len(), 1);
    let e = load_file(&dir.path().join("missing.yml")).unwrap_err();
    assert!(e.to_string().contains("missing.yml: cannot open"), "{e}");
}

/// TestTemplateParsing: alert labels and annotations must parse as templates; recording
/// rules' labels are not templates.
#[test]
fn alert_templates_must_parse() {
    let rule = |labels: &str, annotations: &str| {
        format!("groups:\n- name: example\n  rules:\n  - alert: InstanceDown\n    expr: up == 0\n    for: 5m\n    labels:\n      {labels}\n    annotations:\n      {annotations}\n")
    };
    ok(&rule(
        r#"severity: "page""#,
        r#"summary: "Instance {{ $labels.instance }} down""#,
    ));
    assert_eq!(
        errors(&rule(
            r#"severity: "page""#,
            r#"summary: "Instance {{ $label.instance }} down""#
        )),
        [
            r#"rules.yml: group "example", rule 1, "InstanceDown": annotation "summary": template: __alert_InstanceDown:1: undefined variable "$label""#
        ]
    );
    assert_eq!(
        errors(&rule(
            r#"severity: "{{$this_is_wrong}}""#,
            r#"summary: "ok""#
        )),
        [
            r#"rules.yml: group "example", rule 1, "InstanceDown": label "severity": template: __alert_InstanceDown:1: undefined variable "$this_is_wrong""#
        ]
    );
    assert_eq!(
        errors(&rule(
            r#"severity: "page""#,
            r#"description: "{{$labels.quantile * 100}}""#
        ))
        .len(),
        1
    );
    ok("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      x: '{{ not a template'\n");
}
