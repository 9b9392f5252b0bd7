"""Fixtures for test level 5: the kind cluster `make kind-up` makes, created here when none answers.

With a Docker engine answering and no cluster `kind-species-classifier` reachable, the session makes one
and deletes it at the end; an existing cluster is used as it is and left in place, except under `CI=true`,
which always makes its own. The level-5 tests run last, and the cluster is made in the background from the
moment collection ends (`hack/kind-up.sh` with `KIND_ADDONS=1`, niced, its output in build/e2e/kind-up.log
and echoed when the first level-5 test starts), so it is ready by the time levels 1-4 are done.
`KIND_EARLY=0` makes it when the first level-5 test needs it instead, with its output on the terminal.
`KIND_PULL` defaults to `never` here, so tests contact no registry (the pinned images are used when present
locally; otherwise the substitutes are built). Without a Docker engine every test here is skipped with the
reason, except under `CI=true`, where level 5 must run and a skip is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.e2e.kube import CONTEXT, REPO

# Cold, kind-up builds the node image, the Python base and both images from source.
KIND_UP_TIMEOUT_S = 75 * 60


# The cluster as it was at each module's first failure, printed in the terminal summary (the end of a CI log
# is what one reads first) and kept in build/e2e/cluster-at-failure.txt.
SNAPSHOTS: dict[str, str] = {}
SNAPSHOT_FILE = REPO / "build" / "e2e" / "cluster-at-failure.txt"


def is_e2e(item: pytest.Item) -> bool:
    return item.path.is_relative_to(REPO / "tests" / "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_e2e(item):
            item.add_marker(pytest.mark.e2e)


class EarlyCluster:
    """hack/kind-up.sh started in the background when collection ends, for the level-5 tests that run last."""

    LOG = REPO / "build" / "e2e" / "kind-up.log"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self, in_ci: bool) -> None:
        # Under CI=true a cluster from before goes first (see kind_api); niced, so a first run's builds yield
        # the cores to the tests running meanwhile (the nodes' own processes are Docker's, not niced).
        steps = (["hack/kind-down.sh"] if in_ci else []) + ["hack/kind-up.sh"]
        env = {**os.environ, "KIND_PULL": os.environ.get("KIND_PULL", "never"), "KIND_ADDONS": "1"}
        self.LOG.parent.mkdir(parents=True, exist_ok=True)
        with self.LOG.open("wb") as log:
            self.process = subprocess.Popen(
                ["nice", "-n", "10", "bash", "-c", " && ".join(steps)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started = time.monotonic()

    def finish(self, pytestconfig: pytest.Config) -> int:
        """Waits for it (within KIND_UP_TIMEOUT_S of its start) and echoes its output; its exit status."""
        assert self.process is not None
        remaining = max(1.0, KIND_UP_TIMEOUT_S - (time.monotonic() - self.started))
        try:
            status = self.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 15)
            status = self.process.wait()
        took = time.monotonic() - self.started
        capture = pytestconfig.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n--- level 5: hack/kind-up.sh, ran {took:.0f} s in the background ---", flush=True)
            print(self.LOG.read_text(encoding="utf-8", errors="replace"), end="", flush=True)
        self.process = None
        return status


EARLY = EarlyCluster()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or os.environ.get("KIND_EARLY", "1") == "0":
        return
    if not any(is_e2e(item) for item in session.items):
        return
    in_ci = os.environ.get("CI") == "true"
    if docker_answers() and (in_ci or api_client() is None):
        EARLY.start(in_ci)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A session that ends before level 5 (interrupted, -x) does not leave kind-up running unseen."""
    if EARLY.process is not None and EARLY.process.poll() is None:
        os.killpg(EARLY.process.pid, 15)
        EARLY.process.wait()


