"""Level 5: the bulk Job classifies a small collection on the kind cluster.

The collection is the eight golden images (one per label, about 800 KB), put into the ConfigMap that the
kustomize component k8s/components/bulk mounts at /input (a ConfigMap holds at most 1 MiB: enough for a
demo, which is why real collections come from S3 or a volume). The component's Job (an Indexed Job of two
shards, from the gateway image, through the gateway Service) writes ledgers and outputs to its claim, and the
last shard merges. A reader pod then prints the outputs, which are checked here with the formats' own
validators, and every golden image must carry its own label. A pod with the Job's labels reaches the gateway
and nothing else (its egress policy, enforced by the cluster's network plugin).

The test provides the output volume itself, whatever StorageClasses the cluster has (the offline node image
has no provisioner of its own): a folder made world-writable inside one node container (`docker exec`) and a
`local` PersistentVolume pinned to that node and reserved for the claim, which asks for no class. The
PersistentVolume is cluster-scoped, so the pods stay "restricted". Users' clusters bind the component's
claim to their default StorageClass instead.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from model import spec
from tests.e2e.kube import NAMESPACE, REPO, restricted_pod, run_pod
from tests.packaging import render

BULK = "species-classifier-bulk"
INPUT = "species-classifier-bulk-input"
OUTPUT_CLAIM = "species-classifier-bulk-output"
VOLUME = "species-classifier-bulk-e2e"
NODE_FOLDER = "/var/local/species-classifier-bulk-e2e"
CLUSTER = "species-classifier"
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
BULK_LABELS = {
    "app.kubernetes.io/name": "species-classifier",
    "app.kubernetes.io/instance": "species-classifier",
    "app.kubernetes.io/component": "bulk",
}


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


def node_container() -> str:
    """A worker node of the kind cluster (its container name is also its Kubernetes node name)."""
    kind = REPO / "bin" / "kind"
    listed = subprocess.run(
        [str(kind), "get", "nodes", "--name", CLUSTER], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    workers = sorted(name for name in listed if "worker" in name)
    return (workers or sorted(listed))[0]


def provide_volume(api: Any) -> None:
    """A `local` PersistentVolume reserved for the output claim, on a folder any uid may write."""
    node = node_container()
    subprocess.run(
        ["docker", "exec", node, "sh", "-c", f"rm -rf {NODE_FOLDER} && install -d -m 1777 {NODE_FOLDER}"],
        check=True,
        timeout=60,
    )
    volume = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=VOLUME),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"},
            access_modes=["ReadWriteOnce"],
            persistent_volume_reclaim_policy="Retain",
            storage_class_name="",
            claim_ref=client.V1ObjectReference(namespace=NAMESPACE, name=OUTPUT_CLAIM),
            local=client.V1LocalVolumeSource(path=NODE_FOLDER),
            node_affinity=client.V1VolumeNodeAffinity(
                required=client.V1NodeSelector(
                    node_selector_terms=[
                        client.V1NodeSelectorTerm(
                            match_expressions=[
                                client.V1NodeSelectorRequirement(
                                    key="kubernetes.io/hostname", operator="In", values=[node]
                                )
                            ]
                        )
                    ]
                )
            ),
        ),
    )
    client.CoreV1Api(api).create_persistent_volume(volume)


def remove_bulk_objects(api: Any) -> None:
    """Deletes what the test creates (also what an interrupted earlier run left), the volume last."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    delete_quietly(batch.delete_namespaced_job, BULK, NAMESPACE, propagation_policy="Foreground")
    delete_quietly(core.delete_namespaced_config_map, INPUT, NAMESPACE)
    delete_quietly(client.NetworkingV1Api(api).delete_namespaced_network_policy, BULK, NAMESPACE)
    delete_quietly(core.delete_namespaced_service_account, BULK, NAMESPACE)
    deadline = time.monotonic() + 180

    def wait_for(gone: Any) -> None:
        while time.monotonic() < deadline and not gone():
            time.sleep(2)

    selector = f"batch.kubernetes.io/job-name={BULK}"
    wait_for(
        lambda: (
            not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            and not batch.list_namespaced_job(NAMESPACE, field_selector=f"metadata.name={BULK}").items
        )
    )
    delete_quietly(core.delete_namespaced_persistent_volume_claim, OUTPUT_CLAIM, NAMESPACE)
    wait_for(
        lambda: (
            not core.list_namespaced_persistent_volume_claim(
                NAMESPACE, field_selector=f"metadata.name={OUTPUT_CLAIM}"
            ).items
        )
    )
    delete_quietly(core.delete_persistent_volume, VOLUME)


