"""Data preparation: the Conser-vision CSVs become stratified train/valid/test folders."""

from __future__ import annotations

import csv
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from model import data, spec
from tests.model.conftest import ConservisionFactory

pytestmark = pytest.mark.unit


def folder_counts(out: Path) -> dict[str, Counter[str]]:
    return {
        split: Counter({label: len(list((out / split / label).iterdir())) for label in spec.LABELS})
        for split in data.SPLITS
    }


def split_rows(out: Path) -> list[dict[str, str]]:
    with (out / "split.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_label_is_split_70_15_15_into_label_folders(balanced_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    data.prepare(balanced_root, out, seed=1)

    counts = folder_counts(out)
    for label in spec.LABELS:
        assert (counts["train"][label], counts["valid"][label], counts["test"][label]) == (14, 3, 3)


def test_split_files_are_the_source_images_under_their_ids(balanced_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    data.prepare(balanced_root, out, seed=1)

    rows = split_rows(out)
    assert len(rows) == 8 * 20
    for row in rows[:10]:
        placed = out / row["split"] / row["label"] / f"{row['id']}.jpg"
        assert placed.read_bytes() == Path(row["source"]).read_bytes()
    assert len({row["id"] for row in rows}) == len(rows)


def test_files_are_hard_linked_by_default_and_copied_with_copy(balanced_root: Path, tmp_path: Path) -> None:
    data.prepare(balanced_root, tmp_path / "linked", seed=1)
    data.prepare(balanced_root, tmp_path / "copied", seed=1, copy=True)

    linked = next((tmp_path / "linked" / "train" / "bird").iterdir())
    copied = tmp_path / "copied" / "train" / "bird" / linked.name
    assert os.stat(linked).st_nlink == 2
    assert os.stat(copied).st_nlink == 1
    assert copied.read_bytes() == linked.read_bytes()


def test_an_uneven_label_still_gets_70_15_15_within_rounding(
    conservision: ConservisionFactory, tmp_path: Path
) -> None:
    labels = {"S1": ["bird"] * 7 + ["hog"] * 33 + ["blank"] * 2}
    root = conservision(labels)

    splits = data.prepare(root, tmp_path / "out", seed=3)

    for label, total in (("bird", 7), ("hog", 33), ("blank", 2)):
        sizes = [sum(s.label == label for s in splits[split]) for split in data.SPLITS]
        assert sum(sizes) == total
        for size, fraction in zip(sizes, data.SPLIT_FRACTIONS.values(), strict=True):
            assert abs(size - fraction * total) < 1


def test_the_same_seed_gives_the_same_split_and_another_seed_a_different_one(balanced_root: Path) -> None:
    samples = data.load_samples(balanced_root)

    def assignment(seed: int) -> dict[str, str]:
        return {
            s.id: split for split, members in data.split_stratified(samples, seed).items() for s in members
        }

    assert assignment(5) == assignment(5)
    assert assignment(5) != assignment(6)


def test_the_split_does_not_depend_on_the_row_order_of_the_csv(balanced_root: Path) -> None:
    samples = data.load_samples(balanced_root)
    shuffled = list(samples)
    random.Random(0).shuffle(shuffled)  # noqa: S311 - test data

    assert data.split_stratified(samples, 9) == data.split_stratified(shuffled, 9)


def test_by_site_keeps_every_site_in_one_split_and_the_balance_close(
    conservision: ConservisionFactory, tmp_path: Path
) -> None:
    rng = random.Random(11)  # noqa: S311 - test data
    sites = {f"S{n:04d}": [rng.choice(spec.LABELS) for _ in range(rng.randint(5, 25))] for n in range(40)}
    root = conservision(sites)

    splits = data.prepare(root, tmp_path / "out", seed=2, by_site=True)

    site_sets = [{s.site for s in splits[split]} for split in data.SPLITS]
    train_sites, valid_sites, test_sites = site_sets
    assert not train_sites & valid_sites
    assert not train_sites & test_sites
    assert not valid_sites & test_sites
    total = sum(len(members) for members in splits.values())
    for split, fraction in data.SPLIT_FRACTIONS.items():
        assert abs(len(splits[split]) / total - fraction) < 0.05, split
        labels_present = {s.label for s in splits[split]}
        assert labels_present == set(spec.LABELS), split
    rows = split_rows(tmp_path / "out")
    assert {(row["site"], row["split"]) for row in rows} == {
        (site, split) for split, names in zip(data.SPLITS, site_sets, strict=True) for site in names
    }


def test_by_site_with_fewer_sites_than_splits_is_an_error(
    conservision: ConservisionFactory, tmp_path: Path
) -> None:
    root = conservision({"S1": ["bird"] * 5, "S2": ["hog"] * 5})

    with pytest.raises(data.DataError, match="at least 3 sites"):
        data.prepare(root, tmp_path / "out", by_site=True)


def test_the_older_training_set_file_names_are_found(
    conservision: ConservisionFactory, tmp_path: Path
) -> None:
    root = conservision(
        {"S1": list(spec.LABELS)},
        features_name="training_set_features.csv",
        labels_name="training_set_labels.csv",
    )

    assert len(data.load_samples(root)) == len(spec.LABELS)


def test_a_missing_column_is_named_in_the_error(balanced_root: Path) -> None:
    path = balanced_root / "train_features.csv"
    rows = list(csv.reader(path.open()))
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([row[:2] for row in rows])

    with pytest.raises(data.DataError, match=r"train_features\.csv: missing column\(s\) site"):
        data.load_samples(balanced_root)


def test_a_missing_label_column_is_named_in_the_error(balanced_root: Path) -> None:
    path = balanced_root / "train_labels.csv"
    rows = list(csv.reader(path.open()))
    leopard = rows[0].index("leopard")
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([row[:leopard] + row[leopard + 1 :] for row in rows])

    with pytest.raises(data.DataError, match=r"missing column\(s\) leopard"):
        data.load_samples(balanced_root)


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (["1.0", "1.0"] + ["0.0"] * 6, "two labels"),
        (["0.0"] * 8, "no label"),
        (["0.5", "0.5"] + ["0.0"] * 6, "soft label"),
        (["yes"] + ["0.0"] * 7, "not a number"),
    ],
)
def test_a_row_that_is_not_exactly_one_hot_is_reported_by_id(
    balanced_root: Path, values: list[str], why: str
) -> None:
    path = balanced_root / "train_labels.csv"
    rows = list(csv.reader(path.open()))
    rows[3] = [rows[3][0], *values]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)

    with pytest.raises(data.DataError, match=rf"1 row\(s\) are not exactly one-hot.*{rows[3][0]}"):
        data.load_samples(balanced_root)


