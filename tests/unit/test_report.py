"""`detector report` over a real replay run: one self-contained page, its tables (streams with
label windows caught and missed, alerts with ranked metrics) and the panels' data."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from detector.cli import main
from detector.offline.report.load import StreamRun
from detector.offline.report.series import COLUMNS, envelope, stream_payload, to_json
from tests.unit.report_data import (
    FLOWS_SPIKE,
    HOST,
    LINK,
    LINK_METRICS,
    PACKETS_DROP,
    alert_rows,
    replay_run,
    write_inputs,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(run directory, labels file)."""
    root = tmp_path_factory.mktemp("report")
    labels = write_inputs(root)
    yield replay_run(root), labels


class Tables(HTMLParser):
    """Cell texts of every table by id: {"streams": {"body": [[...]], "foot": [[...]]}}."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list[list[str]]]] = {}
        self._table: str | None = None
        self._part = ""
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self._table = dict(attrs)["id"]
            self.tables[self._table] = {"body": [], "foot": []}
        elif tag in ("tbody", "tfoot"):
            self._part = tag[1:]
        elif tag == "tr" and self._part:
            self.tables[self._table][self._part].append([])
        elif tag == "td":
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[self._table][self._part][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("tbody", "tfoot"):
            self._part = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def report(run_dir: Path, out: Path, *extra: str) -> Path:
    assert main(["report", str(run_dir), "--out", str(out), *extra]) == 0
    return out / "index.html"


def page_data(index: Path) -> dict:
    text = index.read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                      re.S)
    assert found
    return json.loads(found.group(1))


def test_report_is_one_page_that_needs_no_other_file_or_network(run, tmp_path: Path) -> None:
    index = report(run[0], tmp_path / "report")
    assert [p.name for p in (tmp_path / "report").iterdir()] == ["index.html"]
    text = index.read_text()
    assert not re.search(r'\b(src|href)="(?!#)', text), "only in-page links"
    assert "uPlot" in text and "https://" not in text.replace(
        "https://github.com/leeoniya/uPlot", "")
    assert [s["name"] for s in page_data(index)["streams"]] == [LINK, HOST]


def test_streams_table_counts_events_alerts_and_the_threshold_each_stream_used(
        run, tmp_path: Path) -> None:
    tables = Tables(report(run[0], tmp_path / "report").read_text()).tables
    counts = {rel: len(alert_rows(run[0] / rel)) for rel in (LINK, HOST)}
    assert counts[LINK] >= 2 and counts[HOST] >= 1, "the incidents must alert"
    assert tables["streams"]["body"] == [
        [LINK, "4", "2016", str(counts[LINK]), "0.7", "1"],
        [HOST, "1", "2016", str(counts[HOST]), "0.6", "1"]]
    assert tables["streams"]["foot"] == [["total", "", "4032", str(sum(counts.values())), "", ""]]


def test_label_windows_count_as_caught_only_when_they_hold_an_alert(run, tmp_path: Path) -> None:
    run_dir, labels = run
    tables = Tables(report(run_dir, tmp_path / "report", "--labels", str(labels)).read_text())
    rows = {r[0]: r[6:] for r in tables.tables["streams"]["body"]}
    link = [int(a["row"]) for a in alert_rows(run_dir / LINK)]
    inside = [r for r in link if FLOWS_SPIKE - 10 <= r <= FLOWS_SPIKE + 10
              or PACKETS_DROP - 5 <= r <= PACKETS_DROP + 15]
    assert inside, "the flows spike and the packets drop must alert"
    caught = (any(FLOWS_SPIKE - 10 <= r <= FLOWS_SPIKE + 10 for r in link)
              + any(PACKETS_DROP - 5 <= r <= PACKETS_DROP + 15 for r in link))
    assert rows[LINK] == ["3", str(caught), str(3 - caught), str(len(link) - len(inside))]
    assert rows[HOST][:3] == ["1", "1", "0"]


def test_alerts_table_lists_every_alert_with_its_metrics_ranked_by_share(run,
                                                                         tmp_path: Path) -> None:
    tables = Tables(report(run[0], tmp_path / "report").read_text()).tables
    body = tables["alerts"]["body"]
    expected = [(LINK, a) for a in alert_rows(run[0] / LINK)] + \
        [(HOST, a) for a in alert_rows(run[0] / HOST)]
    assert [(r[0], r[1], r[2]) for r in body] == [
        (a["timestamp"], rel, f"{float(a['anomaly_score']):.3f}") for rel, a in expected]
    assert {r[3] for r in body} <= {"warning", "critical"}
    spike = next(r for r, (_, a) in zip(body, expected, strict=True)
                 if a["row"] == str(FLOWS_SPIKE))
    first = spike[4].splitlines()[0]
    ranked = json.loads(next(a for _, a in expected if a["row"] == str(FLOWS_SPIKE))["metrics"])
    assert ranked[0][0] == "flows"
    assert re.fullmatch(rf"flows {round(ranked[0][1] * 100)}%: [\d.]+, expected [\d.]+", first)
    lines = spike[4].splitlines()
    assert [line.split()[0] for line in lines[:3]] == [m for m, _ in ranked[:3]]
    assert lines[3:] == ([f"+{len(ranked) - 3} more"] if len(ranked) > 3 else [])
    assert re.search(r"bytes_out [<\d]+%: \d{3}(\.\d+)?k, expected \d{3}(\.\d+)?k",
                     spike[4]), "bytes_out is about 530k (a 1e4 scale would read 53k)"


def test_each_metric_has_its_own_panel_and_an_alert_is_marked_on_the_metric_behind_it(
        run, tmp_path: Path) -> None:
    streams = page_data(report(run[0], tmp_path / "report"))["streams"]
    link = streams[0]
    assert [p["metric"] for p in link["panels"]] == list(LINK_METRICS)
    at = {p["metric"]: p for p in link["panels"]}
    spike_time = at["flows"]["x"][at["flows"]["marks"][0]]
    assert [p["x"][p["marks"][0]] if p["marks"] else None for p in link["panels"]].count(
        spike_time) == 1, "marked on flows only"
    assert at["flows"]["shares"][0] > 0.5
    for panel in link["panels"]:
        assert len(panel["x"]) == len(panel["y"]) == len(panel["e"])
    assert len(link["score"]["marks"]) == len(alert_rows(run[0] / LINK))
    assert link["threshold"] == 0.7 and streams[1]["threshold"] == 0.6


def test_report_of_a_run_without_expected_and_ranked_columns_still_draws_it(
        run, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(run[0], old)
    for rel in (LINK, HOST):
        with (run[0] / rel).open(newline="") as handle:
            rows = [r[:5] for r in csv.reader(handle)]
        with (old / rel).open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    index = report(old, tmp_path / "report")
    link = page_data(index)["streams"][0]
    assert [p["metric"] for p in link["panels"]] == list(LINK_METRICS)
    assert all(p["e"] is None and p["y"] for p in link["panels"])
    # Without a ranking, an alert of a multi-metric stream is marked on every metric.
    assert {len(p["marks"]) for p in link["panels"]} == {len(alert_rows(run[0] / LINK))}
    body = Tables(index.read_text()).tables["alerts"]["body"]
    assert len(body) == len(alert_rows(run[0] / LINK)) + len(alert_rows(run[0] / HOST))


def test_report_without_the_source_file_draws_expected_values_and_scores(
        run, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    (copy / "hosts").mkdir(parents=True)
    shutil.copy(run[0] / HOST, copy / HOST)
    index = report(copy, tmp_path / "report")
    (host,) = page_data(index)["streams"]
    assert host["note"].startswith("input series unknown")
    assert [(p["metric"], p["y"], bool(p["e"])) for p in host["panels"]] == [("cpu", None, True)]
    assert Tables(index.read_text()).tables["streams"]["body"][0][:4] == [
        HOST, "1", "2016", str(len(alert_rows(copy / HOST)))]


def test_report_of_a_folder_without_results_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_a_long_stream_is_drawn_from_at_most_two_points_per_pixel_column_per_series() -> None:
    rng = np.random.default_rng(3)
    n = 30_000
    alert = np.zeros(n, bool)
    alert[[100, 20_000]] = True
    actual = rng.normal(size=n)
    actual[12_345] = 40.0
    stream = StreamRun("s.csv", "s0", 1.4e9 + 300.0 * np.arange(n), rng.random(n), alert, 0.7,
                       0.9, ["x"], {"x": actual}, {"x": actual * 0.9},
                       ranked={100: [("x", 1.0)], 20_000: [("x", 1.0)]})
    payload = json.loads(to_json(stream_payload(stream)))
    (panel,) = payload["panels"]
    assert len(panel["x"]) <= 2 * 2 * COLUMNS + 2 + 2
    assert max(panel["y"]) == 40.0, "a one-row spike survives the downsampling"
    assert [panel["x"][i] for i in panel["marks"]] == [1.4e9 + 300.0 * 100,
                                                       1.4e9 + 300.0 * 20_000]
    assert panel["x"][0] == 1.4e9 and panel["x"][-1] == 1.4e9 + 300.0 * (n - 1)
    assert len(payload["score"]["x"]) <= 2 * COLUMNS + 2 + 2


def test_envelope_keeps_every_column_extreme_in_row_order() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=22_001)
    y[5_000:5_100] = np.nan
    x = np.arange(y.size, dtype=float)
    ex, ey = envelope(x, y, 1_000)
    assert ey.size <= 2_000 and np.all(np.diff(ex) > 0)
    assert np.nanmax(ey) == np.nanmax(y) and np.nanmin(ey) == np.nanmin(y)
    per = -(-y.size // 1_000)
    for column in (0, 7, y.size // per):  # the last column is the short one
        run = y[column * per:(column + 1) * per]
        assert {np.nanmin(run), np.nanmax(run)} <= set(ey[(ex >= column * per)
                                                          & (ex < (column + 1) * per)])
    assert np.isnan(ey[(ex >= 5_050 // per * per) & (ex < (5_050 // per + 1) * per)]).all()
