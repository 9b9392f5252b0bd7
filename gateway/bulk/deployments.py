"""Deployments (one camera at one place for one period) from the folder structure or a mapping file.

By default each folder that holds images is one deployment, named by its path relative to SOURCE
(`siteA/cam3`); images directly in SOURCE form a deployment named after SOURCE itself. `--deployment-depth N`
uses only the first N folder levels instead (for cards copied as `site/camera/DCIM/100RECNX/`, depth 2).

A mapping file (`--deployments FILE`, CSV, UTF-8) describes deployments properly: a `folder` column (a
path relative to SOURCE; every image under it, at any depth, belongs to that row; the longest matching
folder wins) and any columns of the Camtrap DP deployments table (`deploymentID`, `latitude`, `longitude`,
`locationName`, `deploymentStart`, `cameraModel`, ...), copied into `deployments.csv` as given:

    folder,deploymentID,latitude,longitude,locationName,deploymentStart,deploymentEnd
    siteA/cam1,A1,5.8324,-7.3472,Taï north trail,2024-03-01T08:00:00Z,2024-04-12T17:30:00Z
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from gateway.bulk.sources import is_url

# The columns of Camtrap DP 1.0.2's deployments table, in its order (tests compare them with the
# standard's own deployments-table-schema.json).
DEPLOYMENT_FIELDS = (
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
)


class MappingError(Exception):
    """The mapping file cannot be read or has columns the deployments table does not know."""


@dataclass(frozen=True)
class Mapping:
    # folder ("" for SOURCE itself) -> the row's deployments-table values
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def match(self, folder: str) -> tuple[str, dict[str, str]] | None:
        best: str | None = None
        for candidate in self.rows:
            inside = candidate == "" or folder == candidate or folder.startswith(candidate + "/")
            if inside and (best is None or len(candidate) > len(best)):
                best = candidate
        return None if best is None else (best, self.rows[best])


def normalize_folder(text: str) -> str:
    parts = [part for part in PurePosixPath(text.strip().replace("\\", "/")).parts if part not in (".", "/")]
    return "/".join(parts)


def parse_mapping(text: str, *, name: str = "mapping file") -> Mapping:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "folder" not in columns:
        raise MappingError(f"{name} needs a 'folder' column; it has {columns}")
    unknown = sorted(set(columns) - {"folder", *DEPLOYMENT_FIELDS})
    if unknown:
        raise MappingError(f"{name} has columns the deployments table does not know: {unknown}")
    rows: dict[str, dict[str, str]] = {}
    for number, row in enumerate(reader, start=2):
        folder = normalize_folder(row.get("folder") or "")
        if folder in rows:
            raise MappingError(f"{name} line {number}: folder {folder or '.'} is listed twice")
        rows[folder] = {key: value.strip() for key, value in row.items() if key != "folder" and value}
    ids = [row.get("deploymentID") for row in rows.values() if row.get("deploymentID")]
    if len(ids) != len(set(ids)):
        raise MappingError(f"{name} gives the same deploymentID to two folders")
    return Mapping(rows)


def load_mapping(path: Path) -> Mapping:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read {path}: {exc}") from exc
    return parse_mapping(text, name=str(path))


def folder_of(key: str, depth: int | None = None) -> str:
    """The folder an item's key is in ("" for SOURCE itself); for a URL, host and path folder."""
    if is_url(key):
        parts = urlsplit(key)
        folder = f"{parts.netloc}{PurePosixPath(parts.path).parent.as_posix()}"
    else:
        folder = PurePosixPath(key).parent.as_posix()
    folder = normalize_folder(folder)
    if depth is not None:
        folder = "/".join(folder.split("/")[:depth]) if folder else ""
    return folder


@dataclass(frozen=True)
class Assignment:
    deployment_id: str
    folder: str
    values: dict[str, str]


def assign(key: str, *, mapping: Mapping, depth: int | None, root_name: str) -> Assignment:
    folder = folder_of(key, depth)
    matched = mapping.match(folder)
    if matched is not None:
        mapped_folder, values = matched
        return Assignment(values.get("deploymentID") or mapped_folder or root_name, mapped_folder, values)
    return Assignment(folder or root_name, folder, {})
