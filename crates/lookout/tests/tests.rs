//! Lookout's one integration-test binary (ripgrep's `tests/tests.rs` shape): every test starts
//! the real `lookout` binary on port 0 in a temporary data dir and talks to it with real
//! clients, chiefly the Python OpenTelemetry SDK from the venv that `scripts/python-env.sh`
//! builds. One binary instead of one per file keeps link time down, and the shared harness in
//! `e2e/harness.rs` (server lifecycle, HTTP, Python runner) is compiled once.

mod e2e;
