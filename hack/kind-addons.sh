#!/usr/bin/env bash
# `make kind-addons` (or `KIND_ADDONS=1 make kind-up`): what the EKS install relies on that a plain kind
# cluster lacks, so the chart's EKS values can be rehearsed on kind:
#   - MetalLB (L2 mode), a LoadBalancer implementation: Services of type LoadBalancer get an address from a
#     pool carved out of kind's own Docker network, reachable from this machine;
#   - metrics-server, the resource metrics API the HorizontalPodAutoscalers read (--kubelet-insecure-tls:
#     kind's kubelets serve self-signed certificates; kind only).
# Both are installed from their own Helm charts, read from their Go modules (charts/ in each). Their pinned
# images are used where they can be pulled; otherwise they are built here (hack/offline/build-images.sh).
# Idempotent: a second run upgrades the releases in place.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CLUSTER=species-classifier
CONTEXT=kind-$CLUSTER
KIND=${KIND:-$ROOT/bin/kind}
HELM=${HELM:-$ROOT/bin/helm}
KIND_PULL=${KIND_PULL:-try}
PINS=$ROOT/hack/offline.mk
METALLB_VERSION=$(version_of METALLB_VERSION "$PINS")
METRICS_SERVER_VERSION=$(version_of METRICS_SERVER_VERSION "$PINS")

need go "install Go 1.26+ (the add-ons' charts are read from their Go modules)"
[[ -x $HELM ]] || die "$HELM is missing: run 'make tools'"
"$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER" || die "no kind cluster '$CLUSTER': run 'make kind-up' first"

available() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    [[ $KIND_PULL == never ]] && return 1
    docker pull -q "$1" >/dev/null 2>&1
}

# image PINNED LOCAL-NAME: the pinned image, or the one built here.
image() {
    if available "$1"; then
        echo "$1"
    else
        log "cannot pull $1: building $2 here (hack/offline)"
        hack/offline/build-images.sh "$2"
    fi
}

module_dir() {
    (cd "$ROOT/hack/offline/capwrap" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

controller=$(image "quay.io/metallb/controller:$METALLB_VERSION" metallb-controller)
speaker=$(image "quay.io/metallb/speaker:$METALLB_VERSION" metallb-speaker)
metrics=$(image "registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION" metrics-server)
log "loading $controller, $speaker and $metrics into the nodes"
"$KIND" load docker-image --name "$CLUSTER" "$controller" "$speaker" "$metrics"

metallb_chart=$(module_dir "go.universe.tf/metallb@$METALLB_VERSION")/charts/metallb
metrics_chart=$(module_dir "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION")/charts/metrics-server
[[ -f $metallb_chart/Chart.yaml && -f $metrics_chart/Chart.yaml ]] || die "the add-ons' charts are not in their modules"

repo() { echo "${1%:*}"; }
tag() { echo "${1##*:}"; }

log "installing MetalLB $METALLB_VERSION (L2 mode, no FRR)"
"$HELM" --kube-context "$CONTEXT" upgrade --install metallb "$metallb_chart" --namespace metallb-system \
    --create-namespace --wait --timeout 300s \
    --set controller.image.repository="$(repo "$controller")" --set controller.image.tag="$(tag "$controller")" \
    --set speaker.image.repository="$(repo "$speaker")" --set speaker.image.tag="$(tag "$speaker")" \
    --set speaker.frr.enabled=false --set frrk8s.enabled=false >/dev/null

# The pool: the top of kind's Docker network (kind hands node addresses out from the bottom), so the
# addresses are on a network this project created and reachable from this machine.
subnet=$(docker network inspect kind --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -v : | head -n 1)
[[ -n $subnet ]] || die "kind's Docker network has no IPv4 subnet"
pool=$(python3 -c 'import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
print(f"{net.broadcast_address - 55}-{net.broadcast_address - 5}")' "$subnet")
log "address pool $pool (from kind's network $subnet)"
# The webhook that validates the pool answers once the controller is Ready; retry for a little while.
for attempt in $(seq 30); do
    if kubectl --context "$CONTEXT" apply -f - >/dev/null 2>&1 <<EOF; then
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: kind
  namespace: metallb-system
spec:
  addresses:
    - $pool
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: kind
  namespace: metallb-system
spec:
  ipAddressPools:
    - kind
EOF
        break
    fi
    ((attempt < 30)) || die "MetalLB did not accept the address pool"
    sleep 2
done

log "installing metrics-server $METRICS_SERVER_VERSION"
"$HELM" --kube-context "$CONTEXT" upgrade --install metrics-server "$metrics_chart" --namespace kube-system \
    --wait --timeout 300s \
    --set image.repository="$(repo "$metrics")" --set image.tag="$(tag "$metrics")" \
    --set 'args={--kubelet-insecure-tls}' >/dev/null
log "waiting for the metrics API"
for attempt in $(seq 60); do
    kubectl --context "$CONTEXT" top nodes >/dev/null 2>&1 && break
    ((attempt < 60)) || die "the metrics API did not answer within 2 minutes"
    sleep 2
done
log "MetalLB and metrics-server are ready"
