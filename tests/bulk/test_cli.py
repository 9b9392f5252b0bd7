"""`python -m gateway.bulk` as a process from .venv-gateway, against the real gateway and the stand-in
(test level 2): a few hundred images, some broken, to three valid outputs; SIGKILL at any moment and the
same outputs after resuming; growth, changes, a gateway that is gone, an unwritable DIR, shards."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.bulk.collection import Collection, exif_jpeg, make_collection
from tests.bulk.conftest import kill_after_batches, outputs_of, run_bulk, start_bulk
from tests.bulk.validate import camtrap_errors, megadetector_results
from tests.support.gateway import GatewayProcess
from tests.support.standin import free_port

pytestmark = pytest.mark.process

BATCH = 8
CONCURRENCY = 4


def predictions(out: Path) -> dict[str, dict[str, str]]:
    table = csv.DictReader(io.StringIO((out / "predictions.csv").read_text()))
    return {row["file"]: row for row in table}


def classified_total(gateway: GatewayProcess) -> int:
    """Images the gateway has classified so far (gateway_predictions_total, every label)."""
    text = httpx.get(f"{gateway.base_url}/metrics", timeout=5).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gateway_predictions_total{")
        )
    )


def args(gateway: GatewayProcess, *extra: str) -> list[str]:
    return [
        "--endpoint",
        gateway.base_url,
        "--batch-size",
        str(BATCH),
        "--concurrency",
        str(CONCURRENCY),
        *extra,
    ]


@pytest.fixture(scope="module")
def complete(
    gateway: GatewayProcess, collection: Collection, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One uninterrupted run over the collection: the reference outputs."""
    out = tmp_path_factory.mktemp("complete")
    run = run_bulk(collection.root, out, *args(gateway, "--progress-interval", "0.5"))
    assert run.returncode == 0, run.output
    (out / "run.log").write_text(run.output)
    return out


def test_a_few_hundred_images_some_broken_run_to_three_outputs_that_validate(
    complete: Path, collection: Collection, camtrap_schemas: Path
) -> None:
    table = predictions(complete)
    assert sorted(table) == collection.images
    assert len(table) > 200
    for name, code in collection.broken.items():
        assert table[name]["error"].startswith(code + ":"), table[name]
        assert table[name]["label"] == ""
    classified = [row for name, row in table.items() if name not in collection.broken]
    assert all(row["label"] and not row["error"] for row in classified)
    checked = megadetector_results(complete / "megadetector.json")
    assert checked["errors"] == []
    assert camtrap_errors(complete / "camtrap-dp", camtrap_schemas) == []


def test_the_real_burst_is_one_event_of_one_deployment(complete: Path, collection: Collection) -> None:
    if not collection.burst:
        pytest.skip("the real burst is not in ../shared")
    table = predictions(complete)
    rows = [table[name] for name in collection.burst]
    assert {row["deployment_id"] for row in rows} == {"siteC/heron"}
    assert len({row["event_id"] for row in rows}) == 1
    assert rows[0]["timestamp"] == "2021-04-11T20:43:09Z"
    assert {row["timestamp_source"] for row in rows} == {"exif:DateTimeOriginal"}


def test_bursts_of_the_generated_cameras_are_events_of_three(complete: Path) -> None:
    table = predictions(complete)
    events: dict[str, list[str]] = {}
    for name, row in table.items():
        if name.startswith("siteA/cam1/IMG_") and row["event_id"]:
            events.setdefault(row["event_id"], []).append(name)
    assert len(events) == 27
    assert {len(files) for files in events.values()} == {3}


def test_progress_lines_and_a_summary_go_to_the_log(complete: Path, collection: Collection) -> None:
    log = (complete / "run.log").read_text()
    assert f"bulk: {len(collection.images)} images, 0 already done" in log
    assert f"bulk: {len(collection.images)}/{len(collection.images)} images (100%)" in log
    assert "images/s" in log
    assert "ETA" in log
    assert "bulk: labels: " in log
    assert "invalid_image 3" in log
    assert "payload_too_large 1" in log
    assert "unsupported_media_type 1" in log
    assert "wrote " in log


