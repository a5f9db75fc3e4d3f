"""deploy/prometheus: the alerting rules are valid, complete and query only metrics that exist.

promtool (Debian's `prometheus` package) checks and unit-tests them where it is installed;
everywhere the rules are parsed and every metric they name is checked against the daemon's.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from detector.daemon.telemetry import Telemetry
from tests.conftest import REPO

RULES = REPO / "deploy/prometheus/lstm-detector-rules.yaml"
RULE_TESTS = REPO / "deploy/prometheus/lstm-detector-rules.test.yaml"
# Series Prometheus itself provides beside the daemon's.
PROMETHEUS_OWN = {"up"}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_rules_cover_the_failures_an_operator_must_hear_of() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {"LstmDetectorNotReady", "LstmDetectorLagGrowing", "LstmDetectorNoEvents",
            "LstmDetectorDeadLetterRate", "LstmDetectorCheckpointFailures"} <= names


def test_every_rule_has_a_severity_a_summary_and_a_description() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_rules_query_only_metrics_the_daemon_exports() -> None:
    exported = Telemetry(port=0).metric_names()
    for rule in rules():
        queried = set(re.findall(r"\b(detector_\w+|up)\b", rule["expr"]))
        assert queried, rule["alert"]
        assert queried - exported - PROMETHEUS_OWN == set(), rule["alert"]


promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool not installed (apt-get install prometheus)")


@promtool
def test_promtool_check_rules_accepts_them() -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


@promtool
def test_promtool_rule_unit_tests_pass() -> None:
    proc = subprocess.run(["promtool", "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
