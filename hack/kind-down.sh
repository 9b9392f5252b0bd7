#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster that `make kind-up` made. Idempotent: no cluster, nothing to do.
# The locally built images stay in Docker (`docker image rm species-classifier/{gateway,serving}:0.1.0`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=species-classifier
KIND=${KIND:-$ROOT/bin/kind}

log() { printf 'kind-down: %s\n' "$*" >&2; }
die() {
    printf 'kind-down: error: %s\n' "$*" >&2
    exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed, so there is no kind cluster to delete here"
docker info >/dev/null 2>&1 ||
    die "the Docker daemon does not answer ('docker info' failed): start Docker to let kind find its cluster"
if [[ ! -x $KIND ]]; then
    KIND=$(command -v kind) || die "kind not found: run 'make kind-down' (builds bin/kind) or set KIND=/path/to/kind"
fi

if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "deleting kind cluster '$CLUSTER'"
    "$KIND" delete cluster --name "$CLUSTER"
else
    log "no kind cluster '$CLUSTER': nothing to delete"
fi
