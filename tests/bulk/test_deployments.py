"""Deployments from the folder structure or a mapping file (unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.bulk.deployments import (
    DEPLOYMENT_FIELDS,
    Mapping,
    MappingError,
    assign,
    folder_of,
    parse_mapping,
)
from tests.bulk.collection import SCHEMAS

pytestmark = pytest.mark.unit


def test_each_folder_holding_images_is_a_deployment_and_the_top_level_is_named_after_source() -> None:
    assert (
        assign("siteA/cam1/IMG1.JPG", mapping=Mapping(), depth=None, root_name="survey").deployment_id
        == "siteA/cam1"
    )
    assert assign("IMG1.JPG", mapping=Mapping(), depth=None, root_name="survey").deployment_id == "survey"


def test_a_depth_keeps_camera_card_subfolders_in_their_camera() -> None:
    key = "siteA/cam1/DCIM/100RECNX/IMG1.JPG"
    assert assign(key, mapping=Mapping(), depth=2, root_name="s").deployment_id == "siteA/cam1"


def test_a_url_is_in_the_folder_of_its_host_and_path() -> None:
    assert folder_of("https://media.example.org/cams/c1/img.jpg?sig=1") == "media.example.org/cams/c1"


def test_the_longest_matching_folder_of_the_mapping_wins_and_its_values_are_kept() -> None:
    mapping = parse_mapping(
        "folder,deploymentID,latitude,longitude\nsiteA,A,5.1,-7.2\nsiteA/cam2,A2,5.3,-7.4\n"
    )
    one = assign("siteA/cam1/x.jpg", mapping=mapping, depth=None, root_name="s")
    two = assign("siteA/cam2/sub/x.jpg", mapping=mapping, depth=None, root_name="s")
    other = assign("siteB/x.jpg", mapping=mapping, depth=None, root_name="s")
    assert (one.deployment_id, one.values["latitude"]) == ("A", "5.1")
    assert (two.deployment_id, two.values["longitude"]) == ("A2", "-7.4")
    assert (other.deployment_id, other.values) == ("siteB", {})


def test_a_mapping_with_unknown_columns_or_duplicates_is_refused_with_the_reason() -> None:
    with pytest.raises(MappingError, match="'folder'"):
        parse_mapping("deploymentID\nA\n")
    with pytest.raises(MappingError, match="latitud"):
        parse_mapping("folder,latitud\nA,5\n")
    with pytest.raises(MappingError, match="twice"):
        parse_mapping("folder\nA\n./A/\n")
    with pytest.raises(MappingError, match="same deploymentID"):
        parse_mapping("folder,deploymentID\nA,x\nB,x\n")


def test_the_deployment_columns_are_the_standards_own() -> None:
    schema = SCHEMAS / "deployments-table-schema.json"
    if not schema.exists():
        pytest.skip(f"{schema} missing (../shared is absent in a user's clone)")
    fields = [field["name"] for field in json.loads(schema.read_text())["fields"]]
    assert tuple(fields) == DEPLOYMENT_FIELDS


def test_a_mapping_file_in_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "deployments.csv"
    path.write_bytes("\ufefffolder,locationName\ncam,Taï\n".encode())
    from gateway.bulk.deployments import load_mapping

    assert load_mapping(path).rows == {"cam": {"locationName": "Taï"}}
