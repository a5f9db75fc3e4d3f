"""`detector report` over a real replay run: figures, the index table, label windows."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from detector.cli import main
from detector.report import HEIGHT_PX, WIDTH_PX, envelope

T0 = datetime(2014, 5, 1)
STREAMS = ("hosts/a.csv", "links/b.csv")


def stamp(row: int) -> str:
    return (T0 + timedelta(minutes=5 * row)).strftime("%Y-%m-%d %H:%M:%S")


def write_stream(path: Path, seed: int, spikes: tuple[int, ...], n: int = 400) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for i in range(n):
            value = 50 + 10 * math.sin(i / 12) + rng.normal(0, 1) + (60 if i in spikes else 0)
            writer.writerow([stamp(i), f"{value:.4f}"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A replay of two streams through the CLI; links/* alert at 0.6, the rest at 0.7."""
    root = tmp_path_factory.mktemp("report")
    write_stream(root / "in" / STREAMS[0], seed=0, spikes=(150, 250, 330))
    write_stream(root / "in" / STREAMS[1], seed=1, spikes=(200,))
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("DETECTOR_")]:
            env.delenv(name)
        env.setenv("DETECTOR_ALERT_OVERRIDES", '{"links/*": 0.6}')
        assert main(["replay", str(root / "in"), "--out", str(root / "run"), "--jobs", "1"]) == 0
    yield root / "run"


def alert_rows(path: Path) -> list[int]:
    with path.open() as handle:
        return [i for i, r in enumerate(csv.DictReader(handle)) if r["alert"] == "1"]


def table(index: Path) -> dict[str, list[str]]:
    """Summary table of index.html: first cell (link text) -> the other cells."""
    rows = {}
    for row in re.findall(r"<tr(?: class=total)?>(<td>.*?)</tr>", index.read_text()):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def report(run_dir: Path, out: Path, *extra: str) -> Path:
    assert main(["report", str(run_dir), "--out", str(out), *extra]) == 0
    return out / "index.html"


def test_report_draws_one_valid_png_per_stream_with_red_alert_markers(run_dir: Path,
                                                                      tmp_path: Path) -> None:
    index = report(run_dir, tmp_path / "report")
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["hosts__a.png", "links__b.png"]
    html = index.read_text()
    for png, rel in zip(pngs, STREAMS, strict=True):
        assert f'src="{png.name}"' in html
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        pixels = image.imread(png)
        assert pixels.shape[:2] == (HEIGHT_PX, WIDTH_PX)
        red = (pixels[..., 0] > 0.95) & (pixels[..., 1] < 0.05) & (pixels[..., 2] < 0.05)
        assert (red.sum() > 0) == bool(alert_rows(run_dir / rel)), png.name


def test_index_lists_events_alerts_and_the_threshold_each_stream_used(run_dir: Path,
                                                                      tmp_path: Path) -> None:
    rows = table(report(run_dir, tmp_path / "report"))
    counts = {rel: len(alert_rows(run_dir / rel)) for rel in STREAMS}
    assert sum(counts.values()) >= 2, "the spikes must alert for this test to mean anything"
    assert rows["hosts/a.csv"] == ["400", str(counts["hosts/a.csv"]), "0.7"]
    assert rows["links/b.csv"] == ["400", str(counts["links/b.csv"]), "0.6"]
    assert rows["total"] == ["800", str(sum(counts.values())), ""]


def test_label_windows_count_as_detected_only_when_they_hold_an_alert(run_dir: Path,
                                                                      tmp_path: Path) -> None:
    alerts = alert_rows(run_dir / "hosts/a.csv")
    first = alerts[0]
    assert first >= 8
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({
        # starts on the alert row (edges are inclusive) / ends on the row before it
        "hosts/a.csv": [[stamp(first), stamp(first + 3)], [stamp(first - 8), stamp(first - 1)]],
        "links/b.csv": [],
    }))
    rows = table(report(run_dir, tmp_path / "report", "--labels", str(labels)))
    outside = len([r for r in alerts if not first - 8 <= r <= first + 3])
    b_alerts = str(len(alert_rows(run_dir / "links/b.csv")))
    assert rows["hosts/a.csv"][3:] == ["2", "1", "1", str(outside)]
    assert rows["links/b.csv"][3:] == ["0", "0", "0", b_alerts]
    assert rows["total"][3:] == ["2", "1", "1", str(outside + int(b_alerts))]
    assert len(list((tmp_path / "report").glob("*.png"))) == 2


def test_report_without_the_source_file_still_draws_the_scores(run_dir: Path,
                                                               tmp_path: Path) -> None:
    copy = tmp_path / "run"
    (copy / "hosts").mkdir(parents=True)
    (copy / "hosts/a.csv").write_bytes((run_dir / "hosts/a.csv").read_bytes())
    index = report(copy, tmp_path / "report")
    assert (tmp_path / "report/hosts__a.png").stat().st_size > 10_000
    assert table(index)["hosts/a.csv"][:2] == ["400", str(len(alert_rows(copy / "hosts/a.csv")))]


def test_report_of_a_folder_without_results_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_envelope_keeps_every_column_extreme_in_row_order() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=22_001)
    y[5_000:5_100] = np.nan
    x = np.arange(y.size, dtype=float)
    ex, ey = envelope(x, y, 1_000)
    assert ey.size <= 2_000 and np.all(np.diff(ex) >= 0)
    assert np.nanmax(ey) == np.nanmax(y) and np.nanmin(ey) == np.nanmin(y)
    per = -(-y.size // 1_000)
    for column in (0, 7, y.size // per):  # the last column is the short one
        run = y[column * per:(column + 1) * per]
        assert {np.nanmin(run), np.nanmax(run)} <= set(ey[2 * column:2 * column + 2])
    assert np.isnan(ey[2 * (5_050 // per)])  # an all-NaN column stays a gap