def test_a_run_killed_at_any_moment_resumes_to_identical_outputs(
    gateway: GatewayProcess, collection: Collection, complete: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    before = classified_total(gateway)
    kills = 0
    for batches in (1, 5, 12):
        process = start_bulk(collection.root, out, *args(gateway))
        kill_after_batches(process, out / "ledger.jsonl", batches)
        kills += 1
    final = run_bulk(collection.root, out, *args(gateway))
    assert final.returncode == 0, final.output
    assert outputs_of(out) == outputs_of(complete)
    # Images classified across all four runs beyond what one run needs: only the batches in flight at
    # each SIGKILL, at most one per worker.
    needed = len(collection.images) - len(collection.broken)
    extra = classified_total(gateway) - before - needed
    assert 0 <= extra <= kills * CONCURRENCY * BATCH, f"{extra} images classified twice over {kills} kills"
    (tmp_path / "resume-measurement.json").write_text(json.dumps({"kills": kills, "extra_images": extra}))
    print(f"resume: {kills} SIGKILLs, {extra} images classified again (bound {kills * CONCURRENCY * BATCH})")


def test_sigterm_stops_cleanly_with_status_143_and_the_run_resumes(
    gateway: GatewayProcess, collection: Collection, complete: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stopped"
    process = start_bulk(collection.root, out, *args(gateway))
    ledger = out / "ledger.jsonl"
    deadline = time.monotonic() + 120
    while not (ledger.exists() and ledger.read_bytes().count(b"\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert process.returncode == 143, output
    assert "run the same command again to resume" in output
    final = run_bulk(collection.root, out, *args(gateway))
    assert final.returncode == 0, final.output
    assert outputs_of(out) == outputs_of(complete)


def test_a_rerun_over_a_grown_folder_classifies_only_the_new_images(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    folder = make_collection(tmp_path / "grows", per_camera=9, with_burst=False)
    out = tmp_path / "out"
    assert run_bulk(folder.root, out, *args(gateway)).returncode == 0
    for index in range(3):
        (folder.root / f"siteB/cam2/NEW_{index}.JPG").parent.mkdir(parents=True, exist_ok=True)
        (folder.root / f"siteB/cam2/NEW_{index}.JPG").write_bytes(
            exif_jpeg(900 + index, datetime(2024, 5, 1, 9, 0, index), None, ("X", "Y"))
        )
    before = classified_total(gateway)
    again = run_bulk(folder.root, out, *args(gateway))
    assert again.returncode == 0, again.output
    assert classified_total(gateway) - before == 3
    assert "3 classified now" in again.output
    assert len(predictions(out)) == len(folder.images) + 3


def test_a_changed_image_is_classified_again_and_an_unchanged_rerun_sends_nothing(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    folder = make_collection(tmp_path / "changes", per_camera=3, with_burst=False)
    out = tmp_path / "out"
    assert run_bulk(folder.root, out, *args(gateway)).returncode == 0
    before = classified_total(gateway)
    unchanged = run_bulk(folder.root, out, *args(gateway))
    assert unchanged.returncode == 0
    assert classified_total(gateway) == before
    changed = folder.root / "siteA/cam1/IMG_0000.JPG"
    changed.write_bytes(exif_jpeg(4242, datetime(2024, 6, 1, 12), None, ("X", "Y")))
    assert run_bulk(folder.root, out, *args(gateway)).returncode == 0
    assert classified_total(gateway) == before + 1
    assert predictions(out)["siteA/cam1/IMG_0000.JPG"]["timestamp"].startswith("2024-06-01")


def test_an_unreachable_gateway_ends_with_status_3_and_the_reason(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c", per_camera=3, with_burst=False)
    run = run_bulk(
        folder.root, tmp_path / "out", "--endpoint", f"http://127.0.0.1:{free_port()}", "--retry-for", "2"
    )
    assert run.returncode == 3, run.output
    assert "kept failing" in run.output
    assert "run the same command again to resume" in run.output


def test_an_unwritable_out_ends_with_status_4_and_the_reason(gateway: GatewayProcess, tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c", per_camera=3, with_burst=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = run_bulk(folder.root, blocker / "out", *args(gateway))
    assert run.returncode == 4, run.output
    assert "cannot open the ledger" in run.output


def test_a_missing_source_ends_with_status_5(tmp_path: Path) -> None:
    run = run_bulk(tmp_path / "nowhere", tmp_path / "out")
    assert run.returncode == 5, run.output


def test_a_list_file_of_paths_is_classified_like_the_folder(
    gateway: GatewayProcess, collection: Collection, complete: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "list.txt"
    names = [name for name in collection.images if name.startswith("siteA/cam2/")]
    listing.write_text("# siteA/cam2 only\n" + "\n".join(str(collection.root / n) for n in names) + "\n")
    out = tmp_path / "out"
    run = run_bulk(listing, out, *args(gateway))
    assert run.returncode == 0, run.output
    by_path = predictions(out)
    reference = predictions(complete)
    for name in names:
        row = by_path[str(collection.root / name)]
        assert (row["label"], row["score"], row["error"]) == (
            reference[name]["label"],
            reference[name]["score"],
            reference[name]["error"],
        )


def test_shards_merged_give_the_classifications_of_one_unsharded_run(
    gateway: GatewayProcess, collection: Collection, complete: Path, tmp_path: Path, camtrap_schemas: Path
) -> None:
    out = tmp_path / "sharded"
    logs = []
    for index in range(3):
        run = run_bulk(
            collection.root,
            out,
            *args(gateway, "--shard-count", "3", "--merge-when-complete"),
            env={"JOB_COMPLETION_INDEX": str(index)},
        )
        assert run.returncode == 0, run.output
        logs.append(run.output)
    assert "not merging yet" in logs[0]
    assert "merged 3 shards" in logs[2]
    shard_rows = [len(predictions(out / "shards" / f"{i:05d}-of-00003")) for i in range(3)]
    assert sum(shard_rows) == len(collection.images)
    # Shards make other batches than one run, and TensorFlow's CPU kernels round a batch's arithmetic
    # differently by batch shape: probabilities agree to the gateway's 6 decimals, give or take 1e-6.
    merged, reference = predictions(out), predictions(complete)
    assert sorted(merged) == sorted(reference)
    for name, row in merged.items():
        expected = reference[name]
        for column in ("label", "error", "timestamp", "deployment_id", "event_id", "event_label"):
            assert row[column] == expected[column], (name, column)
        for column in ("score", "blank", "leopard", "event_probability"):
            if expected[column]:
                assert float(row[column]) == pytest.approx(float(expected[column]), abs=2e-6), (name, column)
    assert camtrap_errors(out / "camtrap-dp", camtrap_schemas) == []
    first = outputs_of(out)
    remerge = run_bulk(collection.root, out, "--merge")
    assert remerge.returncode == 0, remerge.output
    assert outputs_of(out) == first


def test_merge_before_every_shard_is_done_says_so_with_status_6(
    gateway: GatewayProcess, collection: Collection, tmp_path: Path
) -> None:
    out = tmp_path / "partial"
    run = run_bulk(
        collection.root, out, *args(gateway, "--shard-count", "2"), env={"JOB_COMPLETION_INDEX": "0"}
    )
    assert run.returncode == 0, run.output
    merge = run_bulk(collection.root, out, "--merge")
    assert merge.returncode == 6, merge.output
    assert "have no result yet" in merge.output
    assert not (out / "predictions.csv").exists()


def test_the_outputs_name_files_relative_to_source_wherever_source_lives(
    gateway: GatewayProcess, collection: Collection, complete: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(collection.root, moved)
    for path in moved.rglob("*"):
        if path.is_file():
            stat = (collection.root / path.relative_to(moved)).stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = tmp_path / "out"
    assert run_bulk(moved, out, *args(gateway)).returncode == 0
    assert (out / "predictions.csv").read_bytes() == (complete / "predictions.csv").read_bytes()
