//! The `prometheus.yml` scrape settings beyond targets and relabeling: `target_limit`,
//! `keep_dropped_targets`, `follow_redirects`, `http_headers`, `track_timestamps_staleness`,
//! `http_sd_configs` and the proxy settings.
//!
//! Where Debian's Prometheus 2.42 knows a setting (`target_limit`, `follow_redirects`,
//! `http_sd_configs`, `proxy_url`), Lookout's scrape manager and a real Prometheus run the same
//! prometheus.yml against the same scripted targets, and their `/api/v1/targets` answers
//! (health, lastError, discovered labels) and stored series are compared. Settings 2.42
//! refuses as unknown (`keep_dropped_targets`, `http_headers`, `track_timestamps_staleness`,
//! `no_proxy`, all newer) are tested against Lookout alone, following Prometheus 3's documented
//! behaviour; each test says so.

mod scrape_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use ingest::scrape::{ScrapeConfig, ScrapeManager, TargetsSnapshot};
use scrape_common::*;

const TEXT: &str = "text/plain; version=0.0.4";

fn show(set: &BTreeSet<&LabelMap>) -> String {
    set.iter()
        .map(|m| format!("  {m:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_same_series(theirs: &BTreeSet<LabelMap>, ours: &BTreeSet<LabelMap>) {
    let only_theirs: BTreeSet<_> = theirs.difference(ours).collect();
    let only_ours: BTreeSet<_> = ours.difference(theirs).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "series differ\nonly in Prometheus:\n{}\nonly in Lookout:\n{}",
        show(&only_theirs),
        show(&only_ours)
    );
}

/// Prometheus's active targets of `pool` as (labels, health, lastError), sorted.
fn their_targets(prom: &Prometheus, pool: &str) -> Vec<(LabelMap, String, String)> {
    let mut v: Vec<_> = prom.targets()["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["scrapePool"] == pool)
        .map(|t| {
            (
                serde_json::from_value(t["labels"].clone()).unwrap(),
                t["health"].as_str().unwrap().to_string(),
                t["lastError"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Ours, in the same shape.
async fn our_targets(m: &ScrapeManager, pool: &str) -> Vec<(LabelMap, String, String)> {
    let mut v: Vec<_> = m
        .targets()
        .await
        .active
        .into_iter()
        .filter(|t| t.scrape_pool == pool)
        .map(|t| (t.labels, t.health.as_str().to_string(), t.last_error))
        .collect();
    v.sort();
    v
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn sd_file(addrs: &[String]) -> String {
    serde_json::json!([{ "targets": addrs }]).to_string()
}

/// `target_limit` (Prometheus 2.42 has it): past the limit every target of the pool is down
/// with Prometheus's error and no request is sent; the synthetic series are the same in
/// both; when discovery brings the count under the limit the targets scrape again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_limit_like_prometheus() {
    let mut servers = Vec::new();
    for i in 0..3 {
        servers
            .push(ScriptedTarget::start(Answer::Body(TEXT, format!("m{{i=\"{i}\"}} 1\n"))).await);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    write_atomic(&sd, &sd_file(&addrs));
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: lim\n    target_limit: 2\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            sd.display()
        ),
    )
    .unwrap();
    let start = unix_now() - 1;
    let prom = Prometheus::start(&cfg, &dir.path().join("data")).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(
        ScrapeConfig::load_prometheus_file(&cfg).unwrap(),
        sink.clone(),
    );

    let want = "target_limit exceeded (number of targets: 3, limit: 2)";
    let all_down =
        |t: &[(LabelMap, String, String)]| t.len() == 3 && t.iter().all(|(_, h, _)| h == "down");
    eventually_async(Duration::from_secs(30), "both over the limit", || async {
        (all_down(&their_targets(&prom, "lim")) && all_down(&our_targets(&m, "lim").await))
            .then_some(())
    })
    .await;
    // Two scrapes each, then compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let theirs = their_targets(&prom, "lim");
    assert_eq!(theirs, our_targets(&m, "lim").await);
    assert!(theirs.iter().all(|(_, _, e)| e == want), "{theirs:?}");
    for s in &servers {
        assert!(
            s.requests.lock().is_empty(),
            "a target over the limit was scraped: {:?}",
            s.requests.lock()
        );
    }
    assert_same_series(&prom.series("{job=\"lim\"}", start), &sink.series());
    let ups = sink.samples_of(&[("__name__", "up")]);
    assert!(!ups.is_empty() && ups.iter().all(|(_, _, v)| *v == 0.0));

    // The count drops under the limit: both scrape the two left.
    write_atomic(&sd, &sd_file(&addrs[..2]));
    let all_up = |t: &[(LabelMap, String, String)]| {
        t.len() == 2 && t.iter().all(|(_, h, e)| h == "up" && e.is_empty())
    };
    eventually_async(Duration::from_secs(40), "both under the limit", || async {
        (all_up(&their_targets(&prom, "lim")) && all_up(&our_targets(&m, "lim").await))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_same_series(&prom.series("{job=\"lim\"}", start), &sink.series());
    assert!(sink
        .series()
        .iter()
        .any(|s| s["__name__"] == "m" && s["i"] == "1"));
    assert!(servers[2].requests.lock().is_empty());
    m.shutdown().await;
}

/// `keep_dropped_targets` (Prometheus 3.x; 2.42 refuses the field, so Lookout alone): the
/// list keeps at most N dropped targets per pool, the count still counts all of them, and a
/// job without the setting inherits the global one.
#[tokio::test]
async fn keep_dropped_targets_bounds_the_list_not_the_count() {
    let targets: Vec<String> = (1..=5).map(|i| format!("'h{i}:9'")).collect();
    let yaml = format!(
        "global:\n  scrape_interval: 1h\n  keep_dropped_targets: 3\nscrape_configs:\n  - job_name: kept\n    keep_dropped_targets: 2\n    static_configs:\n      - targets: [{t}]\n    relabel_configs:\n      - {{source_labels: [__address__], regex: 'h1:9', action: keep}}\n  - job_name: global\n    static_configs:\n      - targets: [{t}]\n    relabel_configs:\n      - {{action: drop, source_labels: [__address__], regex: '.*'}}\n  - job_name: none\n",
        t = targets.join(", ")
    );
    let cfg = ScrapeConfig::parse_prometheus_yaml(&yaml, "t.yml", Path::new("/")).unwrap();
    assert_eq!(cfg.jobs[0].keep_dropped_targets, 2);
    assert_eq!(cfg.jobs[1].keep_dropped_targets, 3);
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(cfg, sink);
    let snap: TargetsSnapshot = eventually_async(Duration::from_secs(10), "discovery", || async {
        let s = m.targets().await;
        (s.dropped_counts.get("kept") == Some(&4) && s.dropped_counts.get("global") == Some(&5))
            .then_some(s)
    })
    .await;
    let dropped_in = |pool: &str| {
        snap.dropped
            .iter()
            .filter(|d| d.scrape_pool == pool)
            .count()
    };
    assert_eq!(dropped_in("kept"), 2);
    assert_eq!(snap.dropped_counts["kept"], 4);
    assert_eq!(dropped_in("global"), 3);
    assert_eq!(snap.dropped_counts["global"], 5);
    // A pool without targets is counted too, as Prometheus lists every pool.
    assert_eq!(snap.dropped_counts["none"], 0);
    assert_eq!(snap.active.len(), 1);
    m.shutdown().await;
}

/// `follow_redirects` (Prometheus 2.42 has it): the same health and lastError as Prometheus
/// for a redirect to another host, a relative one, too many, one without Location, and
/// redirects not followed; the same series.
///
/// One deliberate difference, checked here: Prometheus adds credentials in its HTTP
/// transport, so it sends them to whatever host a target redirects to (2.42 sends
/// `Authorization` from 127.0.0.1 to localhost); Lookout sends them only to the target's
/// host and its subdomains, as Go's client does for headers on the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_redirects_like_prometheus() {
    let fin = ScriptedTarget::start(Answer::Body(TEXT, "fin 1\n".into())).await;
    let cross = ScriptedTarget::start(Answer::Redirect(
        302,
        format!("http://localhost:{}/metrics", fin.addr.port()),
        "",
        String::new(),
    ))
    .await;
    let moved = ScriptedTarget::start(Answer::Redirect(
        301,
        "/final".into(),
        "/final",
        "moved 1\n".into(),
    ))
    .await;
    let perm = ScriptedTarget::start(Answer::Redirect(
        308,
        "/p?x=1".into(),
        "/p?x=1",
        "perm 1\n".into(),
    ))
    .await;
    let looping =
        ScriptedTarget::start(Answer::Redirect(307, "/again".into(), "", String::new())).await;
    let noloc =
        ScriptedTarget::start(Answer::Redirect(302, String::new(), "", String::new())).await;
    let job = |name: &str, addr: &std::net::SocketAddr, extra: &str| {
        format!("  - job_name: {name}\n{extra}    static_configs:\n      - targets: ['{addr}']\n")
    };
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}{}{}{}{}",
        job(
            "cross",
            &cross.addr,
            "    basic_auth: {username: u, password: p}\n"
        ),
        job("moved", &moved.addr, ""),
        job("perm", &perm.addr, ""),
        job("nofollow", &moved.addr, "    follow_redirects: false\n"),
        job("looping", &looping.addr, ""),
        job("noloc", &noloc.addr, ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, &yaml).unwrap();
    let start = unix_now() - 1;
    let prom = Prometheus::start(&cfg, &dir.path().join("data")).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(
        ScrapeConfig::load_prometheus_file(&cfg).unwrap(),
        sink.clone(),
    );
    let pools = ["cross", "moved", "perm", "nofollow", "looping", "noloc"];
    eventually_async(Duration::from_secs(30), "every target scraped", || async {
        for p in pools {
            let t = their_targets(&prom, p);
            let o = our_targets(&m, p).await;
            if t.len() != 1 || t[0].1 == "unknown" || o.len() != 1 || o[0].1 == "unknown" {
                return None;
            }
        }
        Some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut mismatches = Vec::new();
    for p in pools {
        let (t, o) = (their_targets(&prom, p), our_targets(&m, p).await);
        if t != o {
            mismatches.push(format!("{p}: Prometheus {t:?}\n   Lookout {o:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "targets differ:\n{}",
        mismatches.join("\n")
    );
    let err = |p: &str| their_targets(&prom, p)[0].2.clone();
    assert_eq!(err("cross"), "");
    assert_eq!(err("perm"), "");
    assert_eq!(
        err("nofollow"),
        "server returned HTTP status 301 Moved Permanently"
    );
    assert_eq!(err("looping"), "Get \"/again\": stopped after 10 redirects");
    assert_eq!(err("noloc"), "server returned HTTP status 302 Found");
    assert_same_series(&prom.series("{__name__=~\".+\"}", start), &sink.series());
    assert!(sink.series().iter().any(|s| s["__name__"] == "fin"));

    // Hops: both send a Referer; credentials go to the first host only from Lookout.
    let heads = |t: &ScriptedTarget, ua: &str| -> Vec<String> {
        t.requests
            .lock()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| h.contains(&format!("user-agent: {ua}")))
            .collect()
    };
    let referer = format!("referer: http://{}/metrics", cross.addr);
    let (theirs, ours) = (heads(&fin, "prometheus/"), heads(&fin, "lookout/"));
    assert!(!theirs.is_empty() && !ours.is_empty());
    assert!(
        theirs.iter().chain(&ours).all(|h| h.contains(&referer)),
        "{theirs:?}\n{ours:?}"
    );
    assert!(
        theirs
            .iter()
            .all(|h| h.contains("authorization: basic dtpw")),
        "{theirs:?}"
    );
    assert!(
        ours.iter().all(|h| !h.contains("authorization")),
        "{ours:?}"
    );
    assert!(heads(&cross, "lookout/")
        .iter()
        .all(|h| h.contains("authorization: basic dtpw")));
    // Ten requests per scrape of the loop, as Go's client: a multiple of ten by now.
    let loops = heads(&looping, "lookout/").len();
    assert!(loops >= 10, "{loops}");
    m.shutdown().await;
}

/// `http_headers` (Prometheus 3.x; 2.42 refuses the field, so Lookout alone): values,
/// secrets and files (read at each scrape, trimmed) are added in that order, on every hop
/// of a redirect; a file that cannot be read fails the scrape with prometheus/common's
/// words.
#[tokio::test]
async fn http_headers_are_sent_on_every_request() {
    let t = ScriptedTarget::start(Answer::Redirect(
        302,
        "/final".into(),
        "/final",
        "a 1\n".into(),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenant.txt"), "  from-file\n").unwrap();
    let yaml = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: h\n    http_headers:\n      X-Tenant:\n        values: [a, b]\n        secrets: [s3cret]\n        files: [tenant.txt]\n      accept-language: {{values: [en]}}\n    static_configs:\n      - targets: ['{}']\n  - job_name: missing\n    http_headers:\n      X-Token: {{files: [nope.txt]}}\n    static_configs:\n      - targets: ['{}']\n",
        t.addr, t.addr
    );
    let cfg = ScrapeConfig::parse_prometheus_yaml(&yaml, "t.yml", dir.path()).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(cfg, sink.clone());
    let snap = eventually_async(Duration::from_secs(10), "both scraped", || async {
        let s = m.targets().await;
        (s.active.len() == 2 && s.active.iter().all(|a| a.last_scrape.is_some())).then_some(s)
    })
    .await;
    let h = snap.active.iter().find(|a| a.scrape_pool == "h").unwrap();
    assert_eq!((h.health.as_str(), h.last_error.as_str()), ("up", ""));
    let missing = snap
        .active
        .iter()
        .find(|a| a.scrape_pool == "missing")
        .unwrap();
    assert_eq!(missing.health.as_str(), "down");
    assert!(
        missing.last_error.contains(&format!(
            "unable to read headers file {}",
            dir.path().join("nope.txt").display()
        )),
        "{}",
        missing.last_error
    );
    let heads: Vec<String> = t
        .requests
        .lock()
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| h.contains("x-tenant"))
        .collect();
    assert!(heads.iter().any(|h| h.starts_with("get /metrics ")));
    assert!(heads.iter().any(|h| h.starts_with("get /final ")));
    for h in &heads {
        let tenant: Vec<&str> = h
            .lines()
            .filter_map(|l| l.strip_prefix("x-tenant: "))
            .collect();
        assert_eq!(tenant, ["a", "b", "s3cret", "from-file"], "{h}");
        assert!(h.contains("accept-language: en"), "{h}");
    }
    m.shutdown().await;
}

/// `track_timestamps_staleness` (Prometheus 3.x; 2.42 refuses the field, so Lookout
/// alone): a series exposed with its own timestamp gets a staleness marker when it
/// disappears only with the setting on; without timestamps both jobs mark it.
#[tokio::test]
async fn track_timestamps_staleness_marks_timestamped_series() {
    let now_ms = unix_now() as i64 * 1000;
    let body = format!("ts_series 1 {now_ms}\nplain 2\n");
    let t = ScriptedTarget::start(Answer::Body(TEXT, body)).await;
    let yaml = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: tracked\n    track_timestamps_staleness: true\n    static_configs:\n      - targets: ['{a}']\n  - job_name: untracked\n    static_configs:\n      - targets: ['{a}']\n",
        a = t.addr
    );
    let cfg = ScrapeConfig::parse_prometheus_yaml(&yaml, "t.yml", Path::new("/")).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(cfg, sink.clone());
    eventually(Duration::from_secs(10), "both scraped", || {
        let s = sink.samples_of(&[("__name__", "ts_series")]);
        (s.iter().any(|(l, _, _)| l["job"] == "tracked")
            && s.iter().any(|(l, _, _)| l["job"] == "untracked"))
        .then_some(())
    })
    .await;
    t.set(Answer::Body(TEXT, "other 3\n".into()));
    let stale = |job: &str, name: &str| {
        sink.samples_of(&[("__name__", name), ("job", job)])
            .iter()
            .any(|(_, _, v)| is_stale(*v))
    };
    eventually(
        Duration::from_secs(10),
        "the plain series marked stale",
        || (stale("tracked", "plain") && stale("untracked", "plain")).then_some(()),
    )
    .await;
    // Both loops have scraped the new body at least once by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stale("tracked", "ts_series"));
    assert!(!stale("untracked", "ts_series"));
    // The marker carries the scrape's time, not the exposed timestamp.
    let marker = sink
        .samples_of(&[("__name__", "ts_series"), ("job", "tracked")])
        .into_iter()
        .find(|(_, _, v)| is_stale(*v))
        .unwrap();
    assert!(marker.1 > now_ms, "{marker:?}");
    m.shutdown().await;
}

/// `http_sd_configs` (Prometheus 2.42 has it): the same targets with the same discovered
/// labels (`__meta_url` included) as Prometheus; a failing refresh (500, a wrong
/// Content-Type) keeps the previous targets in both; a changed list is followed by both;
/// the discovery request carries Prometheus's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_like_prometheus() {
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(ScriptedTarget::start(Answer::Body(TEXT, format!("t{i} 1\n"))).await);
    }
    let a: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let list = |groups: serde_json::Value| Answer::Body("application/json", groups.to_string());
    let sd = ScriptedTarget::start(list(serde_json::json!([
        {"targets": [a[0], a[1]], "labels": {"team": "x", "__meta_url": "overridden"}},
        {"targets": [a[2]]}
    ])))
    .await;
    let url = format!("http://{}/sd", sd.addr);
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hsd\n    http_sd_configs:\n      - url: '{url}'\n        refresh_interval: 1s\n    relabel_configs:\n      - {{source_labels: [__meta_url], target_label: from}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, &yaml).unwrap();
    let start = unix_now() - 1;
    let prom = Prometheus::start(&cfg, &dir.path().join("data")).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(
        ScrapeConfig::load_prometheus_file(&cfg).unwrap(),
        sink.clone(),
    );

    // Discovered and final labels of every target, in both.
    let theirs_discovered = || -> BTreeSet<(LabelMap, LabelMap)> {
        prom.targets()["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                (
                    serde_json::from_value(t["discoveredLabels"].clone()).unwrap(),
                    serde_json::from_value(t["labels"].clone()).unwrap(),
                )
            })
            .collect()
    };
    let ours_discovered = || async {
        m.targets()
            .await
            .active
            .into_iter()
            .map(|t| (t.discovered_labels, t.labels))
            .collect::<BTreeSet<(LabelMap, LabelMap)>>()
    };
    let both_have = |n: usize| {
        let (theirs_discovered, ours_discovered) = (&theirs_discovered, &ours_discovered);
        async move {
            let (t, o) = (theirs_discovered(), ours_discovered().await);
            (t.len() == n && o.len() == n).then_some((t, o))
        }
    };
    let (t, o) = eventually_async(Duration::from_secs(30), "three targets", || both_have(3)).await;
    assert_eq!(t, o);
    assert!(
        o.iter()
            .all(|(d, l)| d["__meta_url"] == url && l["from"] == url),
        "{o:?}"
    );
    assert!(o
        .iter()
        .any(|(d, _)| d.get("team").map(String::as_str) == Some("x")));

    // Failing refreshes keep the targets.
    for bad in [Answer::Status(500), Answer::Body("text/plain", "[]".into())] {
        sd.set(bad);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(theirs_discovered(), o);
        assert_eq!(ours_discovered().await, o);
    }
    // A changed list is followed.
    sd.set(list(serde_json::json!([{"targets": [a[2]]}])));
    let (t, o) = eventually_async(Duration::from_secs(30), "one target", || both_have(1)).await;
    assert_eq!(t, o);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_same_series(&prom.series("{job=\"hsd\"}", start), &sink.series());

    let heads: Vec<String> = sd
        .requests
        .lock()
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for ua in ["prometheus/", "lookout/"] {
        let h = heads
            .iter()
            .find(|h| h.contains(&format!("user-agent: {ua}")))
            .unwrap_or_else(|| panic!("no discovery request from {ua}"));
        assert!(h.contains("accept: application/json"), "{h}");
        assert!(
            h.contains("x-prometheus-refresh-interval-seconds: 1"),
            "{h}"
        );
    }
    m.shutdown().await;
}

/// `proxy_url` (Prometheus 2.42 has it) through a real proxy, Debian's tinyproxy: the same
/// health and series as Prometheus for a target behind the proxy, both requests carrying
/// tinyproxy's `Via`, and both down when the proxy is gone. `no_proxy` and proxy
/// credentials are newer than 2.42: Lookout alone, following prometheus/common and Go's
/// `httpproxy` (loopback is never proxied once `no_proxy` is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_through_tinyproxy_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, pport) = start_tinyproxy(dir.path(), "");
    let (_authed, aport) = start_tinyproxy(dir.path(), "BasicAuth pu pp\n");
    let behind = ScriptedTarget::start(Answer::Body(TEXT, "behind 1\n".into())).await;
    let skipped = ScriptedTarget::start(Answer::Body(TEXT, "skipped 1\n".into())).await;
    let authed = ScriptedTarget::start(Answer::Body(TEXT, "authed 1\n".into())).await;
    // Records the CONNECT request of an https target (then fails the handshake).
    let fake_proxy = ScriptedTarget::start(Answer::Body(TEXT, String::new())).await;
    let gone = free_port();
    let prom_yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: via\n    proxy_url: 'http://127.0.0.1:{pport}'\n    static_configs:\n      - targets: ['{}']\n  - job_name: proxy_gone\n    proxy_url: 'http://127.0.0.1:{gone}'\n    static_configs:\n      - targets: ['{}']\n",
        behind.addr, behind.addr
    );
    let lookout_only = format!(
        "  - job_name: skipped\n    proxy_url: 'http://127.0.0.1:{pport}'\n    no_proxy: 'example.com,10.0.0.0/8'\n    static_configs:\n      - targets: ['{}']\n  - job_name: authed\n    proxy_url: 'http://pu:pp@127.0.0.1:{aport}'\n    static_configs:\n      - targets: ['{}']\n  - job_name: wrong_auth\n    proxy_url: 'http://pu:nope@127.0.0.1:{aport}'\n    static_configs:\n      - targets: ['{}']\n  - job_name: connect\n    scheme: https\n    proxy_url: 'http://cu:cp@{}'\n    proxy_connect_header: {{X-Hello: [world, again]}}\n    static_configs:\n      - targets: ['127.0.0.1:9']\n",
        skipped.addr, authed.addr, authed.addr, fake_proxy.addr
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, &prom_yaml).unwrap();
    let start = unix_now() - 1;
    let prom = Prometheus::start(&cfg, &dir.path().join("data")).await;
    let ours_cfg = ScrapeConfig::parse_prometheus_yaml(
        &format!("{prom_yaml}{lookout_only}"),
        "t.yml",
        dir.path(),
    )
    .unwrap();
    assert!(ours_cfg.warnings.is_empty(), "{:?}", ours_cfg.warnings);
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(ours_cfg, sink.clone());
    let pools = ["via", "proxy_gone"];
    eventually_async(Duration::from_secs(30), "every target scraped", || async {
        for p in pools {
            let t = their_targets(&prom, p);
            if t.len() != 1 || t[0].1 == "unknown" {
                return None;
            }
        }
        let s = m.targets().await;
        (s.active.len() == 6 && s.active.iter().all(|a| a.last_scrape.is_some())).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in pools {
        let (t, o) = (their_targets(&prom, p), our_targets(&m, p).await);
        assert_eq!(t[0].0, o[0].0, "{p}");
        assert_eq!(t[0].1, o[0].1, "{p}: Prometheus {t:?}, Lookout {o:?}");
    }
    assert_eq!(their_targets(&prom, "via")[0].1, "up");
    assert_eq!(their_targets(&prom, "proxy_gone")[0].1, "down");
    let gone_err = &our_targets(&m, "proxy_gone").await[0].2;
    assert!(gone_err.contains("proxyconnect tcp"), "{gone_err}");
    let theirs = prom.series("{job=~\"via|proxy_gone\"}", start);
    let ours: BTreeSet<LabelMap> = sink
        .series()
        .into_iter()
        .filter(|s| s["job"] == "via" || s["job"] == "proxy_gone")
        .collect();
    assert_same_series(&theirs, &ours);

    let heads = |t: &ScriptedTarget, ua: &str| -> Vec<String> {
        t.requests
            .lock()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| h.contains(&format!("user-agent: {ua}")))
            .collect()
    };
    for ua in ["prometheus/", "lookout/"] {
        let h = heads(&behind, ua);
        assert!(!h.is_empty(), "no request from {ua}");
        assert!(h.iter().all(|h| h.contains("via: 1.1 tinyproxy")), "{h:?}");
    }
    // no_proxy set: loopback goes direct.
    let h = heads(&skipped, "lookout/");
    assert!(
        !h.is_empty() && h.iter().all(|h| !h.contains("via:")),
        "{h:?}"
    );
    // Credentials in the proxy URL become Proxy-Authorization, which the proxy consumes.
    let snap = m.targets().await;
    let health = |pool: &str| {
        let t = snap.active.iter().find(|a| a.scrape_pool == pool).unwrap();
        (t.health.as_str(), t.last_error.clone())
    };
    assert_eq!(health("authed"), ("up", String::new()));
    let (h, e) = health("wrong_auth");
    assert_eq!(h, "down");
    // tinyproxy refuses wrong proxy credentials with a 401 (not 407); either way it is the
    // proxy's status that the scrape reports, as in Go.
    assert_eq!(e, "server returned HTTP status 401 Unauthorized");
    let h = heads(&authed, "lookout/");
    assert!(!h.is_empty() && h.iter().all(|h| h.contains("via: 1.1 tinyproxy")));
    assert!(
        h.iter().all(|h| !h.contains("proxy-authorization")),
        "{h:?}"
    );
    // https through a proxy: a CONNECT with the credentials and proxy_connect_header.
    let connect = fake_proxy.requests.lock()[0].clone();
    let want = base64::engine::general_purpose::STANDARD.encode("cu:cp");
    assert!(
        connect.starts_with("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
        "{connect}"
    );
    assert!(
        connect.contains(&format!("Proxy-Authorization: Basic {want}\r\n")),
        "{connect}"
    );
    assert!(
        connect.contains("x-hello: world\r\nx-hello: again\r\n"),
        "{connect}"
    );
    assert_eq!(health("connect").0, "down");
    m.shutdown().await;
}
