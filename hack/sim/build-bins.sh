#!/usr/bin/env bash
# Builds Kubernetes binaries into $LOCALBIN, each named with its version:
#   build-bins.sh        the level-4 control plane: kube-apiserver, kube-controller-manager, kube-scheduler,
#                        kubectl (Kubernetes $KUBE_VERSION) and etcd ($ETCD_VERSION) from the Go module in
#                        hack/sim; kwok and kwokctl ($KWOK_VERSION) with `go install`
#   build-bins.sh node   the kind node's kubelet, kubeadm and kube-proxy from the same module
# Go's build and module caches (go env GOCACHE GOMODCACHE) make a second run a relink at most; make's stamp
# makes it a no-op. Runs at the lowest CPU priority: the build is long and the machine is shared.
set -euo pipefail
# Messages named after the make target that runs this.
if [[ ${1:-} == node ]]; then
    SCRIPT=node-bins
else
    SCRIPT=sim-bins
fi
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# make passes the pins of hack/sim.mk (the control plane also needs etcd's and kwok's).
required=(LOCALBIN KUBE_VERSION)
[[ ${1:-} == node ]] || required+=(ETCD_VERSION KWOK_VERSION)
for name in "${required[@]}"; do
    [[ -n ${!name:-} ]] || die "set $name (make sim-bins and make node-bins pass it)"
done
JOBS=${SIM_BUILD_JOBS:-1}

need go "install Go 1.26+ to build the control plane"
here=$ROOT/hack/sim
mkdir -p "$LOCALBIN"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Without these the binaries report v0.0.0-master, which kwokctl and helm's kubeVersion checks read.
# The variables are the ones Kubernetes' own hack/lib/version.sh sets.
major=${KUBE_VERSION#v}
minor=${major#*.}
major=${major%%.*}
minor=${minor%%.*}
kube_x=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_x+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    kube_x+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

# -s -w -trimpath: no symbol tables or local paths; the binaries are a third of the size.
build() { nice -n 19 env CGO_ENABLED=0 GOFLAGS="-p=${JOBS} -buildvcs=false" "$@"; }

start=$(date +%s)
if [[ ${1:-} == node ]]; then
    log "building kubelet, kubeadm and kube-proxy ${KUBE_VERSION} (go build -p ${JOBS}, nice 19)"
    (cd "$here" && build go build -trimpath -ldflags "-s -w${kube_x}" -o "$tmp/" \
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-proxy)
    for bin in kubelet kubeadm kube-proxy; do
        mv "$tmp/$bin" "$LOCALBIN/$bin-$KUBE_VERSION"
    done
    log "done in $(($(date +%s) - start))s"
    exit 0
fi
log "building Kubernetes ${KUBE_VERSION} and etcd ${ETCD_VERSION} (go build -p ${JOBS}, nice 19)"
(cd "$here" && build go build -trimpath -ldflags "-s -w${kube_x}" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd)
for bin in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    mv "$tmp/$bin" "$LOCALBIN/$bin-$KUBE_VERSION"
done
mv "$tmp/etcd" "$LOCALBIN/etcd-$ETCD_VERSION"

log "installing kwok and kwokctl ${KWOK_VERSION}"
# kwokctl defaults its Kubernetes version to the one it was released with; point it at ours.
kwok_x="-X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
(cd "$tmp" && build env GOBIN="$tmp" go install -trimpath -ldflags "-s -w ${kwok_x}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}")
mv "$tmp/kwok" "$LOCALBIN/kwok-$KWOK_VERSION"
mv "$tmp/kwokctl" "$LOCALBIN/kwokctl-$KWOK_VERSION"
log "done in $(($(date +%s) - start))s"