def disk_free() -> str:
    """Free space where Docker keeps images and the nodes' volumes: a full disk fails pods in odd ways."""
    try:
        root = subprocess.run(
            ["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        usage = shutil.disk_usage(root or "/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(disk: {error})"
    return f"Docker data root {root}: {usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.0f} GiB"


def node_lines(run: Any) -> list[str]:
    """Per node: conditions other than the healthy ones, taints, the free space under its /var, and the last
    errors its kubelet and containerd logged (a node that stops starting pods says why there)."""
    try:
        nodes = json.loads(run("get", "nodes", "--output", "json"))["items"]
    except (ValueError, KeyError) as error:
        return [f"(nodes: {error})"]
    lines = []
    for node in nodes:
        name = node["metadata"]["name"]
        odd = [
            f"{c['type']}={c['status']}"
            for c in node["status"].get("conditions", [])
            if (c["type"] == "Ready") != (c["status"] == "True")
        ]
        taints = [t["key"] for t in node["spec"].get("taints", [])]
        lines.append(f"node {name}: {', '.join(odd) or 'healthy'}; taints: {', '.join(taints) or 'none'}")
        script = (
            "df -h /var | tail -n 1; journalctl -u kubelet -u containerd --no-pager -o cat --since -20min"
            " | grep -E '^E[0-9]{4} |level=error' | tail -n 8 | cut -c 1-400"
        )
        try:
            done = subprocess.run(
                ["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, timeout=30
            )
            lines += [f"  {out}" for out in (done.stdout + done.stderr).splitlines()]
        except (OSError, subprocess.TimeoutExpired) as error:
            lines.append(f"  (docker exec {name}: {error})")
    return lines


def cluster_snapshot() -> str:
    """Disk, nodes (with their own view), the pods not Running and Ready, and the latest warning events."""
    from tests.e2e.kube import kubectl_binary

    def run(*args: str) -> str:
        try:
            done = subprocess.run(
                [kubectl_binary(), "--context", CONTEXT, *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
            return f"({' '.join(args)}: {error})"
        return (done.stdout + done.stderr).rstrip()

    pods = run("get", "pods", "--all-namespaces", "--output", "wide").splitlines()
    unhealthy = [line for line in pods[1:] if " Running " not in line or " 0/" in line or "1/2" in line]
    events = run(
        "get", "events", "--all-namespaces", "--field-selector", "type=Warning", "--sort-by", ".lastTimestamp"
    ).splitlines()
    return "\n".join(
        [
            disk_free(),
            run("get", "nodes", "--output", "wide"),
            *node_lines(run),
            *(pods[:1] + unhealthy if unhealthy else ["(every pod Running and Ready)"]),
            *events[-25:],
        ]
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    module = item.path.name
    if report.failed and item.get_closest_marker("e2e") and module not in SNAPSHOTS:
        SNAPSHOTS[module] = f"--- at the first failure in {module} ({item.name}) ---\n{cluster_snapshot()}"
        SNAPSHOT_FILE.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT_FILE.write_text("\n\n".join(SNAPSHOTS.values()) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SNAPSHOTS:
        terminalreporter.section("level 5: the kind cluster when tests failed")
        for snapshot in SNAPSHOTS.values():
            terminalreporter.write_line(snapshot)


def api_client() -> Any | None:
    """A client for the kind cluster's API server, or None when it does not answer."""
    try:
        from kubernetes import client, config

        api = config.new_client_from_config(context=CONTEXT)
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception:  # no kubeconfig, no such context, or the API server does not answer
        return None
    return api


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return result.returncode == 0


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"level 5 must run in CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


def run_script(pytestconfig: pytest.Config, script: str, timeout: float) -> int:
    """Runs hack/<script> with its output on the terminal (pytest's capture suspended)."""
    env = {**os.environ, "KIND_PULL": os.environ.get("KIND_PULL", "never")}
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n--- level 5: hack/{script} ---", flush=True)
        return subprocess.run(
            [str(REPO / "hack" / script)], cwd=REPO, env=env, check=False, timeout=timeout
        ).returncode


@pytest.fixture(scope="session")
def kind_api(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The kind cluster's ApiClient; the cluster is made (and removed afterwards) when none answers.

    Under CI=true a cluster from before (another run's, or one a restarted Docker engine brought back with
    its nodes half-working) is removed first: CI tests only a cluster it made itself."""
    in_ci = os.environ.get("CI") == "true"
    created = False
    if EARLY.process is not None:
        if EARLY.finish(pytestconfig) != 0:
            pytest.fail(f"hack/kind-up.sh failed (its output, {EarlyCluster.LOG}, is above)", pytrace=False)
        created = True
    elif in_ci and docker_answers() and run_script(pytestconfig, "kind-down.sh", 300) != 0:
        pytest.fail("hack/kind-down.sh could not remove the old cluster (output above)", pytrace=False)
    api = api_client()
    if api is None:
        if not docker_answers():
            unavailable(
                "no kind cluster reachable and no Docker engine answers ('make docker-up' starts one)"
            )
        if run_script(pytestconfig, "kind-up.sh", KIND_UP_TIMEOUT_S) != 0:
            pytest.fail("hack/kind-up.sh failed (its output is above)", pytrace=False)
        created = True
        api = api_client()
        if api is None:
            pytest.fail(f"hack/kind-up.sh succeeded but context {CONTEXT} does not answer", pytrace=False)
    try:
        yield api
    finally:
        if created and os.environ.get("KEEP_KIND_CLUSTER") != "1":
            run_script(pytestconfig, "kind-down.sh", 300)


def unready_nodes(api: Any) -> list[str]:
    from kubernetes import client

    return [
        node.metadata.name
        for node in client.CoreV1Api(api).list_node().items
        if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]


@pytest.fixture(scope="module", autouse=True)
def nodes_ready(kind_api: Any) -> None:
    """Every module starts on a cluster whose nodes are all Ready, or fails at once, saying what it found."""
    deadline = time.monotonic() + 120
    while (unready := unready_nodes(kind_api)) and time.monotonic() < deadline:
        time.sleep(3)
    if unready:
        pytest.fail(f"nodes not Ready after 2 minutes: {unready}\n{cluster_snapshot()}", pytrace=False)


@pytest.fixture(scope="module")
def core(kind_api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kind_api)


@pytest.fixture(scope="module")
def apps(kind_api: Any) -> Any:
    from kubernetes import client

    return client.AppsV1Api(kind_api)


@pytest.fixture(scope="session")
def addons(kind_api: Any, pytestconfig: pytest.Config) -> None:
    """MetalLB and metrics-server, installed by hack/kind-addons.sh when the cluster lacks them."""
    from kubernetes import client

    installed = client.AppsV1Api(kind_api).list_namespaced_deployment("metallb-system").items
    metrics = (
        client.AppsV1Api(kind_api)
        .list_namespaced_deployment("kube-system", label_selector="app.kubernetes.io/name=metrics-server")
        .items
    )
    if installed and metrics:
        return
    if run_script(pytestconfig, "kind-addons.sh", 1800) != 0:
        pytest.fail("hack/kind-addons.sh failed (its output is above)", pytrace=False)
