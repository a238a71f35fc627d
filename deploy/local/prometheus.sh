#!/usr/bin/env bash
# Prometheus for `make run`: scrapes the five services on 127.0.0.1 and evaluates the alerts.
# The server comes from Debian's `prometheus` package (installed on first use, like promtool).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN=${SADA_RUN_DIR:-$ROOT/.run}
if ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus.sh: installing Debian's prometheus package" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) >&2
fi
mkdir -p "$RUN/data/prometheus"
exec prometheus \
  --config.file="$ROOT/deploy/prometheus/prometheus.local.yml" \
  --storage.tsdb.path="$RUN/data/prometheus" \
  --web.listen-address=127.0.0.1:${SADA_PROMETHEUS_PORT:-9090} \
  --log.level=warn
