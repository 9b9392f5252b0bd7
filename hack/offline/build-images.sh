#!/usr/bin/env bash
# The images `make kind-up` uses where the pinned ones cannot be pulled (no registry reachable), built on
# this machine from Debian packages, PyPI and the Go module proxy. Each is named with a key of its inputs
# (pins in hack/offline.mk and hack/sim.mk, the files under hack/offline/), so it is built once and reused
# until an input changes; Docker's image store (under the cache folder when `make docker-up` started the
# engine) keeps it between runs and clones.
#
#   build-images.sh debian    species-classifier/debian:<suite>-<key>       debootstrap minbase, imported
#   build-images.sh python    species-classifier/python:3.11-<suite>-<key>  Debian's python3.11 + this machine's CA bundle
#   build-images.sh node      species-classifier/kind-node:<kube>-<key>     the kind node (see node/Dockerfile)
#   build-images.sh metallb-controller | metallb-speaker | metrics-server
#                             species-classifier/<name>:<version>-<key>      the EKS rehearsal's add-ons (one
#                                                                            static binary each, from its module)
#
# Each prints the image name on stdout (progress goes to stderr). Needs root for debootstrap (installed with
# apt-get when missing), Go for the binaries, gcc for the pause container.
set -euo pipefail
# Each image is built in a command substitution (its name is the result): errors there must stop it too.
shopt -s inherit_errexit
SCRIPT=offline-images
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HERE=$ROOT/hack/offline
PINS=$ROOT/hack/offline.mk
LOCALBIN=${LOCALBIN:-$ROOT/bin}
KUBE_VERSION=$(version_of KUBE_VERSION)
ETCD_VERSION=$(version_of ETCD_VERSION)
DEBIAN_SUITE=$(version_of DEBIAN_SUITE "$PINS")
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(version_of DEBIAN_MIRROR "$PINS")}
CONTAINERD_VERSION=$(version_of CONTAINERD_VERSION "$PINS")
RUNC_VERSION=$(version_of RUNC_VERSION "$PINS")
CRICTL_VERSION=$(version_of CRICTL_VERSION "$PINS")
CNI_PLUGINS_VERSION=$(version_of CNI_PLUGINS_VERSION "$PINS")
KUBE_ROUTER_VERSION=$(version_of KUBE_ROUTER_VERSION "$PINS")
COREDNS_VERSION=$(version_of COREDNS_VERSION "$PINS")
METALLB_VERSION=$(version_of METALLB_VERSION "$PINS")
METRICS_SERVER_VERSION=$(version_of METRICS_SERVER_VERSION "$PINS")
# The build machine's CA bundle goes into the Python base: pip must trust a TLS-inspecting proxy's CA.
CA_BUNDLE=${CA_BUNDLE:-}
for candidate in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [[ -z $CA_BUNDLE && -n $candidate && -f $candidate ]]; then
        CA_BUNDLE=$candidate
    fi
done

need docker "install Docker Engine, or run 'make docker-up' as root on Debian"
docker_answers || die "the Docker engine does not answer: run 'make docker-up'"

