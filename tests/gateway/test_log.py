"""Logging (gateway.log): text lines cannot be forged with control characters; JSON lines stay JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from gateway.log import JsonFormatter, TextFormatter, escape_controls

pytestmark = pytest.mark.unit


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("bad\nline")
        except ValueError:
            info = sys.exc_info()
    made = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, message, args, info)
    made.request_id = "r-1"
    return made


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain /predict", "plain /predict"),
        ("/predict\nFORGED 200", "/predict\\nFORGED 200"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\there"),
        ("next line\u0085", "next line\\x85"),
        ("ünïcode stays", "ünïcode stays"),
    ],
)
def test_control_characters_are_escaped(text: str, escaped: str) -> None:
    assert escape_controls(text) == escaped


def test_a_text_line_with_a_newline_in_the_path_stays_one_line() -> None:
    line = TextFormatter().format(record("%s %s %d", "GET", "/predict\n2026-01-01 INFO forged", 404))
    assert "\n" not in line
    assert line.endswith("GET /predict\\n2026-01-01 INFO forged 404")


def test_a_traceback_is_indented_under_its_line_so_no_line_of_it_looks_like_a_record() -> None:
    lines = TextFormatter().format(record("boom", exc=True)).splitlines()
    assert "boom" in lines[0]
    assert all(line.startswith("    | ") for line in lines[1:])
    # Even the exception's own message, second line included, stays under the record.
    assert lines[-2:] == ["    | ValueError: bad", "    | line"]


def test_a_json_line_escapes_by_itself() -> None:
    line = JsonFormatter().format(record("%s", "/predict\nforged"))
    assert "\n" not in line
    assert json.loads(line)["message"] == "/predict\nforged"
