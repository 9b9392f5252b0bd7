"""Data preparation for the DrivenData "Conser-vision" camera-trap data set.

Input layout (as downloaded from the competition, paths relative to the data root):

    <root>/train_features.csv      id, filepath, site       (or training_set_features.csv)
    <root>/train_labels.csv        id + one column per label, one-hot (or training_set_labels.csv)
    <root>/train_features/*.jpg    the images that `filepath` points at

Output: a stratified 70/15/15 split into `<out>/{train,valid,test}/<label>/<id><suffix>` (hard links where the
file system allows, copies otherwise) plus `<out>/split.csv` recording where every image went. With
`--by-site` no camera site appears in two splits, so the validation and test scores measure how the model
does on sites it has never seen; the split then keeps the class balance as close to 70/15/15 as whole sites
allow. The same inputs and seed always give the same split.

    python -m model.data --data-root DIR --out DIR [--by-site] [--seed N] [--copy] [--force]
"""

import argparse
import csv
import logging
import os
import random
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model import spec

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = {"train": 0.70, "valid": 0.15, "test": 0.15}

# File names used by the competition's download page over time; the first one found wins.
FEATURES_CANDIDATES = ("train_features.csv", "training_set_features.csv")
LABELS_CANDIDATES = ("train_labels.csv", "training_set_labels.csv")
FEATURE_COLUMNS = ("id", "filepath", "site")

# How many offending rows an error message lists before it summarises.
MAX_LISTED = 5


class DataError(ValueError):
    """The input data set is not in the expected layout; the message says what is wrong and where."""