def pod_logs(core: Any) -> dict[str, str]:
    """The logs (the current or last container run's) of the Job's pods that still exist."""
    found = {}
    for pod in core.list_namespaced_pod(
        NAMESPACE, label_selector=f"batch.kubernetes.io/job-name={BULK}"
    ).items:
        try:
            found[pod.metadata.name] = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE)
        except ApiException:
            continue  # not started yet, or gone meanwhile
    return found


@pytest.fixture(scope="module")
def finished_job(kind_api: Any, golden_dir: Path) -> Iterator[dict[str, Any]]:
    core, batch = client.CoreV1Api(kind_api), client.BatchV1Api(kind_api)
    images = {
        path.name: base64.b64encode(path.read_bytes()).decode() for path in sorted(golden_dir.glob("*.jpg"))
    }
    objects = bulk_objects()
    remove_bulk_objects(kind_api)
    try:
        # The test's own volume, whatever the cluster's StorageClasses are (a default class's provisioner may
        # make folders a non-root pod cannot write): the claim asks for no class and binds to it.
        provide_volume(kind_api)
        for obj in objects:
            if obj["kind"] == "PersistentVolumeClaim":
                obj["spec"]["storageClassName"] = ""
        # Created, not applied: `kubectl apply` would store a second copy in an annotation, over 1 MiB.
        core.create_namespaced_config_map(
            NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=INPUT), binary_data=images)
        )
        # The claim first, bound to the volume before any pod asks for it (pods that find it unbound wait for
        # the scheduler's and the kubelet's next tries, minutes on a busy machine).
        claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
        utils.create_from_yaml(kind_api, yaml_objects=claims, namespace=NAMESPACE)
        bound_by = time.monotonic() + 120
        while core.read_namespaced_persistent_volume_claim(OUTPUT_CLAIM, NAMESPACE).status.phase != "Bound":
            assert time.monotonic() < bound_by, f"{OUTPUT_CLAIM} not Bound to {VOLUME} after 120 s"
            time.sleep(2)
        rest = [o for o in objects if o["kind"] != "PersistentVolumeClaim"]
        utils.create_from_yaml(kind_api, yaml_objects=rest, namespace=NAMESPACE)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        status = None
        logs: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = batch.read_namespaced_job_status(BULK, NAMESPACE).status
            # Read as we go: a failed Job's pods are removed, and their logs say why.
            logs.update(pod_logs(core))
            failed = any(c.type == "Failed" and c.status == "True" for c in status.conditions or [])
            if (status.succeeded or 0) >= 2 or failed:
                break
            time.sleep(3)
        assert status is not None
        assert (status.succeeded or 0) >= 2, (
            f"the bulk Job did not finish: {status}\n{json.dumps(logs, indent=1)}"
        )
        reader = restricted_pod(
            IMAGE,
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
        encoded = json.loads(printed.strip().splitlines()[-1])
        files = {name: base64.b64decode(data) for name, data in encoded.items()}
        yield {"files": files, "logs": logs, "images": sorted(images)}
    finally:
        remove_bulk_objects(kind_api)


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
        pytest.skip(f"the Camtrap DP schemas are not at {SCHEMAS} (../shared is absent)")
    assert camtrap_errors(tmp_path / "camtrap-dp", SCHEMAS) == []


def test_a_pod_with_the_bulk_labels_reaches_the_gateway_and_nothing_else(kind_api: Any) -> None:
    # The Kubernetes API has no ingress policy of ours: only the bulk pods' egress policy can block it.
    policy = client.NetworkingV1Api(kind_api)
    objects = [o for o in bulk_objects() if o["kind"] == "NetworkPolicy"]
    delete_quietly(policy.delete_namespaced_network_policy, BULK, NAMESPACE)
    utils.create_from_yaml(kind_api, yaml_objects=objects, namespace=NAMESPACE)
    # kube-router programs a new policy within seconds of its creation; the probe waits that long first.
    probe = (
        "import socket, time\n"
        "time.sleep(15)\n"
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
            client.CoreV1Api(kind_api),
            restricted_pod(IMAGE, "e2e-bulk-egress-probe", BULK_LABELS, ["python", "-c", probe]),
        )
    finally:
        delete_quietly(policy.delete_namespaced_network_policy, BULK, NAMESPACE)
    assert phase == "Succeeded", output
    results = dict(line.split(" ", 1) for line in output.strip().splitlines())
    assert results["gateway"] == "open", output
    assert results["api"].startswith("blocked"), output
    assert results["serving"].startswith("blocked"), output
