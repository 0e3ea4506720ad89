//! How the rules engine is connected: rule files and Alertmanagers from `prometheus.yml`
//! (`rule_files`, `global`, `alerting`) and `lookout.toml` (`[rules]`), the
//! [`rules::manager::RuleManager`] evaluating them over the tsdb, the notifier sending what
//! fires, and reloads (SIGHUP, `POST /-/reload`) together with the scrape configuration.
//! The logic lives in the rules crate; this file only wires.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rules::config::RulesConfig;
use rules::manager::{ManagerOptions, RuleManager};
use rules::notifier::{Notifier, NotifierConfig, TomlAlertingConfig};
use rules::Group;

use crate::serve::Settings;

/// Where the rules configuration comes from, kept to re-read it on reload.
struct RuleFiles {
    prometheus: Option<PathBuf>,
    lookout: Option<PathBuf>,
    external_url: String,
}

/// Everything one configuration gives the engine.
struct Loaded {
    groups: Vec<Group>,
    options: ManagerOptions,
    notifier: NotifierConfig,
}

impl RuleFiles {
    fn load(
        &self,
        toml: &rules::config::TomlRulesConfig,
        should_restore: bool,
    ) -> Result<Loaded, String> {
        let mut cfg = match &self.prometheus {
            Some(p) => RulesConfig::load_prometheus_file(p)?,
            None => RulesConfig::default(),
        };
        let toml_dir = self
            .lookout
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        cfg.extend_toml(toml, toml_dir)
            .map_err(|e| self.in_toml(e))?;
        let groups = cfg.load_groups(should_restore)?;
        let grace_period = toml.grace_period().map_err(|e| self.in_toml(e))?;
        let mut notifier = match &self.prometheus {
            Some(p) => NotifierConfig::load_prometheus_file(p).map_err(|e| e.to_string())?,
            None => NotifierConfig::default(),
        };
        let from_toml = TomlAlertingConfig {
            alertmanagers: toml.alertmanagers.clone(),
            timeout: None,
        }
        .to_config()
        .map_err(|e| self.in_toml(e.to_string().replace("[alerting]", "[rules]")))?;
        notifier.extend(from_toml);
        for w in &notifier.warnings {
            tracing::warn!("alerting configuration: {w}");
        }
        let external_labels = model::labels::Labels::new(cfg.external_labels.iter())
            .map_err(|e| format!("global.external_labels: {e}"))?;
        Ok(Loaded {
            groups,
            options: ManagerOptions {
                external_labels,
                external_url: self.external_url.clone(),
                grace_period,
                ..ManagerOptions::default()
            },
            notifier,
        })
    }

    fn in_toml(&self, e: String) -> String {
        match &self.lookout {
            Some(f) => format!("{}: {e}", f.display()),
            None => e,
        }
    }
}

/// The running rules engine.
pub struct Rules {
    pub manager: Arc<RuleManager>,
    pub notifier: Notifier,
    files: RuleFiles,
}

/// Loads the rule files and starts evaluating them. A broken rule file stops start-up,
/// as in Prometheus.
pub async fn start(
    settings: &Settings,
    http: std::net::SocketAddr,
    db: Arc<tsdb::Tsdb>,
) -> anyhow::Result<Arc<Rules>> {
    let files = RuleFiles {
        prometheus: settings.prometheus_config.clone(),
        lookout: settings.config_file.clone(),
        external_url: crate::lifecycle::endpoint_url(http),
    };
    let loaded = files
        .load(&settings.config.rules, true)
        .map_err(|e| anyhow::anyhow!("invalid rules configuration: {e}"))?;
    let notifier = Notifier::new(loaded.notifier);
    notifier.start();
    let manager = Arc::new(RuleManager::new(
        db,
        Arc::new(promql::Engine::default()),
        Some(Arc::new(notifier.clone())),
        loaded.options.clone(),
    ));
    if !loaded.groups.is_empty() {
        tracing::info!(groups = loaded.groups.len(), "evaluating rules");
    }
    manager.update(loaded.groups, loaded.options).await;
    Ok(Arc::new(Rules {
        manager,
        notifier,
        files,
    }))
}

impl Rules {
    /// Re-reads the configuration and applies it; on error the running rules stay.
    pub async fn reload(&self) -> Result<(), String> {
        let loaded = crate::config::load(self.files.lookout.as_deref())
            .map_err(|e| format!("{e:#}"))
            .and_then(|config| self.files.load(&config.rules, false));
        match loaded {
            Ok(l) => {
                self.notifier.apply(&l.notifier);
                self.manager.update(l.groups, l.options).await;
                tracing::info!("rules reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "rules reload failed; keeping the running rules");
                Err(e)
            }
        }
    }

    /// Stops evaluating, then sends what is queued for Alertmanager.
    pub async fn shutdown(&self) {
        self.manager.shutdown().await;
        self.notifier.shutdown().await;
    }
}
