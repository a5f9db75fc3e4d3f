"""The README's demo command, as a new user runs it: embedded broker, traffic, daemon, alerts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_demo_with_embedded_broker_alerts_every_injected_incident() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    proc = subprocess.run(
        [sys.executable, "-m", "detector", "demo", "--streams", "20", "--steps", "320",
         "--rate", "0", "--incidents", "4"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "starting an embedded Kafka-protocol broker" in out
    summary = re.search(r"demo: (\d+)/(\d+) injected incidents alerted; (\d+) other", out)
    assert summary, out
    caught, planned, other = map(int, summary.groups())
    assert caught == planned == 4 and other <= 1, out
    for kind in ("spike", "outage", "level_shift", "ratio"):
        assert f"<- injected {kind}" in out, out
