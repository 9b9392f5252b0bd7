#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster that `make kind-up` made. Idempotent: no cluster, nothing to do.
# The images stay in Docker (the node image and bases are keyed and reused by the next `make kind-up`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=species-classifier
KIND=${KIND:-$ROOT/bin/kind}

need docker "install Docker: without it there is no kind cluster to delete"
docker_answers || die "the Docker engine does not answer ('docker info' failed): start it so kind can find its cluster"
if [[ ! -x $KIND ]]; then
    KIND=$(command -v kind) || die "kind not found: run 'make kind-down' (builds bin/kind) or set KIND=/path/to/kind"
fi

if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "deleting kind cluster '$CLUSTER'"
    "$KIND" delete cluster --name "$CLUSTER"
else
    log "no kind cluster '$CLUSTER': nothing to delete"
fi
