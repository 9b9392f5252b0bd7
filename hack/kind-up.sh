#!/usr/bin/env bash
# `make kind-up`: the local end-to-end path. A kind cluster from kind-config.yaml, both images built and
# loaded into its nodes, k8s/overlays/kind applied, the rollouts awaited, and every golden image sent through
# a port-forward and through the NodePort (http://localhost:8080), its label checked. Idempotent: an existing
# cluster is reused and its pods are rolled onto the images just built.
#
# The pinned images come first: the kind node image in kind-config.yaml, the Python base in
# gateway/Dockerfile and tensorflow/serving in serving/Dockerfile. Where one is neither present nor pullable
# (no registry reachable, as on the project's own machines), it says so in one line and uses a substitute
# built here (hack/offline): a kind node image built from Debian packages and the Go module proxy, a Python
# base from Debian's python3.11, and the TF Serving stand-in's image in place of TF Serving's.
#
# Environment:
#   KIND_PULL=try|never   try pulling the pinned images (default try); never: go straight to the substitutes
#                         (the tests do, so they contact no registry)
#   FORWARD_PORT          local port of the port-forward (default 9696)
#   ROLLOUT_TIMEOUT       per Deployment (default 600s)
#   KIND, GW_PY, VENV_PY  kind binary, .venv-gateway's and .venv's Python (defaults: the ones make builds)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CLUSTER=species-classifier
CONTEXT=kind-$CLUSTER
NAMESPACE=species-classifier
DEPLOYMENTS=(species-classifier-serving species-classifier-gateway)
KIND=${KIND:-$ROOT/bin/kind}
GW_PY=${GW_PY:-$ROOT/.venv-gateway/bin/python}
VENV_PY=${VENV_PY:-$ROOT/.venv/bin/python}
KIND_PULL=${KIND_PULL:-try}
FORWARD_PORT=${FORWARD_PORT:-9696}
NODE_PORT_URL=http://localhost:8080
# Free space the cluster needs before it is made (see "disk" below).
NEED_GIB=${KIND_NEED_GIB:-15}
# TF Serving's startup probe allows 10 minutes for a model load; the demo model loads in seconds.
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-600s}
WORK=$ROOT/build/kind
# The image tag k8s/overlays/kind pins: the chart's appVersion.
VERSION=${APP_VERSION:-$(make -s --no-print-directory print-version)}

# --- prerequisites: fail fast, saying what to install --------------------------------------------------------
need docker "install Docker Engine (https://docs.docker.com/engine/install/), or run 'make docker-up' as root on Debian"
docker_answers || die "the Docker engine does not answer ('docker info' failed): start it, or run 'make docker-up'"
if [[ ! -x $KIND ]]; then
    KIND=$(command -v kind) || die "kind not found: run 'make kind-up' (builds bin/kind) or set KIND=/path/to/kind"
