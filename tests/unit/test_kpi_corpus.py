"""The simulated cloud-KPI corpus: incidents where labelled, KPIs shaped as described,
deterministic, loadable by `bench corpus`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from detector.bench.corpus import Corpus
from detector.cli import main
from detector.sim.kpi import (
    INCIDENTS,
    KPIS,
    LAG_STEPS,
    LEAD_STEPS,
    KpiCorpusSpec,
    load,
    simulate,
    write_kpi_corpus,
)
from tests.unit.factories import files_of

SPEC = KpiCorpusSpec(per_kind=1, clean=1, days=3.0, history_days=1.0, seed=5)


def test_same_spec_writes_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    write_kpi_corpus(tmp_path / "a", SPEC)
    write_kpi_corpus(tmp_path / "b", SPEC)
    write_kpi_corpus(tmp_path / "c", dataclasses.replace(SPEC, seed=6))
    a = files_of(tmp_path / "a")
    assert a == files_of(tmp_path / "b")
    assert a != files_of(tmp_path / "c")
    assert len([p for p in a if p.startswith("data/")]) == len(INCIDENTS) + len(KPIS)


def test_every_incident_is_labelled_around_its_rows_after_the_history(tmp_path: Path) -> None:
    rows = write_kpi_corpus(tmp_path, SPEC)
    corpus = Corpus(tmp_path)
    assert sorted(corpus.files) == sorted(rows)
    for rel, incident_rows in rows.items():
        f = corpus.load(rel)
        assert f.probation == SPEC.history == 1440 and f.n == SPEC.steps
        if not incident_rows:
            assert f.windows == () and rel.split("/")[1].startswith("clean_")
            continue
        start, end = incident_rows
        ((left, right),) = f.windows
        assert (left, right) == (start - LEAD_STEPS, end + LAG_STEPS)
        assert SPEC.history <= left and right < f.n


@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: f"{i.kpi}-{i.kind}")
def test_an_incident_changes_its_kpi_from_its_start_and_not_before(incident) -> None:
    steps, start = 3 * 1440, 2000
    hit, end = simulate(incident.kpi, incident, start, steps, np.random.default_rng(1))
    quiet, none = simulate(incident.kpi, None, start, steps, np.random.default_rng(1))
    assert none == -1 and end == start + max(incident.steps, 1) - 1
    np.testing.assert_array_equal(hit[:start], quiet[:start])
    span = slice(start, start + (incident.steps or 60))
    ratio = hit[span].mean() / max(quiet[span].mean(), 0.01)
    assert (ratio < 0.5) if incident.kind == "drop" else (ratio > 1.4), ratio


def test_kpis_have_the_shapes_that_make_them_hard() -> None:
    steps = 7 * 1440
    rng = np.random.default_rng(2)
    crashes, _ = simulate("crashes", None, 0, steps, rng)
    errors, _ = simulate("error_pct", None, 0, steps, rng)
    latency, _ = simulate("latency_ms", None, 0, steps, rng)
    assert 3 <= (crashes > 0).sum() / 7 <= 10  # a few crashes a day, zeros between
    assert np.array_equal(crashes, np.round(crashes))
    assert (errors == 0).mean() > 0.3 and errors.max() >= 1.0  # quiet, a whole % at night
    assert np.percentile(latency, 99.9) > 2.5 * np.median(latency)  # a heavy tail
    busy = load(steps)
    assert busy.max() <= 1.0 and busy[5 * 1440:].max() < 0.71  # 2026-03-07 is a Saturday


def test_command_writes_the_corpus_and_says_what(tmp_path: Path, capsys, clean_env) -> None:
    code = main(["bench", "make-kpi-corpus", str(tmp_path / "k"), "--per-kind", "1",
                 "--clean", "0", "--days", "2", "--history-days", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"wrote {len(INCIDENTS)} files of 2880 rows (1440 of history)" in out
    assert main(["bench", "make-kpi-corpus", str(tmp_path / "u"), "--days", "1.1"]) == 2
