"""HitRate@P% from the replay's `metrics` column, and the replay output read back for scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.bench.corpus import Corpus, RootCause
from detector.bench.hitrate import (
    NO_RANKING,
    NO_ROOT_CAUSE,
    corpus_hit_rate,
    hit_rate,
    parse_ranking,
    ranked_alerts,
    replay_hit_rate,
)
from detector.bench.replay_output import read_replay_output
from tests.unit.bench_factories import write_corpus, write_replay


def cell(*pairs: tuple[str, float]) -> str:
    return json.dumps([list(p) for p in pairs])


@pytest.mark.parametrize("ranking, labelled, percent, expected", [
    (["m1", "m2", "m3"], ["m2", "m9"], 100, 0.5),     # top 2: m1, m2
    (["m1", "m2", "m3"], ["m3", "m9"], 100, 0.0),     # m3 is third
    (["m1", "m2", "m3"], ["m3", "m9"], 150, 0.5),     # top floor(3) = 3
    (["m1", "m2", "m3", "m4", "m5"], ["m5", "m4", "m1"], 150, 2 / 3),  # top floor(4.5) = 4
    (["m2"], ["m2"], 150, 1.0),                         # floor(1.5) = 1
    ([], ["m2"], 100, 0.0),                             # no ranking finds nothing
])
def test_hit_rate_counts_labelled_metrics_in_the_top_floor_p_of_them(
        ranking: list[str], labelled: list[str], percent: int, expected: float) -> None:
    assert hit_rate(ranking, labelled, percent) == pytest.approx(expected)


def test_parse_ranking_orders_by_share_and_rejects_other_shapes() -> None:
    assert parse_ranking(cell(("m07", 0.21), ("m03", 0.62), ("m01", 0.17))) == (
        "m03", "m07", "m01")
    assert parse_ranking("") == ()
    for bad in ('{"m1": 1}', '[["m1"]]', "[[1, 0.5]]", "not json"):
        with pytest.raises(ValueError):
            parse_ranking(bad)


def test_corpus_hit_rate_averages_over_alerts_inside_labelled_incidents() -> None:
    causes = (RootCause(10, 12, ("a", "b")), RootCause(30, 30, ("c",)))
    alerts = np.zeros(40, dtype=bool)
    alerts[[5, 11, 12, 30]] = True  # row 5 lies outside every incident
    rankings = {5: ("c",), 11: ("a", "b", "c"), 12: ("c", "a", "b"), 30: ("a", "c")}
    pairs = ranked_alerts(alerts, causes, rankings)
    assert [cause for _, cause in pairs] == [causes[0], causes[0], causes[1]]
    result = corpus_hit_rate(pairs)
    assert result == {"alerts": 3, "hitrate@100": pytest.approx((1 + 0.5 + 0) / 3),
                      "hitrate@150": pytest.approx((1 + 1 + 0) / 3)}
    assert corpus_hit_rate([]) == {"alerts": 0, "hitrate@100": None, "hitrate@150": None}


def tiny(tmp_path: Path, root_cause: bool = True) -> Corpus:
    causes = {"h/a.csv": [{"rows": [20, 24], "metrics": ["b"]}]} if root_cause else None
    return Corpus(write_corpus(tmp_path / "corpus", {"h/a.csv": [[1.0, 2.0]] * 30},
                               windows={"h/a.csv": [(20, 24)]}, root_cause=causes))


def test_hit_rate_of_a_replay_reads_the_metrics_column_of_its_alerts(tmp_path: Path) -> None:
    corpus = tiny(tmp_path)
    f = corpus.load("h/a.csv")
    write_replay(tmp_path / "run/h/a.csv", 30, scores={21: 0.9, 23: 0.8}, alerts=[21, 23],
                 rankings={21: cell(("b", 0.7), ("a", 0.3)), 23: cell(("a", 0.9), ("b", 0.1))})
    out = read_replay_output(tmp_path / "run/h/a.csv", f)
    assert out.alerts.nonzero()[0].tolist() == [21, 23] and out.scores[21] == 0.9
    assert out.rankings == {21: ("b", "a"), 23: ("a", "b")}
    result = replay_hit_rate(True, [f], [out])
    assert result == {"alerts": 2, "hitrate@100": 0.5, "hitrate@150": 0.5}


def test_hit_rate_is_not_available_without_rankings_or_root_causes(tmp_path: Path) -> None:
    corpus = tiny(tmp_path)
    f = corpus.load("h/a.csv")
    write_replay(tmp_path / "run/h/a.csv", 30, scores={21: 0.9}, alerts=[21])  # no column
    out = read_replay_output(tmp_path / "run/h/a.csv", f)
    assert out.rankings is None
    assert replay_hit_rate(True, [f], [out]) == NO_RANKING
    assert replay_hit_rate(False, [f], [out]) == NO_ROOT_CAUSE


def test_read_replay_output_rejects_rows_that_do_not_match_the_data(tmp_path: Path) -> None:
    f = tiny(tmp_path).load("h/a.csv")
    path = tmp_path / "run/h/a.csv"
    write_replay(path, 29)
    with pytest.raises(ValueError, match="29 rows"):
        read_replay_output(path, f)
    write_replay(path, 30, rankings={})
    text = path.read_text().replace(",0,0.000000,0.1,\n", ",2,0.000000,0.1,\n", 1)
    path.write_text(text)
    with pytest.raises(ValueError, match="line 2 .*alert '2' must be 0 or 1"):
        read_replay_output(path, f)
    write_replay(path, 30, alerts=[3], rankings={3: "[[1, 2]]"})
    with pytest.raises(ValueError, match="line 5 .*expected \\[\\[name, share\\]"):
        read_replay_output(path, f)
