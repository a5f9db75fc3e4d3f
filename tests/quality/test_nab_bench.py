"""A bounded NAB bench through the real command: outputs, scorer agreement, better than null.

The full corpus (58 files) is a benchmark run by hand (see README); the tests run one category
of the subset shipped in tests/data/nab, and compare with the reference scorer where it is
beside the checkout (CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_nab_scorer import SUBSET, full_nab_root

pytestmark = pytest.mark.slow


def test_bench_nab_on_one_category_writes_scores_summary_and_run_record(tmp_path: Path,
                                                                      clean_env) -> None:
    root = SUBSET
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "detector", "bench", "nab", "--nab-root", str(root), "--out",
         str(out), "--files", "realAdExchange", "--jobs", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "DETECTOR_ALERT_SPATIAL_MARGIN": "0.05"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Numenta HTM" in proc.stdout and "lstm-detector (this run, swept)" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert summary[profile] > 0, "no better than a detector that never fires"
        assert summary[profile] <= 100
    run = json.loads((out / "run.json").read_text())
    assert run["files"] == 6 and run["engine_config"]["spatial_margin"] == 0.05
    assert len(list((out / "scores" / "realAdExchange").glob("*.csv"))) == 6
    assert f"report: {out / 'report' / 'index.html'}" in proc.stdout
    page = (out / "report" / "index.html").read_text()
    assert page.count('<section class=stream id="') == 6
    assert '<th title="sort">caught</th>' in page  # the corpus labels, by default
    assert f"NAB corpus: {root} (--nab-root)" in proc.stdout
    full = full_nab_root()
    if full is None:
        return  # the scorer's agreement is checked on recorded answers (test_nab_scorer)
    reference = subprocess.run(
        [sys.executable, str(full / "nab_score.py"), str(out / "scores"), "--nab-root",
         str(root), "--files", "realAdExchange", "--quiet"],
        capture_output=True, text=True, timeout=120, check=True)
    theirs = json.loads(reference.stdout)["profiles"]
    for profile, values in theirs.items():
        assert summary["detail"][profile]["score"] == pytest.approx(values["score"], abs=1e-6)
        assert summary["detail"][profile]["threshold"] == pytest.approx(values["threshold"])
