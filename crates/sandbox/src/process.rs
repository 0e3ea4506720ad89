//! Is a process alive, and is it still the one we recorded? Plus sending it a signal.
//!
//! A pid alone is not an identity: after a process exits, the kernel may give its pid to an
//! unrelated process, and a stale pid file would then make `lookout down` signal a stranger.
//! So every recorded pid comes with the process's start time (field 22 of `/proc/<pid>/stat`,
//! in clock ticks since boot), and a process counts as the recorded one only if both match.
//! A zombie (exited, not yet reaped by its parent) counts as dead: it runs nothing.

use std::path::Path;

use rustix::process::{Pid, Signal};

/// A process's identity: pid plus start time, when the platform tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22); `None` where
    /// `/proc` is not available, in which case only the pid is compared.
    pub start_ticks: Option<u64>,
}

impl ProcessId {
    /// The identity of the running process `pid`, or `None` if there is no such live process.
    pub fn of(pid: u32) -> Option<ProcessId> {
        match read_stat(pid) {
            Some(Stat { state: 'Z', .. }) | Some(Stat { state: 'X', .. }) => None,
            Some(stat) => Some(ProcessId {
                pid,
                start_ticks: Some(stat.start_ticks),
            }),
            None if Path::new("/proc/self/stat").exists() => None,
            // No procfs: fall back to asking the kernel whether the pid exists.
            None => pid_exists(pid).then_some(ProcessId {
                pid,
                start_ticks: None,
            }),
        }
    }

    /// The identity of this process.
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId::of(pid).unwrap_or(ProcessId {
            pid,
            start_ticks: None,
        })
    }

    /// Whether this exact process still runs (same pid, same start time, not a zombie).
    pub fn is_alive(&self) -> bool {
        match ProcessId::of(self.pid) {
            Some(now) => match (self.start_ticks, now.start_ticks) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            },
            None => false,
        }
    }

    /// Sends SIGTERM if the process is still the recorded one; false if it was not alive.
    pub fn terminate(&self) -> bool {
        self.signal(Signal::TERM)
    }

    /// Sends `signal` if the process is still the recorded one; false if it was not alive or
    /// the signal could not be sent.
    pub fn signal(&self, signal: Signal) -> bool {
        if !self.is_alive() {
            return false;
        }
        match pid_of(self.pid) {
            Some(p) => rustix::process::kill_process(p, signal).is_ok(),
            None => false,
        }
    }
}

/// Sends `signal` to `pid` (no identity check: for a child this process owns and has not
/// reaped yet, whose pid cannot have been reused).
pub fn signal_child(pid: u32, signal: Signal) -> bool {
    match pid_of(pid) {
        Some(p) => rustix::process::kill_process(p, signal).is_ok(),
        None => false,
    }
}

/// Whether a SIGINT this process receives was most likely sent by its terminal (Ctrl-C): the
/// terminal on stdin has this process's group in the foreground. The terminal sends it to the
/// whole foreground group, so a child in that group already has its own copy and forwarding
/// would deliver it twice (many programs treat a second Ctrl-C as "quit now").
pub fn interrupt_comes_from_terminal() -> bool {
    match rustix::termios::tcgetpgrp(std::io::stdin()) {
        Ok(fg) => fg == rustix::process::getpgrp(),
        Err(_) => false,
    }
}

fn pid_of(pid: u32) -> Option<Pid> {
    // Pid 0 and negative values mean process groups to kill(2); never build those.
    let raw = i32::try_from(pid).ok().filter(|p| *p > 0)?;
    Pid::from_raw(raw)
}

fn pid_exists(pid: u32) -> bool {
    match pid_of(pid) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            // The process exists but belongs to someone else.
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

struct Stat {
    state: char,
    start_ticks: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) S ppid ...`: comm may hold spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), start time is field 22: 18 more fields on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_names() {
        let line = "42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_ticks, 777);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn current_process_is_alive_and_a_reaped_child_is_not() {
        assert!(ProcessId::current().is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
        // A recorded identity with another start time is someone else.
        let me = ProcessId::current();
        if let Some(t) = me.start_ticks {
            let other = ProcessId {
                start_ticks: Some(t + 1),
                ..me
            };
            assert!(!other.is_alive());
        }
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait until it has exited but do not reap it yet.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read_stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(ProcessId::of(pid).is_none());
        child.wait().unwrap();
    }
}
