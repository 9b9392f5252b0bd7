"""The gateway's copy of the model contract equals model.spec and the exported model_spec.json.

The gateway image carries no `model/` package, so gateway/contract.py restates the contract; this test is
what keeps the two (and the exported model) one truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import contract
from model import spec

pytestmark = pytest.mark.unit

EXPORTED = Path(__file__).resolve().parents[2] / "build" / "models" / spec.MODEL_NAME / "1" / "assets.extra"


def test_the_gateway_contract_equals_model_spec() -> None:
    assert contract.MODEL_NAME == spec.MODEL_NAME
    assert contract.LABELS == spec.LABELS
    assert (contract.IMAGE_HEIGHT, contract.IMAGE_WIDTH, contract.CHANNELS) == (
        spec.IMAGE_HEIGHT,
        spec.IMAGE_WIDTH,
        spec.CHANNELS,
    )
    assert contract.SIGNATURE_NAME == spec.SIGNATURE_NAME
    assert (contract.INPUT_NAME, contract.INPUT_DTYPE) == (spec.INPUT_NAME, spec.INPUT_DTYPE)
    assert (contract.OUTPUT_NAME, contract.OUTPUT_DTYPE) == (spec.OUTPUT_NAME, spec.OUTPUT_DTYPE)


def test_the_gateway_contract_equals_the_spec_document() -> None:
    check_document(spec.spec_document())


def test_the_gateway_contract_equals_the_exported_model_spec_json() -> None:
    path = EXPORTED / spec.SPEC_FILENAME
    if not path.exists():
        pytest.skip(f"{path} not exported yet: run `make model`")
    check_document(json.loads(path.read_text()))


def check_document(document: dict) -> None:  # type: ignore[type-arg]
    assert document["model_name"] == contract.MODEL_NAME
    assert tuple(document["labels"]) == contract.LABELS
    assert document["signature_name"] == contract.SIGNATURE_NAME
    assert document["input"] == {
        "name": contract.INPUT_NAME,
        "dtype": contract.INPUT_DTYPE,
        "shape": list(contract.INPUT_SHAPE),
    }
    assert document["output"] == {
        "name": contract.OUTPUT_NAME,
        "dtype": contract.OUTPUT_DTYPE,
        "shape": list(contract.OUTPUT_SHAPE),
    }
    assert document["preprocessing"]["resize_method"] == "bilinear"
    assert document["preprocessing"]["antialias"] is True
