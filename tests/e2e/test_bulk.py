"""Level 5: the bulk Job classifies a small collection on the kind cluster `make kind-up` made.

The collection is the eight golden images (one per label, about 800 KB), put into the ConfigMap the
kustomize component k8s/components/bulk mounts at /input (a ConfigMap holds at most 1 MiB, enough for a
demo, which is why real collections come from S3 or a volume). The component's Job (two shards, an Indexed
Job) runs from the gateway image through the gateway Service, writes ledgers and outputs to its claim,
and the last shard merges. A reader pod then prints the outputs, which are checked here with the formats'
own validators, and every golden image must carry its own label.

Needs, beyond `make kind-up`: a default StorageClass (kind's local-path provisioner) for the output claim;
without one the test is skipped with that reason. Skipped, with the reason, when no kind cluster answers.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model import spec
from tests.packaging import render

pytestmark = pytest.mark.e2e

CONTEXT = "kind-species-classifier"
NAMESPACE = "species-classifier"
BULK = "species-classifier-bulk"
INPUT = "species-classifier-bulk-input"
OUTPUT_CLAIM = "species-classifier-bulk-output"
IMAGE = "docker.io/species-classifier/gateway:0.1.0"
JOB_TIMEOUT_S = 600
OUTPUTS = (
    "predictions.csv",
    "megadetector.json",
    "camtrap-dp/datapackage.json",
    "camtrap-dp/deployments.csv",
    "camtrap-dp/media.csv",
    "camtrap-dp/observations.csv",
)

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    config.load_kube_config(context=CONTEXT)
    client.VersionApi().get_code(_request_timeout=5)
except Exception as error:  # no kubeconfig, no such context, or the API server does not answer
    pytest.skip(f"no kind cluster reachable: {error}", allow_module_level=True)


def restricted_pod(name: str, labels: dict[str, str], command: list[str], volumes: list[Any]) -> Any:
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
                    image=IMAGE,
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
            volumes=volumes,
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


def bulk_objects() -> list[dict[str, Any]]:
    """The component's objects as the kind overlay plus k8s/components/bulk render them."""
    try:
        objects = render.render_kustomize_with("kind", "bulk")
    except render.NotRenderable as missing:
        pytest.skip(str(missing))
    return [o for o in objects if o["metadata"]["name"].startswith(BULK)]


def delete_quietly(delete: Any, *args: Any, **kwargs: Any) -> None:
    try:
        delete(*args, **kwargs)
    except ApiException as error:
        if error.status != 404:
            raise


def remove_bulk_objects() -> None:
    """Deletes what the test creates (also what an interrupted earlier run left), the claim last."""
    core, batch = client.CoreV1Api(), client.BatchV1Api()
    delete_quietly(batch.delete_namespaced_job, BULK, NAMESPACE, propagation_policy="Foreground")
    delete_quietly(core.delete_namespaced_config_map, INPUT, NAMESPACE)
    delete_quietly(client.NetworkingV1Api().delete_namespaced_network_policy, BULK, NAMESPACE)
    delete_quietly(core.delete_namespaced_service_account, BULK, NAMESPACE)
    selector = f"batch.kubernetes.io/job-name={BULK}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        or batch.list_namespaced_job(NAMESPACE, field_selector=f"metadata.name={BULK}").items
    ):
        time.sleep(2)
    delete_quietly(core.delete_namespaced_persistent_volume_claim, OUTPUT_CLAIM, NAMESPACE)
    while (
        time.monotonic() < deadline
        and core.list_namespaced_persistent_volume_claim(
            NAMESPACE, field_selector=f"metadata.name={OUTPUT_CLAIM}"
        ).items
    ):
        time.sleep(2)


