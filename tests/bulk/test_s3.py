"""s3:// sources and outputs against a real S3-compatible server on 127.0.0.1 (moto's server mode), with
the CLI's real boto3 client from .venv-gateway (test level 2)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from tests.bulk.collection import make_collection
from tests.bulk.conftest import kill_after_batches, run_bulk, start_bulk
from tests.support.gateway import GatewayProcess
from tests.support.s3server import S3Server

pytestmark = pytest.mark.process

BUCKET = "camera-traps"


@pytest.fixture(scope="module")
def survey(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = make_collection(tmp_path_factory.mktemp("s3-collection"), per_camera=12, with_burst=True)
    s3_server.create_bucket(BUCKET)
    s3_server.upload_tree(folder.root, BUCKET, "survey-2024/")
    return folder.root, folder.images


def rows(data: bytes) -> dict[str, dict[str, str]]:
    return {row["file"]: row for row in csv.DictReader(io.StringIO(data.decode()))}


def test_an_s3_prefix_is_classified_into_outputs_on_s3(
    gateway: GatewayProcess, s3_server: S3Server, survey: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, images = survey
    run = run_bulk(
        f"s3://{BUCKET}/survey-2024",
        f"s3://{BUCKET}/results/run1",
        "--endpoint",
        gateway.base_url,
        "--work-dir",
        str(tmp_path / "work"),
        env=s3_server.env(),
    )
    assert run.returncode == 0, run.output
    keys = set(s3_server.list(BUCKET, "results/run1/"))
    assert {
        "results/run1/predictions.csv",
        "results/run1/megadetector.json",
        "results/run1/ledger.jsonl",
        "results/run1/camtrap-dp/datapackage.json",
        "results/run1/camtrap-dp/media.csv",
    } <= keys
    table = rows(s3_server.download(BUCKET, "results/run1/predictions.csv", tmp_path / "p.csv"))
    # Hidden objects (".thumbnails/...") and non-images are skipped, as in a folder.
    assert sorted(table) == images
    media = s3_server.download(BUCKET, "results/run1/camtrap-dp/media.csv", tmp_path / "m.csv").decode()
    assert f"s3://{BUCKET}/survey-2024/siteA/cam1/IMG_0000.JPG" in media

    local = run_bulk(folder, tmp_path / "local", "--endpoint", gateway.base_url)
    assert local.returncode == 0, local.output
    # Same keys, same batches, same answers as the folder; only file times differ (LastModified vs mtime).
    reference = rows((tmp_path / "local" / "predictions.csv").read_bytes())
    for name, row in table.items():
        assert (row["label"], row["score"], row["error"]) == (
            reference[name]["label"],
            reference[name]["score"],
            reference[name]["error"],
        )


def test_a_replacement_pod_resumes_from_the_ledger_checkpointed_to_s3(
    gateway: GatewayProcess, s3_server: S3Server, survey: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = f"s3://{BUCKET}/results/resume"
    common = [
        "--endpoint",
        gateway.base_url,
        "--batch-size",
        "4",
        "--concurrency",
        "1",
        "--checkpoint-interval",
        "0.01",
    ]
    first = start_bulk(
        f"s3://{BUCKET}/survey-2024", out, *common, "--work-dir", str(tmp_path / "pod-1"), env=s3_server.env()
    )
    deadline = time.monotonic() + 120
    while not (ledgers := list((tmp_path / "pod-1").glob("*/ledger.jsonl"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_after_batches(first, ledgers[0], 4)
    checkpointed = s3_server.download(BUCKET, "results/resume/ledger.jsonl", tmp_path / "checkpoint.jsonl")
    lines = checkpointed.decode().splitlines()[1:]
    done_before = sum(len(json.loads(line)["batch"]) for line in lines)
    assert done_before >= 4  # the replacement starts from these, not from zero
    # A new pod: a fresh emptyDir (another --work-dir), the same command.
    second = run_bulk(
        f"s3://{BUCKET}/survey-2024", out, *common, "--work-dir", str(tmp_path / "pod-2"), env=s3_server.env()
    )
    assert second.returncode == 0, second.output
    summary = next(line for line in second.output.splitlines() if line.startswith("bulk: done:"))
    already = int(summary.split("(")[1].split(" ")[0])
    assert already >= done_before  # the checkpointed images were not sent again
    final = json.loads(s3_server.download(BUCKET, "results/resume/megadetector.json", tmp_path / "md.json"))
    assert len(final["images"]) == len(survey[1])


def test_wrong_s3_credentials_or_bucket_end_with_status_5(
    gateway: GatewayProcess, s3_server: S3Server, tmp_path: Path
) -> None:
    run = run_bulk(
        "s3://no-such-bucket/x", tmp_path / "out", "--endpoint", gateway.base_url, env=s3_server.env()
    )
    assert run.returncode == 5, run.output
    assert "NoSuchBucket" in run.output


def test_shards_on_s3_merge_into_outputs_at_the_top_of_the_output_prefix(
    gateway: GatewayProcess, s3_server: S3Server, survey: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = f"s3://{BUCKET}/results/sharded"
    for index in range(2):
        run = run_bulk(
            f"s3://{BUCKET}/survey-2024",
            out,
            "--endpoint",
            gateway.base_url,
            "--shard-count",
            "2",
            "--merge-when-complete",
            "--work-dir",
            str(tmp_path / f"pod-{index}"),
            env={**s3_server.env(), "JOB_COMPLETION_INDEX": str(index)},
        )
        assert run.returncode == 0, run.output
    assert "merged 2 shards" in run.output
    keys = set(s3_server.list(BUCKET, "results/sharded/"))
    assert "results/sharded/shards/00000-of-00002/ledger.jsonl" in keys
    assert "results/sharded/shards/00001-of-00002/predictions.csv" in keys
    merged = rows(s3_server.download(BUCKET, "results/sharded/predictions.csv", tmp_path / "merged.csv"))
    assert sorted(merged) == survey[1]
