"""Our NAB corpus access and scorer: hand-computed cases, the run loader, and agreement with the
reference scorer (../shared/nab/nab_score.py) to 1e-6.

The corpus checks run on the two categories shipped in tests/data/nab; beside a checkout with
../shared/nab (as in CI) the full corpus and the live reference scorer are used too. On a
fresh clone the reference scorer's answers come from tests/data/nab/reference_scores.json,
which a test checks against the live scorer wherever it is present.

Hand-computed cases use sigma(y) = 2 / (1 + e^(5y)) - 1 = -tanh(5y / 2), so that
sigma(-1) = tanh(2.5) = 0.98661429815143, the credit at a window's left edge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.bench.nab.corpus import NabCorpus
from detector.bench.nab.locate import mismatches, read_manifest
from detector.bench.nab.profiles import PROFILE_NAMES, Profile
from detector.bench.nab.scorer import (
    FileScore,
    baselines,
    file_layout,
    held_out_leave_one_category_out,
    load_run,
    normalise,
    optimise_threshold,
    score_corpus,
    score_file,
    score_layout,
)

REPO = Path(__file__).resolve().parents[2]
STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
REFERENCE_CATEGORIES = ("artificialWithAnomaly", "realAdExchange")


SUBSET = REPO / "tests" / "data" / "nab"
RECORDED = SUBSET / "reference_scores.json"


def full_nab_root() -> Path | None:
    """The whole corpus with the reference scorer: NAB_ROOT (a missing one fails the test:
    CI sets it), else ../shared/nab beside the checkout, else None (a fresh clone)."""
    if os.environ.get("NAB_ROOT"):
        root = Path(os.environ["NAB_ROOT"])
        if not (root / "data").is_dir() or not (root / "nab_score.py").is_file():
            pytest.fail(f"NAB_ROOT={root} holds no NAB corpus with nab_score.py")
        return root
    root = REPO.parent / "shared" / "nab"
    return root if (root / "nab_score.py").is_file() else None


def require_full_nab_root() -> Path:
    root = full_nab_root()
    if root is None:
        pytest.skip("the full NAB corpus is not beside this clone (NAB_ROOT, ../shared/nab); "
                    "the shipped subset is checked instead")
    return root


def toy(detections: list[int], profile: Profile = STANDARD,
        windows: tuple[tuple[int, int], ...] = ((40, 49),)) -> FileScore:
    # 100 rows, probation = min(floor(0.15 * 100), 750) = 15, one window of width 10 at 40..49
    scores = np.zeros(100)
    scores[detections] = 1.0
    return score_file(scores, windows, 100, 15, 0.5, profile)


def test_score_file_detection_at_window_left_edge_earns_full_credit() -> None:
    # row 40: y = -(49 - 40 + 1) / 10 = -1, credit sigma(-1) / sigma(-1) = 1
    assert toy([40]) == FileScore(raw=pytest.approx(1.0), tp=1, fp=0, fn=0)


def test_score_file_detection_at_window_right_end_earns_little_credit() -> None:
    # row 49: y = -(49 - 49 + 1) / 10 = -0.1, sigma = tanh(0.25) = 0.24491866240371,
    # credit 0.24491866240371 / 0.98661429815143 = 0.24824154977543
    assert toy([49]).raw == pytest.approx(0.24824154977543, abs=1e-12)


def test_score_file_false_positive_before_window_costs_full_fp_weight() -> None:
    # row 20 has no window before it: -0.11; row 40 earns 1
    assert toy([20, 40]) == FileScore(raw=pytest.approx(0.89), tp=1, fp=1, fn=0)


def test_score_file_false_positive_just_after_window_costs_sigmoid_share() -> None:
    # row 50: y = (50 - 49) / (10 - 1) = 1/9, sigma = -tanh(5/18) = -0.27084711851672,
    # raw = 1 + 0.11 * -0.27084711851672 = 0.97020681696316
    assert toy([40, 50]).raw == pytest.approx(0.97020681696316, abs=1e-12)
    # row 77: y = 28/9 > 3, so sigma = -1 exactly: raw = 1 - 0.11
    assert toy([40, 77]).raw == pytest.approx(0.89, abs=1e-12)


def test_score_file_false_positive_after_one_row_window_costs_full_fp_weight() -> None:
    # a window of width 1 has no (W - 1) scale: every later detection costs the full 0.11
    assert toy([40, 41], windows=((40, 40),)).raw == pytest.approx(1.0 - 0.11, abs=1e-12)


def test_score_file_missed_window_costs_fn_weight() -> None:
    assert toy([]) == FileScore(raw=pytest.approx(-1.0), tp=0, fp=0, fn=1)
    assert toy([], LOW_FN).raw == pytest.approx(-2.0)


def test_score_file_detections_in_probation_are_ignored() -> None:
    # rows 0..14 are probation: no cost, no credit; row 15 is the first scored row
    assert toy([0, 3, 14]) == FileScore(raw=pytest.approx(-1.0), tp=0, fp=0, fn=1)
    assert toy([15]) == FileScore(raw=pytest.approx(-1.11), tp=0, fp=1, fn=1)


def test_score_file_window_straddling_probation_credits_by_full_window() -> None:
    # window 10..19, rows 10..14 in probation: the hit at 12 is ignored, the one at 15 counts
    # with y = -(19 - 15 + 1) / 10 = -0.5: tanh(1.25) / tanh(2.5) = 0.85979256690978
    assert toy([12, 15], windows=((10, 19),)).raw == pytest.approx(0.85979256690978, abs=1e-12)


def test_score_file_later_detections_in_window_add_nothing() -> None:
    # rows 45, 46, 49: only row 45 counts, y = -(49 - 45 + 1) / 10 = -0.5 -> 0.85979256690978
    assert toy([45, 46, 49]) == FileScore(raw=pytest.approx(0.85979256690978, abs=1e-12),
                                          tp=1, fp=0, fn=0)


def test_optimise_threshold_confident_fp_before_detection_picks_detection_score() -> None:
    scores = np.zeros(100)
    scores[[42, 60]] = [0.6, 0.9]
    p = file_layout(scores, [(40, 49)], 100, 15)
    # thr 1.1: -1. thr 0.9: FP at row 60, y = 11/9, sigma = -0.99557364821543: -1.10951310130370
    # thr 0.6: + credit at row 42, y = -0.8: tanh(2) / tanh(2.5) = 0.97710684092260 and the FP:
    #          0.97710684092260 - 0.10951310130370 = 0.86759373961891 (best)
    # thr 0:   every scored row fires: 35 FPs before the window and 50 after cost far more
    threshold, raw = optimise_threshold([p], STANDARD)
    assert threshold == 0.6
    assert raw == pytest.approx(0.86759373961891, abs=1e-12)


def test_optimise_threshold_only_false_positives_returns_threshold_above_all_scores() -> None:
    p = file_layout(np.linspace(0.0, 1.0, 100), [], 100, 15)
    assert optimise_threshold([p], STANDARD) == (1.1, 0.0)


def test_optimise_threshold_random_files_matches_brute_force_sweep() -> None:
    rng = np.random.default_rng(3)
    layouts = []
    for _ in range(8):
        n = int(rng.integers(40, 120))
        edges = np.sort(rng.choice(np.arange(10, n), size=4, replace=False))
        windows = [(int(edges[0]), int(edges[1])), (int(edges[2]), int(edges[3]))]
        layouts.append(file_layout(np.round(rng.random(n), 1), windows, n, n * 15 // 100))
    for profile in (STANDARD, LOW_FN, Profile("low_fp", 1.0, 0.22, 1.0)):
        candidates = sorted({1.1, *np.concatenate([p.scores for p in layouts]).tolist()})
        totals = [sum(score_layout(p, t, profile).raw for p in layouts) for t in candidates]
        best = max(totals)
        highest = max(t for t, v in zip(candidates, totals, strict=True) if v >= best - 1e-9)
        threshold, raw = optimise_threshold(layouts, profile)
        assert raw == pytest.approx(best, abs=1e-9)
        assert threshold == highest


def test_normalise_null_and_perfect_detectors_map_to_0_and_100() -> None:
    p = file_layout(np.zeros(100), [(10, 19), (40, 49)], 100, 15)
    null, perfect = baselines([p], STANDARD)
    # the perfect detector fires on row 15 (first scored row of 10..19) and on row 40
    assert (null, perfect) == (-2.0, pytest.approx(0.85979256690978 + 1.0, abs=1e-12))
    assert normalise(null, perfect, null) == 0.0
    assert normalise(perfect, perfect, null) == pytest.approx(100.0)
    assert np.isnan(normalise(0.0, 0.0, 0.0))


def test_held_out_two_categories_scores_each_with_the_other_threshold() -> None:
    a = np.zeros(100)
    a[[42, 60]] = [0.6, 0.9]       # alone, its best threshold is 0.6 (see above)
    b = np.zeros(100)
    b[40] = 0.3                    # alone, its best threshold is 0.3: raw 1
    run = {"catA/a.csv": file_layout(a, [(40, 49)], 100, 15),
           "catB/b.csv": file_layout(b, [(40, 49)], 100, 15)}
    result = held_out_leave_one_category_out(run, [STANDARD])["standard"]
    # fold A at 0.3: 0.86759373961891; fold B at 0.6 misses its window: -1
    assert result["folds"]["catA"]["threshold"] == 0.3
    assert result["folds"]["catB"]["threshold"] == 0.6
    assert result["raw_score"] == pytest.approx(-0.13240626038109, abs=1e-12)
    # null -2, perfect 2: 100 * (-0.13240626038109 + 2) / 4
    assert result["score"] == pytest.approx(46.68984349047267, abs=1e-9)


def fake_root(tmp_path: Path, n: int = 20) -> NabCorpus:
    root = tmp_path / "nab"
    (root / "data" / "cat").mkdir(parents=True)
    stamps = [f"2020-01-01 00:{i:02d}:00" for i in range(n)]
    (root / "data" / "cat" / "a.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},{i}.5\n" for i, t in enumerate(stamps)))
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(
        {"cat/a.csv": [[stamps[10] + ".000000", stamps[12] + ".000000"]]}))
    (root / "config").mkdir()
    (root / "config" / "profiles.json").write_text(json.dumps({name: {"CostMatrix": {
        "tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0}}
        for name in PROFILE_NAMES}))
    return NabCorpus(root)


def write_run(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp,value,anomaly_score\n" + "".join(r + "\n" for r in rows))


def test_load_corpus_fake_root_gives_rows_windows_and_probation(tmp_path: Path) -> None:
    data = fake_root(tmp_path).load("cat/a.csv")
    assert (data.n, data.probation, data.windows, data.values[3]) == (20, 3, ((10, 12),), 3.5)
    assert data.timestamps[0] == "2020-01-01 00:00:00"


def test_load_run_matching_file_with_extra_columns_returns_scores(tmp_path: Path) -> None:
    corpus = fake_root(tmp_path)
    stamps = corpus.load("cat/a.csv").timestamps
    write_run(tmp_path / "run" / "cat" / "a.csv", [f"{t},0,{i / 20}" for i, t in enumerate(stamps)])
    scores = load_run(tmp_path / "run", corpus)["cat/a.csv"]
    np.testing.assert_array_equal(scores, np.arange(20) / 20)


def test_load_run_wrong_row_count_raises_naming_file(tmp_path: Path) -> None:
    corpus = fake_root(tmp_path)
    stamps = corpus.load("cat/a.csv").timestamps[:-1]
    write_run(tmp_path / "run" / "cat" / "a.csv", [f"{t},0,0" for t in stamps])
    with pytest.raises(ValueError, match=r"cat/a\.csv: 19 rows, but the data file cat/a\.csv"):
        load_run(tmp_path / "run", corpus)


def test_load_run_wrong_timestamp_raises_naming_row(tmp_path: Path) -> None:
    corpus = fake_root(tmp_path)
    stamps = list(corpus.load("cat/a.csv").timestamps)
    stamps[5], stamps[6] = stamps[6], stamps[5]
    write_run(tmp_path / "run" / "cat" / "a.csv", [f"{t},0,0" for t in stamps])
    with pytest.raises(ValueError, match=r"a\.csv: line 7 \(data row 5\): timestamp "
                                         r"'2020-01-01 00:06:00', but cat/a\.csv has"):
        load_run(tmp_path / "run", corpus)


def test_load_run_missing_file_raises_unless_allowed(tmp_path: Path) -> None:
    corpus = fake_root(tmp_path)
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="1 result file"):
        load_run(tmp_path / "run", corpus)
    assert load_run(tmp_path / "run", corpus, allow_missing=True) == {}


def test_load_corpus_shipped_subset_matches_documented_counts() -> None:
    corpus = NabCorpus(SUBSET)
    assert {rel.split("/", 1)[0] for rel in corpus.files} == set(REFERENCE_CATEGORIES)
    assert tuple(p.name for p in corpus.profiles) == PROFILE_NAMES
    assert corpus.load("realAdExchange/exchange-2_cpc_results.csv").probation == 243  # 1,624
    datas = [corpus.load(rel) for rel in corpus.files]  # counts from the corpus README
    assert len(datas) == 12 and sum(d.n for d in datas) == 24_192 + 9_610
    assert sum(len(d.windows) for d in datas) == 6 + 14
    assert sum(right - left + 1 for d in datas for left, right in d.windows) == 2_418 + 960


def test_shipped_subset_is_byte_identical_to_the_pinned_corpus() -> None:
    manifest = read_manifest()
    shipped = {rel: digest for rel, digest in manifest.items()
               if not rel.startswith("data/") or rel.split("/")[1] in REFERENCE_CATEGORIES}
    assert len(shipped) == 12 + 3  # the data files, the windows, the profiles, the licence
    assert mismatches(SUBSET, shipped) == []


def test_load_corpus_real_nab_matches_documented_counts() -> None:
    root = require_full_nab_root()
    assert mismatches(root, read_manifest()) == [], "not the pinned NAB commit"
    corpus = NabCorpus(root)
    assert len(corpus.files) == 58 and "realKnownCause/nyc_taxi.csv" in corpus.files
    assert tuple(p.name for p in corpus.profiles) == PROFILE_NAMES
    taxi = corpus.load("realKnownCause/nyc_taxi.csv")
    assert taxi.n == 10320 and taxi.probation == 750
    assert [right - left + 1 for left, right in taxi.windows] == [207] * 5
    datas = [corpus.load(rel) for rel in corpus.files]  # totals from the corpus README
    assert sum(d.n for d in datas) == 365_558 and sum(d.probation for d in datas) == 32_716
    assert sum(len(d.windows) for d in datas) == 116
    assert sum(right - left + 1 for d in datas for left, right in d.windows) == 33_495


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, NabCorpus]:
    """Random scores (fixed seed, 3 decimals so thresholds tie) on two small categories."""
    corpus = NabCorpus(SUBSET)
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    rng = np.random.default_rng(20240607)
    for rel in corpus.files:
        if rel.split("/", 1)[0] in REFERENCE_CATEGORIES:
            data = corpus.load(rel)
            scores = np.round(rng.beta(0.3, 3.0, data.n), 3)
            write_run(run_dir / rel, [f"{t},{v},{s!r}" for t, v, s in
                                      zip(data.timestamps, data.values, scores.tolist(),
                                          strict=True)])
    run = load_run(run_dir, corpus, [r for r in corpus.files
                                     if r.split("/", 1)[0] in REFERENCE_CATEGORIES])
    return run_dir, run, corpus


# The reference scorer's answers the tests ask for: name -> (categories, fixed threshold,
# thresholds fitted on this category).
REFERENCE_CALLS: dict[str, tuple[tuple[str, ...], str | None, str | None]] = {
    "both": (REFERENCE_CATEGORIES, None, None),
    "both at 0.5": (REFERENCE_CATEGORIES, "0.5", None),
    **{c: ((c,), None, None) for c in REFERENCE_CATEGORIES},
    **{f"{held} fitted on {fitted}": ((held,), None, fitted)
       for held, fitted in (REFERENCE_CATEGORIES, REFERENCE_CATEGORIES[::-1])},
}


def live_reference(root: Path, run_dir: Path, name: str) -> dict:
    files, threshold, fitted_on = REFERENCE_CALLS[name]
    args = ["--files", *files]
    if threshold:
        args += ["--threshold", threshold]
    if fitted_on:
        fitted = run_dir.parent / f"fit_{fitted_on}.json"
        fitted.write_text(json.dumps(live_reference(root, run_dir, fitted_on)))
        args += ["--thresholds", str(fitted)]
    proc = subprocess.run([sys.executable, str(root / "nab_score.py"), str(run_dir),
                           "--nab-root", str(SUBSET), "--quiet", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout)
    return {key: answer[key] for key in ("profiles", "per_file")}  # not its paths


def reference(run_dir: Path, name: str) -> dict:
    """The reference scorer's summary of the run: live beside a full corpus, else recorded."""
    root = full_nab_root()
    if root is None:
        return json.loads(RECORDED.read_text())[name]
    return live_reference(root, run_dir, name)


