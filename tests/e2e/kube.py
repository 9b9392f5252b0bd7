"""Helpers for the level-5 tests: the cluster's API objects and a `kubectl port-forward` to a Service."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
CONTEXT = "kind-species-classifier"
NAMESPACE = "species-classifier"


def kubectl_binary() -> str:
    """The pinned kubectl `make sim-bins` builds, else the one on PATH."""
    pinned = sorted((REPO / "bin").glob("kubectl-v*"))
    if pinned:
        return str(pinned[-1])
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `make sim-bins` or install kubectl")
    return found


def kubectl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), "--context", CONTEXT, "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def port_forward(
    target: str, remote_port: int, timeout: float = 60, namespace: str = NAMESPACE
) -> Iterator[str]:
    """`kubectl port-forward TARGET <free port>:REMOTE_PORT` on 127.0.0.1; yields "http://127.0.0.1:<port>".

    kubectl ends the whole forward when one forwarded connection fails ("lost connection to pod"), e.g.
    when the server resets a connection a client was still writing to. Tests measure the service, not
    kubectl, so a forward that exits is started again on the same local port (each start is in the log).
    """
    port = free_port()
    log = Path(REPO / "build" / "e2e")
    log.mkdir(parents=True, exist_ok=True)
    log_file = (log / f"port-forward-{port}.log").open("w", encoding="utf-8")
    command = [
        kubectl_binary(),
        "--context",
        CONTEXT,
        "--namespace",
        namespace,
        "port-forward",
        "--address",
        "127.0.0.1",
        target,
        f"{port}:{remote_port}",
    ]

    def start() -> subprocess.Popen[bytes]:
        log_file.write(f"--- {time.strftime('%H:%M:%S')} starting {' '.join(command[3:])}\n")
        log_file.flush()
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)

    process = start()
    stopping = threading.Event()

    def restart_when_it_exits() -> None:
        nonlocal process
        while not stopping.wait(0.2):
            if process.poll() is not None:
                process = start()

    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"kubectl port-forward exited: {Path(log_file.name).read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port-forward to {target} not listening after {timeout} s") from None
                time.sleep(0.2)
        supervisor = threading.Thread(target=restart_when_it_exits, name=f"port-forward-{port}", daemon=True)
        supervisor.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stopping.set()
            supervisor.join()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def selector_of(deployment: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())


def restricted_pod(
    image: str, name: str, labels: dict[str, str], command: list[str], volumes: Sequence[Any] = ()
) -> Any:
    """A pod that passes Pod Security "restricted" and runs `command` once in `image`; `volumes` read-only."""
    mounts = [client.V1VolumeMount(name=v.name, mount_path=f"/{v.name}", read_only=True) for v in volumes]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                fs_group=10001,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[
                client.V1Container(
                    name="main",
                    image=image,
                    image_pull_policy="IfNotPresent",
                    command=command,
                    volume_mounts=mounts,
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False,
                        read_only_root_filesystem=True,
                        capabilities=client.V1Capabilities(drop=["ALL"]),
                    ),
                )
            ],
            volumes=list(volumes) or None,
        ),
    )


def run_pod(core: Any, pod: Any, timeout: float = 180) -> tuple[str, str]:
    """Creates `pod`, waits for it to end; (phase, log). The pod is deleted afterwards."""
    core.create_namespaced_pod(NAMESPACE, pod)
    name = pod.metadata.name
    try:
        deadline = time.monotonic() + timeout
        phase = None
        while time.monotonic() < deadline:
            phase = core.read_namespaced_pod(name, NAMESPACE).status.phase
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(2)
        return str(phase), core.read_namespaced_pod_log(name, NAMESPACE)
    finally:
        core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
