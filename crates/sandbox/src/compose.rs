//! Docker Compose overrides: a small YAML file that, merged over a project's own compose file
//! (`docker compose -f compose.yaml -f lookout.override.yaml up`), gives its services the OTEL
//! environment of one sandbox, pointing at Lookout as a container reaches it.
//!
//! A container cannot use `127.0.0.1` to reach the host, so the endpoint host is
//! `host.docker.internal`, which Docker Desktop defines and which `extra_hosts:
//! host.docker.internal:host-gateway` defines on Linux engines. The override only adds keys
//! (Compose merges `environment` and `extra_hosts` per key), so the base file stays the source
//! of truth for everything else. A service's own `OTEL_RESOURCE_ATTRIBUTES` is merged, not
//! replaced, as `lookout env` does for a process. The base file is parsed with bounded size,
//! and anything that is not a Compose document is an error naming the file.

use serde_yaml::{Mapping, Value};

use crate::env::{OtelEnv, ENDPOINT_VAR, RESOURCE_ATTRIBUTES_VAR};
use crate::{Error, Namespace, Result};

/// Compose files larger than this are refused rather than parsed.
pub const MAX_COMPOSE_BYTES: usize = 4 << 20;
/// The host name containers use for the Docker host.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// What to put in an override.
#[derive(Debug, Clone)]
pub struct OverrideSpec<'a> {
    /// The sandbox.
    pub namespace: &'a Namespace,
    /// The OTLP endpoint as containers reach it, e.g. `http://host.docker.internal:4318`.
    pub endpoint: String,
    /// An extra variable that also gets the endpoint (`[sandbox.otel] endpoint_var`), for apps
    /// that read their own name instead of the SDK's.
    pub endpoint_var: Option<String>,
    /// An extra variable that gets the namespace (`[sandbox.otel] namespace_var`): the bare
    /// namespace, or the merged attribute list if the name is `OTEL_RESOURCE_ATTRIBUTES`.
    pub namespace_var: Option<String>,
    /// The services to configure; empty means every service of the file.
    pub services: Vec<String>,
}

/// A parsed compose file: just what an override needs.
#[derive(Debug)]
pub struct ComposeFile {
    services: Vec<(String, Mapping)>,
}

