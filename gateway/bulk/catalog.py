"""The ledger's results joined into what every output describes: media, deployments and events.

A pure function of the results and the options, sorted throughout, so the same ledger always gives the
same outputs, whichever order the batches finished in and however many shards recorded them.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway import contract
from gateway.bulk import deployments, events
from gateway.bulk.ledger import Result

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


class OptionError(ValueError):
    pass


def parse_timezone(text: str | None) -> tzinfo | None:
    """`--timezone`: "UTC", "Z", a fixed offset ("+02:00", "-0530") or an IANA name ("Africa/Abidjan")."""
    if text is None or text == "":
        return None
    if text.upper() in ("Z", "UTC"):
        return UTC
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OptionError(
            f"unknown timezone {text!r}: give UTC, an offset like +02:00, or an IANA name"
        ) from exc


def moment_of(result: Result, zone: tzinfo | None) -> tuple[datetime | None, bool]:
    """(aware capture time, whether its timezone is known). Without an offset in the file and without
    `--timezone`, the camera's clock is read as UTC and the deployment is flagged `timestampIssues`."""
    if result.captured is None:
        return None, False
    naive = datetime.fromisoformat(result.captured)
    if result.captured_offset:
        return datetime.fromisoformat(result.captured + result.captured_offset), True
    if zone is not None:
        return naive.replace(tzinfo=zone), True
    return naive.replace(tzinfo=UTC), False


def format_time(moment: datetime) -> str:
    """ISO 8601 with a timezone designator, as Camtrap DP asks ("Z" for UTC)."""
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def media_id(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Options:
    root_name: str
    created: str
    event_gap_s: float = 60.0
    zone: tzinfo | None = None
    mapping: deployments.Mapping = field(default_factory=deployments.Mapping)
    depth: int | None = None
    model_name: str = contract.MODEL_NAME


@dataclass(frozen=True)
class Media:
    result: Result
    media_id: str
    deployment: deployments.Assignment
    moment: datetime | None
    zone_known: bool
    event_id: str | None = None


@dataclass(frozen=True)
class Event:
    event_id: str
    deployment_id: str
    start: datetime
    end: datetime
    media_ids: tuple[str, ...]
    label: events.EventLabel | None


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    folder: str
    values: dict[str, str]
    start: datetime | None
    end: datetime | None
    camera: str | None
    timestamp_issues: bool
    media_count: int


@dataclass(frozen=True)
class Catalog:
    options: Options
    media: list[Media]
    events: list[Event]
    deployments: list[Deployment]

    @property
    def model_versions(self) -> list[str]:
        return sorted({m.result.model_version for m in self.media if m.result.model_version})

    def classified_by(self) -> str:
        versions = ",".join(self.model_versions) or "?"
        return f"{self.options.model_name} v{versions} (species-classifier)"

    def event_of(self) -> dict[str, Event]:
        return {media_id: event for event in self.events for media_id in event.media_ids}


def build(results: list[Result], options: Options) -> Catalog:
    media = []
    for result in sorted(results, key=lambda r: r.file):
        assignment = deployments.assign(
            result.file, mapping=options.mapping, depth=options.depth, root_name=options.root_name
        )
        moment, known = moment_of(result, options.zone)
        media.append(Media(result, media_id(result.file), assignment, moment, known))

    shots = [
        events.Shot(m.media_id, m.deployment.deployment_id, m.moment, m.result.probabilities)
        for m in media
        if m.moment is not None
    ]
    by_id = {m.media_id: m for m in media}
    event_list = []
    for group in events.group(shots, options.event_gap_s):
        ordered = [by_id[shot.key] for shot in group]
        # Keyed by the first file (not its media id) so the id reads the same in every output.
        first = ordered[0]
        eid = events.event_id(
            [events.Shot(first.result.file, first.deployment.deployment_id, group[0].moment, None)]
        )
        event_list.append(
            Event(
                eid,
                group[0].deployment,
                group[0].moment,
                group[-1].moment,
                tuple(shot.key for shot in group),
                events.event_label(shot.probabilities for shot in group),
            )
        )
    event_by_media = {mid: event.event_id for event in event_list for mid in event.media_ids}
    media = [
        Media(m.result, m.media_id, m.deployment, m.moment, m.zone_known, event_by_media.get(m.media_id))
        for m in media
    ]
    return Catalog(options, media, sorted(event_list, key=lambda e: e.event_id), _deployments(media))


def _deployments(media: list[Media]) -> list[Deployment]:
    grouped: dict[str, list[Media]] = {}
    for m in media:
        grouped.setdefault(m.deployment.deployment_id, []).append(m)
    rows = []
    for deployment_id, members in sorted(grouped.items()):
        moments = [m.moment for m in members if m.moment is not None]
        cameras = Counter(m.result.camera for m in members if m.result.camera)
        rows.append(
            Deployment(
                deployment_id,
                members[0].deployment.folder,
                members[0].deployment.values,
                min(moments) if moments else None,
                max(moments) if moments else None,
                # The most common camera, ties by name: deterministic.
                min(cameras, key=lambda name: (-cameras[name], name)) if cameras else None,
                any(m.moment is not None and not m.zone_known for m in members),
                len(members),
            )
        )
    return rows
