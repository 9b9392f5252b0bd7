"""Logging, configured once: JSON lines (or plain text) on stderr, each carrying the request id.

The request id comes from the `X-Request-ID` header when it is sane, else it is generated; the middleware in
gateway.main stores it in a context variable that every log record of the request picks up, and echoes it
in the response header. Per-stage timings are collected in another context variable and written in the
request's one access-log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
STAGES: ContextVar[dict[str, float] | None] = ContextVar("stages", default=None)

# Accept ids a proxy or client would send (UUIDs, trace ids); anything else is replaced, never logged raw.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Attributes every LogRecord has; anything else came in through `extra=` and goes into the JSON line.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def request_id_from(header: str | None) -> str:
    if header and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def record_stage(stage: str, seconds: float) -> None:
    """Adds time to a stage of the current request (a batch fetches several URLs: their times add up)."""
    stages = STAGES.get()
    if stages is not None:
        stages[stage] = stages.get(stage, 0.0) + seconds


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured = False


def configure_logging(level: int, fmt: str) -> None:
    """Installs one stderr handler on the root logger; uvicorn's loggers propagate into it. Idempotent."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The gateway writes its own access line (with request id and stage timings).
    logging.getLogger("uvicorn.access").disabled = True
    _configured = True
