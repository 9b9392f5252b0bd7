"""GET /: the demo page, a static HTML page with its CSS and plain JavaScript (gateway/static/).

Anyone can drop a camera-trap photo and see the top labels. The page calls the public /predict and
/predict/batch like every other client; nothing here is page-specific API. The files are read from the
package once, at import (a few kB; the root filesystem is read-only), and served under a strict
Content-Security-Policy: only this origin's script, styles, images (and the page's own blob: previews) and
API, no inline code, no framing, Trusted Types required.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Small files that change with the image: revalidate rather than serve a stale page after an upgrade.
    "Cache-Control": "no-cache",
}
# Name -> media type; a fixed table, so a request can never name any other file.
ASSETS = {
    "demo.css": "text/css; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_STATIC = resources.files("gateway") / "static"
_PAGE = (_STATIC / "index.html").read_bytes()
_FILES = {name: (_STATIC / name).read_bytes() for name in ASSETS}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> Response:
    """The demo page."""
    return Response(_PAGE, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """The page's stylesheet, script and icon."""
    if name not in ASSETS:
        raise StarletteHTTPException(404, "Not Found")
    return Response(_FILES[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)
