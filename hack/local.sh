#!/usr/bin/env bash
# `make local`: the TF Serving stand-in on 127.0.0.1:8500 and the gateway on 127.0.0.1:9696, no Docker.
# The gateway runs from .venv-gateway, the environment its image ships (no TensorFlow); the stand-in runs
# from .venv with TensorFlow. Ctrl-C (or SIGTERM) stops both.
#
# Environment (the Makefile sets the first three): VENV, GW_VENV, MODEL_BASE_PATH; optional
# SERVING_PORT (8500), GATEWAY_PORT_LOCAL (9696). Any gateway setting (LOG_FORMAT, MAX_BATCH_SIZE, ...) set
# in the environment is passed through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

VENV=${VENV:-$ROOT/.venv}
GW_VENV=${GW_VENV:-$ROOT/.venv-gateway}
MODEL_BASE_PATH=${MODEL_BASE_PATH:-$ROOT/build/models/species_model}
SERVING_PORT=${SERVING_PORT:-8500}
HTTP_PORT=${GATEWAY_PORT_LOCAL:-9696}
HOST=127.0.0.1

[[ -x $VENV/bin/python ]] || die "$VENV/bin/python missing: run 'make venv'"
[[ -x $GW_VENV/bin/python ]] || die "$GW_VENV/bin/python missing: run 'make venv'"
compgen -G "$MODEL_BASE_PATH/[0-9]*/saved_model.pb" >/dev/null ||
    die "no model version under $MODEL_BASE_PATH: run 'make model'"

port_in_use() {
    # Bash's /dev/tcp: connecting succeeds only when something listens there.
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}
for port in "$SERVING_PORT" "$HTTP_PORT"; do
    if port_in_use "$port"; then
        die "port $port on $HOST is taken (another 'make local'?); stop that process or set SERVING_PORT / GATEWAY_PORT_LOCAL"
    fi
done

pids=()
stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        log "stopping (pids ${pids[*]})"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} "$VENV/bin/python" -m serving.standin \
    --model-base-path "$MODEL_BASE_PATH" --host "$HOST" --port "$SERVING_PORT" &
pids+=($!)

TF_SERVING_HOST=$HOST:$SERVING_PORT BIND_HOST=$HOST BIND_PORT=$HTTP_PORT LOG_FORMAT=${LOG_FORMAT:-text} \
    DOCS_ENABLED=${DOCS_ENABLED:-true} "$GW_VENV/bin/python" -m gateway &
pids+=($!)

# Wait for the gateway's readiness, which itself means the stand-in serves the model with the right
# signature; give up if either process dies or after two minutes (TensorFlow's start on a slow machine).
# Not wait_ready, which cannot watch the processes: the same poll (lib.sh's http_ok) in a loop that does.
base=http://$HOST:$HTTP_PORT
deadline=$((SECONDS + 120))
until http_ok "$base/readyz"; do
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a process exited during start-up (see its log above)"
    done
    ((SECONDS < deadline)) || die "the gateway did not become ready within 2 minutes"
    sleep 0.5
done

golden=$ROOT/build/golden/leopard.jpg
cat <<MSG

Ready: gateway $base -> TF Serving stand-in $HOST:$SERVING_PORT (model from $MODEL_BASE_PATH)

  curl -s $base/model
  curl -s -H 'Content-Type: image/jpeg' --data-binary @$golden $base/predict
  curl -s -F file=@$golden $base/predict
  printf '{"image": "%s"}' "\$(base64 -w0 $golden)" | curl -s -H 'Content-Type: application/json' --data-binary @- $base/predict
  curl -s -F files=@$golden -F files=@$ROOT/build/golden/bird.jpg $base/predict/batch
  $GW_VENV/bin/python -m gateway.client $golden --endpoint $base --expect-label leopard
  open $base/ for the demo page (drop camera-trap photos, see the labels)
  open $base/docs for the OpenAPI UI; metrics at $base/metrics

Ctrl-C stops both.
MSG

# Return when either process exits (then the EXIT trap stops the other) or on Ctrl-C / SIGTERM.
wait -n "${pids[@]}" || true
