"""Level 4: the bulk Job on a real API server and Job controller (kwok nodes: no container runs).

A restricted namespace admits the Job's pods; the Job controller creates one pod per shard, each with its
completion index in JOB_COMPLETION_INDEX (which `python -m gateway.bulk` reads as its shard), and the Job
completes when every index has. kwok completes Job pods as soon as they start, so a pod lost mid-shard and
resumed is tested where the CLI really runs: level 2 (tests/bulk/test_cli.py, SIGKILL and SIGTERM) and
level 5 (tests/e2e/test_bulk.py).
"""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from tests.controlplane import cluster
from tests.packaging import render
from tests.support import manifests

BULK = "species-classifier-bulk"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _render(name: str) -> list[render.Manifest]:
    try:
        if name == "kustomize-kind-with-bulk":
            return render.render_kustomize_with("kind", "bulk")
        return render.render_chart([f"ci/{name.removeprefix('chart-ci-')}-values.yaml"])
    except render.NotRenderable as missing:
        pytest.skip(str(missing))


def job_pods(cp: cluster.ControlPlane, namespace: str) -> list[client.V1Pod]:
    pods = cp.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={BULK}").items
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def indexes(pods: list[client.V1Pod]) -> list[str]:
    return sorted(pod.metadata.annotations.get(INDEX_ANNOTATION, "?") for pod in pods)


@pytest.mark.parametrize("name", ["chart-ci-bulk", "chart-ci-bulk-s3", "kustomize-kind-with-bulk"])
def test_a_restricted_namespace_admits_the_bulk_pods(
    control_plane: cluster.ControlPlane, scratch_namespace: str, name: str
) -> None:
    objects = _render(name)
    assert f"Job/{BULK}" in [pod.owner for pod in manifests.pod_templates(objects)]
    assert cluster.pod_security_rejections(control_plane, scratch_namespace, objects) == {}


def test_a_bulk_pod_running_as_root_is_rejected(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = _render("chart-ci-bulk-s3")
    job = next(o for o in objects if o["kind"] == "Job")
    job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    rejected = cluster.pod_security_rejections(control_plane, scratch_namespace, objects)
    assert set(rejected) == {f"Job/{BULK}"}
    assert "runAsUser" in rejected[f"Job/{BULK}"]


def test_the_job_controller_runs_one_pod_per_shard_with_its_index_to_completion(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = cluster.into_namespace(copy.deepcopy(_render("chart-ci-bulk-s3")), scratch_namespace)
    job = next(o for o in objects if o["kind"] == "Job")
    shards = job["spec"]["completions"]
    control_plane.apply([o for o in objects if o["kind"] != "Pod"])  # not the helm test hook
    batch = client.BatchV1Api(control_plane.api)

    # kwok completes a Job's pods as soon as they run, so the Job finishes in seconds here.
    cluster.wait_until(
        lambda: (batch.read_namespaced_job(BULK, scratch_namespace).status.succeeded or 0) == shards,
        90,
        f"the Job did not complete its {shards} indexes",
    )
    status = batch.read_namespaced_job(BULK, scratch_namespace).status
    assert status.completed_indexes == f"0-{shards - 1}"
    pods = job_pods(control_plane, scratch_namespace)
    assert indexes(pods) == [str(index) for index in range(shards)]
    for pod in pods:
        container = pod.spec.containers[0]
        env = {e.name: e for e in container.env or []}
        # Set by the Job controller from the pod's index (a label since Kubernetes 1.28, an annotation
        # before): the CLI's default --shard-index.
        assert env["JOB_COMPLETION_INDEX"].value_from.field_ref.field_path in (
            f"metadata.labels['{INDEX_ANNOTATION}']",
            f"metadata.annotations['{INDEX_ANNOTATION}']",
        )
        assert container.args[container.args.index("--shard-count") + 1] == str(shards)
        assert pod.spec.service_account_name == BULK
        assert pod.spec.restart_policy == "OnFailure"
    created = batch.read_namespaced_job(BULK, scratch_namespace)
    assert created.spec.completion_mode == "Indexed"
    assert created.spec.backoff_limit == job["spec"]["backoffLimit"]
    assert created.spec.active_deadline_seconds == job["spec"]["activeDeadlineSeconds"]