impl ComposeFile {
    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &str) -> Result<ComposeFile> {
        let err = |reason: String| Error::Compose {
            path: path.to_string(),
            reason,
        };
        if text.len() > MAX_COMPOSE_BYTES {
            return Err(err(format!(
                "larger than {} MiB; is this really a compose file?",
                MAX_COMPOSE_BYTES >> 20
            )));
        }
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| err(format!("not valid YAML: {e}")))?;
        let Value::Mapping(top) = doc else {
            return Err(err(
                "not a compose file: the top level must be a mapping with `services`".into(),
            ));
        };
        let Some(services) = top.get("services") else {
            return Err(err("not a compose file: it has no `services`".into()));
        };
        let Value::Mapping(services) = services else {
            return Err(err(
                "not a compose file: `services` must be a mapping".into()
            ));
        };
        let mut out = Vec::with_capacity(services.len());
        for (name, body) in services {
            let Value::String(name) = name else {
                return Err(err("a service name is not a string".into()));
            };
            let body = match body {
                Value::Mapping(m) => m.clone(),
                Value::Null => Mapping::new(),
                _ => return Err(err(format!("service {name:?} is not a mapping"))),
            };
            out.push((name.clone(), body));
        }
        Ok(ComposeFile { services: out })
    }

    /// The service names, in file order.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// A service's own `environment` value of `key`, in either Compose form (mapping or
    /// `KEY=value` list).
    fn env_value(&self, service: &str, key: &str) -> Option<String> {
        let (_, body) = self.services.iter().find(|(n, _)| n == service)?;
        match body.get("environment")? {
            Value::Mapping(m) => match m.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
            Value::Sequence(items) => items.iter().find_map(|i| {
                let s = i.as_str()?;
                let (k, v) = s.split_once('=')?;
                (k == key).then(|| v.to_string())
            }),
            _ => None,
        }
    }

    /// The override for `spec`, as YAML text.
    pub fn override_yaml(&self, spec: &OverrideSpec<'_>) -> Result<String> {
        let names: Vec<String> = if spec.services.is_empty() {
            self.services.iter().map(|(n, _)| n.clone()).collect()
        } else {
            for s in &spec.services {
                if !self.services.iter().any(|(n, _)| n == s) {
                    return Err(Error::UnknownService(s.clone()));
                }
            }
            spec.services.clone()
        };
        let mut services = Mapping::new();
        for name in names {
            let existing = self.env_value(&name, RESOURCE_ATTRIBUTES_VAR);
            let mut env = OtelEnv::new(&spec.endpoint, spec.namespace, existing.as_deref());
            if let Some(var) = spec.endpoint_var.as_deref().filter(|v| *v != ENDPOINT_VAR) {
                env.set(var, &spec.endpoint);
            }
            if let Some(var) = spec.namespace_var.as_deref() {
                if var != RESOURCE_ATTRIBUTES_VAR {
                    env.set(var, &spec.namespace.to_string());
                }
            }
            let mut environment = Mapping::new();
            for (k, v) in env.vars() {
                environment.insert(Value::String(k.clone()), Value::String(v.clone()));
            }
            let mut service = Mapping::new();
            service.insert("environment".into(), Value::Mapping(environment));
            service.insert(
                "extra_hosts".into(),
                Value::Sequence(vec![Value::String(format!("{HOST_ALIAS}:host-gateway"))]),
            );
            services.insert(Value::String(name), Value::Mapping(service));
        }
        let mut top = Mapping::new();
        top.insert("services".into(), Value::Mapping(services));
        serde_yaml::to_string(&Value::Mapping(top)).map_err(|e| Error::Compose {
            path: "override".into(),
            reason: format!("cannot write YAML: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
services:
  web:
    image: nginx
    environment:
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=dev"
  worker:
    image: busybox
    environment:
      - OTEL_RESOURCE_ATTRIBUTES=team=a,service.namespace=old
  db:
"#;

    fn spec(ns: &Namespace) -> OverrideSpec<'_> {
        OverrideSpec {
            namespace: ns,
            endpoint: "http://host.docker.internal:4318".into(),
            endpoint_var: None,
            namespace_var: None,
            services: vec![],
        }
    }

    #[test]
    fn override_covers_every_service_and_merges_attributes() {
        let ns = Namespace::new("shop", Some(2)).unwrap();
        let file = ComposeFile::parse(BASE, "compose.yaml").unwrap();
        assert_eq!(file.service_names(), ["web", "worker", "db"]);
        let yaml = file.override_yaml(&spec(&ns)).unwrap();
        let doc: Value = serde_yaml::from_str(&yaml).unwrap();
        let env = |s: &str, k: &str| {
            doc["services"][s]["environment"][k]
                .as_str()
                .map(String::from)
        };
        assert_eq!(
            env("web", RESOURCE_ATTRIBUTES_VAR).unwrap(),
            "deployment.environment=dev,service.namespace=shop-slot-2"
        );
        assert_eq!(
            env("worker", RESOURCE_ATTRIBUTES_VAR).unwrap(),
            "team=a,service.namespace=shop-slot-2"
        );
        assert_eq!(
            env("db", ENDPOINT_VAR).unwrap(),
            "http://host.docker.internal:4318"
        );
        assert_eq!(
            doc["services"]["db"]["extra_hosts"][0].as_str(),
            Some("host.docker.internal:host-gateway")
        );
    }

    #[test]
    fn chosen_services_and_custom_variable_names() {
        let ns = Namespace::new("shop", Some(1)).unwrap();
        let file = ComposeFile::parse(BASE, "compose.yaml").unwrap();
        let mut s = spec(&ns);
        s.services = vec!["web".into()];
        s.endpoint_var = Some("APP_OTLP_URL".into());
        s.namespace_var = Some("APP_NAMESPACE".into());
        let doc: Value = serde_yaml::from_str(&file.override_yaml(&s).unwrap()).unwrap();
        let services = doc["services"].as_mapping().unwrap();
        assert_eq!(services.len(), 1);
        let env = &doc["services"]["web"]["environment"];
        assert_eq!(env["APP_OTLP_URL"], "http://host.docker.internal:4318");
        assert_eq!(env["APP_NAMESPACE"], "shop-slot-1");
        s.services = vec!["nope".into()];
        assert!(matches!(
            file.override_yaml(&s),
            Err(Error::UnknownService(n)) if n == "nope"
        ));
    }

    #[test]
    fn bad_compose_files_are_errors() {
        for (text, want) in [
            ("services: [unclosed", "not valid YAML"),
            ("just a string", "top level"),
            ("version: '3'", "no `services`"),
            ("services: [a, b]", "must be a mapping"),
            ("services:\n  web: 3\n", "not a mapping"),
        ] {
            let e = ComposeFile::parse(text, "c.yaml").unwrap_err().to_string();
            assert!(
                e.contains(want) && e.starts_with("c.yaml: "),
                "{text:?}: {e}"
            );
        }
        let huge = "x".repeat(MAX_COMPOSE_BYTES + 1);
        assert!(ComposeFile::parse(&huge, "c.yaml").is_err());
    }
}
