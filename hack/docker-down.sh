#!/usr/bin/env bash
# `make docker-down`: stop the Docker engine that `make docker-up` started, and only that one (its pid file
# under the cache folder says which). Its data stays in the cache folder for the next `make docker-up`.
# Idempotent: when docker-up started nothing, there is nothing to do.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE=$CACHE_DIR/docker/dockerd.pid
if [[ ! -f $PIDFILE ]] || ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "no engine started by 'make docker-up' is running; nothing to stop"
    exit 0
fi
pid=$(cat "$PIDFILE")
log "stopping dockerd (pid $pid)"
kill -TERM "$pid"
for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || {
        log "stopped"
        exit 0
    }
    sleep 1
done
die "dockerd (pid $pid) did not stop within 30 s"
