"""`megadetector.json`: the MegaDetector batch output format (https://lila.science/megadetector-output-format),
which Timelapse, AddaxAI and MegaDetector's own postprocessing read.

The format carries detections (boxes) with classifications attached. A whole-image classifier has no boxes,
so it is written the way the format describes an image-level result:

- an image whose top label is an animal gets one detection, category "1" (`animal`), covering the whole
  image (`bbox` [0, 0, 1, 1], relative x, y, width, height), with `conf` = 1 - p(blank) (how sure the model
  is that some animal is there) and `classifications` = every label with its probability, most probable
  first;
- an image whose top label is blank gets `detections: []` (processed, nothing found);
- an image that failed gets `failure` (the error) and `detections: null`.

`classification_categories` are our eight labels ("0".."7" in the model's order) and
`classification_category_descriptions` their taxa (gateway.bulk.taxa), lower case, semicolon-separated.
"""

from __future__ import annotations

import json
from typing import Any

from gateway import contract
from gateway.bulk import taxa
from gateway.bulk.catalog import Catalog

FORMAT_VERSION = "1.6"
ANIMAL = "1"
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]
BLANK_INDEX = contract.LABELS.index(taxa.BLANK)


def _description(label: str) -> str:
    taxon = taxa.taxon(label)
    return ";".join(taxon.lineage()) if taxon else label


def image_entry(file: str, probabilities: tuple[float, ...] | None, failure: str | None) -> dict[str, Any]:
    if probabilities is None:
        return {"file": file, "failure": failure or "not classified", "detections": None}
    top = max(range(len(probabilities)), key=lambda index: probabilities[index])
    if top == BLANK_INDEX:
        return {"file": file, "detections": []}
    ranked = sorted(range(len(probabilities)), key=lambda index: (-probabilities[index], index))
    detection = {
        "category": ANIMAL,
        "conf": round(1.0 - probabilities[BLANK_INDEX], 6),
        "bbox": WHOLE_IMAGE,
        "classifications": [[str(index), probabilities[index]] for index in ranked],
    }
    return {"file": file, "detections": [detection]}


def document(catalog: Catalog) -> dict[str, Any]:
    images = []
    for media in catalog.media:
        result = media.result
        failure = f"{result.error_code}: {result.error}" if result.error_code else None
        images.append(image_entry(result.file, result.probabilities, failure))
    return {
        "info": {
            "format_version": FORMAT_VERSION,
            "classifier": catalog.classified_by(),
            "classifier_metadata": {
                "type": "whole-image classifier",
                "note": "one full-image detection per animal image; conf = 1 - p(blank)",
            },
        },
        "detection_categories": {ANIMAL: "animal"},
        "classification_categories": {str(i): label for i, label in enumerate(contract.LABELS)},
        "classification_category_descriptions": {
            str(i): _description(label) for i, label in enumerate(contract.LABELS)
        },
        "images": images,
    }


def render(catalog: Catalog) -> bytes:
    return (json.dumps(document(catalog), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
