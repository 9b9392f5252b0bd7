"""The demo model that `make model` builds: the golden images are classified clearly, the contract holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model import demo, spec

pytestmark = pytest.mark.unit


def test_a_golden_result_passes_only_with_the_right_label_and_a_clear_margin() -> None:
    assert demo.GoldenResult("hog", "hog", top_score=0.9, margin=0.8).ok
    assert not demo.GoldenResult("hog", "bird", top_score=0.9, margin=0.8).ok
    assert not demo.GoldenResult("hog", "hog", top_score=0.55, margin=0.4).ok
    assert not demo.GoldenResult("hog", "hog", top_score=0.62, margin=0.25).ok


def test_the_golden_table_has_one_row_per_image_and_flags_failures() -> None:
    table = demo.golden_table(
        [demo.GoldenResult("hog", "hog", 0.99, 0.98), demo.GoldenResult("bird", "blank", 0.5, 0.1)]
    )

    rows = table.splitlines()
    assert len(rows) == 3
    assert rows[1].split() == ["hog", "hog", "0.990", "0.980", "yes"]
    assert rows[2].split() == ["bird", "blank", "0.500", "0.100", "NO"]


def test_every_golden_image_is_classified_as_its_label_with_a_clear_margin(
    demo_model_dir: Path, golden_dir: Path
) -> None:
    results = demo.check_golden(demo_model_dir, {label: golden_dir / f"{label}.jpg" for label in spec.LABELS})

    assert [r.predicted for r in results] == list(spec.LABELS)
    failing = [r for r in results if not r.ok]
    assert not failing, demo.golden_table(failing)


def test_the_demo_model_carries_its_spec_and_warmup_requests(demo_model_dir: Path) -> None:
    extra = demo_model_dir / "assets.extra"

    assert json.loads((extra / spec.SPEC_FILENAME).read_text()) == {**spec.spec_document(), "version": 1}
    assert (extra / spec.WARMUP_FILENAME).stat().st_size > 0