@dataclass(frozen=True)
class Sample:
    id: str
    filepath: Path  # absolute
    site: str
    label: str


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def find_csv(root: Path, candidates: Iterable[str], what: str) -> Path:
    """Returns the first of `candidates` that exists under `root`."""
    names = list(candidates)
    for name in names:
        path = root / name
        if path.is_file():
            return path
    raise DataError(f"no {what} CSV in {root}: expected one of {', '.join(names)}")


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [column for column in required if column not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}"
            )
        rows = list(reader)
    ids = [row["id"] for row in rows]
    duplicates = sorted(name for name, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise DataError(f"{path}: duplicate id(s) {_listing(duplicates)}")
    return rows


def _one_hot_label(row: Mapping[str, str]) -> str | None:
    """The label whose column is 1 when exactly one is 1 and the others 0; None otherwise."""
    hot = []
    for label in spec.LABELS:
        try:
            value = float(row[label])
        except (TypeError, ValueError):
            return None
        if value == 1.0:
            hot.append(label)
        elif value != 0.0:
            return None
    return hot[0] if len(hot) == 1 else None


def load_samples(
    data_root: Path, features_csv: Path | None = None, labels_csv: Path | None = None
) -> list[Sample]:
    """Reads and validates the features and labels CSVs; every image file must exist."""
    data_root = data_root.resolve()
    if not data_root.is_dir():
        raise DataError(f"data root {data_root} is not a directory")
    features_csv = features_csv or find_csv(data_root, FEATURES_CANDIDATES, "features")
    labels_csv = labels_csv or find_csv(data_root, LABELS_CANDIDATES, "labels")
    features = _read_csv(features_csv, FEATURE_COLUMNS)
    labels = {row["id"]: row for row in _read_csv(labels_csv, ("id", *spec.LABELS))}

    not_one_hot = [row["id"] for row in labels.values() if _one_hot_label(row) is None]
    if not_one_hot:
        raise DataError(
            f"{labels_csv}: {len(not_one_hot)} row(s) are not exactly one-hot over "
            f"{', '.join(spec.LABELS)}: {_listing(not_one_hot)}"
        )
    unlabelled = [row["id"] for row in features if row["id"] not in labels]
    if unlabelled:
        raise DataError(
            f"{labels_csv}: no label for {len(unlabelled)} id(s) of {features_csv}: {_listing(unlabelled)}"
        )

    samples = []
    missing_files = []
    for row in features:
        path = data_root / row["filepath"]
        if not path.is_file():
            missing_files.append(row["filepath"])
            continue
        label = _one_hot_label(labels[row["id"]])
        assert label is not None  # checked above for every labelled row
        samples.append(Sample(id=row["id"], filepath=path, site=row["site"], label=label))
    if missing_files:
        raise DataError(
            f"{len(missing_files)} image file(s) missing under {data_root}: {_listing(missing_files)}"
        )
    if not samples:
        raise DataError(f"{features_csv} lists no images")
    return samples


def _apportion(total: int, fractions: Sequence[float]) -> list[int]:
    """Splits `total` into integers proportional to `fractions` (largest remainder), summing to `total`."""
    raw = [total * fraction for fraction in fractions]
    counts = [int(value) for value in raw]
    by_remainder = sorted(range(len(raw)), key=lambda index: (counts[index] - raw[index], index))
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


def split_stratified(samples: Sequence[Sample], seed: int) -> dict[str, list[Sample]]:
    """70/15/15 within every label, so each split has the same class balance (up to rounding)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.id):
        by_label[sample.label].append(sample)
    result: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    fractions = [SPLIT_FRACTIONS[split] for split in SPLITS]
    for label in spec.LABELS:
        members = by_label.get(label, [])
        rng.shuffle(members)
        start = 0
        for split, count in zip(SPLITS, _apportion(len(members), fractions), strict=True):
            result[split].extend(members[start : start + count])
            start += count
    return result


def split_by_site(samples: Sequence[Sample], seed: int) -> dict[str, list[Sample]]:
    """Assigns whole sites to splits, so no site is in two splits, keeping class balance near 70/15/15.

    Greedy: sites go largest first (ties in seeded random order) to the split where they bring the per-label
    counts and the split sizes closest to their targets, measured as squared deviation relative to each
    label's total.
    """
    sites: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.id):
        sites[sample.site].append(sample)
    if len(sites) < len(SPLITS):
        raise DataError(f"--by-site needs at least {len(SPLITS)} sites; the data has {len(sites)}")

    label_totals = Counter(sample.label for sample in samples)
    grand_total = len(samples)
    counts = {split: Counter[str]() for split in SPLITS}
    sizes = dict.fromkeys(SPLITS, 0)

    def cost() -> float:
        total = 0.0
        for split in SPLITS:
            fraction = SPLIT_FRACTIONS[split]
            for label, label_total in label_totals.items():
                total += (counts[split][label] - fraction * label_total) ** 2 / label_total
            total += (sizes[split] - fraction * grand_total) ** 2 / grand_total
        return total

    names = sorted(sites)
    random.Random(seed).shuffle(names)  # noqa: S311 - a reproducible shuffle, not a secret
    names.sort(key=lambda name: len(sites[name]), reverse=True)  # stable: equal sizes keep the seeded order
    assignment: dict[str, str] = {}
    for name in names:
        site_counts = Counter(sample.label for sample in sites[name])
        best: tuple[float, str] | None = None
        for split in SPLITS:
            counts[split].update(site_counts)
            sizes[split] += len(sites[name])
            candidate = cost()
            counts[split].subtract(site_counts)
            sizes[split] -= len(sites[name])
            if best is None or candidate < best[0]:
                best = (candidate, split)
        assert best is not None
        assignment[name] = best[1]
        counts[best[1]].update(site_counts)
        sizes[best[1]] += len(sites[name])

    empty = [split for split in SPLITS if sizes[split] == 0]
    if empty:
        raise DataError(
            f"--by-site left split(s) {', '.join(empty)} empty: too few sites for a 70/15/15 split"
        )
    result: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for name in sorted(sites):
        result[assignment[name]].extend(sites[name])
    return result


def _place(source: Path, target: Path, copy: bool) -> None:
    if not copy:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: fall back to a copy
    shutil.copyfile(source, target)


def write_split(
    splits: Mapping[str, Sequence[Sample]], out_dir: Path, copy: bool = False, force: bool = False
) -> None:
    """Writes `<out>/<split>/<label>/<id><suffix>` for every sample and `<out>/split.csv`."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise DataError(f"output directory {out_dir} is not empty; pass --force to replace it")
        # Only what this tool writes is removed, so a mistyped --out cannot wipe an unrelated folder.
        for split in SPLITS:
            shutil.rmtree(out_dir / split, ignore_errors=True)
        (out_dir / "split.csv").unlink(missing_ok=True)
    for split in SPLITS:
        for label in spec.LABELS:
            (out_dir / split / label).mkdir(parents=True, exist_ok=True)
    with (out_dir / "split.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "site", "label", "split", "source"])
        for split in SPLITS:
            for sample in sorted(splits[split], key=lambda s: s.id):
                target = out_dir / split / sample.label / f"{sample.id}{sample.filepath.suffix.lower()}"
                _place(sample.filepath, target, copy)
                writer.writerow([sample.id, sample.site, sample.label, split, str(sample.filepath)])


def summary_table(splits: Mapping[str, Sequence[Sample]]) -> str:
    """Per-split, per-label counts as a fixed-width table, with totals and the share of each split."""
    counts = {split: Counter(sample.label for sample in splits[split]) for split in SPLITS}
    grand_total = sum(len(splits[split]) for split in SPLITS) or 1
    width = max(len(label) for label in spec.LABELS)
    lines = [f"{'label':<{width}} " + " ".join(f"{split:>7}" for split in SPLITS) + f" {'total':>7}"]
    for label in spec.LABELS:
        row = [counts[split][label] for split in SPLITS]
        lines.append(f"{label:<{width}} " + " ".join(f"{n:>7}" for n in row) + f" {sum(row):>7}")
    sizes = [len(splits[split]) for split in SPLITS]
    lines.append(f"{'total':<{width}} " + " ".join(f"{n:>7}" for n in sizes) + f" {sum(sizes):>7}")
    lines.append(f"{'share':<{width}} " + " ".join(f"{n / grand_total:>7.1%}" for n in sizes))
    site_sets = [{sample.site for sample in splits[split]} for split in SPLITS]
    lines.append(f"{'sites':<{width}} " + " ".join(f"{len(s):>7}" for s in site_sets))
    return "\n".join(lines)


def prepare(
    data_root: Path,
    out_dir: Path,
    *,
    seed: int = 42,
    by_site: bool = False,
    copy: bool = False,
    force: bool = False,
    features_csv: Path | None = None,
    labels_csv: Path | None = None,
) -> dict[str, list[Sample]]:
    """Validates the data set, splits it and writes the split folders; returns the split."""
    samples = load_samples(data_root, features_csv, labels_csv)
    splits = split_by_site(samples, seed) if by_site else split_stratified(samples, seed)
    write_split(splits, out_dir, copy=copy, force=force)
    logger.info("wrote %d images into %s", len(samples), out_dir)
    return splits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.data",
        description="Split the Conser-vision training set into train/valid/test folders, 70/15/15.",
    )
    parser.add_argument("--data-root", type=Path, required=True, help="folder with the CSVs and image folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder for train/ valid/ test/")
    parser.add_argument("--features", type=Path, help="features CSV (default: found in the data root)")
    parser.add_argument("--labels", type=Path, help="labels CSV (default: found in the data root)")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the split (default 42)")
    parser.add_argument("--by-site", action="store_true", help="keep every camera site within one split")
    parser.add_argument("--copy", action="store_true", help="copy files instead of hard-linking them")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        splits = prepare(
            args.data_root,
            args.out,
            seed=args.seed,
            by_site=args.by_site,
            copy=args.copy,
            force=args.force,
            features_csv=args.features,
            labels_csv=args.labels,
        )
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary_table(splits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
