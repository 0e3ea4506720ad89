//! A sandbox's namespace, `<project>-slot-<N>` (or just `<project>` without a slot), and how
//! the project's name is found when none is given.
//!
//! The name ends up inside `OTEL_RESOURCE_ATTRIBUTES`, whose values are percent-encoded and
//! comma-separated, and in file names of the registry; restricting it to `[A-Za-z0-9._-]` keeps
//! both trivially safe. A name given on the command line is rejected if it breaks the rule (the
//! user should see what they get); a name derived from a directory is cleaned instead (a
//! directory called `my app` becomes `my-app`), because the user never typed it.

use std::fmt;
use std::path::Path;

use crate::{Error, Result};

/// The longest project name accepted.
const MAX_PROJECT: usize = 100;

/// A project and an optional slot: what `service.namespace` is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    project: String,
    slot: Option<u32>,
}

impl Namespace {
    /// A namespace for a project name given by the user; errors if the name is not
    /// `[A-Za-z0-9._-]{1,100}`.
    pub fn new(project: &str, slot: Option<u32>) -> Result<Namespace> {
        if project.is_empty() || project.len() > MAX_PROJECT || !project.bytes().all(is_name_byte) {
            return Err(Error::InvalidProject(project.to_string()));
        }
        Ok(Namespace {
            project: project.to_string(),
            slot,
        })
    }

    /// The namespace for `project` if given, else for the project `dir` belongs to (see
    /// [`detect_project`]).
    pub fn resolve(project: Option<&str>, slot: Option<u32>, dir: &Path) -> Result<Namespace> {
        match project {
            Some(p) => Namespace::new(p, slot),
            None => Namespace::new(&detect_project(dir)?, slot),
        }
    }

    /// The project part.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The slot, if any.
    pub fn slot(&self) -> Option<u32> {
        self.slot
    }
}

impl fmt::Display for Namespace {
    /// `shop-slot-2`, or `shop` without a slot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot {
            Some(n) => write!(f, "{}-slot-{n}", self.project),
            None => f.write_str(&self.project),
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// The name of the project `dir` is in: the git repository's directory name (for a linked
/// worktree, the main repository's, so every worktree of one project shares a name and only
/// the slot tells them apart), else `dir`'s own name; cleaned to `[A-Za-z0-9._-]`.
pub fn detect_project(dir: &Path) -> Result<String> {
    let raw = git_project(dir)
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or(Error::NoProject)?;
    let cleaned = clean_name(&raw);
    if cleaned.is_empty() {
        return Err(Error::NoProject);
    }
    Ok(cleaned)
}

/// Walks up from `dir` to the first directory with a `.git` entry.
fn git_project(dir: &Path) -> Option<String> {
    for d in dir.ancestors() {
        let git = d.join(".git");
        if git.is_dir() {
            return d.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        if git.is_file() {
            // A linked worktree: `.git` is a file `gitdir: <main>/.git/worktrees/<name>`.
            let text = std::fs::read_to_string(&git).ok()?;
            let target = text.lines().next()?.strip_prefix("gitdir:")?.trim();
            let target = Path::new(target);
            let main = target
                .ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == ".git"))
                .and_then(Path::parent);
            return match main {
                Some(m) => m.file_name().map(|n| n.to_string_lossy().into_owned()),
                // A submodule or an unusual layout: the checkout's own name is the best guess.
                None => d.file_name().map(|n| n.to_string_lossy().into_owned()),
            };
        }
    }
    None
}

/// Replaces every byte outside `[A-Za-z0-9._-]` with `-`, squeezes repeats, trims the ends and
/// bounds the length.
fn clean_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii() && is_name_byte(c as u8) {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    trimmed.chars().take(MAX_PROJECT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_slot() {
        assert_eq!(
            Namespace::new("shop", Some(2)).unwrap().to_string(),
            "shop-slot-2"
        );
        assert_eq!(Namespace::new("shop", None).unwrap().to_string(), "shop");
    }

    #[test]
    fn bad_project_names_are_rejected() {
        for bad in ["", "a,b", "a=b", "a b", "ü", &"x".repeat(101)] {
            assert!(Namespace::new(bad, None).is_err(), "{bad:?}");
        }
        assert!(Namespace::new("my_app.v2-x", Some(0)).is_ok());
    }

    #[test]
    fn project_from_git_repo_and_worktree_and_plain_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("My Shop");
        std::fs::create_dir_all(repo.join(".git/worktrees/feature")).unwrap();
        std::fs::create_dir_all(repo.join("src/deep")).unwrap();
        assert_eq!(detect_project(&repo.join("src/deep")).unwrap(), "My-Shop");

        let wt = tmp.path().join("shop-feature");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(
            wt.join(".git"),
            format!(
                "gitdir: {}\n",
                repo.join(".git/worktrees/feature").display()
            ),
        )
        .unwrap();
        assert_eq!(detect_project(&wt).unwrap(), "My-Shop");

        let plain = tmp.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        // tempdirs live under /tmp, which has no .git above it.
        assert_eq!(detect_project(&plain).unwrap(), "plain");
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  a//b  c "), "a-b-c");
        assert_eq!(clean_name("ünï"), "n");
        assert_eq!(clean_name("***"), "");
    }
}