def test_missing_image_files_are_listed(balanced_root: Path) -> None:
    (balanced_root / "train_features" / "ZJ000004.jpg").unlink()
    (balanced_root / "train_features" / "ZJ000009.jpg").unlink()

    with pytest.raises(
        data.DataError, match=r"2 image file\(s\) missing.*ZJ000004\.jpg, train_features/ZJ000009"
    ):
        data.load_samples(balanced_root)


def test_an_image_without_a_label_row_is_an_error(balanced_root: Path) -> None:
    path = balanced_root / "train_labels.csv"
    rows = list(csv.reader(path.open()))
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows[:-1])

    with pytest.raises(data.DataError, match=r"no label for 1 id\(s\)"):
        data.load_samples(balanced_root)


def test_a_non_empty_output_folder_is_kept_unless_forced(balanced_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    data.prepare(balanced_root, out, seed=1)
    (out / "notes.txt").write_text("mine")

    with pytest.raises(data.DataError, match="--force"):
        data.prepare(balanced_root, out, seed=2)
    data.prepare(balanced_root, out, seed=2, force=True)

    assert (out / "notes.txt").read_text() == "mine"
    assert sum(sum(c.values()) for c in folder_counts(out).values()) == 160


def test_the_cli_prints_a_per_split_per_label_summary(
    balanced_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = data.main(["--data-root", str(balanced_root), "--out", str(tmp_path / "out"), "--seed", "4"])

    output = capsys.readouterr().out
    assert status == 0
    assert output.splitlines()[0].split() == ["label", "train", "valid", "test", "total"]
    bird = next(line for line in output.splitlines() if line.startswith("bird "))
    assert bird.split()[1:] == ["14", "3", "3", "20"]
    assert next(line for line in output.splitlines() if line.startswith("total")).split()[1:] == [
        "112",
        "24",
        "24",
        "160",
    ]


def test_the_cli_exits_2_with_the_error_on_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = data.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "out")])

    assert status == 2
    assert "no features CSV" in capsys.readouterr().err
