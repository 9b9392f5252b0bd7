#!/bin/sh
# Starts TF Serving for the species model: the container's entrypoint in serving/Dockerfile.
#
# Sizes every thread pool from TF_SERVING_CPUS (an integer set by the Kubernetes downward API from the
# container's CPU limit, `resourceFieldRef: {resource: limits.cpu, divisor: "1"}`, which rounds up: 500m -> 1).
# Without it TensorFlow sizes its pools from the node's CPU count and a 1-CPU pod on a 16-core node runs
# 16+ busy threads into CFS throttling. Unset or invalid -> 1, the safe choice for the smallest pod.
#
# Writes one file, the batching config with num_batch_threads filled in, to $TMPDIR (default /tmp, an
# emptyDir in Kubernetes), so the root filesystem can stay read-only. Arguments given to the container
# are appended; TF Serving lets a later flag override an earlier one.
#
# Flag names and defaults: tensorflow_serving/model_servers/main.cc (`tensorflow_model_server --help`).
set -eu

config_dir=${TF_SERVING_CONFIG_DIR:-/etc/tfserving}
runtime_dir=${TMPDIR:-/tmp}

cpus=${TF_SERVING_CPUS:-}
case $cpus in
    [1-9] | [1-9][0-9] | [1-9][0-9][0-9]) ;;
    *)
        if [ -n "$cpus" ]; then
            echo "entrypoint: TF_SERVING_CPUS='$cpus' is not a positive integer; using 1" >&2
        fi
        cpus=1
        ;;
esac

# num_batch_threads follows the core count (one batch in flight per core, see batching.config).
batching_file=$runtime_dir/batching.config
if [ ! -r "$config_dir/batching.config" ]; then
    echo "entrypoint: $config_dir/batching.config is missing" >&2
    exit 1
fi
if ! sed "s/^num_batch_threads { value: [0-9]* }/num_batch_threads { value: $cpus }/" \
    "$config_dir/batching.config" >"$batching_file"; then
    echo "entrypoint: cannot write $batching_file; mount a writable emptyDir at $runtime_dir" >&2
    exit 1
fi

# HTTP threads: the REST port carries only Prometheus scrapes, probes and the odd debug call (the data
# path is gRPC), so 2 per core is plenty; the default is 4 x the node's CPUs.
rest_threads=$((cpus * 2))

echo "entrypoint: TF_SERVING_CPUS=$cpus; starting tensorflow_model_server" >&2

# --enable_grpc_healthcheck_service: grpc.health.v1 on the gRPC port, for Kubernetes' native gRPC probes.
# --grpc_channel_arguments: close every client connection after ~60 s (gRPC adds +-10 % jitter) with 15 s
#   for in-flight calls to finish. A gRPC client keeps one HTTP/2 connection, so without this a gateway pod
#   would stay pinned to the TF Serving pods it met first and never reach pods added by the HPA. Each
#   reconnect is balanced afresh by the ClusterIP Service (or re-resolves a headless Service's pod list).
#   The 15 s grace must stay above the gateway's upstream deadline (serving_timeout_s, 5 s).
#   (TF Serving passes numeric values to gRPC as integers: parseGrpcChannelArgs in main.cc / server.cc.)
# --tensorflow_intra_op_parallelism: one conv op may use every core of the pod.
# --tensorflow_inter_op_parallelism: the model is a chain with no independent branches, but up to
#   num_batch_threads (= cpus) batches run at once and each needs a thread to dispatch its ops.
# --file_system_poll_wait_seconds=0: poll the model directory once, at start (tensorflow/serving#1334).
#   The model is baked into an immutable image and a new model ships as a new image, so the default
#   1-second poll would only burn syscalls. Append --file_system_poll_wait_seconds=60 when mounting
#   models from a volume that changes underneath the pod.
# --grpc_max_threads is left at TF Serving's default: request threads mostly wait in the batching queue
#   (max_enqueued_batches bounds that queue), so their number is not what loads the CPU.
# --enable_model_warmup: replay assets.extra/tf_serving_warmup_requests before reporting the version
#   AVAILABLE, so the first real request does not pay for graph optimisation.
exec tensorflow_model_server \
    --port=8500 \
    --rest_api_port=8501 \
    --model_config_file="$config_dir/models.config" \
    --enable_batching=true \
    --batching_parameters_file="$batching_file" \
    --monitoring_config_file="$config_dir/monitoring.config" \
    --enable_model_warmup=true \
    --enable_grpc_healthcheck_service=true \
    --grpc_channel_arguments=grpc.max_connection_age_ms=60000,grpc.max_connection_age_grace_ms=15000 \
    --tensorflow_intra_op_parallelism="$cpus" \
    --tensorflow_inter_op_parallelism="$cpus" \
    --rest_api_num_threads="$rest_threads" \
    --file_system_poll_wait_seconds=0 \
    "$@"
