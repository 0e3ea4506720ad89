//! `/api/v1/targets` (the scrape manager's view of its targets) and `/-/reload` (re-read the
//! scrape configuration), as Prometheus answers them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ingest::scrape::ScrapeManager;
use ingest::BoxFuture;
use serde::Serialize;

use super::{PromError, PromParams, PromResult, PromState, Success};
use crate::gocompat::http_error;

/// Re-reads the scrape configuration and applies it; the binary implements it (it knows
/// where the files are). `Err` is one sentence saying what is wrong with the new files; the
/// running configuration then stays as it was.
pub trait Reload: Send + Sync + 'static {
    fn reload(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// What the scrape endpoints need: the manager and how to reload it.
#[derive(Clone)]
pub struct ScrapeApi {
    pub manager: Arc<ScrapeManager>,
    pub reload: Arc<dyn Reload>,
}

pub(super) fn routes() -> Router<PromState> {
    Router::new().route("/api/v1/targets", get(targets)).route(
        "/-/reload",
        get(reload_wrong_method).post(reload).put(reload),
    )
}

async fn targets(State(state): State<PromState>, params: PromParams) -> PromResult {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Active<'a> {
        discovered_labels: &'a BTreeMap<String, String>,
        labels: &'a BTreeMap<String, String>,
        scrape_pool: &'a str,
        scrape_url: &'a str,
        global_url: &'a str,
        last_error: &'a str,
        last_scrape: String,
        last_scrape_duration: f64,
        health: &'static str,
        scrape_interval: &'a str,
        scrape_timeout: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Dropped<'a> {
        discovered_labels: &'a BTreeMap<String, String>,
        scrape_pool: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        active_targets: Vec<Active<'a>>,
        dropped_targets: Vec<Dropped<'a>>,
        /// Only with dropped targets asked for (`null` otherwise), as Prometheus 3 answers.
        dropped_target_counts: Option<BTreeMap<&'a str, usize>>,
    }
    let snapshot = match &state.scrape {
        Some(s) => s.manager.targets().await,
        None => Default::default(),
    };
    let (show_active, show_dropped) = match params.get("state").to_ascii_lowercase().as_str() {
        "active" => (true, false),
        "dropped" => (false, true),
        "" | "any" => (true, true),
        // Prometheus answers an unknown state with empty lists.
        _ => (false, false),
    };
    let pool = params.get("scrapePool");
    let in_pool = |p: &str| pool.is_empty() || p == pool;
    // Every pool's true count, also of the dropped targets `keep_dropped_targets` left out
    // of the list, as Prometheus's `TargetsDroppedCounts`.
    let counts: BTreeMap<&str, usize> = snapshot
        .dropped_counts
        .iter()
        .map(|(pool, n)| (pool.as_str(), *n))
        .collect();
    let last_scrapes: Vec<String> = snapshot
        .active
        .iter()
        .map(|a| a.last_scrape_rfc3339())
        .collect();
    let data = Data {
        active_targets: snapshot
            .active
            .iter()
            .zip(&last_scrapes)
            .filter(|(a, _)| show_active && in_pool(&a.scrape_pool))
            .map(|(a, last)| Active {
                discovered_labels: &a.discovered_labels,
                labels: &a.labels,
                scrape_pool: &a.scrape_pool,
                scrape_url: &a.scrape_url,
                global_url: &a.global_url,
                last_error: &a.last_error,
                last_scrape: last.clone(),
                last_scrape_duration: a.last_scrape_duration,
                health: a.health.as_str(),
                scrape_interval: &a.scrape_interval,
                scrape_timeout: &a.scrape_timeout,
            })
            .collect(),
        dropped_targets: snapshot
            .dropped
            .iter()
            .filter(|d| show_dropped && in_pool(&d.scrape_pool))
            .map(|d| Dropped {
                discovered_labels: &d.discovered_labels,
                scrape_pool: &d.scrape_pool,
            })
            .collect(),
        dropped_target_counts: show_dropped.then_some(counts),
    };
    Success::new(&data)
}

async fn reload(State(state): State<PromState>) -> Response {
    let Some(scrape) = state.scrape.clone() else {
        return PromError::internal("this server has no scrape manager to reload").into_response();
    };
    match scrape.reload.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        ),
    }
}

async fn reload_wrong_method() -> Response {
    http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Only POST or PUT requests allowed".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use ingest::metrics::{AppendError, AppendOutcome, MetadataRegistry, MetricsSink, Sample};
    use ingest::scrape::ScrapeConfig;
    use tower::ServiceExt as _;

    use super::*;
    use crate::prometheus::{router, PromBuildInfo, PromLimits};

    struct Discard;

    impl MetricsSink for Discard {
        fn append(&self, s: Vec<Sample>) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
            let appended = s.len();
            Box::pin(async move {
                Ok(AppendOutcome {
                    appended,
                    ..AppendOutcome::default()
                })
            })
        }

        fn append_all_or_nothing(
            &self,
            s: Vec<Sample>,
        ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
            self.append(s)
        }

        fn record_metadata(&self, _: Vec<(String, ingest::MetricMetadata)>) {}
    }

    struct NoReload;

    impl Reload for NoReload {
        fn reload(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// `droppedTargetCounts` counts every dropped target of every pool, also those
    /// `keep_dropped_targets` leaves out of `droppedTargets`, and is `null` unless dropped
    /// targets are asked for (Prometheus 3's answer; 2.42 has no such field).
    #[tokio::test]
    async fn dropped_counts_are_true_counts() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb::Tsdb::open(tsdb::TsdbConfig::new(dir.path())).unwrap();
        let yaml = "global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: a\n    keep_dropped_targets: 1\n    static_configs:\n      - targets: ['h1:1', 'h2:1', 'h3:1']\n    relabel_configs:\n      - {source_labels: [__address__], regex: 'h1:1', action: keep}\n  - job_name: empty\n";
        let cfg = ScrapeConfig::parse_prometheus_yaml(yaml, "t.yml", Path::new("/")).unwrap();
        let sink: Arc<dyn MetricsSink> = Arc::new(Discard);
        let manager = Arc::new(ScrapeManager::start(cfg, sink.clone()));
        for _ in 0..100 {
            if manager.targets().await.active.len() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let state = PromState::new(
            Arc::new(db),
            sink,
            Arc::new(MetadataRegistry::default()),
            PromBuildInfo::default(),
            PromLimits::default(),
        )
        .with_scrape(ScrapeApi {
            manager: manager.clone(),
            reload: Arc::new(NoReload),
        });
        let get = |uri: &'static str| {
            let app = router(state.clone());
            async move {
                let r = app
                    .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let b = r.into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&b).unwrap()["data"].clone()
            }
        };
        let all = get("/api/v1/targets").await;
        assert_eq!(all["activeTargets"].as_array().unwrap().len(), 1);
        assert_eq!(all["droppedTargets"].as_array().unwrap().len(), 1);
        assert_eq!(
            all["droppedTargetCounts"],
            serde_json::json!({"a": 2, "empty": 0})
        );
        let dropped = get("/api/v1/targets?state=dropped&scrapePool=empty").await;
        assert_eq!(dropped["droppedTargets"], serde_json::json!([]));
        assert_eq!(dropped["droppedTargetCounts"]["a"], 2);
        let active = get("/api/v1/targets?state=active").await;
        assert!(active["droppedTargetCounts"].is_null(), "{active}");
        manager.shutdown().await;
    }
}
