//! The registry of sandboxes: one small JSON file per sandbox in a directory under Lookout's
//! state dir, so `lookout down` can say which sandboxes will stop being received and
//! `lookout sandboxes` can list them.
//!
//! One file per entry (not one shared file) means registering and unregistering never need a
//! lock and never lose another process's entry; a file is written to a temporary name and
//! renamed, so a reader never sees half an entry. A `lookout run` that is killed with SIGKILL
//! cannot remove its file, so liveness is never taken from the file's existence: each entry
//! records the process's identity ([`ProcessId`]) and is checked against the running system when
//! listed. Compose sandboxes run in containers Lookout cannot see, so their liveness is unknown.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::process::ProcessId;
use crate::{Error, Namespace, Result};

/// Entries larger than this are not ours; they are skipped instead of read.
const MAX_ENTRY_BYTES: u64 = 64 << 10;

/// How a sandbox was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// A process started by `lookout run`.
    Run,
    /// A Docker Compose project given an override by `lookout compose-override`.
    Compose,
}

/// One registered sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxEntry {
    /// `<project>-slot-<N>`.
    pub namespace: String,
    /// The project part of the namespace.
    pub project: String,
    /// The slot, if any.
    pub slot: Option<u32>,
    /// How it was started.
    pub kind: SandboxKind,
    /// The sandbox's process (the command `lookout run` started); none for Compose.
    pub process: Option<ProcessId>,
    /// When it was registered, in seconds since the Unix epoch.
    pub started_at: u64,
    /// The command line (for `run`) or the compose file (for Compose), for people to read.
    pub what: String,
}

impl SandboxEntry {
    /// An entry for `ns`, registered now.
    pub fn new(
        ns: &Namespace,
        kind: SandboxKind,
        process: Option<ProcessId>,
        what: String,
    ) -> SandboxEntry {
        SandboxEntry {
            namespace: ns.to_string(),
            project: ns.project().to_string(),
            slot: ns.slot(),
            kind,
            process,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            what,
        }
    }

    /// The entry's file name: unique per namespace and process, so two runs of one slot
    /// (a mistake worth showing) are both listed.
    fn file_name(&self) -> String {
        match (self.kind, self.process) {
            (SandboxKind::Run, Some(p)) => format!("{}.run.{}.json", self.namespace, p.pid),
            (SandboxKind::Run, None) => format!("{}.run.json", self.namespace),
            (SandboxKind::Compose, _) => format!("{}.compose.json", self.namespace),
        }
    }
}

/// Whether a listed sandbox still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Its process runs.
    Alive,
    /// Its process is gone (killed before it could unregister).
    Dead,
    /// Lookout cannot tell (Compose containers).
    Unknown,
}

/// A registered sandbox and whether it still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// What was registered.
    #[serde(flatten)]
    pub entry: SandboxEntry,
    /// Whether it runs now.
    pub liveness: Liveness,
    #[serde(skip)]
    path: PathBuf,
}

