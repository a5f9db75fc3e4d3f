"""Label windows as row ranges: one rule (NAB's scorer's) for the benches, evaluate and report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from detector.bench.nab.corpus import window_rows
from detector.cli import main
from tests.unit.test_csv_format import T0, iso, write_lines

# Rows in file order, as NAB has them: a repeated stamp (rows 2, 3) and a step back (row 5).
SECONDS = np.array([T0, T0 + 60, T0 + 120, T0 + 120, T0 + 180, T0 + 60, T0 + 240, T0 + 300])


def span(start: float, end: float) -> tuple[str, str]:
    return iso(start), iso(end)


def test_each_edge_is_the_first_row_stamped_with_it_in_file_order() -> None:
    assert window_rows(SECONDS, [span(T0 + 120, T0 + 180)]) == ((2, 4),)
    assert window_rows(SECONDS, [span(T0 + 60, T0 + 120)]) == ((1, 2),)


def test_an_edge_between_rows_snaps_inwards() -> None:
    assert window_rows(SECONDS, [span(T0 + 200, T0 + 290)]) == ((6, 6),)
    assert window_rows(SECONDS, [span(T0 - 30, T0 + 30)]) == ((0, 0),)


def test_windows_come_back_sorted_whatever_the_label_order() -> None:
    assert window_rows(SECONDS, [span(T0 + 240, T0 + 300), span(T0, T0 + 60)]) == (
        (0, 1), (6, 7))


def test_label_edges_read_as_input_timestamps_are_iso_or_epoch_seconds() -> None:
    iso_edges = window_rows(SECONDS, [span(T0 + 120, T0 + 180)])
    assert window_rows(SECONDS, [(str(T0 + 120), f"{T0 + 180}.0")]) == iso_edges
    assert window_rows(SECONDS, [(f"{iso(T0 + 120)}.000000", iso(T0 + 180))]) == iso_edges


@pytest.mark.parametrize(("spans", "problem"), [
    ([span(T0 + 400, T0 + 500)], "matches no records"),
    ([span(T0 + 60, T0 + 180), span(T0 + 120, T0 + 240)], "overlapping windows"),
    ([("later", iso(T0))], "'later' is neither ISO-8601 nor epoch seconds"),
    ([(iso(T0),)], "expected [start, end]"),
])
def test_an_unusable_window_is_an_error_naming_the_file(spans: list, problem: str) -> None:
    with pytest.raises(ValueError, match="^cat/f.csv: ") as caught:
        window_rows(SECONDS, spans, "cat/f.csv")
    assert problem in str(caught.value)


def test_evaluate_reads_labels_by_the_same_rule_and_names_the_labels_file(
        tmp_path: Path, clean_env, capsys) -> None:
    rows = [f"{T0 + 60 * i},{50 + (i % 7)}" for i in range(120)]
    write_lines(tmp_path / "data/a.csv", ["timestamp,value", *rows])
    clean_env.setenv("DETECTOR_MODEL_HIDDEN_SIZE", "8")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.csv": [[iso(T0 + 6000), iso(T0 + 6600)]]}))
    assert main(["evaluate", str(tmp_path / "data"), "--labels", str(labels)]) == 0
    assert re.search(r"NAB standard .*windows [01]/1, FP", capsys.readouterr().out)
    labels.write_text(json.dumps({"a.csv": [[iso(T0 + 60_000), iso(T0 + 66_000)]]}))
    assert main(["evaluate", str(tmp_path / "data"), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"detector: {labels}: a.csv: window ") and "matches no records" in err
