"""Event grouping by time gap within a deployment, and the event-level rule (unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import contract
from gateway.bulk.events import EventLabel, Shot, event_label, group

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 1, 6, 0, 0, tzinfo=UTC)


def probs(**values: float) -> tuple[float, ...]:
    return tuple(values.get(label, 0.0) for label in contract.LABELS)


def shot(key: str, seconds: float, deployment: str = "cam1") -> Shot:
    return Shot(key, deployment, T0 + timedelta(seconds=seconds), None)


def test_images_at_most_the_gap_apart_are_one_event_and_a_longer_pause_starts_another() -> None:
    events = group([shot("a", 0), shot("b", 30), shot("c", 90), shot("d", 151), shot("e", 211)], 60)
    assert [[s.key for s in event] for event in events] == [["a", "b", "c"], ["d", "e"]]


def test_events_never_span_two_deployments() -> None:
    events = group([shot("a", 0, "cam1"), shot("b", 1, "cam2"), shot("c", 2, "cam1")], 60)
    assert [[s.key for s in event] for event in events] == [["a", "c"], ["b"]]


def test_images_taken_in_the_same_second_are_ordered_by_name() -> None:
    (event,) = group([shot("img2", 0), shot("img1", 0), shot("img3", 0)], 60)
    assert [s.key for s in event] == ["img1", "img2", "img3"]


def test_an_event_is_blank_only_when_every_image_is_blank() -> None:
    all_blank = [probs(blank=0.9, hog=0.1), probs(blank=0.7, hog=0.3)]
    assert event_label(all_blank) == EventLabel("blank", pytest.approx(0.8))
    one_animal = [probs(blank=0.9, hog=0.1), probs(blank=0.3, leopard=0.7), probs(blank=0.95, leopard=0.05)]
    label = event_label(one_animal)
    assert label is not None
    assert label.label == "leopard"


def test_the_animal_label_is_the_best_mean_over_the_frames_that_show_an_animal() -> None:
    frames = [
        probs(leopard=0.6, civet_genet=0.4),
        probs(leopard=0.2, civet_genet=0.5, blank=0.3),
        probs(leopard=0.7, civet_genet=0.3),
        probs(blank=1.0),  # a blank frame does not dilute the animal's probability
    ]
    assert event_label(frames) == EventLabel("leopard", pytest.approx(0.5))


def test_failed_images_do_not_vote_and_an_event_of_failures_has_no_label() -> None:
    assert event_label([None, probs(rodent=0.8, blank=0.2)]) == EventLabel("rodent", pytest.approx(0.8))
    assert event_label([None, None]) is None
