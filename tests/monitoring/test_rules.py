"""The alerting rules, checked and unit-tested by the pinned promtool, and held to their promises.

charts/species-classifier/files/prometheus-rules.yaml is the one source: the plain rules file, and the spec of
the chart's PrometheusRule (tests/packaging/test_chart.py proves the render equals it). Every alert has unit
tests in prometheus-rules.test.yaml that fire it and keep it silent, and a runbook entry in the README.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.test_dashboard import gateway_metric_names, referenced_metrics
from tests.packaging import render
from tests.support.prometheus import PROMTOOL

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RULES = render.CHART / "files" / "prometheus-rules.yaml"
RULE_TESTS = Path(__file__).with_name("prometheus-rules.test.yaml")
# What the issue asks alerts for, each by the alert that covers it.
REQUIRED_ALERTS = {
    "gateway 5xx ratio": "SpeciesGatewayHighErrorRatio",
    "p99 over a budget": "SpeciesGatewayLatencyP99High",
    "TF Serving unavailable (503 with Retry-After)": "SpeciesTFServingUnavailable",
    "admission rejections sustained": "SpeciesGatewayAdmissionRejections",
    "no pod ready": "SpeciesGatewayNoPodReady",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.exists():
        pytest.skip(f"{PROMTOOL} missing: run `make tools` (make test does)")
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, cwd=REPO, check=False)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_fails_promtool(tmp_path: Path) -> None:
    # The unit tests can fail: one expected alert label changed makes promtool report the mismatch.
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    first_firing = next(
        case for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]
    )
    first_firing["exp_alerts"][0]["exp_labels"]["severity"] = "info"
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_the_issue_s_alerts_all_exist() -> None:
    names = {rule["alert"] for rule in alerts()}
    missing = {need: alert for need, alert in REQUIRED_ALERTS.items() if alert not in names}
    assert not missing


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_stays_silent() -> None:
    cases: dict[str, set[str]] = defaultdict(set)
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]].add("fires" if case["exp_alerts"] else "silent")
    incomplete = {
        rule["alert"]: sorted(cases[rule["alert"]])
        for rule in alerts()
        if cases[rule["alert"]] != {"fires", "silent"}
    }
    assert not incomplete, f"alerts without both a firing and a silent unit test: {incomplete}"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_entry_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    runbook = readme.partition("\n## Runbook\n")[2].partition("\n## ")[0]
    assert runbook, "README.md has no '## Runbook' section"
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"] == f"README.md#runbook, {name}", name
        assert re.search(rf"^\| `{name}` \|", runbook, flags=re.M), f"no runbook row for {name} in README.md"


def test_every_metric_an_alert_reads_is_one_the_gateway_exports() -> None:
    used = {name for rule in alerts() for name in referenced_metrics(rule["expr"])}
    assert used
    assert used <= gateway_metric_names(), sorted(used - gateway_metric_names())


def test_promtool_accepts_the_rules_of_the_chart_s_prometheus_rule(tmp_path: Path) -> None:
    try:
        objs = render.render_chart(("ci/monitoring-values.yaml",))
    except render.NotRenderable as missing:
        pytest.skip(str(missing))
    (rule,) = [obj for obj in objs if obj["kind"] == "PrometheusRule"]
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout
