"""The Grafana dashboard file: well-formed for Grafana, with the panels the issue lists, on real metric names.

That every panel's query returns data from a real Prometheus scraping a real gateway is proven in
test_prometheus.py; this module checks the file itself.
"""

from __future__ import annotations

import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

from gateway import metrics
from tests.monitoring import dashboard

pytestmark = pytest.mark.unit

# TF Serving's Prometheus names: its monitoring metric "/tensorflow/serving/request_count" is exported with
# every character outside [a-zA-Z0-9_] turned into ":" (tensorflow_serving/util/prometheus_exporter.cc);
# request_latency is a histogram in microseconds labelled model_name, API, entrypoint, request_count a
# counter labelled model_name, status (tensorflow_serving/servables/tensorflow/util.cc).
TF_SERVING_METRICS = {":tensorflow:serving:request_latency", ":tensorflow:serving:request_count"}
_CLAUSES = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NOISE = re.compile(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]')
_NAME = re.compile(r"(?<![\w:.$])(:?[a-zA-Z_][\w:]*)(?!\w|\s*\()")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def gateway_metric_names() -> set[str]:
    """Every series name gateway/metrics.py defines, as Prometheus stores it (`_total`, histogram parts)."""
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.collect():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def referenced_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression: label clauses, matchers, strings and ranges removed first."""
    bare = _NOISE.sub(" ", _CLAUSES.sub(" ", expr))
    return {name for name in _NAME.findall(bare) if name.lower() not in _KEYWORDS}


def all_exprs() -> list[str]:
    return [target.expr for panel in dashboard.panels() for target in panel.targets]


def test_the_dashboard_has_an_id_a_title_and_the_prometheus_datasource_variable() -> None:
    board = dashboard.load()
    assert board["uid"] == "species-classifier"
    assert board["title"]
    datasource = dashboard.variables(board)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")


def test_every_panel_queries_the_selected_datasource_and_has_a_unique_id() -> None:
    panels = dashboard.panels()
    assert len({p.id for p in panels}) == len(panels)
    for panel in panels:
        assert panel.targets, f"panel {panel.title!r} has no query"
        assert panel.raw["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel.title
        assert all(t.expr.strip() for t in panel.targets), panel.title
        assert len({t.ref_id for t in panel.targets}) == len(panel.targets), panel.title


def test_panels_fit_the_24_column_grid_without_overlapping() -> None:
    boxes = [p["gridPos"] for p in dashboard.load()["panels"]]
    cells: set[tuple[int, int]] = set()
    for box in boxes:
        assert box["x"] + box["w"] <= 24, box
        area = {
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        }
        assert not area & cells, f"panel at {box} overlaps another"
        cells |= area


def test_every_query_uses_only_variables_the_dashboard_defines() -> None:
    for expr in all_exprs():
        dashboard.instant_query(expr)  # raises on an unknown variable


def test_an_unknown_variable_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\$instance"):
        dashboard.instant_query('up{instance=~"$instance"}')


def test_every_metric_the_dashboard_queries_is_one_the_gateway_or_tf_serving_exports() -> None:
    known = gateway_metric_names()
    tf_serving = {
        f"{name}{suffix}" for name in TF_SERVING_METRICS for suffix in ("", "_bucket", "_sum", "_count")
    }
    unknown = {name for expr in all_exprs() for name in referenced_metrics(expr)} - known - tf_serving
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("request rate by status", r"sum by \(route, status\) \(rate\(gateway_requests_total"),
        ("5xx errors", r'gateway_requests_total\{[^}]*status=~"5\.\."'),
        (
            "p50 per stage",
            r"histogram_quantile\(0\.5, sum by \(stage, le\) \(rate\(gateway_stage_duration_seconds_bucket",
        ),
        (
            "p99 per stage",
            r"histogram_quantile\(0\.99, sum by \(stage, le\) \(rate\(gateway_stage_duration_seconds_bucket",
        ),
        ("in-flight requests", r"gateway_requests_in_flight"),
        ("rejected requests", r"rate\(gateway_requests_rejected_total"),
        ("batch sizes", r"gateway_batch_size_bucket"),
        ("predictions by label", r"sum by \(label\) \(rate\(gateway_predictions_total"),
        (
            "TF Serving latency",
            r"histogram_quantile\(0\.99, sum by \([^)]*\) \(rate\(:tensorflow:serving:request_latency_bucket",
        ),
        ("TF Serving errors", r"sum by \(model_name, status\) \(rate\(:tensorflow:serving:request_count"),
    ],
)
def test_the_dashboard_shows_what_the_issue_lists(what: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for expr in all_exprs()), f"no panel shows {what}"


def test_the_stage_panels_name_every_stage_the_gateway_times() -> None:
    panel = next(p for p in dashboard.panels() if p.title.startswith("Stage latency"))
    assert {"fetch", "decode", "serve"} <= set(re.findall(r"\w+", panel.raw["description"]))
    assert {t.legend for t in panel.targets} == {"{{stage}} p50", "{{stage}} p99"}


def test_metric_names_are_read_from_queries_without_labels_functions_or_keywords() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{route="/x"}[5m]))) / 1e6 > 2.5'
        " or on () absent(b == 1) and max without (pod) (:c:d) unless e offset 5m"
    )
    assert referenced_metrics(expr) == {"a_bucket", "b", ":c:d", "e"}
