"""The corpus loader: NAB layout plus probation.json and root_cause.json, rows never reordered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.bench.corpus import Corpus, RootCause, select
from detector.bench.nab.profiles import NAB_PROFILES, load_profiles
from tests.unit.bench_factories import write_corpus
from tests.unit.test_nab_scorer import SUBSET


def rows(n: int, value: float = 1.0) -> list[list[float]]:
    return [[value + i, 2 * value] for i in range(n)]


def test_load_reads_metrics_windows_probation_and_root_causes(tmp_path: Path) -> None:
    corpus = Corpus(write_corpus(
        tmp_path, {"hosts/h1.csv": rows(40), "hosts/h2.csv": rows(30), "top.csv": rows(10)},
        windows={"hosts/h1.csv": [(25, 29), (12, 14)]},
        probation={"hosts/h1.csv": 10, "hosts/h2.csv": 20},
        root_cause={"hosts/h1.csv": [{"rows": [26, 28], "metrics": ["b"]}]}))
    assert corpus.files == ("hosts/h1.csv", "hosts/h2.csv", "top.csv")
    h1 = corpus.load("hosts/h1.csv")
    assert h1.metrics == ("a", "b") and h1.values.shape == (40, 2)
    assert h1.values[7].tolist() == [8.0, 2.0]
    assert h1.windows == ((12, 14), (25, 29))
    assert h1.probation == 10 and h1.scored_rows == 30 and h1.category == "hosts"
    assert h1.root_causes == (RootCause(26, 28, ("b",)),)
    assert h1.scored_days == pytest.approx(30 * 300 / 86_400)
    assert corpus.load("hosts/h2.csv").probation == 20
    top = corpus.load("top.csv")
    assert top.probation == 0 and top.windows == () and top.category == ""
    assert corpus.profiles == NAB_PROFILES and corpus.has_root_causes


def test_load_under_nab_rules_takes_fifteen_percent_as_probation(tmp_path: Path) -> None:
    corpus = Corpus(write_corpus(tmp_path, {"c/f.csv": rows(200)}, probation={"c/f.csv": 5}),
                    nab_rules=True)
    assert corpus.load("c/f.csv").probation == 30


def test_load_keeps_missing_values_as_nan_and_row_order(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"c/f.csv": rows(3)})
    path = tmp_path / "data/c/f.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",oops"
    path.write_text("\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n")
    f = Corpus(tmp_path).load("c/f.csv")
    assert f.values[0].tolist() == [3.0, 2.0] and np.isnan(f.values[2, 1])
    assert f.timestamps[0] > f.timestamps[1]  # as written: never sorted


def test_profiles_come_from_config_when_present(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"c/f.csv": rows(5)})
    (tmp_path / "config").mkdir()
    (tmp_path / "config/profiles.json").write_text(json.dumps(
        {"strict": {"CostMatrix": {"tpWeight": 1, "fnWeight": 3, "fpWeight": 0.5}}}))
    (profile,) = Corpus(tmp_path).profiles
    assert (profile.name, profile.tp, profile.fp, profile.fn) == ("strict", 1.0, 0.5, 3.0)


def test_builtin_profiles_equal_nabs_profiles_json() -> None:
    assert NAB_PROFILES == tuple(load_profiles(SUBSET).values())


@pytest.mark.parametrize("broken, message", [
    ({"windows": {"c/ghost.csv": [(1, 2)]}}, "labels names files not under data/"),
    ({"probation": {"c/ghost.csv": 3}}, "probation.json names files"),
    ({"probation": {"c/f.csv": 99}}, "probation 99 outside"),
    ({"probation": {"c/f.csv": 5}, "windows": {"c/f.csv": [(2, 3)]}}, "inside the unlabelled"),
])
def test_load_rejects_inconsistent_corpus_files(tmp_path: Path, broken: dict,
                                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Corpus(write_corpus(tmp_path, {"c/f.csv": rows(20)}, **broken)).load("c/f.csv")


def test_corpus_without_labels_is_not_a_corpus(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match="labels/combined_windows.json"):
        Corpus(tmp_path)


def test_select_matches_categories_paths_and_globs() -> None:
    files = ("a/x.csv", "a/y.csv", "b/x.csv")
    assert select(files, None) == list(files)
    assert select(files, ["a"]) == ["a/x.csv", "a/y.csv"]
    assert select(files, ["*/x"]) == ["a/x.csv", "b/x.csv"]
    with pytest.raises(ValueError, match="no corpus file matches"):
        select(files, ["c"])