fi
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
[[ -x $GW_PY && -x $VENV_PY ]] || die "the virtualenvs are missing: run 'make venv'"
[[ -f build/models/species_model/1/saved_model.pb ]] || die "no demo model in build/models: run 'make model'"
shopt -s nullglob
GOLDEN=(build/golden/*.jpg)
shopt -u nullglob
((${#GOLDEN[@]} > 0)) || die "no golden images in build/golden: run 'make model'"
log "using $("$KIND" version), $(kubectl version --client 2>/dev/null | head -n1)"
mkdir -p "$WORK"

kc() { kubectl --context "$CONTEXT" --namespace "$NAMESPACE" "$@"; }

# available IMAGE: present in the engine, or pulled now (unless KIND_PULL=never).
available() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    [[ $KIND_PULL == never ]] && return 1
    docker pull -q "$1" >/dev/null 2>&1
}

# The build machine's docker CLI may lack buildx; the legacy builder reads the repository's .dockerignore.
if docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=1
else
    export DOCKER_BUILDKIT=0
fi

# build_image DOCKERFILE IMAGE [BUILD_ARG...]: builds IMAGE from the repository root. A Dockerfile with a
# `builder` stage has that stage tagged too (IMAGE's repository + "-builder"): the legacy builder keeps its
# cache as the stage's intermediate images, which are untagged and would go with the leftovers pruned below,
# so every run would reinstall the Python packages (over a minute each image, measured). Tagged, the next
# build of unchanged inputs is all cache hits and gives the same image ID, which kind load then skips on
# nodes that have it. A changed builder leaves the old one untagged, and the next prune removes it.
build_image() {
    local dockerfile=$1 image=$2
    shift 2
    if grep -q '^FROM .* AS builder$' "$dockerfile"; then
        docker build -q --label "$IMAGE_LABEL" -f "$dockerfile" "$@" --target builder \
            -t "${image%:*}-builder:${image##*:}" . >/dev/null
    fi
    docker build -q --label "$IMAGE_LABEL" -f "$dockerfile" "$@" -t "$image" . >/dev/null
}

# --- disk ------------------------------------------------------------------------------------------------------
# Measured: the cluster takes about 10 GiB (each worker's /var volume holds both images, packed and unpacked:
# 4.6 GiB), and the tests a little more. A disk that fills up under a running cluster fails pods in confusing
# ways (containers that never start, empty logs), so the leftovers of earlier builds go first, then the space
# is checked.
docker_root=$(docker info --format '{{.DockerRootDir}}')
prune_leftovers
free=$(free_gib "$docker_root")
((free >= NEED_GIB)) || die "only $free GiB free for Docker's data ($docker_root); the cluster needs about $NEED_GIB GiB: free some (docker system prune, go clean -cache)"
log "$free GiB free for Docker's data ($docker_root)"

# --- host limits -----------------------------------------------------------------------------------------------
# Each node's systemd, kubelet and containerd take inotify instances from the host's per-user limit, which all
# three nodes share with the host: at the default 128, a busy cluster's kubelets start failing to watch
# ("too many open files") and pods stop starting. Raised, never lowered, as root only.
raise_limit() {
    local current
    current=$(sysctl -n "$1" 2>/dev/null) || return 0
    if ((current < $2)); then
        if [[ $(id -u) == 0 ]] && sysctl -q -w "$1=$2" 2>/dev/null; then
            log "raised $1 from $current to $2"
        else
            warn "$1 is $current (kind advises at least $2); raise it as root if pods fail with 'too many open files'"
        fi
    fi
}
raise_limit fs.inotify.max_user_instances 512
raise_limit fs.inotify.max_user_watches 524288

# --- cluster ---------------------------------------------------------------------------------------------------
# restarted_nodes: the nodes started again after they were made (a restarted Docker engine or machine starts
# them again). Here such a cluster came back half-working: its API answered and its nodes said Ready, but new
# pods never started. So it is made again instead of reused.
restarted_nodes() {
    local node created started
    for node in $("$KIND" get nodes --name "$CLUSTER" 2>/dev/null); do
        read -r created started < <(docker inspect --format '{{.Created}} {{.State.StartedAt}}' "$node")
        if (($(date -d "$started" +%s) - $(date -d "$created" +%s) > 600)); then
            echo "$node"
        fi
    done
}

# healthy: the API server is ready and every node is Ready, within 90 seconds.
healthy() {
    local deadline=$((SECONDS + 90)) nodes
    while ((SECONDS < deadline)); do
        if kubectl --context "$CONTEXT" get --raw /readyz >/dev/null 2>&1; then
            nodes=$(kubectl --context "$CONTEXT" get nodes --no-headers 2>/dev/null) || nodes=""
            if [[ -n $nodes ]] && ! awk '$2 != "Ready" { found = 1 } END { exit !found }' <<<"$nodes"; then
                return 0
            fi
        fi
        sleep 5
    done
    return 1
}

if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    "$KIND" export kubeconfig --name "$CLUSTER" >/dev/null 2>&1 || true
    restarted=$(restarted_nodes)
    if [[ -n $restarted ]]; then
        warn "kind cluster '$CLUSTER' has nodes that restarted since they were made (${restarted//$'\n'/ }): making it again"
        "$KIND" delete cluster --name "$CLUSTER"
    elif ! healthy; then
        warn "kind cluster '$CLUSTER' is not healthy (API server not ready or a node not Ready after 90 s): making it again"
        "$KIND" delete cluster --name "$CLUSTER"
    fi
fi
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster '$CLUSTER'"
else
    config=kind-config.yaml
    pinned_node=$(sed -n 's/^ *image: *//p' kind-config.yaml | head -n 1)
    if ! available "$pinned_node"; then
        log "cannot pull ${pinned_node%@*}: building a kind node image here instead (hack/offline)"
        node_image=$(hack/offline/build-images.sh node)
        # The same cluster with only the node image changed, and the kubelet told what the local image
        # needs: the cgroupfs driver (its containerd uses it; the systemd driver cannot make its slices in a
        # node on a cgroup v1 host) and no refusal of cgroup v1 (kubelet 1.35+ refuses it by default).
        config=$WORK/kind-config.yaml
        "$VENV_PY" - "$node_image" kind-config.yaml "$config" <<'PY'
import sys

import yaml

image, source, target = sys.argv[1:]
with open(source, encoding="utf-8") as f:
    config = yaml.safe_load(f)
for node in config["nodes"]:
    node["image"] = image
config.setdefault("kubeadmConfigPatches", []).append(
    "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\nfailCgroupV1: false\n"
)
with open(target, "w", encoding="utf-8") as f:
    f.write("# Generated by hack/kind-up.sh from kind-config.yaml: the locally built node image and the\n")
    f.write("# kubelet settings it needs; everything else as in kind-config.yaml.\n")
    yaml.safe_dump(config, f, sort_keys=False)
PY
    fi
    log "creating kind cluster '$CLUSTER' from $config"
    "$KIND" create cluster --config "$config" --wait 240s
fi
# Makes kind-species-classifier the current context, as the e2e tests expect.
"$KIND" export kubeconfig --name "$CLUSTER"

# --- images ----------------------------------------------------------------------------------------------------
python_image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' gateway/Dockerfile)
if ! available "$python_image"; then
    log "cannot pull $python_image: using Debian's python3.11 as the Python base (hack/offline)"
    python_image=$(hack/offline/build-images.sh python)
fi
gateway_image=species-classifier/gateway:$VERSION
log "building $gateway_image (Python base $python_image)"
build_image gateway/Dockerfile "$gateway_image" --build-arg "PYTHON_IMAGE=$python_image"

overlay=k8s/overlays/kind
serving_base=$(sed -n 's/^FROM //p' serving/Dockerfile | head -n 1)
if available "$serving_base"; then
    serving_image=species-classifier/serving:$VERSION
    log "building $serving_image (on $serving_base)"
    build_image serving/Dockerfile "$serving_image"
else
    # tensorflow/serving ships only as an image; without a registry, the stand-in (serving/standin) serves
    # the same model over the same gRPC API, in an image of the same shape.
    log "cannot pull $serving_base: the serving Deployment runs the TF Serving stand-in's image instead"
    serving_image=species-classifier/serving-standin:$VERSION
    log "building $serving_image (Python base $python_image)"
    build_image serving/standin/Dockerfile "$serving_image" --build-arg "PYTHON_IMAGE=$python_image"
    overlay=$WORK/overlay
    mkdir -p "$overlay"
    cat >"$overlay/kustomization.yaml" <<EOF
# Generated by hack/kind-up.sh: k8s/overlays/kind with the TF Serving stand-in's image in place of TF
# Serving's, which cannot be pulled on this machine. Nothing else differs.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../k8s/overlays/kind
images:
  - name: docker.io/species-classifier/serving
    newName: docker.io/species-classifier/serving-standin
EOF
fi

# Pods run on the workers (the control plane is tainted); a one-node cluster runs them on its only node.
mapfile -t nodes < <(kubectl --context "$CONTEXT" get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
((${#nodes[@]} > 0)) || mapfile -t nodes < <("$KIND" get nodes --name "$CLUSTER")
log "loading $gateway_image and $serving_image into ${nodes[*]}"
"$KIND" load docker-image --name "$CLUSTER" --nodes "$(
    IFS=,
    echo "${nodes[*]}"
)" "$gateway_image" "$serving_image"

# --- apply and wait --------------------------------------------------------------------------------------------
existed=false
if kc get deployment "${DEPLOYMENTS[0]}" >/dev/null 2>&1; then
    existed=true
fi
log "applying $overlay"
kubectl --context "$CONTEXT" apply -k "$overlay"
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

# --- port-forward and golden images ----------------------------------------------------------------------------
forward_log=$(mktemp)
# kubectl itself in the background (not through kc, which would fork a subshell): $! must be kubectl's own
# pid for the trap to stop it.
kubectl --context "$CONTEXT" --namespace "$NAMESPACE" port-forward svc/species-classifier-gateway \
    "$FORWARD_PORT:80" >"$forward_log" 2>&1 &
forward_pid=$!
cleanup() {
    kill "$forward_pid" 2>/dev/null || true
    wait "$forward_pid" 2>/dev/null || true
    rm -f "$forward_log"
}
trap cleanup EXIT

for _ in $(seq 60); do
    if ! kill -0 "$forward_pid" 2>/dev/null; then
        cat "$forward_log" >&2
        die "kubectl port-forward exited (is localhost:$FORWARD_PORT in use, e.g. by 'make local'? set FORWARD_PORT)"
    fi
    http_ok "http://localhost:$FORWARD_PORT/readyz" && break
    sleep 1
done
wait_ready "http://localhost:$FORWARD_PORT" 5 ||
    die "the gateway is not ready behind the port-forward on localhost:$FORWARD_PORT"

check_golden() {
    local endpoint=$1 image label failed=()
    for image in "${GOLDEN[@]}"; do
        label=$(basename "$image" .jpg)
        "$GW_PY" -m gateway.client --endpoint "$endpoint" --expect-label "$label" "$image" >/dev/null ||
            failed+=("$label")
    done
    ((${#failed[@]} == 0)) || die "golden images not labelled as expected through $endpoint: ${failed[*]}"
    log "all ${#GOLDEN[@]} golden images labelled correctly through $endpoint"
}
check_golden "http://localhost:$FORWARD_PORT"
wait_ready "$NODE_PORT_URL" 30 ||
    die "$NODE_PORT_URL does not answer: the cluster may predate kind-config.yaml's port mapping ('make kind-down' then 'make kind-up')"
check_golden "$NODE_PORT_URL"

# The EKS rehearsal's add-ons (MetalLB, metrics-server), on request.
if [[ ${KIND_ADDONS:-0} == 1 ]]; then
    hack/kind-addons.sh
fi

cat <<EOF

The classifier runs in kind cluster '$CLUSTER' (kubectl context $CONTEXT, namespace $NAMESPACE).
TF Serving: $serving_image.

Without a port-forward (NodePort 30080, published on 127.0.0.1:8080 by kind-config.yaml):
  curl -s -H 'Content-Type: image/jpeg' --data-binary @build/golden/leopard.jpg $NODE_PORT_URL/predict
  .venv-gateway/bin/python -m gateway.client --endpoint $NODE_PORT_URL build/golden/leopard.jpg

Through a port-forward:
  kubectl --context $CONTEXT -n $NAMESPACE port-forward svc/species-classifier-gateway 9696:80
  .venv-gateway/bin/python -m gateway.client --endpoint http://localhost:9696 build/golden/leopard.jpg

End-to-end tests:  .venv/bin/python -m pytest tests/e2e -m e2e
EKS add-ons:       make kind-addons (MetalLB and metrics-server, for the EKS rehearsal)
Remove it all:     make kind-down
EOF
