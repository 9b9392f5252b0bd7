"""The three outputs from a catalog of results, checked by the formats' own validators (unit).

MegaDetector's `validate_batch_results` (megadetector-utils) and frictionless with the Camtrap DP 1.0.2
profile and table schemas from ../shared (see tests/bulk/validate.py for the offline URL mapping). Each
validator is also shown a broken copy and must report it, so a passing check means something.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from gateway import contract
from gateway.bulk import camtrapdp, catalog, deployments, megadetector, predictions_csv
from gateway.bulk.ledger import Result
from tests.bulk.validate import camtrap_errors, megadetector_results

pytestmark = pytest.mark.unit


def probs(**values: float) -> tuple[float, ...]:
    return tuple(values.get(label, 0.0) for label in contract.LABELS)


def result(file: str, second: int | None, **values: float) -> Result:
    captured = None if second is None else f"2024-03-01T06:00:{second:02d}"
    probabilities = probs(**values)
    best = max(range(len(probabilities)), key=lambda i: probabilities[i])
    return Result(
        file,
        "fp",
        contract.LABELS[best],
        probabilities[best],
        probabilities,
        "1",
        captured=captured,
        time_source="DateTimeOriginal" if captured else "none",
        media_type="image/jpeg",
        camera="RECONYX HYPERFIRE 2",
    )


RESULTS = [
    result("cam1/a.jpg", 0, leopard=0.9, blank=0.1),
    result("cam1/b.jpg", 1, blank=0.8, leopard=0.2),
    result("cam1/c.jpg", 2, leopard=0.6, civet_genet=0.4),
    result("cam2/d.jpg", 5, blank=0.99, rodent=0.01),
    result("cam2/later.jpg", 50, bird=0.7, blank=0.3),
    Result(
        "cam2/broken.jpg", "fp", error_code="invalid_image", error="truncated", captured="2024-03-01T06:00:30"
    ),
    result("cam2/untimed.jpg", None, hog=0.8, blank=0.2),
]


def build(results: list[Result] = RESULTS, **options: object) -> catalog.Catalog:
    values: dict[str, object] = {
        "root_name": "survey",
        "created": "2026-01-01T00:00:00Z",
        "event_gap_s": 10.0,
    }
    values.update(options)
    return catalog.build(results, catalog.Options(**values))  # type: ignore[arg-type]


def write_package(tmp_path: Path, built: catalog.Catalog, **kwargs: object) -> Path:
    folder = tmp_path / "camtrap-dp"
    folder.mkdir()
    for name, data in camtrapdp.render(built, **kwargs).items():  # type: ignore[arg-type]
        (folder / name).write_bytes(data)
    return folder


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


# --- predictions.csv ---


def test_predictions_have_one_row_per_image_with_every_probability_and_the_error() -> None:
    table = rows(predictions_csv.render(build()))
    assert list(table[0]) == list(predictions_csv.COLUMNS)
    assert [row["file"] for row in table] == sorted(r.file for r in RESULTS)
    leopard = next(row for row in table if row["file"] == "cam1/a.jpg")
    assert (leopard["label"], leopard["score"], leopard["leopard"], leopard["blank"]) == (
        "leopard",
        "0.900000",
        "0.900000",
        "0.100000",
    )
    assert leopard["timestamp"] == "2024-03-01T06:00:00Z"
    assert leopard["deployment_id"] == "cam1"
    assert leopard["event_label"] == "leopard"
    broken = next(row for row in table if row["file"] == "cam2/broken.jpg")
    assert (broken["label"], broken["error"]) == ("", "invalid_image: truncated")


def test_the_outputs_do_not_depend_on_the_order_results_arrived_in() -> None:
    forward, backward = build(RESULTS), build(list(reversed(RESULTS)))
    assert predictions_csv.render(forward) == predictions_csv.render(backward)
    assert megadetector.render(forward) == megadetector.render(backward)
    assert camtrapdp.render(forward) == camtrapdp.render(backward)


# --- megadetector.json ---


def test_megadetector_output_passes_megadetectors_own_validator(tmp_path: Path) -> None:
    path = tmp_path / "megadetector.json"
    path.write_bytes(megadetector.render(build()))
    checked = megadetector_results(path)
    assert checked["errors"] == []
    assert checked["warnings"] == []
    document = json.loads(path.read_text())
    assert document["classification_categories"] == {str(i): label for i, label in enumerate(contract.LABELS)}
    images = {image["file"]: image for image in document["images"]}
    assert images["cam2/d.jpg"] == {"file": "cam2/d.jpg", "detections": []}
    assert images["cam2/broken.jpg"]["detections"] is None
    assert images["cam2/broken.jpg"]["failure"] == "invalid_image: truncated"
    (detection,) = images["cam1/a.jpg"]["detections"]
    assert detection["bbox"] == [0.0, 0.0, 1.0, 1.0]
    assert detection["conf"] == pytest.approx(0.9)
    ranked = [p for _, p in detection["classifications"]]
    assert ranked == sorted(ranked, reverse=True)
    assert detection["classifications"][0][0] == "5"


def test_the_megadetector_validator_reports_a_broken_file(tmp_path: Path) -> None:
    document = megadetector.document(build())
    document["images"][0]["failure"] = "bad"  # a failure with detections is against the format
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    assert megadetector_results(path)["errors"]


# --- camtrap-dp/ ---


def test_the_package_validates_against_the_camtrap_dp_profile_and_table_schemas(
    tmp_path: Path, camtrap_schemas: Path
) -> None:
    assert camtrap_errors(write_package(tmp_path, build()), camtrap_schemas) == []


def test_the_validator_reports_each_kind_of_breakage(tmp_path: Path, camtrap_schemas: Path) -> None:
    package = write_package(tmp_path, build())
    descriptor = json.loads((package / "datapackage.json").read_text())
    (package / "observations.csv").write_text(
        (package / "observations.csv").read_text().replace(",animal,", ",lion,", 1)
    )
    assert any("observationType" in error for error in camtrap_errors(package, camtrap_schemas))
    del descriptor["project"]
    (package / "datapackage.json").write_text(json.dumps(descriptor))
    assert any("project" in error for error in camtrap_errors(package, camtrap_schemas))


def test_media_and_observations_follow_the_documented_mapping(tmp_path: Path) -> None:
    files = camtrapdp.render(build())
    media = rows(files["media.csv"])
    assert "cam2/untimed.jpg" not in {row["filePath"] for row in media}  # no capture time: no media row
    observations = rows(files["observations.csv"])
    by_level = {(row["observationLevel"], row["mediaID"] or row["eventID"]): row for row in observations}
    leopard_media = next(row for row in media if row["filePath"] == "cam1/a.jpg")
    leopard = by_level[("media", leopard_media["mediaID"])]
    assert (leopard["observationType"], leopard["scientificName"], leopard["classificationMethod"]) == (
        "animal",
        "Panthera pardus",
        "machine",
    )
    assert leopard["classifiedBy"] == "species_model v1 (species-classifier)"
    broken_media = next(row for row in media if row["filePath"] == "cam2/broken.jpg")
    assert by_level[("media", broken_media["mediaID"])]["observationType"] == "unclassified"
    events = [row for row in observations if row["observationLevel"] == "event"]
    # cam1 a,b,c form one event (leopard); cam2: d alone (blank), later alone (bird); broken not timed-in-gap
    assert sorted((row["deploymentID"], row["observationType"], row["scientificName"]) for row in events) == [
        ("cam1", "animal", "Panthera pardus"),
        ("cam2", "animal", "Aves"),
        ("cam2", "blank", ""),
    ]


def test_deployments_take_coordinates_from_the_mapping_and_flag_placeholders(tmp_path: Path) -> None:
    mapping = deployments.parse_mapping("folder,deploymentID,latitude,longitude\ncam1,C1,5.83,-7.35\n")
    files = camtrapdp.render(build(mapping=mapping))
    table = {row["deploymentID"]: row for row in rows(files["deployments.csv"])}
    assert (table["C1"]["latitude"], table["C1"]["longitude"]) == ("5.83", "-7.35")
    assert "placeholder" not in table["C1"]["deploymentComments"]
    assert (table["cam2"]["latitude"], table["cam2"]["longitude"]) == ("0", "0")
    assert "placeholder" in table["cam2"]["deploymentComments"]
    assert table["C1"]["deploymentStart"] == "2024-03-01T06:00:00Z"
    assert table["C1"]["cameraModel"] == "RECONYX HYPERFIRE 2"
    package = json.loads(files["datapackage.json"])
    assert package["spatial"]["type"] == "Polygon"


def test_a_timezone_applies_to_camera_clocks_and_clears_timestamp_issues() -> None:
    unknown = rows(camtrapdp.render(build())["deployments.csv"])
    assert {row["timestampIssues"] for row in unknown} == {"true"}
    zoned = camtrapdp.render(build(zone=catalog.parse_timezone("Africa/Abidjan")))
    assert {row["timestampIssues"] for row in rows(zoned["deployments.csv"])} == {"false"}
    plus_two = camtrapdp.render(build(zone=catalog.parse_timezone("+02:00")))
    assert rows(plus_two["media.csv"])[0]["timestamp"].endswith("+02:00")


def test_metadata_overrides_package_keys_and_project_fields_one_by_one() -> None:
    files = camtrapdp.render(
        build(), metadata={"title": "Taï 2024", "project": {"samplingDesign": "systematicRandom"}}
    )
    package = json.loads(files["datapackage.json"])
    assert package["title"] == "Taï 2024"
    assert package["project"]["samplingDesign"] == "systematicRandom"
    assert package["project"]["observationLevel"] == ["media", "event"]


def test_file_paths_outside_source_become_urls_that_the_standard_accepts() -> None:
    assert camtrapdp.file_path("cam/a.jpg", None) == "cam/a.jpg"
    assert camtrapdp.file_path("cam/a.jpg", "s3://bucket/survey/") == "s3://bucket/survey/cam/a.jpg"
    assert camtrapdp.file_path("../other/a.jpg", "/data/lists") == "file:///data/other/a.jpg"
    assert camtrapdp.file_path("https://x.org/a.jpg", None) == "https://x.org/a.jpg"


def test_the_table_columns_are_the_standards_own(camtrap_schemas: Path) -> None:
    for table, fields in (("media", camtrapdp.MEDIA_FIELDS), ("observations", camtrapdp.OBSERVATION_FIELDS)):
        schema = json.loads((camtrap_schemas / f"{table}-table-schema.json").read_text())
        assert tuple(field["name"] for field in schema["fields"]) == fields
