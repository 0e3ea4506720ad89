//! Sandboxes: many copies of one project (worktrees, slots, Compose projects) sending telemetry
//! to one shared Lookout, each told apart by `service.namespace=<project>-slot-<N>`.
//!
//! This crate owns the rules and the files, not the command line: what a namespace is and how
//! a project's name is found ([`namespace`]), the `OTEL_*` environment an app needs and how it
//! is printed ([`env`]), which processes are alive ([`process`]), the on-disk registry of
//! running sandboxes ([`registry`]) and Docker Compose overrides ([`compose`]). The `lookout`
//! binary turns these into `env`, `run`, `compose-override`, `sandboxes` and the lifecycle
//! commands; keeping them here lets them be tested without a process or a server.

pub mod compose;
pub mod env;
pub mod namespace;
pub mod process;
pub mod registry;

pub use env::{EnvFormat, OtelEnv};
pub use namespace::Namespace;
pub use registry::{Registry, SandboxEntry};

/// Everything that can go wrong in this crate. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A project name that cannot be a namespace.
    #[error("invalid project name {0:?}: use letters, digits, '.', '_' or '-' (at most 100)")]
    InvalidProject(String),
    /// No project was given and none could be derived from the directory.
    #[error("cannot tell the project from the current directory; pass --project")]
    NoProject,
    /// A compose file that is not YAML, or not a Compose document.
    #[error("{path}: {reason}")]
    Compose { path: String, reason: String },
    /// A service named on the command line that the compose file does not have.
    #[error("service {0:?} is not in the compose file; check --service")]
    UnknownService(String),
    /// Reading or writing a file of the registry or a compose file.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Serializing a registry entry (cannot happen with the types here, but is not a panic).
    #[error("cannot encode a registry entry: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
