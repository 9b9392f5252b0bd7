"""`camtrap-dp/`: a Camera Trap Data Package 1.0.2 (https://camtrap-dp.tdwg.org): `datapackage.json`,
`deployments.csv`, `media.csv`, `observations.csv`.

- deployments: from the folders or the mapping file (gateway.bulk.deployments). Without coordinates from a
  mapping file, `latitude`/`longitude` are 0/0 placeholders (the standard requires them) and
  `deploymentComments` says so; `deploymentStart`/`End` default to the first and last capture time;
  `cameraModel` to the most common EXIF make and model; `timestampIssues` is true where the camera's clock
  had no timezone (no offset in the file, no `--timezone`).
- media: every image with a capture time (an image without one cannot be a media row: `timestamp` is
  required; predictions.csv still lists it). `filePath` is the path relative to SOURCE (put the package next
  to the images, or the images next to it, to resolve them), an s3:// or http(s) URL otherwise;
  `filePublic` is false (nothing is known about the images' licence or privacy).
- observations: one media-level observation per image (`animal` with `scientificName` from
  gateway.bulk.taxa, `blank`, or `unclassified` for an image the gateway refused) and one event-level
  observation per event (gateway.bulk.events), `classificationMethod` machine, `classifiedBy` the model and
  version, `classificationProbability` the score.

Package metadata the run cannot know (project title, sampling design, contributors, licences) has
documented placeholders; `--metadata FILE` (JSON) overrides any top-level key, and keys of `project` one by
one.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from gateway import __version__
from gateway.bulk import taxa
from gateway.bulk.catalog import Catalog, Deployment, format_time
from gateway.bulk.deployments import DEPLOYMENT_FIELDS
from gateway.bulk.predictions_csv import probability
from gateway.bulk.sources import is_url, media_type

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {table: f"{BASE_URL}/{table}-table-schema.json" for table in TABLES}

MEDIA_FIELDS = (
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
)
OBSERVATION_FIELDS = (
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
)
PLACEHOLDER_COORDINATES = (
    "latitude/longitude unknown (0/0 placeholders): give them in a --deployments mapping file"
)
# The standard's filePath pattern: no leading ".", "/" or "~", no "..".
_RELATIVE_PATH = re.compile(r"^(?=^[^./~])(^((?!\.{2}).)*$).*$")


def _csv(fields: Sequence[str], rows: Iterable[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def file_path(key: str, base: str | None) -> str:
    """The media's `filePath`: a URL as it is, else `base` + key (an s3:// prefix, or a file:// folder for a
    list naming paths outside its folder), else the key relative to SOURCE."""
    if is_url(key):
        return key
    if base and base.startswith("s3://"):
        return base + key
    if _RELATIVE_PATH.match(key):
        return key
    resolved = key if key.startswith("/") else posixpath.normpath(posixpath.join(base or "/", key))
    return "file://" + resolved


def coordinates(deployment: Deployment) -> tuple[str, str, bool]:
    """(latitude, longitude, placeholder?) of a deployment."""
    latitude, longitude = deployment.values.get("latitude"), deployment.values.get("longitude")
    if latitude and longitude:
        return latitude, longitude, False
    return "0", "0", True


def deployment_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = []
    for deployment in catalog.deployments:
        latitude, longitude, placeholder = coordinates(deployment)
        start = deployment.start or _parse_time(catalog.options.created)
        end = deployment.end or start
        comments = [deployment.values.get("deploymentComments", "")]
        if placeholder:
            comments.append(PLACEHOLDER_COORDINATES)
        row = {
            "deploymentID": deployment.deployment_id,
            "locationName": deployment.folder or catalog.options.root_name,
            "cameraModel": deployment.camera or "",
            "timestampIssues": "true" if deployment.timestamp_issues else "false",
            **deployment.values,
            "latitude": latitude,
            "longitude": longitude,
            "deploymentStart": deployment.values.get("deploymentStart")
            or (format_time(start) if start else ""),
            "deploymentEnd": deployment.values.get("deploymentEnd") or (format_time(end) if end else ""),
            "deploymentComments": "; ".join(part for part in comments if part),
        }
        rows.append({name: row.get(name, "") for name in DEPLOYMENT_FIELDS})
    return rows


def media_rows(catalog: Catalog, base: str | None) -> list[dict[str, str]]:
    rows = []
    for media in catalog.media:
        if media.moment is None:
            continue
        result = media.result
        name = PurePosixPath(result.file.split("?", 1)[0]).name
        rows.append(
            {
                "mediaID": media.media_id,
                "deploymentID": media.deployment.deployment_id,
                "timestamp": format_time(media.moment),
                "filePath": file_path(result.file, base),
                "filePublic": "false",
                "fileName": name,
                "fileMediatype": result.media_type or media_type(result.file) or "image/jpeg",
                "mediaComments": f"not classified: {result.error_code}: {result.error}"
                if result.error_code
                else "",
            }
        )
    return rows


def observation_rows(catalog: Catalog) -> list[dict[str, str]]:
    classified_by = catalog.classified_by()
    events = catalog.event_of()
    rows = []
    for media in catalog.media:
        if media.moment is None:
            continue
        result = media.result
        event = events.get(media.media_id)
        row = {
            "observationID": f"{media.media_id}-media",
            "deploymentID": media.deployment.deployment_id,
            "mediaID": media.media_id,
            "eventID": event.event_id if event else "",
            "eventStart": format_time(media.moment),
            "eventEnd": format_time(media.moment),
            "observationLevel": "media",
        }
        if result.label is None:
            row.update(
                observationType="unclassified",
                observationComments=f"the classifier refused the image: {result.error_code}: {result.error}",
            )
        else:
            row.update(_classification(result.label, result.score, classified_by))
        rows.append(row)
    for event in catalog.events:
        if event.label is None:
            continue
        row = {
            "observationID": f"{event.event_id}-event",
            "deploymentID": event.deployment_id,
            "eventID": event.event_id,
            "eventStart": format_time(event.start),
            "eventEnd": format_time(event.end),
            "observationLevel": "event",
            **_classification(event.label.label, event.label.probability, classified_by),
        }
        rows.append(row)
    return [{name: row.get(name, "") for name in OBSERVATION_FIELDS} for row in rows]


def _classification(label: str, score: float | None, classified_by: str) -> dict[str, str]:
    taxon = taxa.taxon(label)
    return {
        "observationType": "blank" if taxon is None else "animal",
        "scientificName": taxon.scientific_name if taxon else "",
        "classificationMethod": "machine",
        "classifiedBy": classified_by,
        "classificationProbability": probability(score),
    }


def _spatial(rows: list[dict[str, str]]) -> dict[str, Any]:
    points = sorted({(float(row["longitude"]), float(row["latitude"])) for row in rows}) or [(0.0, 0.0)]
    longitudes = [lon for lon, _ in points]
    latitudes = [lat for _, lat in points]
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    west, east, south, north = min(longitudes), max(longitudes), min(latitudes), max(latitudes)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _temporal(rows: list[dict[str, str]], created: str) -> dict[str, str]:
    starts = [t for t in (_parse_time(row["deploymentStart"]) for row in rows) if t]
    ends = [t for t in (_parse_time(row["deploymentEnd"]) for row in rows) if t]
    fallback = _parse_time(created)
    start = min(starts) if starts else fallback
    end = max(ends) if ends else start
    return {
        "start": start.date().isoformat() if start else created[:10],
        "end": end.date().isoformat() if end else created[:10],
    }


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "collection"


def descriptor(
    catalog: Catalog,
    deployments: list[dict[str, str]],
    observations: list[dict[str, str]],
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    names = sorted({row["scientificName"] for row in observations if row["scientificName"]})
    by_name = {t.scientific_name: t for t in taxa.TAXA.values() if t is not None}
    placeholders = any(coordinates(d)[2] for d in catalog.deployments)
    description = (
        f"Camera-trap images of {catalog.options.root_name}, classified image by image and event by event"
        f" by {catalog.classified_by()}. Machine classifications, not reviewed by a person."
    )
    if placeholders:
        description += " Some deployments have placeholder coordinates (0/0): see deploymentComments."
    package: dict[str, Any] = {
        "resources": [
            {
                "name": table,
                "path": f"{table}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": SCHEMA_URLS[table],
            }
            for table in TABLES
        ],
        "profile": PROFILE_URL,
        "name": f"species-classifier-{_slug(catalog.options.root_name)}",
        "created": catalog.options.created,
        "title": f"{catalog.options.root_name}: species classifications by species-classifier",
        "description": description,
        "contributors": [{"title": "species-classifier (machine classification)", "role": "contributor"}],
        "sources": [{"title": "species-classifier gateway", "version": __version__}],
        "project": {
            "title": catalog.options.root_name,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media", "event"],
        },
        "spatial": _spatial(deployments),
        "temporal": _temporal(deployments, catalog.options.created),
        "taxonomic": [by_name[name].taxonomic_entry() for name in names],
    }
    for key, value in (metadata or {}).items():
        if key == "project" and isinstance(value, dict):
            package["project"] = {**package["project"], **value}
        else:
            package[key] = value
    return package


def render(
    catalog: Catalog, *, base: str | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """The package's files by name; datapackage.json last, so it is written last."""
    deployments = deployment_rows(catalog)
    observations = observation_rows(catalog)
    package = descriptor(catalog, deployments, observations, metadata)
    return {
        "deployments.csv": _csv(DEPLOYMENT_FIELDS, deployments),
        "media.csv": _csv(MEDIA_FIELDS, media_rows(catalog, base)),
        "observations.csv": _csv(OBSERVATION_FIELDS, observations),
        "datapackage.json": (json.dumps(package, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    }
