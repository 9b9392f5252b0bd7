#!/usr/bin/env bash
# `make docker-up`: make sure a Docker engine answers. Does nothing when one already does. Otherwise, when the
# user is root on a Debian-like system, installs Debian's docker.io if dockerd is missing and starts dockerd
# with its data under the cache folder outside the repository (images survive between runs and clones), then
# waits until it answers. Never touches an engine it did not start; `make docker-down` stops only this one.
#
# When this machine's capability bounding set lacks capabilities that `docker run --privileged` asks for (kind
# runs its nodes that way), dockerd's default runtime is capwrap (hack/offline/capwrap), which removes the
# missing ones from each container's spec before calling runc. Where nothing is missing, plain runc is used.
#
#   hack/docker-up.sh              fail (exit 1) with what to install when no engine can be had
#   hack/docker-up.sh --if-possible  the same, but exit 0 after saying why (make test: level 5 then skips)
#
# Environment: SPECIES_CACHE_DIR (default ~/.cache/species-classifier); the engine lives in $CACHE_DIR/docker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

strict=true
[[ ${1:-} == --if-possible ]] && strict=false

cannot() {
    if $strict; then
        die "$*"
    fi
    log "no Docker engine: $* (level-5 tests will be skipped)"
    exit 0
}

if docker_answers; then
    log "a Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); nothing to do"
    exit 0
fi

ENGINE_DIR=$CACHE_DIR/docker
PIDFILE=$ENGINE_DIR/dockerd.pid
if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "dockerd started earlier (pid $(cat "$PIDFILE")) does not answer yet; waiting"
else
    [[ $(id -u) == 0 ]] ||
        cannot "'docker info' fails and this user is not root: install Docker Engine (https://docs.docker.com/engine/install/) and start it, or run as root"
    if ! command -v dockerd >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 ||
            cannot "dockerd is missing and this is not a Debian-like system: install Docker Engine (https://docs.docker.com/engine/install/)"
        log "installing Debian's docker.io (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null; } ||
            cannot "apt-get could not install docker.io"
    fi
    mkdir -p "$ENGINE_DIR/data" "$ENGINE_DIR/exec"

    runtime_args=()
    # CAP_SYS_RESOURCE is bit 24; `--privileged` asks for every capability the daemon knows.
    bounding=$((16#$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)))
    if ((((bounding >> 24) & 1) == 0)); then
        need go "Go is needed to build capwrap (hack/offline/capwrap): install Go 1.22+"
        log "the capability bounding set ($(printf '%x' "$bounding")) lacks CAP_SYS_RESOURCE: privileged containers run through capwrap"
        (cd "$ROOT/hack/offline/capwrap" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ENGINE_DIR/capwrap" .)
        runtime_args=(--add-runtime "capwrap=$ENGINE_DIR/capwrap" --default-runtime capwrap)
    fi

    log "starting dockerd (data root $ENGINE_DIR/data, log $ENGINE_DIR/dockerd.log)"
    # setsid: the engine outlives this script and make; its own process group, so Ctrl-C in a later make
    # does not reach it.
    setsid dockerd --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" --pidfile "$PIDFILE" \
        "${runtime_args[@]}" >>"$ENGINE_DIR/dockerd.log" 2>&1 </dev/null &
fi

for _ in $(seq 60); do
    if docker_answers; then
        log "the Docker engine answers ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$ENGINE_DIR/dockerd.log" >&2 || true
cannot "dockerd did not answer within 60 s (log: $ENGINE_DIR/dockerd.log)"
