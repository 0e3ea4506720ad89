#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing:
#   docker-compose: validates generated Compose overrides (`docker-compose config` needs no
#   Docker engine).
#   prometheus: the real Prometheus (and promtool) the metrics and scrape tests compare
#   Lookout with.
#   prometheus-alertmanager: the real Alertmanager the rules notifier's tests send alerts to.
#   openssl: makes the certificates of the scrape manager's TLS tests.
#   tinyproxy: the HTTP proxy the scrape manager's proxy_url test scrapes through.
#   iproute2, util-linux: the Docker-bridge test builds a bridge in a private network
#   namespace (`unshare`, `ip`).
# Runs apt-get directly as root, through sudo otherwise.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: the tests need ${missing[*]}; install it with apt-get (as root)" >&2
    exit 1
fi
echo "installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
