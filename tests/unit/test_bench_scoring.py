"""Shipped vs swept: the shipped score counts the alerts raised, the swept one sweeps scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.bench.corpus import Corpus
from detector.bench.nab.profiles import NAB_PROFILES
from detector.bench.nab.scorer import scaled_sigmoid, score_corpus
from detector.bench.scoring import evaluate, layouts
from tests.unit.bench_factories import write_corpus

N, HISTORY = 100, 20
DAY_OF_80_ROWS = 80 * 300 / 86_400


@pytest.fixture
def files(tmp_path: Path):
    """host/a.csv: one window at rows 50..59; clean/b.csv: none; 20 rows of history each."""
    corpus = Corpus(write_corpus(
        tmp_path, {"host/a.csv": [[float(i), 1.0] for i in range(N)],
                   "clean/b.csv": [[1.0, float(i)] for i in range(N)]},
        windows={"host/a.csv": [(50, 59)]},
        probation={"host/a.csv": HISTORY, "clean/b.csv": HISTORY}))
    return [corpus.load(rel) for rel in corpus.files]


def per_row(points: dict[int, float]) -> np.ndarray:
    out = np.zeros(N)
    for row, value in points.items():
        out[row] = value
    return out


def test_shipped_counts_the_alerts_and_swept_sweeps_the_scores(files) -> None:
    # The highest score (row 55, inside the window) raised no alert: e.g. a cooldown held it.
    scores = {"host/a.csv": per_row({55: 0.9, 80: 0.5, 10: 1.0}),
              "clean/b.csv": per_row({30: 0.5})}
    alerts = {"host/a.csv": per_row({80: 1, 10: 1}) > 0, "clean/b.csv": per_row({30: 1}) > 0}
    result = evaluate(files, scores, alerts, NAB_PROFILES, 0.7)

    shipped = result["shipped"]["standard"]
    assert shipped["threshold"] == 0.7
    assert (shipped["windows_detected"], shipped["windows"], shipped["false_positives"]) == (
        0, 1, 2)  # row 10 is history: not scored
    fp_cost = float(scaled_sigmoid((80 - 59) / (10 - 1))) - 1.0  # after the window, before any
    assert shipped["score"] == pytest.approx(100 * (0.11 * fp_cost) / 2)  # null -1, perfect 1
    assert shipped["fp_per_1000"] == pytest.approx(1000 * 2 / 160)
    assert shipped["fp_per_stream_day"] == pytest.approx(2 / (2 * DAY_OF_80_ROWS), abs=1e-4)
    assert shipped["clean_fp_per_stream_day"] == pytest.approx(1 / DAY_OF_80_ROWS, abs=1e-4)

    swept = result["swept"]["standard"]
    assert swept["threshold"] == 0.9
    assert (swept["windows_detected"], swept["false_positives"], swept["fp_per_1000"]) == (1, 0, 0)
    assert swept["score"] > 50 > shipped["score"]


def test_swept_equals_the_nab_scorer_and_shipped_equals_scoring_alerts_at_any_threshold(
        files) -> None:
    rng = np.random.default_rng(3)
    scores = {f.rel: rng.random(N) ** 8 for f in files}
    alerts = {rel: s >= 0.7 for rel, s in scores.items()}
    result = evaluate(files, scores, alerts, NAB_PROFILES, 0.7)
    direct = score_corpus(layouts(files, scores), NAB_PROFILES)
    fixed = score_corpus(layouts(files, scores), NAB_PROFILES,
                         thresholds={p.name: 0.7 for p in NAB_PROFILES})
    for profile in direct:
        assert result["swept"][profile]["score"] == direct[profile]["score"]
        assert result["swept"][profile]["threshold"] == direct[profile]["threshold"]
        assert result["shipped"][profile]["score"] == pytest.approx(fixed[profile]["score"])
        assert result["shipped"][profile]["false_positives"] == fixed[profile]["false_positives"]


def test_categories_count_windows_and_false_alerts_of_the_shipped_alerts(files) -> None:
    alerts = {"host/a.csv": per_row({52: 1, 90: 1}) > 0, "clean/b.csv": per_row({5: 1}) > 0}
    result = evaluate(files, {rel: a * 0.8 for rel, a in alerts.items()}, alerts, NAB_PROFILES,
                      0.7)
    host, clean = result["categories"]["host"], result["categories"]["clean"]
    assert (host["windows_detected"], host["windows"], host["false_positives"]) == (1, 1, 1)
    assert (clean["windows"], clean["false_positives"]) == (0, 0)  # row 5 is history
    assert list(result["categories"]) == ["clean", "host"]


def test_a_corpus_without_clean_files_has_no_clean_rate(files) -> None:
    host = [f for f in files if f.windows]
    zeros = {f.rel: np.zeros(N) for f in host}
    result = evaluate(host, zeros, {rel: z > 0 for rel, z in zeros.items()}, NAB_PROFILES, 0.7)
    assert result["shipped"]["standard"]["clean_fp_per_stream_day"] is None
    assert result["shipped"]["standard"]["score"] == 0.0  # never alerting is the null score
