"""Events: the images of one trigger (a burst), and the label of the event as a whole.

Grouping: within one deployment, images sorted by capture time (then file name) belong to the same event
while each is at most `gap_s` seconds after the previous one (`--event-gap`, 60 s by default, the usual
sequence interval in camera-trap software). Images without a capture time belong to no event.

The event-level rule, over the event's classified images (failed images do not vote):

- the event is **blank only when every image is blank** (its top label is `blank`); its probability is the
  mean `blank` probability. One image with an animal makes the event an animal event, because a burst often
  catches the animal in one frame only;
- otherwise the label is the animal label with the **highest mean probability over the images whose top
  label is not blank** (the frames that show the animal), and that mean is the event's probability. Blank
  frames do not dilute it;
- an event with no classified image has no label (and no event-level observation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from gateway import contract
from gateway.bulk.taxa import BLANK

BLANK_INDEX = contract.LABELS.index(BLANK)


@dataclass(frozen=True)
class Shot:
    key: str
    deployment: str
    moment: datetime
    probabilities: tuple[float, ...] | None


@dataclass(frozen=True)
class EventLabel:
    label: str
    probability: float

    @property
    def blank(self) -> bool:
        return self.label == BLANK


def group(shots: Iterable[Shot], gap_s: float) -> list[list[Shot]]:
    """Events (each a list of shots in time order), ordered by deployment, then time."""
    ordered = sorted(shots, key=lambda shot: (shot.deployment, shot.moment, shot.key))
    events: list[list[Shot]] = []
    for _, same_deployment in groupby(ordered, key=lambda shot: shot.deployment):
        current: list[Shot] = []
        for shot in same_deployment:
            if current and (shot.moment - current[-1].moment).total_seconds() > gap_s:
                events.append(current)
                current = []
            current.append(shot)
        if current:
            events.append(current)
    return events


def event_id(shots: Sequence[Shot]) -> str:
    """Stable for the same first image: a rerun, a shard or a merge names the event alike."""
    first = shots[0]
    return hashlib.sha256(f"{first.deployment}\0{first.key}".encode()).hexdigest()[:12]


def _top(probabilities: Sequence[float]) -> int:
    return max(range(len(probabilities)), key=lambda index: probabilities[index])


def event_label(probabilities: Iterable[Sequence[float] | None]) -> EventLabel | None:
    classified = [row for row in probabilities if row is not None]
    if not classified:
        return None
    animals = [row for row in classified if _top(row) != BLANK_INDEX]
    if not animals:
        return EventLabel(BLANK, sum(row[BLANK_INDEX] for row in classified) / len(classified))
    means = {
        index: sum(row[index] for row in animals) / len(animals)
        for index in range(len(contract.LABELS))
        if index != BLANK_INDEX
    }
    best = max(means, key=lambda index: (means[index], -index))
    return EventLabel(contract.LABELS[best], means[best])
