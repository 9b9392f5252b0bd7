"""Logging, configured once: JSON lines (or plain text) on stderr, each carrying the request id.

The request id comes from the `X-Request-ID` header when it is sane, else it is generated; the middleware in
gateway.context stores it in a context variable that every log record of the request picks up, and echoes
it in the response header. Per-stage timings are collected in another context variable and written in the
request's one access-log line.

Log lines carry client-controlled text (paths, URLs, header values). JSON escapes it by itself; the text
format escapes every control character, so a `%0a` in a path cannot start a forged line and no terminal
escape sequence reaches an operator's terminal.
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


# C0 and C1 control characters, DEL included; tab too, so fields stay space-separated.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """Control characters as `\\n`, `\\x1b`, ... (what `repr` would show), everything else unchanged."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """One physical line per record: the message escaped; a traceback indented under it, escaped per line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        lines = super().formatException(ei).splitlines()
        return "\n".join("    | " + escape_controls(line) for line in lines)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    | " + escape_controls(line) for line in stack_info.splitlines())


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


_handler: logging.Handler | None = None


def configure_logging(level: int, fmt: str) -> None:
    """One stderr handler on the root logger, which uvicorn's loggers propagate into.

    Called once per process by gateway.server; calling it again changes the level and format in place.
    """
    global _handler
    root = logging.getLogger()
    root.setLevel(level)
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.addFilter(_RequestIdFilter())
        root.addHandler(_handler)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The gateway writes its own access line (with request id and stage timings).
    logging.getLogger("uvicorn.access").disabled = True
