"""The outputs' own validators, offline.

- Camera Trap Data Package: `frictionless` validates the package against the profile and the three table
  schemas its `datapackage.json` names by URL. Those URLs cannot be fetched here, so frictionless' HTTP
  session is given an adapter that answers them from the standard's files in ../shared/schemas/
  camtrap-dp-1.0.2/ (used in place, never copied). The profile also refers by URL to two schemas that
  are not part of the standard: Frictionless' own data-package profile, answered with a permissive schema
  `{}` because frictionless checks the Data Package rules itself, natively, whatever the profile says; and
  the GeoJSON schema for `spatial`, answered with the GeoJSON schema that frictionless ships
  (frictionless/assets/profiles/geojson.json). Any other URL fails the validation: nothing goes online.
- MegaDetector batch output: MegaDetector's own `validate_batch_results` (package megadetector-utils), run in
  a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from requests.adapters import BaseAdapter

CAMTRAP_BASE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"
DATA_PACKAGE_PROFILE = "https://specs.frictionlessdata.io/schemas/data-package.json"
GEOJSON_PROFILE = "http://json.schemastore.org/geojson.json"


class LocalSchemas(BaseAdapter):
    """A requests adapter that serves known schema URLs from local files and refuses every other URL."""

    def __init__(self, schemas: Path) -> None:
        super().__init__()
        import frictionless

        geojson = Path(frictionless.__file__).parent / "assets" / "profiles" / "geojson.json"
        self.files: dict[str, bytes] = {
            CAMTRAP_BASE + path.name: path.read_bytes() for path in schemas.glob("*.json")
        }
        self.files[DATA_PACKAGE_PROFILE] = b"{}"
        self.files[GEOJSON_PROFILE] = geojson.read_bytes()
        self.served: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        if url not in self.files:
            raise requests.ConnectionError(f"offline validation: no local copy of {url}")
        self.served.append(url)
        response = requests.Response()
        response.status_code = 200
        response.url = url
        response.raw = io.BytesIO(self.files[url])
        response.headers["Content-Type"] = "application/json"
        response.request = request
        return response

    def close(self) -> None:
        pass


@contextlib.contextmanager
def offline_schemas(schemas: Path) -> Iterator[LocalSchemas]:
    from frictionless import system

    adapter = LocalSchemas(schemas)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    with system.use_context(http_session=session):
        yield adapter


def camtrap_errors(package_dir: Path, schemas: Path) -> list[str]:
    """Every error frictionless reports for the package (empty when it is valid)."""
    from frictionless import FrictionlessException, Package

    with offline_schemas(schemas) as adapter:
        try:
            report = Package(str(package_dir / "datapackage.json")).validate()
        except FrictionlessException as exc:  # the descriptor itself breaks the profile
            return [f"package: {exc.error.type}: {reason.message}" for reason in exc.reasons] or [str(exc)]
    errors = [f"package: {error.type}: {error.message}" for error in report.errors]
    for task in report.tasks:
        errors.extend(f"{task.name}: {error.type}: {error.message}" for error in task.errors)
    if CAMTRAP_BASE + "camtrap-dp-profile.json" not in adapter.served:
        errors.append("the Camtrap DP profile was never read: the package was not checked against it")
    return errors


_MEGADETECTOR_VALIDATE = """
import json, sys
from megadetector.postprocessing.validate_batch_results import (
    ValidateBatchResultsOptions, validate_batch_results,
)
options = ValidateBatchResultsOptions()
options.raise_errors = False
results = validate_batch_results(sys.argv[1], options)["validation_results"]
print(json.dumps({"errors": results["errors"], "warnings": results["warnings"]}))
"""


def megadetector_results(path: Path) -> dict[str, Any]:
    """MegaDetector's own validator, in a subprocess: importing it sets Pillow's LOAD_TRUNCATED_IMAGES for
    the whole process (megadetector.visualization), which must not leak into other tests."""
    done = subprocess.run(
        [sys.executable, "-c", _MEGADETECTOR_VALIDATE, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"MegaDetector's validator failed to run: {done.stderr[-2000:]}")
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
