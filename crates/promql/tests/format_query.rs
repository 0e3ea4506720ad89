//! `/api/v1/format_query` answers as Prometheus 3 does: its printer tests' expected strings
//! (promql/parser/printer_test.go), and for the syntax our parser reaches through rewrites
//! (`anchored`/`smoothed`, duration expressions, trims, `info()`, `fill`) the strings
//! Prometheus's printer.go and prettier.go build for those nodes.

fn f(q: &str) -> String {
    promql::format_query(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn check(cases: &[(&str, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(q, want)| {
            let got = promql::format_query(q).map_err(|e| e.to_string());
            (got.as_deref() != Ok(*want)).then(|| format!("{q}\n  got  {got:?}\n  want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn prometheus_printer_test_cases() {
    check(&[
        (
            r#"sum by() (task:errors:rate10s{job="s"})"#,
            r#"sum(task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"sum by(code) (task:errors:rate10s{job="s"})"#,
            r#"sum by (code) (task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"sum without() (task:errors:rate10s{job="s"})"#,
            r#"sum without () (task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"sum without(instance) (task:errors:rate10s{job="s"})"#,
            r#"sum without (instance) (task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"topk(5, task:errors:rate10s{job="s"})"#,
            r#"topk(5, task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"count_values("value", task:errors:rate10s{job="s"})"#,
            r#"count_values("value", task:errors:rate10s{job="s"})"#,
        ),
        ("a - on() c", "a - on () c"),
        ("a - on(b) c", "a - on (b) c"),
        ("a - on(b) group_left(x) c", "a - on (b) group_left (x) c"),
        (
            "a - on(b) group_left(x, y) c",
            "a - on (b) group_left (x, y) c",
        ),
        ("a - on(b) group_left c", "a - on (b) group_left () c"),
        ("a - on(b) group_left() (c)", "a - on (b) group_left () (c)"),
        ("a - ignoring(b) c", "a - ignoring (b) c"),
        ("a - ignoring() c", "a - c"),
        ("up > bool 0", "up > bool 0"),
        ("a offset 1m", "a offset 1m"),
        ("a offset -7m", "a offset -7m"),
        (r#"a{c="d"}[5m] offset 1m"#, r#"a{c="d"}[5m] offset 1m"#),
        ("a[5m] offset 1m", "a[5m] offset 1m"),
        ("a[12m] offset -3m", "a[12m] offset -3m"),
        ("a[1h:5m] offset 1m", "a[1h:5m] offset 1m"),
        (r#"{__name__="a"}"#, r#"{__name__="a"}"#),
        (r#"a{b!="c"}[1m]"#, r#"a{b!="c"}[1m]"#),
        (r#"a{b=~"c"}[1m]"#, r#"a{b=~"c"}[1m]"#),
        (r#"a{b!~"c"}[1m]"#, r#"a{b!~"c"}[1m]"#),
        ("a @ 10", "a @ 10.000"),
        ("a[1m] @ 10", "a[1m] @ 10.000"),
        ("a @ start()", "a @ start()"),
        ("a @ end()", "a @ end()"),
        ("a[1m] @ start()", "a[1m] @ start()"),
        ("a[1m] @ end()", "a[1m] @ end()"),
    ]);
}

#[test]
fn anchored_and_smoothed_print_after_the_range() {
    check(&[
        ("rate(foo[5m] anchored)", "rate(foo[5m] anchored)"),
        ("increase(foo[5m]   smoothed)", "increase(foo[5m] smoothed)"),
        ("foo smoothed", "foo smoothed"),
        (
            r#"rate(foo{b="1",a="2"}[5m] anchored @ 10 offset 1m)"#,
            r#"rate(foo{a="2",b="1"}[5m] anchored @ 10.000 offset 1m)"#,
        ),
        ("foo smoothed offset 5m", "foo smoothed offset 5m"),
        ("foo @ 10 smoothed", "foo @ 10.000 smoothed"),
        (
            "sum(rate(foo[1m] anchored)) / sum(rate(bar[1m] smoothed))",
            "sum(rate(foo[1m] anchored)) / sum(rate(bar[1m] smoothed))",
        ),
    ]);
}

#[test]
fn duration_expressions_print_as_written_with_spaces() {
    check(&[
        ("foo[5m+1m]", "foo[5m + 1m]"),
        ("foo[2m*15]", "foo[2m * 15]"),
        ("rate(foo[(5m+1m)])", "rate(foo[(5m + 1m)])"),
        ("foo[step()]", "foo[step()]"),
        ("foo[1h:step()*2]", "foo[1h:step() * 2]"),
        ("foo[5m:1m+1m] offset 1m", "foo[5m:1m + 1m] offset 1m"),
        ("foo offset -step()", "foo offset -step()"),
        ("foo offset (2*1m)", "foo offset (2 * 1m)"),
        (
            "foo offset min_of(step(), 1s)",
            "foo offset min_of(step(), 1s)",
        ),
        (
            "count_over_time(foo[max_of(min_of(step()+1,1h),1ms)])",
            "count_over_time(foo[max_of(min_of(step() + 1, 1h), 1ms)])",
        ),
        ("foo[range()]", "foo[range()]"),
        ("foo[90m]", "foo[1h30m]"),
        ("foo[(300)]", "foo[5m]"),
        ("foo offset -(5m)", "foo offset -5m"),
        ("foo[1h30m % 1h]", "foo[1h30m % 1h]"),
        // Text that only looks like a duration expression is left alone.
        (r#"foo{a="[1+1]"}"#, r#"foo{a="[1+1]"}"#),
    ]);
}

#[test]
fn trims_info_fill_and_at_print_as_prometheus() {
    check(&[
        ("h </ 5", "h </ 5"),
        ("h >/ 0.5", "h >/ 0.5"),
        ("rate(h[5m]) </ 2 atan2 x", "rate(h[5m]) </ 2 atan2 x"),
        (
            r#"info(rate(x[5m]), {k8s_cluster_name=~".+"})"#,
            r#"info(rate(x[5m]), {k8s_cluster_name=~".+"})"#,
        ),
        (r#"info(x, {data=~".*"})"#, r#"info(x, {data=~".*"})"#),
        ("a + fill(0) b", "a + fill (0) b"),
        (
            "a + on(x) fill_left(1) fill_right(2) b",
            "a + on (x) fill_left (1) fill_right (2) b",
        ),
        (
            "foo[5m:1m] @ end() offset 1m",
            "foo[5m:1m] @ end() offset 1m",
        ),
        ("foo @ start() offset -1m", "foo @ start() offset -1m"),
        ("foo @ -10.5", "foo @ -10.500"),
        ("-Inf + NaN", "-Inf + NaN"),
        (r#""a\tb" "#, r#""a\tb""#),
    ]);
}

#[test]
fn long_expressions_split_as_prettier_does() {
    let a = "metric_one_with_a_rather_long_name_to_fill_the_line_xxxxxxxxxxx";
    let b = "metric_two_with_a_rather_long_name_to_fill_the_line_yyyyyyyyyyy";
    assert_eq!(
        f(&format!("{a} + {b} + c")),
        format!("    {a}\n  +\n    {b}\n+\n  c")
    );
    assert_eq!(
        f(&format!(
            "sum by (job) (rate({a}[5m] anchored) / rate({b}[5m:step()]))"
        )),
        format!("sum by (job) (\n    rate({a}[5m] anchored)\n  /\n    rate({b}[5m:step()])\n)")
    );
    // Go's quirk: a subquery that fits is printed without its indent.
    assert_eq!(
        f(&format!("quantile_over_time(0.9, rate({a}[5m])[1h:1m])")),
        format!("quantile_over_time(\n  0.9,\nrate({a}[5m])[1h:1m]\n)")
    );
}

#[test]
fn bad_queries_still_fail_with_bad_data() {
    for q in [
        "sum(",
        "foo[5m+]",
        "foo anchored smoothed",
        "rate(foo[5m]) </",
    ] {
        let e = promql::format_query(q).unwrap_err();
        assert_eq!(e.error_type(), "bad_data", "{q}: {e}");
    }
}

#[test]
fn print_query_is_the_one_line_string_form() {
    // What Prometheus shows as a rule's `query` and puts in alerts' generator links.
    let a = "metric_one_with_a_rather_long_name_to_fill_the_line_xxxxxxxxxxxxx";
    let b = "metric_two_with_a_rather_long_name_to_fill_the_line_yyyyyyyyyyy";
    assert_eq!(
        promql::print_query(&format!("{a}+{b}+c")).unwrap(),
        format!("{a} + {b} + c")
    );
    assert_eq!(
        promql::print_query("sum by(job)(rate(x[5m]))>0").unwrap(),
        "sum by (job) (rate(x[5m])) > 0"
    );
    assert_eq!(promql::print_query("up==0").unwrap(), "up == 0");
    assert!(promql::print_query("sum(").is_err());
}