# The legacy builder reads the repository's .dockerignore; BuildKit needs buildx with the modern CLI.
if docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=1
else
    export DOCKER_BUILDKIT=0
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# key INPUT...: 12 hex digits over strings and the contents of files and folders.
key() {
    local input
    for input in "$@"; do
        if [[ -d $input ]]; then
            (cd "$input" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
        elif [[ -f $input ]]; then
            sha256sum <"$input"
        else
            printf '%s\n' "$input"
        fi
    done | sha256sum | cut -c1-12
}

# --- Debian base ---------------------------------------------------------------------------------------------
DEBIAN_INCLUDE=ca-certificates
debian_image() {
    local image rootfs
    image=species-classifier/debian:$DEBIAN_SUITE-$(key "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$DEBIAN_INCLUDE")
    if have_image "$image"; then
        echo "$image"
        return
    fi
    [[ $(id -u) == 0 ]] || die "debootstrap needs root: build $image as root once (it is cached)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing: install it (Debian/Ubuntu package 'debootstrap')"
        log "installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    fi
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/debian-rootfs.XXXXXX")
    log "debootstrap $DEBIAN_SUITE (minbase) from $DEBIAN_MIRROR into $rootfs (a few minutes)"
    if ! debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
        >"$rootfs.log" 2>&1; then
        tail -n 30 "$rootfs.log" >&2
        die "debootstrap failed (log: $rootfs.log)"
    fi
    rm -f "$rootfs.log"
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | docker import --change "LABEL $IMAGE_LABEL" - "$image" >/dev/null
    rm -rf "$rootfs"
    log "built $image"
    echo "$image"
}

# --- Python base ---------------------------------------------------------------------------------------------
python_image() {
    local debian image context
    debian=$(debian_image)
    [[ -n $CA_BUNDLE ]] || die "no CA bundle found: set CA_BUNDLE=/path/to/ca-certificates.crt"
    image=species-classifier/python:3.11-$DEBIAN_SUITE-$(key "$debian" "$HERE/python" "$CA_BUNDLE")
    if have_image "$image"; then
        echo "$image"
        return
    fi
    context=$(mktemp -d)
    cp "$HERE/python/Dockerfile" "$context/"
    cp "$CA_BUNDLE" "$context/ca-certificates.crt"
    log "building $image"
    docker build -q --label "$IMAGE_LABEL" --build-arg "DEBIAN_IMAGE=$debian" -t "$image" "$context" >/dev/null
    rm -rf "$context"
    log "built $image"
    echo "$image"
}

# --- binaries ------------------------------------------------------------------------------------------------
# go_install NAME VERSION PACKAGE [LDFLAGS]: bin/NAME-VERSION from the Go module proxy (cached by version;
# Go's build cache makes a rebuild a relink).
go_install() {
    local name=$1 version=$2 package=$3 ldflags=${4:-} tmp
    [[ -x $LOCALBIN/$name-$version ]] && return
    need go "install Go 1.26+ to build $name $version"
    tmp=$(mktemp -d)
    log "building $name $version"
    (cd "$tmp" && nice -n 10 env GOBIN="$tmp" CGO_ENABLED="${CGO_ENABLED:-0}" GOFLAGS=-buildvcs=false \
        go install -trimpath ${GO_TAGS:+-tags "$GO_TAGS"} -ldflags "-s -w $ldflags" "$package@$version")
    mkdir -p "$LOCALBIN"
    mv "$tmp/$(basename "${package%%@*}")" "$LOCALBIN/$name-$version"
    rm -rf "$tmp"
}

build_binaries() {
    local version_pkg
    # Kubernetes and etcd: the level-4 control plane's binaries plus the node's (hack/sim/build-bins.sh).
    make -s -C "$ROOT" sim-bins node-bins >&2

    version_pkg=github.com/containerd/containerd/v2/version
    for bin in containerd containerd-shim-runc-v2 ctr; do
        go_install "$bin" "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/$bin" \
            "-X $version_pkg.Version=$CONTAINERD_VERSION -X $version_pkg.Package=github.com/containerd/containerd/v2"
    done
    # runc needs cgo and libseccomp for the RuntimeDefault seccomp profile every restricted pod asks for.
    if [[ ! -x $LOCALBIN/runc-$RUNC_VERSION ]] && ! [[ -f /usr/include/seccomp.h ]]; then
        command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]] ||
            die "runc needs libseccomp's headers: install libseccomp-dev (Debian) or libseccomp-devel"
        log "installing libseccomp-dev (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libseccomp-dev >/dev/null
    fi
    CGO_ENABLED=1 GO_TAGS=seccomp go_install runc "$RUNC_VERSION" github.com/opencontainers/runc \
        "-X main.version=${RUNC_VERSION#v}"
    go_install crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
    for plugin in main/bridge main/loopback ipam/host-local meta/portmap; do
        go_install "cni-$(basename "$plugin")" "$CNI_PLUGINS_VERSION" \
            "github.com/containernetworking/plugins/plugins/$plugin" \
            "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
    done
    go_install kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
        "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
    go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns
    if [[ ! -x $LOCALBIN/capwrap-$(key "$HERE/capwrap") ]]; then
        (cd "$HERE/capwrap" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
            -o "$LOCALBIN/capwrap-$(key "$HERE/capwrap")" .)
    fi
}

