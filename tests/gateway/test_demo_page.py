"""The demo page at GET / (gateway/demo.py, gateway/static/): served under a strict Content-Security-Policy,
self-contained (no external assets, no inline code), calling the public API only, and shipped in the image.

That it works in a real browser is proven in test_demo_page_browser.py (headless Chromium).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway import demo
from tests.support.dockerfiles import BuildContext

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "gateway" / "static"


class _Page(HTMLParser):
    """Collects every URL-bearing attribute, inline code and event-handler attribute of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self.handlers: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [value for name, value in attrs if name in {"src", "href", "action"} and value]
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in values:
            self.inline_styles.append(f"{tag} style=")
        self._in = tag if tag in {"script", "style"} else None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.inline_scripts.append(data)
        if self._in == "style" and data.strip():
            self.inline_styles.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def parsed_page() -> _Page:
    page = _Page()
    page.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return page


def test_get_slash_serves_the_page_under_a_strict_content_security_policy(api: TestClient) -> None:
    response = api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Camera-trap species classifier</title>" in response.text
    directives = [d.partition(" ") for d in response.headers["content-security-policy"].split("; ")]
    policy = {name: value for name, _, value in directives}
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert not any("unsafe" in value or "*" in value or "http" in value for value in policy.values())
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("demo.js", "text/javascript"), ("demo.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_the_page_s_assets_are_served_with_their_type_and_the_same_policy(
    api: TestClient, name: str, media_type: str
) -> None:
    response = api.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["content-security-policy"] == demo.CONTENT_SECURITY_POLICY
    assert response.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path", ["/static/main.py", "/static/..%2Fmain.py", "/static/index.html", "/static/"]
)
def test_nothing_but_the_page_s_own_files_is_served_from_static(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_page_is_not_part_of_the_api_schema(make_api: Callable[..., TestClient]) -> None:
    paths = make_api(docs_enabled=True).get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/static")]


def test_the_page_loads_only_its_own_files_and_has_no_inline_code() -> None:
    page = parsed_page()
    assert sorted(page.urls) == sorted(f"static/{name}" for name in demo.ASSETS)
    assert not page.inline_scripts
    assert not page.inline_styles
    assert not page.handlers


def test_the_page_is_readable_on_a_phone_and_labels_its_controls() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<html lang="en">' in html
    # The file input is a real, focusable control with a label; results and status are announced.
    assert re.search(r'<input type="file" id="files" accept="image/\*" multiple>', html)
    assert '<label for="files">' in html
    assert 'role="status" aria-live="polite"' in html


@pytest.mark.parametrize("name", sorted(demo.ASSETS))
def test_the_script_and_styles_fetch_nothing_from_elsewhere(name: str) -> None:
    text = (STATIC / name).read_text(encoding="utf-8")
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
    assert "@import" not in text
    assert not re.search(r"url\(", text)


def test_the_script_calls_the_public_predict_endpoints_only_and_never_parses_html() -> None:
    script = (STATIC / "demo.js").read_text(encoding="utf-8")
    assert set(re.findall(r'post\("([^"]+)"', script)) == {"predict", "predict/batch"}
    assert script.count("fetch(") == 1
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_gateway_image_ships_the_page() -> None:
    dockerfile = (REPO / "gateway" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY gateway/static/ /app/gateway/static/$", dockerfile, flags=re.M)
    context = BuildContext.read(REPO / "gateway" / "Dockerfile.dockerignore")
    for path in STATIC.iterdir():
        relative = path.relative_to(REPO).as_posix()
        assert context.admits(relative), f"{relative} is not in the build context"
    assert {path.name for path in STATIC.iterdir()} == {"index.html", *demo.ASSETS}
