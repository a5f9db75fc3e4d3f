"""The simulated traffic corpus: incidents labelled where injected, deterministic, loadable."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from detector.bench.corpus import Corpus
from detector.cli import main
from detector.sim.corpus import (
    CLEAN,
    ROOT_CAUSE_METRICS,
    TrafficCorpusSpec,
    plan_corpus,
    write_traffic_corpus,
)
from detector.sim.traffic import INCIDENT_KINDS, METRICS, TrafficGenerator
from tests.unit.factories import files_of

SPEC = TrafficCorpusSpec(per_kind=1, clean=2, days=3.0, history_days=1.0, seed=5)


def test_same_spec_writes_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    write_traffic_corpus(tmp_path / "a", SPEC)
    write_traffic_corpus(tmp_path / "b", SPEC)
    write_traffic_corpus(tmp_path / "c", dataclasses.replace(SPEC, seed=6))
    a = files_of(tmp_path / "a")
    assert a == files_of(tmp_path / "b")
    assert a != files_of(tmp_path / "c")
    assert len([p for p in a if p.startswith("data/")]) == len(INCIDENT_KINDS) + 2


def test_every_incident_is_labelled_around_the_rows_it_changed(tmp_path: Path) -> None:
    labelled = write_traffic_corpus(tmp_path, SPEC)
    plan, _ = plan_corpus(SPEC)
    quiet = TrafficGenerator(dataclasses.replace(plan, incidents=()), seed=SPEC.seed)
    clean = np.array([[[e["metrics"][m] for m in METRICS] for e in quiet.step()]
                      for _ in range(SPEC.steps)])
    corpus = Corpus(tmp_path)
    assert sorted(li.incident.kind for li in labelled) == sorted(INCIDENT_KINDS)
    for li in labelled:
        f = corpus.load(li.rel)
        assert f.category == li.incident.kind and f.probation == SPEC.history == 288
        ((left, right),) = f.windows
        assert (left, right) == li.window
        start = li.incident.start_index
        assert left == start - 12 and SPEC.history <= left and right < f.n
        quiet_rows = clean[:, plan.streams.index(li.incident.stream)]
        changed = np.flatnonzero(np.any(np.abs(f.values - quiet_rows) > 1e-6 * (
            np.abs(quiet_rows) + 1), axis=1))
        assert changed[0] == start, li.incident.kind  # untouched before, changed from start
        assert changed[changed <= right].size > 0
        if li.incident.kind in ("spike", "outage", "ratio", "noise_burst", "small_packets"):
            assert right == li.incident.end_index + 24  # two hours after it ends
            assert changed[-1] <= li.incident.end_index  # back to normal after
    for rel in corpus.files:
        if rel.startswith(f"{CLEAN}/"):
            assert corpus.load(rel).windows == ()


def test_root_causes_name_the_metrics_of_partial_incidents(tmp_path: Path) -> None:
    labelled = write_traffic_corpus(tmp_path, SPEC)
    causes = json.loads((tmp_path / "root_cause.json").read_text())
    partial = [li for li in labelled if li.incident.kind in ROOT_CAUSE_METRICS]
    assert sorted(causes) == sorted(li.rel for li in partial)
    for li in partial:
        assert causes[li.rel] == [{"rows": [li.incident.start_index, li.window[1]],
                                   "metrics": list(ROOT_CAUSE_METRICS[li.incident.kind])}]
    assert ROOT_CAUSE_METRICS["small_packets"] == ("packets_in", "flows")


def test_corpus_too_short_for_its_incidents_is_refused() -> None:
    with pytest.raises(ValueError, match="no room for incidents"):
        plan_corpus(dataclasses.replace(SPEC, days=1.2))
    with pytest.raises(ValueError, match="choose from"):
        plan_corpus(dataclasses.replace(SPEC, kinds=("meteor",)))


def test_command_writes_the_corpus_and_says_what(tmp_path: Path, capsys, clean_env) -> None:
    code = main(["bench", "make-traffic-corpus", str(tmp_path / "t"), "--per-kind", "1",
                 "--clean", "1", "--days", "2", "--history-days", "1", "--kinds", "spike",
                 "ramp"])
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 3 streams of 576 rows (288 of history)" in out and "ramp, spike" in out
    assert Corpus(tmp_path / "t").files[0].startswith("clean/")
    assert main(["bench", "make-traffic-corpus", str(tmp_path / "u"), "--kinds", "meteor"]) == 2
