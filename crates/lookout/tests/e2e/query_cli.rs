//! `lookout query` against a real server: data loaded by `lookout loadgen metrics` over
//! remote_write, then the CLI's table, chart, `--json` and one-line errors checked against
//! what the server's own API answers for the same query.

use std::process::{Command, Output};

use serde_json::Value;

use super::harness::DataDir;

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env_remove("LOOKOUT_SERVER")
        .output()
        .expect("run the lookout binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn query_prints_tables_charts_json_and_one_line_errors() {
    let dir = DataDir::new();
    let server = dir.start();
    let base = format!("http://{}", server.http);
    // 100 series of one host (50 metric names x 2 `cpu` values), 21 samples each, 15 s apart,
    // ending five minutes before `end` so the lookback still sees the last one.
    let start_ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60
        - 60)
        * 60_000;
    let last = start_ms + 20 * 15_000;
    let gen = lookout(&[
        "loadgen",
        "metrics",
        "--endpoint",
        &format!("{base}/api/v1/write"),
        "--series",
        "100",
        "--rounds",
        "21",
        "--interval",
        "15s",
        "--start-ms",
        &start_ms.to_string(),
        "--json",
    ]);
    assert!(gen.status.success(), "loadgen: {}", text(&gen.stderr));
    let at = format!("{}", last / 1000);

    // Instant: a table whose rows are the server's answer.
    let out = lookout(&["query", "--server", &base, "--time", &at, "node_load1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let api = server.get_json(&format!("/api/v1/query?query=node_load1&time={at}"), 200);
    let rows = api["data"]["result"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{api}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "cpu", "instance", "job", "VALUE"],
        "{table}"
    );
    for r in rows {
        let want = [
            "node_load1",
            r["metric"]["cpu"].as_str().unwrap(),
            "host-0:9100",
            "node",
            r["value"][1].as_str().unwrap(),
        ];
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == want),
            "no row {want:?} in\n{table}"
        );
    }

    // --json: the server's body, unchanged.
    let out = lookout(&[
        "query",
        "--server",
        &base,
        "--time",
        &at,
        "--json",
        "node_load1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(printed, api);

    // Range: a header, then one sparkline per series with its legend.
    let (s, e) = ((start_ms + 60_000) / 1000, last / 1000);
    let out = lookout(&[
        "query",
        "--server",
        &base,
        "--start",
        &s.to_string(),
        "--end",
        &e.to_string(),
        "--step",
        "15s",
        "rate(node_cpu_seconds_total[1m])",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let chart = text(&out.stdout);
    let lines: Vec<&str> = chart.lines().collect();
    assert!(
        lines[0].starts_with("rate(node_cpu_seconds_total[1m])")
            && lines[0].ends_with("step 15s, 2 series"),
        "{chart}"
    );
    assert_eq!(lines.len(), 3, "{chart}");
    for (l, cpu) in lines[1..].iter().zip(["0", "1"]) {
        assert!(
            l.chars().any(|c| ('▁'..='█').contains(&c)),
            "no sparkline in {l:?}"
        );
        assert!(
            l.ends_with(&format!(
                "{{cpu=\"{cpu}\", instance=\"host-0:9100\", job=\"node\"}}"
            )),
            "legend of {l:?}"
        );
        assert!(l.contains(" min ") && l.contains(" max ") && l.contains(" last "));
    }

    // Errors: one line, the server's error type and message, exit code 1.
    let out = lookout(&["query", "--server", &base, "sum(node_load1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: bad_data: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Nobody listening: says where it looked and what to do.
    let out = lookout(&["query", "--server", "http://127.0.0.1:1", "up"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach Lookout at http://127.0.0.1:1") && err.contains("lookout up"),
        "{err}"
    );

    // Usage errors are clap's, exit code 2.
    let out = lookout(&["query", "--time", "1", "--step", "15s", "up"]);
    assert_eq!(out.status.code(), Some(2));
}