# kubeadm's own list of the images `kubeadm init` runs: the names they must have inside the node.
kubeadm_images() {
    "$LOCALBIN/kubeadm-$KUBE_VERSION" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null
}

# pause_binary VERSION: Kubernetes' own pause container (build/pause/linux/pause.c in the k8s.io/kubernetes
# module), compiled statically.
pause_binary() {
    local version=$1 source out=$LOCALBIN/pause-$1
    if [[ ! -x $out ]]; then
        need gcc "install gcc to build the pause container"
        source=$(cd "$ROOT/hack/sim" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
        [[ -f $source ]] || die "no $source in the module cache: run 'make sim-bins'"
        gcc -Os -Wall -Werror -static -DVERSION="v$version" -o "$out" "$source"
        strip "$out"
    fi
    echo "$out"
}

# single_binary_image IMAGE BINARY PATH [ENTRYPOINT]: an image holding one static binary at PATH, /tmp and a
# CA bundle, made with `docker import` (nothing to pull: no base image).
single_binary_image() {
    local image=$1 binary=$2 path=$3 entrypoint=${4:-} dir
    dir=$(mktemp -d)
    install -D -m 0755 "$binary" "$dir$path"
    install -d -m 1777 "$dir/tmp"
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . |
        docker import --change "LABEL $IMAGE_LABEL" ${entrypoint:+--change "ENTRYPOINT [\"$entrypoint\"]"} - "$image" \
            >/dev/null
    rm -rf "$dir"
}

# --- the node ------------------------------------------------------------------------------------------------
node_image() {
    local debian node_key image base context images_dir component ref name tag builder pause_image
    debian=$(debian_image)
    node_key=$(key "$debian" "$PINS" "$ROOT/hack/sim.mk" "$ROOT/hack/sim/go.mod" "$ROOT/hack/sim/go.sum" \
        "$HERE/node" "$HERE/images" "$HERE/capwrap" "$HERE/build-images.sh")
    image=species-classifier/kind-node:$KUBE_VERSION-$node_key
    if have_image "$image"; then
        echo "$image"
        return
    fi
    log "building $image (binaries from the Go module proxy, then the node and its images; once per key)"
    build_binaries

    # Every image kubeadm will run, under the name it will ask for; only the names of the images it lists are
    # used, so a Kubernetes bump that changes them (etcd, CoreDNS, pause) fails here, not in the cluster.
    images_dir=$(mktemp -d)
    local -a refs
    mapfile -t refs < <(kubeadm_images)
    ((${#refs[@]} >= 7)) || die "kubeadm $KUBE_VERSION listed no images"
    for ref in "${refs[@]}"; do
        name=${ref%:*}
        name=${name##*/}
        tag=${ref##*:}
        component=species-classifier/kind-node-$name:$tag-$node_key
        case $name in
            kube-apiserver | kube-controller-manager | kube-scheduler)
                single_binary_image "$component" "$LOCALBIN/$name-$KUBE_VERSION" "/usr/local/bin/$name"
                ;;
            etcd)
                [[ $tag == "${ETCD_VERSION#v}-"* ]] || die "kubeadm wants etcd $tag; hack/sim.mk pins $ETCD_VERSION"
                single_binary_image "$component" "$LOCALBIN/etcd-$ETCD_VERSION" /usr/local/bin/etcd
                ;;
            coredns)
                [[ $tag == "$COREDNS_VERSION" ]] || die "kubeadm wants CoreDNS $tag; hack/offline.mk pins $COREDNS_VERSION"
                single_binary_image "$component" "$LOCALBIN/coredns-$COREDNS_VERSION" /coredns /coredns
                ;;
            pause)
                single_binary_image "$component" "$(pause_binary "$tag")" /pause /pause
                pause_image=$ref
                ;;
            kube-proxy)
                iptables_image "$component" "$debian" kube-proxy "$LOCALBIN/kube-proxy-$KUBE_VERSION"
                ;;
            *) die "kubeadm lists an image this build does not know: $ref" ;;
        esac
        docker save "$component" -o "$images_dir/$name.tar"
        printf '%s %s\n' "$component" "$ref" >>"$images_dir/names"
    done
    component=species-classifier/kube-router:$KUBE_ROUTER_VERSION
    iptables_image "$component" "$debian" kube-router "$LOCALBIN/kube-router-$KUBE_ROUTER_VERSION"
    docker save "$component" -o "$images_dir/kube-router.tar"
    printf '%s %s\n' "$component" "docker.io/$component" >>"$images_dir/names"

    # The node's first stage (node/Dockerfile), from a staged context.
    context=$(mktemp -d)
    mkdir -p "$context/bin" "$context/cni"
    for bin in kubelet kubeadm kubectl; do
        cp "$LOCALBIN/$bin-$KUBE_VERSION" "$context/bin/$bin"
    done
    for bin in containerd containerd-shim-runc-v2 ctr; do
        cp "$LOCALBIN/$bin-$CONTAINERD_VERSION" "$context/bin/$bin"
    done
    cp "$LOCALBIN/runc-$RUNC_VERSION" "$context/bin/runc"
    cp "$LOCALBIN/crictl-$CRICTL_VERSION" "$context/bin/crictl"
    cp "$LOCALBIN/capwrap-$(key "$HERE/capwrap")" "$context/bin/capwrap"
    for plugin in bridge loopback host-local portmap; do
        cp "$LOCALBIN/cni-$plugin-$CNI_PLUGINS_VERSION" "$context/cni/$plugin"
    done
    cp -a "$HERE/node/files" "$HERE/node/Dockerfile" "$context/"
    printf '%s\n' "$KUBE_VERSION" >"$context/files/kind/version"
    sed -i "s|@PAUSE_IMAGE@|$pause_image|" "$context/files/etc/containerd/config.toml"
    sed -i "s|@KUBE_ROUTER_VERSION@|$KUBE_ROUTER_VERSION|g" "$context/files/kind/manifests/default-cni.yaml"
    base=species-classifier/kind-node-base:$KUBE_VERSION-$node_key
    log "building the node's first stage $base"
    docker build -q --label "$IMAGE_LABEL" --build-arg "DEBIAN_IMAGE=$debian" -t "$base" "$context" >/dev/null
    rm -rf "$context"

    # Import the images into the node's containerd (content only: each node unpacks what it runs, on its
    # own /var volume), name them as kubeadm and the CNI manifest ask, and commit.
    builder=kind-node-build-$node_key
    docker rm -f "$builder" >/dev/null 2>&1 || true
    # --init: containerd is not PID 1, so `docker stop` ends it with SIGTERM and its database is closed.
    docker run -d --init --name "$builder" --privileged --tmpfs /run --tmpfs /tmp -v "$images_dir:/images:ro" \
        --entrypoint /usr/local/bin/containerd "$base" >/dev/null
    for _ in $(seq 30); do
        docker exec "$builder" ctr version >/dev/null 2>&1 && break
        sleep 1
    done
    while read -r component ref; do
        name=${component#species-classifier/}
        name=${name%%:*}
        name=${name#kind-node-}
        docker exec "$builder" ctr -n k8s.io images import --no-unpack "/images/$name.tar" >/dev/null
        docker exec "$builder" ctr -n k8s.io images tag --force "docker.io/$component" "$ref" >/dev/null
        if [[ $ref != "docker.io/$component" ]]; then
            docker exec "$builder" ctr -n k8s.io images rm "docker.io/$component" >/dev/null
        fi
    done <"$images_dir/names"
    docker exec "$builder" ctr -n k8s.io images ls -q >&2
    docker stop -t 60 "$builder" >/dev/null
    # The container ran containerd instead of the entrypoint: restore it (the rest of the first stage's
    # configuration, STOPSIGNAL and ENV included, carries over).
    docker commit --change 'ENTRYPOINT ["/usr/local/bin/node-entrypoint", "/sbin/init"]' --change 'CMD []' \
        "$builder" "$image" >/dev/null
    docker rm "$builder" >/dev/null
    rm -rf "$images_dir"
    log "built $image"
    echo "$image"
}

# iptables_image IMAGE DEBIAN_IMAGE NAME BINARY: images/Dockerfile.iptables with BINARY as NAME.
iptables_image() {
    local image=$1 debian=$2 name=$3 binary=$4 context
    context=$(mktemp -d)
    cp "$HERE/images/Dockerfile.iptables" "$context/Dockerfile"
    cp "$HERE/node/files/usr/local/bin/select-iptables" "$context/"
    cp "$binary" "$context/$name"
    docker build -q --label "$IMAGE_LABEL" --build-arg "DEBIAN_IMAGE=$debian" --build-arg "BINARY=$name" \
        -t "$image" "$context" >/dev/null
    rm -rf "$context"
}

# addon_image NAME VERSION PACKAGE PATH: one static binary from the Go module proxy, run as PATH.
addon_image() {
    local name=$1 version=$2 package=$3 path=$4 image
    image=species-classifier/$name:$version-$(key "$HERE/build-images.sh" "$PINS" "$HERE/metallb")
    if ! have_image "$image"; then
        if [[ $package == go.universe.tf/metallb/* ]]; then
            # MetalLB's own dependencies are not all served; hack/offline/metallb pins a set that is.
            [[ -x $LOCALBIN/$name-$version ]] || (cd "$HERE/metallb" && log "building $name $version" &&
                nice -n 10 env CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" \
                    -o "$LOCALBIN/$name-$version" "$package")
        else
            go_install "$name" "$version" "$package"
        fi
        single_binary_image "$image" "$LOCALBIN/$name-$version" "$path" "$path"
        log "built $image"
    fi
    echo "$image"
}

# drop_node_parts: the node's first stage and the images it holds are needed only while it is built (they are
# inside it after); any left from an earlier key go too.
drop_node_parts() {
    docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^species-classifier/kind-node-' |
        xargs -r docker image rm >/dev/null 2>&1 || true
}

case ${1:-} in
    debian) image=$(debian_image) ;;
    python) image=$(python_image) ;;
    node)
        image=$(node_image)
        drop_node_parts
        ;;
    metallb-controller)
        image=$(addon_image metallb-controller "$METALLB_VERSION" go.universe.tf/metallb/controller /controller)
        ;;
    metallb-speaker)
        image=$(addon_image metallb-speaker "$METALLB_VERSION" go.universe.tf/metallb/speaker /speaker)
        ;;
    metrics-server)
        image=$(addon_image metrics-server "$METRICS_SERVER_VERSION" \
            sigs.k8s.io/metrics-server/cmd/metrics-server /metrics-server)
        ;;
    *) die "usage: $0 debian|python|node|metallb-controller|metallb-speaker|metrics-server" ;;
esac
# The same image built from older inputs is not needed again: a cache keyed by its inputs stays one deep.
retire_others "$image"
echo "$image"
