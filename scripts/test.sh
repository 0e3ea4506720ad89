#!/usr/bin/env bash
# The project's one test command (the README's, and what CI runs through .ci/run):
# formatting, lints, and every test of the workspace, including the end-to-end tests in
# crates/lookout/tests that run the real `lookout` binary against the real Python
# OpenTelemetry SDK.
#
# Tests run on the debug build that `cargo test` makes anyway (the e2e harness finds it through
# CARGO_BIN_EXE_lookout): they check behaviour, not speed, and a second, release build of the
# whole workspace would cost CI minutes on two cores for no extra coverage.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "python env for the end-to-end tests"
bash scripts/python-env.sh
export LOOKOUT_TEST_PYTHON="$root/.venv/bin/python"

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --no-fail-fast"
# Last, so that cargo test's own summary lines are the last thing this script prints.
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast
