//! The global allocator, and how long it keeps freed memory before returning it to the OS.
//!
//! mimalloc: ingest decodes, validates and stores millions of small strings per second from
//! two or more threads; glibc's malloc spent about half the server's CPU on that in the ingest
//! benchmark.
//!
//! mimalloc returns memory that stayed free for a second to the OS (its `purge_delay`). A
//! trace head is freed whole once its block is written: hundreds of MiB (about 480 bytes per
//! span). The next head, growing at the same rate, then faulted those pages back in, one by
//! one. At full-speed ingest page faults were 5% of the server's CPU, and ten seconds
//! (jemalloc's default decay) was enough for the next head to reuse the memory. At a steady
//! 10k spans/s a head lasts 100 s, and its faults were a seventh of the server's CPU: five
//! minutes, Go's old scavenging delay, covers that. mimalloc purges everything pending at
//! once, when the delay since the first pending free runs out, so a purge still catches part
//! of a head before its successor reused it: at 10k spans/s, about a sixth of the faults
//! remain. Memory nobody reuses goes back to the OS at most five minutes after it was freed.
//! `MIMALLOC_PURGE_DELAY` in the environment still wins.
//!
//! Setting the option is a call into mimalloc's C API, which Rust sees as unsafe: hence this
//! module's exception to the workspace's ban on unsafe code. The call only stores an integer
//! in mimalloc's option table.
#![allow(unsafe_code)]

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t, mi_version};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's option enum (`libmimalloc-sys` names the options
/// of mimalloc 2, whose numbering differs).
const PURGE_DELAY: mi_option_t = 15;
/// mimalloc 3's default purge delay, in milliseconds: seen there, the option is the one we
/// mean and nobody has set it.
const DEFAULT_PURGE_DELAY_MS: c_long = 1000;
/// How long freed memory is kept for reuse.
const PURGE_DELAY_MS: c_long = 300_000;

/// Keeps freed memory for [`PURGE_DELAY_MS`], unless the environment set the delay or this
/// is not the mimalloc whose options we know. Returns whether it did.
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() || purge_delay_ms().is_none() {
        return false;
    }
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table and may be called at
    // any time; `PURGE_DELAY` is an option of the linked mimalloc, as `purge_delay_ms`
    // checked. (`main` calls this first anyway, before other threads run.)
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    true
}

/// The purge delay, if the linked mimalloc is version 3 and the option still holds its
/// default (or the value this module sets).
fn purge_delay_ms() -> Option<c_long> {
    // SAFETY: both only read: the version constant, and an option (initialized on first
    // read) of mimalloc's option table, for an index within it.
    let (version, delay) = unsafe { (mi_version(), mi_option_get(PURGE_DELAY)) };
    (version / 10_000 == 3 && (delay == DEFAULT_PURGE_DELAY_MS || delay == PURGE_DELAY_MS))
        .then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when a mimalloc update moves or changes the option, which would otherwise make
    /// `keep_freed_memory` silently do nothing.
    #[test]
    fn the_purge_delay_is_set_on_the_linked_mimalloc() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert!(purge_delay_ms().is_some());
        assert!(keep_freed_memory());
        assert_eq!(purge_delay_ms(), Some(PURGE_DELAY_MS));
    }
}
