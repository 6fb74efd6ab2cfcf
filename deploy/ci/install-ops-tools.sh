#!/usr/bin/env bash
# Installs what tests/ops needs and a clean machine lacks (idempotent, fast when done):
#   prometheus + promtool   Debian package `prometheus`
#   kubeconform             Go module github.com/yannh/kubeconform, into .cache/go/bin
#   Kubernetes schemas      from the PyPI wheel kubernetes-validate, into .cache/k8s-schemas
#   docker compose          the Compose v2 CLI plugin, built from its Go module (only when
#                           `docker compose` is missing), into .cache/go/bin and the
#                           docker CLI plugin folder
# Everything built goes under .cache/ (ignored by git). Usage: bash deploy/ci/install-ops-tools.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

KUBECONFORM_VERSION=v0.7.0
COMPOSE_VERSION=v2.40.3
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_SCHEMA_VERSION=1.32.0

# Go builds live in a per-machine cache outside the clone, so CI's fresh clones reuse them
# (building docker compose takes minutes); .cache/go in the clone links to it.
TOOLS_CACHE="${METERING_TOOLS_CACHE:-${HOME:-/root}/.cache/metering-tools}"
mkdir -p "$TOOLS_CACHE/go" "$ROOT/.cache"
[ -e "$ROOT/.cache/go" ] || ln -s "$TOOLS_CACHE/go" "$ROOT/.cache/go"
export GOPATH="$TOOLS_CACHE/go"
export GOBIN="$GOPATH/bin"
export GOCACHE="$GOPATH/build"
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local

log() { echo "install-ops-tools: $*" >&2; }

# --- prometheus, promtool (Debian) ---------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    log "installing prometheus (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# --- Go toolchain ------------------------------------------------------------------
go_bin() {
    if command -v go >/dev/null 2>&1; then command -v go
    elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
    else
        log "Go is required to build kubeconform / docker compose, and was not found"
        exit 1
    fi
}

# --- kubeconform ------------------------------------------------------------------------
if ! command -v kubeconform >/dev/null 2>&1 && [ ! -x "$GOBIN/kubeconform" ]; then
    log "building kubeconform $KUBECONFORM_VERSION"
    "$(go_bin)" install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi

# --- Kubernetes JSON schemas for kubeconform ---------------------------------------------
SCHEMAS="$ROOT/.cache/k8s-schemas"
if [ ! -f "$SCHEMAS/v$KUBERNETES_SCHEMA_VERSION-local-strict/_definitions.json" ]; then
    log "extracting Kubernetes $KUBERNETES_SCHEMA_VERSION schemas from kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
    PY=python3
    if ! "$PY" -m pip --version >/dev/null 2>&1 && [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; fi
    WHEELS="$ROOT/.cache/wheels"
    mkdir -p "$WHEELS"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$WHEELS" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$PY" deploy/ci/k8s_schemas.py "$WHEELS/kubernetes_validate-$KUBERNETES_VALIDATE_VERSION-py3-none-any.whl" \
        "$KUBERNETES_SCHEMA_VERSION" "$SCHEMAS"
fi

# --- docker compose (v2 CLI plugin) -------------------------------------------------------
compose_works() { docker compose version >/dev/null 2>&1 || [ -x "$GOBIN/docker-compose" ]; }
if ! compose_works; then
    log "building docker compose $COMPOSE_VERSION (takes a few minutes)"
    GO="$(go_bin)"
    # `go install module@version` refuses modules whose go.mod has exclude directives,
    # so build inside the downloaded module, as its own main module.
    SRC="$("$GO" mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
    (cd "$SRC" && "$GO" build -trimpath \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
        -o "$GOBIN/docker-compose" ./cmd)
fi
if ! docker compose version >/dev/null 2>&1 && [ -x "$GOBIN/docker-compose" ] && command -v docker >/dev/null 2>&1; then
    for plugins in /usr/local/lib/docker/cli-plugins "${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins"; do
        if mkdir -p "$plugins" 2>/dev/null && cp "$GOBIN/docker-compose" "$plugins/docker-compose" 2>/dev/null; then
            log "installed the docker compose plugin in $plugins"
            break
        fi
    done
fi

log "promtool: $(promtool --version 2>&1 | head -1)"
log "kubeconform: $(command -v kubeconform || echo "$GOBIN/kubeconform")"
log "docker compose: $(docker compose version 2>/dev/null || "$GOBIN/docker-compose" version 2>/dev/null || echo missing)"