@pytest.fixture(scope="module")
def finished_job(golden_dir: Path) -> Iterator[dict[str, Any]]:
    core, batch = client.CoreV1Api(), client.BatchV1Api()
    classes = client.StorageV1Api().list_storage_class().items
    default = [
        c.metadata.name
        for c in classes
        if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    if not default:
        pytest.skip(
            "the kind cluster has no default StorageClass, so the bulk Job's output claim cannot bind"
        )
    images = {
        path.name: base64.b64encode(path.read_bytes()).decode() for path in sorted(golden_dir.glob("*.jpg"))
    }
    objects = bulk_objects()
    remove_bulk_objects()
    try:
        # Created, not applied: `kubectl apply` would store a second copy in an annotation, over 1 MiB.
        core.create_namespaced_config_map(
            NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=INPUT), binary_data=images)
        )
        api = client.ApiClient()
        from kubernetes import utils

        utils.create_from_yaml(api, yaml_objects=objects, namespace=NAMESPACE)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            status = batch.read_namespaced_job_status(BULK, NAMESPACE).status
            if (status.succeeded or 0) >= 2 or any(
                c.type == "Failed" and c.status == "True" for c in status.conditions or []
            ):
                break
            time.sleep(3)
        pods = core.list_namespaced_pod(
            NAMESPACE, label_selector=f"batch.kubernetes.io/job-name={BULK}"
        ).items
        logs = {pod.metadata.name: core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE) for pod in pods}
        assert status is not None
        assert (status.succeeded or 0) >= 2, (
            f"the bulk Job did not finish: {status}\n{json.dumps(logs, indent=1)}"
        )
        reader = restricted_pod(
            "e2e-bulk-reader",
            {"app.kubernetes.io/name": "e2e-bulk-reader"},
            [
                "python",
                "-c",
                "import base64, json, pathlib\n"
                f"names = {list(OUTPUTS)!r}\n"
                "read = lambda n: base64.b64encode(pathlib.Path('/output', n).read_bytes()).decode()\n"
                "print(json.dumps({n: read(n) for n in names}))",
            ],
            [
                client.V1Volume(
                    name="output",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name=OUTPUT_CLAIM
                    ),
                )
            ],
        )
        phase, printed = run_pod(core, reader)
        assert phase == "Succeeded", printed
        files = {
            name: base64.b64decode(data)
            for name, data in json.loads(printed.strip().splitlines()[-1]).items()
        }
        yield {"files": files, "logs": logs, "images": sorted(images)}
    finally:
        remove_bulk_objects()


def test_every_golden_image_gets_its_own_label_in_the_merged_predictions(
    finished_job: dict[str, Any],
) -> None:
    rows = list(csv.DictReader(io.StringIO(finished_job["files"]["predictions.csv"].decode())))
    assert sorted(row["file"] for row in rows) == finished_job["images"]
    for row in rows:
        assert row["label"] == row["file"].removesuffix(".jpg"), row
        assert not row["error"]
    assert {row["file"].removesuffix(".jpg") for row in rows} == set(spec.LABELS)


def test_the_two_shards_ran_and_the_last_one_merged(finished_job: dict[str, Any]) -> None:
    logs = "\n".join(finished_job["logs"].values())
    assert len(finished_job["logs"]) >= 2
    assert "merged 2 shards, 8 images" in logs


def test_the_outputs_pass_the_formats_own_validators(finished_job: dict[str, Any], tmp_path: Path) -> None:
    from tests.bulk.collection import SCHEMAS
    from tests.bulk.validate import camtrap_errors, megadetector_results

    for name, data in finished_job["files"].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert megadetector_results(tmp_path / "megadetector.json")["errors"] == []
    if not (SCHEMAS / "camtrap-dp-profile.json").exists():
        pytest.skip(f"the Camtrap DP schemas are not at {SCHEMAS}")
    assert camtrap_errors(tmp_path / "camtrap-dp", SCHEMAS) == []


def test_a_pod_with_the_bulk_labels_reaches_the_gateway_and_nothing_else() -> None:
    # The Kubernetes API has no ingress policy of ours: only the bulk pods' egress policy can block it.
    labels = {
        "app.kubernetes.io/name": "species-classifier",
        "app.kubernetes.io/instance": "species-classifier",
        "app.kubernetes.io/component": "bulk",
    }
    policy = client.NetworkingV1Api()
    objects = [o for o in bulk_objects() if o["kind"] == "NetworkPolicy"]
    from kubernetes import utils

    delete_quietly(policy.delete_namespaced_network_policy, BULK, NAMESPACE)
    utils.create_from_yaml(client.ApiClient(), yaml_objects=objects, namespace=NAMESPACE)
    probe = (
        "import socket\n"
        "def reach(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=5).close()\n"
        "        return 'open'\n"
        "    except OSError as error:\n"
        "        return f'blocked ({error})'\n"
        "print('gateway', reach('species-classifier-gateway', 80))\n"
        "print('api', reach('kubernetes.default.svc', 443))\n"
        "print('serving', reach('species-classifier-serving', 8500))\n"
    )
    try:
        phase, output = run_pod(
            client.CoreV1Api(), restricted_pod("e2e-bulk-egress-probe", labels, ["python", "-c", probe], [])
        )
    finally:
        delete_quietly(policy.delete_namespaced_network_policy, BULK, NAMESPACE)
    assert phase == "Succeeded", output
    results = dict(line.split(" ", 1) for line in output.strip().splitlines())
    assert results["gateway"] == "open", output
    assert results["api"].startswith("blocked"), output
    assert results["serving"].startswith("blocked"), output
