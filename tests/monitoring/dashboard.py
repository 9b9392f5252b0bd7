"""Read the Grafana dashboard (charts/species-classifier/files/grafana-dashboard.json) the way Grafana does.

`panels()` lists every panel with its PromQL targets, rows flattened; `instant_query(expr)` replaces the
dashboard's template variables with what Grafana would send for "All" over a long range, so the real
Prometheus can run the query. An unknown variable is an error, never left in place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "species-classifier" / "files" / "grafana-dashboard.json"
# "All" of a multi-value variable with allValue ".*"; a rate window long enough to span the whole test.
RATE_WINDOW = "10m"
_VARIABLE = re.compile(r"\$(\{)?(\w+)(?(1)\})")


@dataclass(frozen=True)
class Target:
    ref_id: str
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    type: str
    raw: dict[str, Any]
    targets: tuple[Target, ...]


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any] | None = None) -> list[Panel]:
    """Every non-row panel, those nested in collapsed rows included."""
    dashboard = dashboard or load()
    flat: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        flat.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return [
        Panel(
            id=p["id"],
            title=p["title"],
            type=p["type"],
            raw=p,
            targets=tuple(
                Target(t["refId"], t["expr"], t.get("legendFormat", "")) for t in p.get("targets", [])
            ),
        )
        for p in flat
    ]


def variables(dashboard: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    dashboard = dashboard or load()
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def instant_query(expr: str, dashboard: dict[str, Any] | None = None) -> str:
    """`expr` with Grafana's variables replaced: query variables by their allValue, $__rate_interval too."""
    known = variables(dashboard)
    builtin = {"__rate_interval": RATE_WINDOW, "__interval": "15s", "__range": RATE_WINDOW}

    def value(match: re.Match[str]) -> str:
        name = match.group(2)
        if name in builtin:
            return builtin[name]
        variable = known.get(name)
        if variable is None or variable["type"] != "query" or "allValue" not in variable:
            raise ValueError(
                f"{expr!r} uses ${name}, which the dashboard does not define as a query variable"
            )
        return str(variable["allValue"])

    return _VARIABLE.sub(value, expr)
