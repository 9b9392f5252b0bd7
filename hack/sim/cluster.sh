#!/usr/bin/env bash
# Starts and stops the level-4 control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kwok's controller as local processes (kwokctl's binary runtime, fed only the binaries in bin/, so nothing is
# downloaded), all on 127.0.0.1 with free ports; then three simulated nodes (hack/sim/nodes.yaml).
#
#   hack/sim/cluster.sh check   exit 0 when every binary is built, else name the missing ones and exit 3
#   hack/sim/cluster.sh up      start it (idempotent); kubeconfig at $SIM_DIR/kubeconfig
#   hack/sim/cluster.sh down    stop it and remove its state (idempotent)
#
# Environment (make sim-up passes these; the pytest fixture sets its own SIM_DIR and SIM_NAME):
#   SIM_DIR   state folder (default build/sim)     SIM_NAME  cluster name (default species-classifier)
#   SIM_BIN   binaries folder (default bin)         KUBE_VERSION, ETCD_VERSION, KWOK_VERSION (default: hack/sim.mk)
set -euo pipefail
SCRIPT=sim
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

here=$ROOT/hack/sim
KUBE_VERSION=${KUBE_VERSION:-$(version_of KUBE_VERSION)}
ETCD_VERSION=${ETCD_VERSION:-$(version_of ETCD_VERSION)}
KWOK_VERSION=${KWOK_VERSION:-$(version_of KWOK_VERSION)}
SIM_BIN=${SIM_BIN:-$ROOT/bin}
SIM_DIR=${SIM_DIR:-$ROOT/build/sim}
SIM_NAME=${SIM_NAME:-species-classifier}
SIM_TIMEOUT=${SIM_TIMEOUT:-180s}

# kwokctl keeps each cluster's pki, configs, logs and etcd data under $KWOK_WORKDIR/clusters/<name>.
export KWOK_WORKDIR=$SIM_DIR/kwok
# kwokctl runs kubectl itself (health checks); without this it would download one.
export KWOK_KUBECTL_BINARY=$SIM_BIN/kubectl-$KUBE_VERSION
kubeconfig=$SIM_DIR/kubeconfig
kwokctl=$SIM_BIN/kwokctl-$KWOK_VERSION
kubectl=("$KWOK_KUBECTL_BINARY" --kubeconfig "$kubeconfig")

binaries=(
    "$SIM_BIN/etcd-$ETCD_VERSION"
    "$SIM_BIN/kube-apiserver-$KUBE_VERSION"
    "$SIM_BIN/kube-controller-manager-$KUBE_VERSION"
    "$SIM_BIN/kube-scheduler-$KUBE_VERSION"
    "$SIM_BIN/kubectl-$KUBE_VERSION"
    "$SIM_BIN/kwok-$KWOK_VERSION"
    "$kwokctl"
)

# check: exit status 3 (not die's 1) when a binary is missing; the pytest fixture skips level 4 on it.
check() {
    local missing=()
    for bin in "${binaries[@]}"; do
        [[ -x $bin ]] || missing+=("$(basename "$bin")")
    done
    if ((${#missing[@]})); then
        log "control plane binaries not built in $SIM_BIN (run \`make sim-bins\`): ${missing[*]}"
        return 3
    fi
}

running() {
    [[ -f $kubeconfig ]] && "$kwokctl" --name "$SIM_NAME" get clusters 2>/dev/null | grep -qx "$SIM_NAME" &&
        "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1
}

up() {
    check
    if running; then
        log "control plane $SIM_NAME already up; kubeconfig: $kubeconfig"
        return 0
    fi
    # A half-started cluster from an earlier run is replaced, never reused.
    down >/dev/null 2>&1 || true
    mkdir -p "$SIM_DIR"
    "$kwokctl" --name "$SIM_NAME" create cluster \
        --config "$here/kwok.yaml" \
        --kubeconfig "$kubeconfig" \
        --etcd-binary "$SIM_BIN/etcd-$ETCD_VERSION" \
        --kube-apiserver-binary "$SIM_BIN/kube-apiserver-$KUBE_VERSION" \
        --kube-controller-manager-binary "$SIM_BIN/kube-controller-manager-$KUBE_VERSION" \
        --kube-scheduler-binary "$SIM_BIN/kube-scheduler-$KUBE_VERSION" \
        --kwok-controller-binary "$SIM_BIN/kwok-$KWOK_VERSION" \
        --wait "$SIM_TIMEOUT"
    "${kubectl[@]}" apply -f "$here/nodes.yaml" >/dev/null
    "${kubectl[@]}" wait --for=condition=Ready node --all --timeout="$SIM_TIMEOUT" >/dev/null
    # The default ServiceAccount appears once kube-controller-manager runs its controllers.
    until "${kubectl[@]}" get serviceaccount default >/dev/null 2>&1; do sleep 1; done
    log "control plane $SIM_NAME up (Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION);" \
        "kubeconfig: $kubeconfig"
}

down() {
    if [[ -x $kwokctl ]] && "$kwokctl" --name "$SIM_NAME" get clusters 2>/dev/null | grep -qx "$SIM_NAME"; then
        "$kwokctl" --name "$SIM_NAME" delete cluster --kubeconfig "$kubeconfig"
    fi
    rm -rf "$KWOK_WORKDIR/clusters/$SIM_NAME" "$kubeconfig"
    log "control plane $SIM_NAME down"
}

case ${1:-} in
    check) check ;;
    up) up ;;
    down) down ;;
    *)
        log "usage: $0 check|up|down"
        exit 2
        ;;
esac
