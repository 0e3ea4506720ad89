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

step "system packages for the end-to-end tests"
bash scripts/system-deps.sh
docker-compose --version

step "python env for the end-to-end tests"
bash scripts/python-env.sh
export LOOKOUT_TEST_PYTHON="$root/.venv/bin/python"

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --no-fail-fast"
# --no-fail-fast: one failing test binary must not hide the results of the others.
# cargo's last summary line is usually an empty doc-test run, so the script ends with one
# total over every test binary instead: "N passed, M failed".
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
exit "$status"
