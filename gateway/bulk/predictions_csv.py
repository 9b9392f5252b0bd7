"""`predictions.csv`: one row per image, the table to open in a spreadsheet or pandas.

Columns: `file` (relative to SOURCE), `label`, `score`, one column per label (all eight probabilities, in
the model's order), `model_version`, `error` (empty when classified, else "code: message"), `timestamp`
(capture time, ISO 8601 with offset), `timestamp_source` (`exif:DateTimeOriginal`, `exif:DateTime`,
`file` or `none`), `deployment_id`, `event_id`, `event_label`, `event_probability`.
"""

from __future__ import annotations

import csv
import io

from gateway import contract
from gateway.bulk.catalog import Catalog, format_time

COLUMNS = (
    "file",
    "label",
    "score",
    *contract.LABELS,
    "model_version",
    "error",
    "timestamp",
    "timestamp_source",
    "deployment_id",
    "event_id",
    "event_label",
    "event_probability",
)


def probability(value: float | None) -> str:
    """Six decimals, as the gateway rounds them: the same value always prints the same."""
    return "" if value is None else f"{value:.6f}"


def time_source(source: str) -> str:
    return f"exif:{source}" if source in ("DateTimeOriginal", "DateTime") else source


def render(catalog: Catalog) -> bytes:
    events = catalog.event_of()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for media in catalog.media:
        result = media.result
        event = events.get(media.media_id)
        label = event.label if event else None
        probabilities = result.probabilities or (None,) * len(contract.LABELS)
        writer.writerow(
            [
                result.file,
                result.label or "",
                probability(result.score),
                *(probability(p) for p in probabilities),
                result.model_version or "",
                f"{result.error_code}: {result.error}" if result.error_code else "",
                format_time(media.moment) if media.moment else "",
                time_source(result.time_source),
                media.deployment.deployment_id,
                event.event_id if event else "",
                label.label if label else "",
                probability(label.probability) if label else "",
            ]
        )
    return buffer.getvalue().encode("utf-8")
