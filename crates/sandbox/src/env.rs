//! The `OTEL_*` environment that makes an unmodified app export to Lookout, namespaced, and
//! the three ways it is printed (`sh`, `dotenv`, `json`).
//!
//! Only variables from the OpenTelemetry SDK environment specification are set, so every SDK
//! (and the Collector-less auto-instrumentation agents) reads them the same way. The endpoint is
//! the OTLP/HTTP port with the `http/protobuf` protocol (the specification's default), but
//! Lookout serves gRPC on that port too, so an app whose exporter is hard-wired to gRPC still
//! works with the same `OTEL_EXPORTER_OTLP_ENDPOINT`. Batch delays are shortened from the SDK
//! defaults (5 s for spans and logs, 60 s for metrics) so telemetry shows up while a developer
//! is still looking at the app, not a minute later.

use std::fmt::Write as _;

use crate::Namespace;

/// The resource attribute that carries the sandbox.
pub const NAMESPACE_ATTRIBUTE: &str = "service.namespace";
/// Where the SDKs read extra resource attributes from.
pub const RESOURCE_ATTRIBUTES_VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// Where the SDKs read the OTLP endpoint from.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// An ordered list of environment variables for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelEnv {
    vars: Vec<(String, String)>,
}

/// How [`OtelEnv::render`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFormat {
    /// `export K='v'` lines for `eval "$(lookout env)"`.
    Sh,
    /// `K=v` lines for `.env` files and `docker run --env-file` (values taken literally, so
    /// they are quoted only when they must be).
    Dotenv,
    /// One JSON object.
    Json,
}

impl OtelEnv {
    /// The environment for an app in `ns` that exports to `endpoint` (`http://host:port`).
    /// `existing_attributes` is the app's current `OTEL_RESOURCE_ATTRIBUTES`, if any: its other
    /// attributes are kept and its `service.namespace` is replaced.
    pub fn new(endpoint: &str, ns: &Namespace, existing_attributes: Option<&str>) -> OtelEnv {
        let mut vars = Vec::with_capacity(12);
        let mut set = |k: &str, v: &str| vars.push((k.to_string(), v.to_string()));
        set(ENDPOINT_VAR, endpoint);
        set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        // gRPC exporters of some SDKs want TLS unless told otherwise, whatever the scheme.
        set("OTEL_EXPORTER_OTLP_INSECURE", "true");
        set(
            RESOURCE_ATTRIBUTES_VAR,
            &merge_resource_attributes(existing_attributes, &ns.to_string()),
        );
        set("OTEL_TRACES_EXPORTER", "otlp");
        set("OTEL_METRICS_EXPORTER", "otlp");
        set("OTEL_LOGS_EXPORTER", "otlp");
        // Milliseconds, per the specification.
        set("OTEL_BSP_SCHEDULE_DELAY", "1000");
        set("OTEL_BLRP_SCHEDULE_DELAY", "1000");
        set("OTEL_METRIC_EXPORT_INTERVAL", "10000");
        OtelEnv { vars }
    }

    /// The variables in order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The value of one variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) a variable, keeping the order of the others.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.vars.push((key.to_string(), value.to_string())),
        }
    }

    /// The whole environment as text in `format`, ending with a newline.
    pub fn render(&self, format: EnvFormat) -> String {
        let mut out = String::new();
        match format {
            EnvFormat::Sh => {
                for (k, v) in &self.vars {
                    let _ = writeln!(out, "export {k}={}", sh_quote(v));
                }
            }
            EnvFormat::Dotenv => {
                for (k, v) in &self.vars {
                    let _ = writeln!(out, "{k}={}", dotenv_value(v));
                }
            }
            EnvFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = self
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                out = serde_json::Value::Object(map).to_string();
                out.push('\n');
            }
        }
        out
    }
}

/// `existing` (comma-separated `k=v`, as the specification writes it) with every
/// `service.namespace` removed and `service.namespace=<namespace>` appended; empty items and
/// surrounding blanks are dropped, everything else is kept byte for byte.
pub fn merge_resource_attributes(existing: Option<&str>, namespace: &str) -> String {
    let mut parts: Vec<&str> = existing
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            p.split_once('=')
                .map(|(k, _)| k.trim())
                .is_none_or(|k| k != NAMESPACE_ATTRIBUTE)
        })
        .collect();
    let ours = format!("{NAMESPACE_ATTRIBUTE}={namespace}");
    parts.push(&ours);
    parts.join(",")
}

/// Single-quotes for POSIX shells: nothing inside is special except `'` itself.
fn sh_quote(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/:.,=_-+@%".contains(&b))
    {
        return v.to_string();
    }
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// Docker's `--env-file` takes everything after `=` literally, while dotenv libraries strip
/// quotes; a value that needs no quotes satisfies both, so quotes are used only when needed.
fn dotenv_value(v: &str) -> String {
    if v.bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"'#$`\\".contains(&b))
    {
        return v.to_string();
    }
    let escaped = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('$', "\\$");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::new("shop", Some(2)).unwrap()
    }

    #[test]
    fn namespace_is_merged_into_existing_attributes() {
        assert_eq!(
            merge_resource_attributes(None, "shop-slot-2"),
            "service.namespace=shop-slot-2"
        );
        assert_eq!(
            merge_resource_attributes(
                Some("deployment.environment=dev, service.namespace=old,,team=a=b"),
                "shop-slot-2"
            ),
            "deployment.environment=dev,team=a=b,service.namespace=shop-slot-2"
        );
    }

    #[test]
    fn env_has_what_an_sdk_needs() {
        let env = OtelEnv::new("http://127.0.0.1:4318", &ns(), Some("a=b"));
        assert_eq!(env.get(ENDPOINT_VAR), Some("http://127.0.0.1:4318"));
        assert_eq!(
            env.get(RESOURCE_ATTRIBUTES_VAR),
            Some("a=b,service.namespace=shop-slot-2")
        );
        for k in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_TRACES_EXPORTER",
            "OTEL_METRICS_EXPORTER",
            "OTEL_LOGS_EXPORTER",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_METRIC_EXPORT_INTERVAL",
        ] {
            assert!(env.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn formats() {
        let mut env = OtelEnv::new("http://127.0.0.1:4318", &ns(), Some("x=it's here"));
        let sh = env.render(EnvFormat::Sh);
        assert!(sh.contains("export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318\n"));
        assert!(sh.contains(
            r"export OTEL_RESOURCE_ATTRIBUTES='x=it'\''s here,service.namespace=shop-slot-2'"
        ));
        let dotenv = env.render(EnvFormat::Dotenv);
        assert!(dotenv.contains("OTEL_BSP_SCHEDULE_DELAY=1000\n"));
        assert!(dotenv
            .contains("OTEL_RESOURCE_ATTRIBUTES=\"x=it's here,service.namespace=shop-slot-2\"\n"));
        env.set("EXTRA", "1");
        let json: serde_json::Value = serde_json::from_str(&env.render(EnvFormat::Json)).unwrap();
        assert_eq!(json["EXTRA"], "1");
        assert_eq!(json["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf");
    }

    #[test]
    fn sh_quoting_survives_a_real_shell() {
        let mut env = OtelEnv::new("http://h:1", &ns(), None);
        let nasty = "a'b\"c $HOME `x` \\ \n end";
        env.set("NASTY", nasty);
        let script = format!("{}printf %s \"$NASTY\"", env.render(EnvFormat::Sh));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }
}
