"""The ledger: one fsynced line per batch, torn tails dropped, another run's ledger refused (unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bulk import job
from gateway.bulk.ledger import Ledger, LedgerError, Result, parse
from gateway.bulk.sources import Item

pytestmark = pytest.mark.unit

SOURCE = "folder:/data/cams"


def result(name: str, label: str = "leopard") -> Result:
    return Result(name, "fp", label, 0.9, (0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.05, 0.05), "1")


def test_appended_batches_are_there_when_the_ledger_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger.open(path, source=SOURCE, created="2026-01-01T00:00:00Z")
    ledger.append([result("a.jpg"), result("b.jpg")])
    ledger.append([Result("c.jpg", "fp", error_code="invalid_image", error="truncated")])
    ledger.close()
    again = Ledger.open(path, source=SOURCE, created="2027-01-01T00:00:00Z")
    assert sorted(again.results) == ["a.jpg", "b.jpg", "c.jpg"]
    assert again.results["a.jpg"] == result("a.jpg")
    assert again.results["c.jpg"].error == "truncated"
    assert again.batches == 2
    assert again.created == "2026-01-01T00:00:00Z"  # the first run's, kept for identical outputs


def test_a_batch_torn_by_a_crash_is_dropped_whole_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger.open(path, source=SOURCE, created="2026-01-01T00:00:00Z")
    ledger.append([result("a.jpg")])
    ledger.close()
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"batch": [{"file": "b.jpg", "fingerp')
    again = Ledger.open(path, source=SOURCE, created="x")
    assert sorted(again.results) == ["a.jpg"]
    assert path.read_bytes() == complete
    again.append([result("b.jpg")])
    again.close()
    assert sorted(parse(path.read_bytes())[1]) == ["a.jpg", "b.jpg"]


def test_a_last_line_without_its_newline_is_sent_again_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger.open(path, source=SOURCE, created="x").close()
    path.write_bytes(path.read_bytes() + b'{"batch": []}')
    assert Ledger.open(path, source=SOURCE, created="x").batches == 0


def test_damage_before_the_last_line_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger.open(path, source=SOURCE, created="x")
    ledger.append([result("a.jpg")])
    ledger.close()
    path.write_bytes(path.read_bytes().replace(b'"batch"', b'"bat', 1) + b'{"batch": []}\n')
    with pytest.raises(LedgerError, match="line 2 is corrupt"):
        Ledger.open(path, source=SOURCE, created="x")


def test_a_ledger_of_another_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger.open(path, source=SOURCE, created="x").close()
    with pytest.raises(LedgerError, match="choose another --out"):
        Ledger.open(path, source="folder:/elsewhere", created="x")


def test_a_seed_from_s3_starts_a_replacement_pod_where_the_old_one_stopped(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path / "old" / "ledger.jsonl", source=SOURCE, created="x")
    first.append([result("a.jpg")])
    first.close()
    seed = (tmp_path / "old" / "ledger.jsonl").read_bytes()
    fresh = Ledger.open(tmp_path / "new" / "ledger.jsonl", source=SOURCE, created="y", seed=seed)
    assert sorted(fresh.results) == ["a.jpg"]


def test_changed_and_new_files_are_pending_and_classified_ones_are_not() -> None:
    items = [Item("a.jpg", "", "1:1"), Item("b.jpg", "", "2:2"), Item("c.jpg", "", "3:3")]
    done = {"a.jpg": Result("a.jpg", "1:1"), "b.jpg": Result("b.jpg", "old")}
    assert job.pending(items, done) == {"b.jpg", "c.jpg"}


def test_a_resumed_run_makes_the_batches_an_uninterrupted_run_makes() -> None:
    items = [Item(f"{index:03d}.jpg", "", "") for index in range(100)]
    whole = job.plan(items, {item.key for item in items}, 32, 10**9)
    finished = {item.key for item in whole[1]} | {item.key for item in whole[3]}
    resumed = job.plan(items, {item.key for item in items} - finished, 32, 10**9)
    assert resumed == [whole[0], whole[2]]


def test_the_merge_counts_another_pods_result_for_a_file_of_the_same_name_and_size() -> None:
    # Each pod of the Job mounts the collection itself, so a ConfigMap's files carry a different mtime in
    # every pod: the merging pod must still count the other shards' results (seen on kind, issue 11).
    here = Item("a.jpg", "/input/a.jpg", "1000:222", 0.0, 1000)
    results = {"a.jpg": Result(file="a.jpg", fingerprint="1000:111", label="bird")}
    assert job.unmerged([here], results) == set()
    resized = Item("a.jpg", "/input/a.jpg", "999:222", 0.0, 999)
    assert job.unmerged([resized], results) == {"a.jpg"}
    assert job.unmerged([Item("b.jpg", "/input/b.jpg", "5:1", 0.0, 5)], results) == {"b.jpg"}


def test_the_merge_compares_s3_etags_whole() -> None:
    item = Item("a.jpg", "a.jpg", '"etag-2"', 0.0, 1000)
    assert job.unmerged([item], {"a.jpg": Result(file="a.jpg", fingerprint='"etag-2"')}) == set()
    assert job.unmerged([item], {"a.jpg": Result(file="a.jpg", fingerprint='"etag-1"')}) == {"a.jpg"}
