"""Our NAB scorer: hand-computed cases, and agreement with the reference scorer to 1e-6."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.nab.corpus import DataFile, NabCorpus, Profile, read_run_scores
from detector.nab.scorer import best_threshold, layout, score_corpus, score_file

REPO = Path(__file__).resolve().parents[2]
STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)


def nab_root() -> Path:
    root = Path(os.environ.get("NAB_ROOT", REPO.parent / "shared" / "nab"))
    if not (root / "data").is_dir():
        pytest.fail(f"NAB corpus not found at {root} (set NAB_ROOT)")
    return root


def sig(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def toy(n: int = 100, windows: tuple[tuple[int, int], ...] = ((40, 49),)) -> DataFile:
    # probation = floor(0.15 * 100) = 15 rows
    return DataFile("toy/a.csv", tuple(f"t{i}" for i in range(n)), np.zeros(n), windows)


def raw(detections: list[int], data: DataFile | None = None) -> float:
    data = data or toy()
    scores = np.zeros(data.n)
    scores[detections] = 1.0
    return score_file(layout(data, scores), STANDARD, 0.5).raw


def test_detection_at_the_left_edge_of_a_window_earns_full_credit() -> None:
    assert raw([40]) == pytest.approx(1.0)


def test_detection_at_the_right_end_earns_the_sigmoid_of_one_tenth() -> None:
    # width 10: the last row is at position -(49 - 49 + 1) / 10 = -0.1
    assert raw([49]) == pytest.approx(sig(-0.1) / sig(-1.0))


def test_only_the_first_detection_in_a_window_counts() -> None:
    # rows 45 and 49 both fire: the earlier one, at position -(49 - 45 + 1) / 10, counts
    assert raw([45, 49]) == pytest.approx(sig(-0.5) / sig(-1.0))
    assert raw([40, 41, 49]) == pytest.approx(1.0)


def test_false_positive_before_any_window_costs_the_full_fp_weight() -> None:
    assert raw([20, 40]) == pytest.approx(1.0 - 0.11)


def test_false_positive_just_after_a_window_costs_a_sigmoid_weighted_share() -> None:
    # one row past the window, scaled by width - 1 = 9: sigmoid(1/9)
    assert raw([40, 50]) == pytest.approx(1.0 + 0.11 * sig(1 / 9))
    # beyond three widths the full penalty applies
    assert raw([40, 49 + 9 * 3 + 1]) == pytest.approx(1.0 - 0.11)


def test_missed_window_costs_the_fn_weight_and_probation_rows_are_ignored() -> None:
    assert raw([]) == pytest.approx(-1.0)
    assert raw([3, 10]) == pytest.approx(-1.0)


def test_best_threshold_picks_the_score_that_maximises_the_raw_score() -> None:
    data = toy()
    scores = np.zeros(100)
    scores[[42, 60]] = [0.6, 0.9]  # the FP is more confident than the detection
    threshold, best = best_threshold([layout(data, scores)], STANDARD)
    assert threshold == 0.6
    # credit at -(49 - 42 + 1) / 10; the FP 11 rows past the window, scaled by width - 1
    assert best == pytest.approx(sig(-0.8) / sig(-1.0) + 0.11 * sig(11 / 9))


def test_read_run_scores_rejects_wrong_row_count_and_timestamps(tmp_path: Path) -> None:
    data = toy(3, ())
    good = tmp_path / "good.csv"
    good.write_text("timestamp,anomaly_score\nt0,0\nt1,0.5\nt2,1\n")
    np.testing.assert_array_equal(read_run_scores(good, data), [0, 0.5, 1])
    short = tmp_path / "short.csv"
    short.write_text("timestamp,anomaly_score\nt0,0\n")
    with pytest.raises(ValueError, match="1 rows"):
        read_run_scores(short, data)
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("timestamp,anomaly_score\nt1,0\nt0,0\nt2,0\n")
    with pytest.raises(ValueError, match="row 2"):
        read_run_scores(swapped, data)


def test_scores_agree_with_the_reference_scorer(tmp_path: Path) -> None:
    root = nab_root()
    corpus = NabCorpus(root)
    rels = [r for r in corpus.files if r.startswith(("realAdExchange/", "artificialWith"))]
    rng = np.random.default_rng(7)
    layouts = {}
    for rel in rels:
        data = corpus.load(rel)
        scores = np.round(rng.beta(0.3, 3.0, data.n), 4)
        layouts[rel] = layout(data, scores)
        out = tmp_path / "run" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("timestamp,anomaly_score\n" + "".join(
            f"{t},{s}\n" for t, s in zip(data.timestamps, scores, strict=True)))
    ours = score_corpus(layouts, corpus.profiles)
    proc = subprocess.run(
        [sys.executable, str(root / "nab_score.py"), str(tmp_path / "run"), "--nab-root",
         str(root), "--files", "realAdExchange", "artificialWithAnomaly", "--quiet"],
        capture_output=True, text=True, timeout=120, check=True)
    reference = json.loads(proc.stdout)["profiles"]
    for name, theirs in reference.items():
        assert ours[name]["score"] == pytest.approx(theirs["score"], abs=1e-6)
        assert ours[name]["threshold"] == pytest.approx(theirs["threshold"], abs=1e-12)
        assert ours[name]["raw_score"] == pytest.approx(theirs["raw_score"], abs=1e-6)
