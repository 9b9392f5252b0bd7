#!/usr/bin/env bash
# Local end-to-end path (`make kind-up`): kind cluster from kind-config.yaml, both images built and loaded,
# k8s/overlays/kind applied, rollout awaited, every golden image sent through a port-forward and its label
# checked. Idempotent: an existing cluster is reused and its pods are rolled onto the images just built.
#
# Needs: docker (with a running daemon), kind (bin/kind v0.33.0, built by `make kind-up`), kubectl,
# .venv-gateway (`make venv`) and the demo model + golden images (`make model`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CLUSTER=species-classifier
CONTEXT=kind-$CLUSTER
NAMESPACE=species-classifier
# The tag k8s/overlays/kind pins (the chart's appVersion); a different tag would not be what the pods run.
TAG=0.1.0
IMAGES=("species-classifier/gateway:$TAG" "species-classifier/serving:$TAG")
DEPLOYMENTS=(species-classifier-serving species-classifier-gateway)
KIND=${KIND:-$ROOT/bin/kind}
GW_PY=${GW_PY:-$ROOT/.venv-gateway/bin/python}
FORWARD_PORT=${FORWARD_PORT:-9696}
NODE_PORT_URL=http://localhost:8080
# TF Serving's startup probe allows 10 minutes for a model load; the demo model loads in seconds.
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-600s}

log() { printf 'kind-up: %s\n' "$*" >&2; }
die() {
    printf 'kind-up: error: %s\n' "$*" >&2
    exit 1
}

# --- prerequisites: fail fast, saying what to install ----------------------------------------------------
command -v docker >/dev/null 2>&1 ||
    die "docker is not installed. Install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/"
docker info >/dev/null 2>&1 ||
    die "the Docker daemon does not answer ('docker info' failed). Start Docker and check that this user may use it."
if [[ ! -x $KIND ]]; then
    KIND=$(command -v kind) || die "kind not found: run 'make kind-up' (builds bin/kind v0.33.0) or set KIND=/path/to/kind"
fi
command -v kubectl >/dev/null 2>&1 ||
    die "kubectl is not installed: https://kubernetes.io/docs/tasks/tools/"
[[ -x $GW_PY ]] || die "$GW_PY is missing: run 'make venv'"
[[ -f build/models/species_model/1/saved_model.pb ]] || die "no demo model in build/models: run 'make model'"
shopt -s nullglob
GOLDEN=(build/golden/*.jpg)
shopt -u nullglob
((${#GOLDEN[@]} > 0)) || die "no golden images in build/golden: run 'make model'"
log "using $("$KIND" version), $(kubectl version --client 2>/dev/null | head -n1)"

kc() { kubectl --context "$CONTEXT" --namespace "$NAMESPACE" "$@"; }

# --- cluster ----------------------------------------------------------------------------------------------
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster '$CLUSTER'"
else
    log "creating kind cluster '$CLUSTER' from kind-config.yaml"
    "$KIND" create cluster --config kind-config.yaml --wait 180s
fi
# Makes kind-species-classifier the current context, as the e2e tests expect.
"$KIND" export kubeconfig --name "$CLUSTER"

# --- images -----------------------------------------------------------------------------------------------
# BuildKit reads serving/Dockerfile.dockerignore, which keeps the build context small.
export DOCKER_BUILDKIT=1
log "building ${IMAGES[0]}"
docker build -f gateway/Dockerfile -t "${IMAGES[0]}" .
log "building ${IMAGES[1]}"
docker build -f serving/Dockerfile -t "${IMAGES[1]}" .
log "loading images into the kind nodes"
"$KIND" load docker-image --name "$CLUSTER" "${IMAGES[@]}"

# --- apply and wait ---------------------------------------------------------------------------------------
existed=false
if kc get deployment "${DEPLOYMENTS[0]}" >/dev/null 2>&1; then
    existed=true
fi
log "applying k8s/overlays/kind"
kubectl --context "$CONTEXT" apply -k k8s/overlays/kind
if $existed; then
    # Same tag, new image content: the Deployment spec did not change, so roll the pods explicitly.
    log "restarting the Deployments so they run the images just loaded"
    kc rollout restart deployment "${DEPLOYMENTS[@]}"
fi

diagnose() {
    log "rollout did not finish; current state:"
    kc get deployments,pods,endpointslices -o wide >&2 || true
    kc describe pods >&2 || true
    for d in "${DEPLOYMENTS[@]}"; do
        kc logs "deployment/$d" --all-containers --tail=50 >&2 || true
    done
}
for d in "${DEPLOYMENTS[@]}"; do
    log "waiting for deployment/$d (timeout $ROLLOUT_TIMEOUT)"
    kc rollout status "deployment/$d" --timeout "$ROLLOUT_TIMEOUT" || {
        diagnose
        die "deployment/$d did not become ready"
    }
done

# --- port-forward and golden images -----------------------------------------------------------------------
forward_log=$(mktemp)
# kubectl itself in the background (not through the kc function, which would fork a subshell): $! must be
# kubectl's own pid for the trap to stop it.
kubectl --context "$CONTEXT" --namespace "$NAMESPACE" port-forward svc/species-classifier-gateway \
    "$FORWARD_PORT:80" >"$forward_log" 2>&1 &
forward_pid=$!
cleanup() {
    kill "$forward_pid" 2>/dev/null || true
    wait "$forward_pid" 2>/dev/null || true
    rm -f "$forward_log"
}
trap cleanup EXIT

ready() {
    "$GW_PY" - "$1" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
for _ in $(seq 60); do
    if ! kill -0 "$forward_pid" 2>/dev/null; then
        cat "$forward_log" >&2
        die "kubectl port-forward exited (is localhost:$FORWARD_PORT in use, e.g. by 'make local'? set FORWARD_PORT)"
    fi
    ready "http://localhost:$FORWARD_PORT" && break
    sleep 1
done
ready "http://localhost:$FORWARD_PORT" || die "the gateway is not ready behind the port-forward on localhost:$FORWARD_PORT"

failed=()
for image in "${GOLDEN[@]}"; do
    label=$(basename "$image" .jpg)
    if ! "$GW_PY" -m gateway.client --endpoint "http://localhost:$FORWARD_PORT" --expect-label "$label" "$image"; then
        failed+=("$label")
    fi
done
((${#failed[@]} == 0)) || die "golden images not labelled as expected: ${failed[*]}"
log "all ${#GOLDEN[@]} golden images labelled correctly through the port-forward"

ready "$NODE_PORT_URL" ||
    die "$NODE_PORT_URL does not answer: the cluster may predate kind-config.yaml's port mapping ('make kind-down' then 'make kind-up')"

cat <<EOF

The classifier runs in kind cluster '$CLUSTER' (kubectl context $CONTEXT, namespace $NAMESPACE).

Without a port-forward (NodePort 30080, published on 127.0.0.1:8080 by kind-config.yaml):
  curl -s -H 'Content-Type: image/jpeg' --data-binary @build/golden/leopard.jpg $NODE_PORT_URL/predict
  .venv-gateway/bin/python -m gateway.client --endpoint $NODE_PORT_URL build/golden/leopard.jpg

Through a port-forward:
  kubectl --context $CONTEXT -n $NAMESPACE port-forward svc/species-classifier-gateway 9696:80
  .venv-gateway/bin/python -m gateway.client --endpoint http://localhost:9696 build/golden/leopard.jpg

End-to-end tests:  .venv/bin/python -m pytest tests/e2e -m e2e
Remove it all:     make kind-down
EOF
