#!/usr/bin/env bash
# Creates (or refreshes) the Python virtualenv the end-to-end tests use: .venv at the
# repository root, with scripts/requirements-test.txt installed.
#
# Idempotent and cheap when nothing changed: a stamp file in the venv records a hash of the
# requirements file and of the interpreter version, and pip runs only when that hash differs.
# The tests find the interpreter through LOOKOUT_TEST_PYTHON, which scripts/test.sh points
# at .venv/bin/python.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements-test.txt"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "python-env: $python not found; install Python 3.9+ with venv and pip, or set PYTHON" >&2
    exit 1
fi

want="$( { "$python" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.lookout-requirements.sha256"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python-env: $venv is up to date"
    exit 0
fi

# Start from scratch whenever anything changed: a venv built by another interpreter version or
# left half-installed by an interrupted run is not worth repairing, and a fresh one costs seconds.
echo "python-env: creating $venv"
rm -rf "$venv"
"$python" -m venv "$venv"

echo "python-env: installing $req"
# No cache dir: CI machines are fresh anyway, and it keeps the developer's ~/.cache clean of
# wheels they never asked for.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$req"
# Import what the tests import, so a broken install fails here with a clear message instead
# of inside a test.
"$venv/bin/python" -c 'import grpc, requests, prometheus_client, opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.proto.collector.trace.v1.trace_service_pb2'
echo "$want" >"$stamp"
echo "python-env: ready"