def test_recorded_reference_answers_equal_the_live_reference_scorer(reference_run) -> None:
    """NAB_RECORD_REFERENCE=1 rewrites the recording (after a change of the random run)."""
    root = require_full_nab_root()
    run_dir = reference_run[0]
    live = {name: live_reference(root, run_dir, name) for name in REFERENCE_CALLS}
    if os.environ.get("NAB_RECORD_REFERENCE"):
        RECORDED.write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    assert json.loads(RECORDED.read_text()) == live


def test_score_corpus_random_run_agrees_with_reference_scorer(reference_run) -> None:
    run_dir, run, corpus = reference_run
    theirs = reference(run_dir, "both")
    ours = score_corpus(run, corpus)
    assert set(ours) == set(theirs["profiles"]) == set(PROFILE_NAMES)
    for name, ref in theirs["profiles"].items():
        assert ours[name]["threshold"] == pytest.approx(ref["threshold"], abs=1e-12)
        assert ours[name]["score"] == pytest.approx(ref["score"], abs=1e-6)
        assert ours[name]["raw_score"] == pytest.approx(ref["raw_score"], abs=1e-6)
        assert 0.0 < ours[name]["threshold"] < 1.0  # a real sweep, not the never-fire answer
        for rel, raw in ours[name]["per_file"].items():
            assert raw == pytest.approx(theirs["per_file"][rel][name]["raw_score"], abs=1e-6)
    fixed = reference(run_dir, "both at 0.5")
    ours_fixed = score_corpus(run, corpus, dict.fromkeys(PROFILE_NAMES, 0.5))
    for name, ref in fixed["profiles"].items():
        assert ours_fixed[name]["score"] == pytest.approx(ref["score"], abs=1e-6)


def test_held_out_random_run_agrees_with_reference_folds(reference_run) -> None:
    run_dir, run, corpus = reference_run
    raw = dict.fromkeys(PROFILE_NAMES, 0.0)
    for held, fitted_on in (REFERENCE_CATEGORIES, REFERENCE_CATEGORIES[::-1]):
        fold = reference(run_dir, f"{held} fitted on {fitted_on}")
        for name in PROFILE_NAMES:
            raw[name] += fold["profiles"][name]["raw_score"]
    whole = reference(run_dir, "both")["profiles"]
    ours = held_out_leave_one_category_out(run, corpus)
    for name in PROFILE_NAMES:
        expected = normalise(raw[name], whole[name]["perfect_score"], whole[name]["null_score"])
        assert ours[name]["score"] == pytest.approx(expected, abs=1e-6)