/// The registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry kept in `dir` (created on first registration).
    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// Where entries live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records `entry`; the returned guard removes it again when dropped.
    pub fn register(&self, entry: &SandboxEntry) -> Result<Registration> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("cannot create the sandbox registry", &self.dir, e))?;
        let path = self.dir.join(entry.file_name());
        let tmp = self.dir.join(format!(".{}.tmp", entry.file_name()));
        let body = serde_json::to_vec_pretty(entry)?;
        std::fs::write(&tmp, body)
            .map_err(|e| Error::io("cannot write a sandbox entry", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io("cannot write a sandbox entry", &path, e))?;
        Ok(Registration { path: Some(path) })
    }

    /// Every registered sandbox, oldest first, with its liveness checked now. Files that are
    /// not entries (foreign, truncated, too large) are skipped.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot read the sandbox registry", &self.dir, e)),
        };
        let mut out = Vec::new();
        for item in read.flatten() {
            let path = item.path();
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            if item.metadata().map(|m| m.len()).unwrap_or(u64::MAX) > MAX_ENTRY_BYTES {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<SandboxEntry>(&bytes) else {
                continue;
            };
            let liveness = match (entry.kind, entry.process) {
                (SandboxKind::Compose, _) | (SandboxKind::Run, None) => Liveness::Unknown,
                (SandboxKind::Run, Some(p)) if p.is_alive() => Liveness::Alive,
                (SandboxKind::Run, Some(_)) => Liveness::Dead,
            };
            out.push(Listed {
                entry,
                liveness,
                path,
            });
        }
        out.sort_by(|a, b| {
            (a.entry.started_at, &a.entry.namespace).cmp(&(b.entry.started_at, &b.entry.namespace))
        });
        Ok(out)
    }

    /// The sandboxes whose process is known to run.
    pub fn alive(&self) -> Result<Vec<Listed>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|l| l.liveness == Liveness::Alive)
            .collect())
    }

    /// Removes every entry registered under `namespace` (a Compose sandbox that was taken
    /// down, which Lookout cannot see stop); returns how many.
    pub fn forget(&self, namespace: &str) -> Result<usize> {
        let mut n = 0;
        for l in self.list()? {
            if l.entry.namespace == namespace {
                match std::fs::remove_file(&l.path) {
                    Ok(()) => n += 1,
                    // Its own `lookout run` unregistered it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("cannot remove a sandbox entry", &l.path, e)),
                }
            }
        }
        Ok(n)
    }

    /// Removes the entries of dead sandboxes; returns how many.
    pub fn prune(&self) -> Result<usize> {
        let mut n = 0;
        for l in self.list()? {
            if l.liveness == Liveness::Dead && std::fs::remove_file(&l.path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A registered entry; dropping it unregisters.
#[derive(Debug)]
pub struct Registration {
    path: Option<PathBuf>,
}

impl Registration {
    /// Keeps the entry after this guard is gone (Compose sandboxes outlive the command).
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(slot: u32) -> Namespace {
        Namespace::new("shop", Some(slot)).unwrap()
    }

    #[test]
    fn forget_removes_a_compose_sandbox_and_only_it() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::at(tmp.path().join("sandboxes"));
        for slot in [1, 2] {
            reg.register(&SandboxEntry::new(
                &ns(slot),
                SandboxKind::Compose,
                None,
                "compose.yaml".into(),
            ))
            .unwrap()
            .keep();
        }
        assert_eq!(reg.forget("shop-slot-2").unwrap(), 1);
        assert_eq!(reg.forget("shop-slot-2").unwrap(), 0);
        let left: Vec<_> = reg
            .list()
            .unwrap()
            .into_iter()
            .map(|l| l.entry.namespace)
            .collect();
        assert_eq!(left, ["shop-slot-1"]);
    }

    #[test]
    fn register_list_unregister() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::at(tmp.path().join("sandboxes"));
        assert!(reg.list().unwrap().is_empty());
        let me = ProcessId::current();
        let guard = reg
            .register(&SandboxEntry::new(
                &ns(2),
                SandboxKind::Run,
                Some(me),
                "app".into(),
            ))
            .unwrap();
        let listed = reg.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].entry.namespace, "shop-slot-2");
        assert_eq!(listed[0].entry.slot, Some(2));
        assert_eq!(listed[0].liveness, Liveness::Alive);
        assert_eq!(reg.alive().unwrap().len(), 1);
        drop(guard);
        assert!(reg.list().unwrap().is_empty());
    }

    #[test]
    fn dead_entries_are_marked_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::at(tmp.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id()).unwrap_or(ProcessId {
            pid: child.id(),
            start_ticks: None,
        });
        child.wait().unwrap();
        reg.register(&SandboxEntry::new(
            &ns(3),
            SandboxKind::Run,
            Some(id),
            "gone".into(),
        ))
        .unwrap()
        .keep();
        reg.register(&SandboxEntry::new(
            &ns(4),
            SandboxKind::Compose,
            None,
            "compose.yaml".into(),
        ))
        .unwrap()
        .keep();
        // Foreign and broken files are ignored.
        std::fs::write(tmp.path().join("junk.json"), b"{not json").unwrap();
        std::fs::write(tmp.path().join("notes.txt"), b"hi").unwrap();
        let listed = reg.list().unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let by_ns = |n: &str| listed.iter().find(|l| l.entry.namespace == n).unwrap();
        assert_eq!(by_ns("shop-slot-3").liveness, Liveness::Dead);
        assert_eq!(by_ns("shop-slot-4").liveness, Liveness::Unknown);
        assert!(reg.alive().unwrap().is_empty());
        assert_eq!(reg.prune().unwrap(), 1);
        assert_eq!(reg.list().unwrap().len(), 1);
    }
}
