# Shared helpers for the scripts in hack/ (sourced, not run). One style for all of them: `set -euo pipefail`,
# four-space indentation, messages prefixed with the script's name, errors that say what to install or set.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"     # from hack/*.sh
#
# Sets ROOT (the repository) and SCRIPT (the name used in messages; override it before sourcing).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=${SCRIPT:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}
# Where expensive things that outlive a clone are kept (the Docker engine's data, built images' inputs),
# keyed by their pins. Shared by every clone on the machine.
CACHE_DIR=${SPECIES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/species-classifier}

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT" "$*" >&2
    exit 1
}

# need CMD HINT: fail fast when a command is missing, saying how to get it.
need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

# version_of NAME [FILE]: the value of `NAME := value` in a Makefile fragment (default hack/sim.mk), so
# scripts read the pins the Makefile uses instead of repeating them.
version_of() {
    local value
    value=$(sed -n "s/^$1 := //p" "${2:-$ROOT/hack/sim.mk}")
    [[ -n $value ]] || die "no '$1 :=' in ${2:-$ROOT/hack/sim.mk}"
    printf '%s\n' "$value"
}

# wait_ready URL [SECONDS]: poll URL/readyz until it answers 200, at most SECONDS (default 60). Returns 1 on
# timeout. Uses curl when present, else Python's urllib (both only talk to the URL given).
wait_ready() {
    local url=$1 deadline=$((SECONDS + ${2:-60}))
    while ((SECONDS < deadline)); do
        if http_ok "$url/readyz"; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# http_ok URL: exit 0 when a GET of URL answers 200 within 3 seconds.
http_ok() {
    if command -v curl >/dev/null 2>&1; then
        [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null) == 200 ]]
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$1" >/dev/null 2>&1
    fi
}

# docker_answers: the engine the docker CLI points at is up.
docker_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# free_gib PATH: whole GiB free on the filesystem holding PATH.
free_gib() {
    df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'
}

# Every image the scripts here build carries this label, so their leftovers can be told from anyone else's.
IMAGE_LABEL=io.github.species-classifier.built-by=hack

# own_engine: the engine keeps its data in this project's cache (`make docker-up` started it there), so all
# it holds is the project's.
own_engine() {
    [[ $(docker info --format '{{.DockerRootDir}}' 2>/dev/null) == "$CACHE_DIR"/* ]]
}

# prune_leftovers: removes what earlier builds left behind untagged (a tag built again leaves its previous
# image dangling: over a GiB each for the stand-in) and, on the project's own engine, BuildKit's cache
# entries unused for three days (the recent ones make the next build quick). On another engine only the
# project's labelled images go. Tagged images, the caches keyed by pins, stay.
prune_leftovers() {
    if own_engine; then
        docker image prune --force >/dev/null
        docker builder prune --force --filter until=72h >/dev/null 2>&1 || true
    else
        docker image prune --force --filter "label=$IMAGE_LABEL" >/dev/null
    fi
}

# retire_others IMAGE: removes IMAGE's repository under every other tag (the same image built from older
# inputs), so a cache keyed by its inputs does not grow with each change of them. An image a container still
# uses (a cluster made before) stays until a later call.
retire_others() {
    local other
    docker image ls "${1%:*}" --format '{{.Repository}}:{{.Tag}}' | while read -r other; do
        [[ $other == "$1" ]] || docker image rm "$other" >/dev/null 2>&1 || true
    done
}
