"""The report page in a real browser (headless Chromium): it loads without errors or network
requests, its tables hold the run's rows, sorting, filtering and an alert's zoom work, and a
screenshot is kept as a test artefact (test-artifacts/report.png, or $TEST_ARTIFACTS_DIR)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.cli import main
from tests.conftest import REPO
from tests.headless_chromium import Chromium, chromium_binary
from tests.unit.report_data import (
    FLOWS_SPIKE,
    HOST,
    LINK,
    alert_rows,
    replay_run,
    stamp,
    write_inputs,
)

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO / "test-artifacts"))
READY = "window.report && window.report.ready && document.querySelectorAll('.uplot').length"
# Move the mouse over the fourth panel (flows) at its alert; every panel's legend values.
HOVER_FLOWS_SPIKE = """(() => {
  const group = window.report.drawn.get('s0'), u = group[3];
  const t = u.data[0][u.data[u.data.length - 1].findIndex(v => v != null)];
  const box = u.over.getBoundingClientRect();
  u.over.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,
    clientX: box.left + u.valToPos(t, 'x'), clientY: box.top + 10}));
  return group.map(p => Array.from(p.root.querySelectorAll('.u-legend .u-value'))
    .map(v => v.textContent));
})()"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Chromium]]:
    """(run directory, the browser showing the run's report with its labels)."""
    binary = chromium_binary()
    if binary is None:
        pytest.fail("headless Chromium not found: scripts/test installs Debian's chromium "
                    "(scripts/test-tools, as root); or set DETECTOR_TEST_CHROMIUM")
    root = tmp_path_factory.mktemp("browser")
    labels = write_inputs(root)
    run = replay_run(root)
    assert main(["report", str(run), "--labels", str(labels), "--out", str(root / "r")]) == 0
    with Chromium(binary, width=1280, height=1600) as browser:
        seconds = browser.open((root / "r/index.html").as_uri())
        browser.wait_for(READY)
        assert seconds < 3.0, f"the page took {seconds:.1f} s to load"
        yield run, browser


def input_value(run: Path, row: int, metric: str) -> float:
    with (run.parent / "in" / LINK).open() as handle:
        return float(list(csv.DictReader(handle))[row][metric])


def rows(browser: Chromium, table: str, column: int = 0) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{table} tbody tr'))"
        f".filter(r => !r.hidden).map(r => r.cells[{column}].textContent.trim())")


def test_page_loads_without_errors_or_network_and_draws_the_first_stream(page) -> None:
    run, browser = page
    assert browser.errors() == []
    assert [u for u in browser.requests() if not u.startswith("file://")] == []
    # The first stream is in view: four metric panels and the score panel, each a canvas.
    assert browser.evaluate("document.querySelectorAll('#s0 .uplot canvas').length") == 5
    # Hovering the flows spike shows its values there and the score below (cursors synced).
    legends = browser.evaluate(HOVER_FLOWS_SPIKE)
    alert = next(a for a in alert_rows(run / LINK) if a["row"] == str(FLOWS_SPIKE))
    time, actual, expected, marker = legends[3]
    assert time == stamp(FLOWS_SPIKE)
    assert float(actual) == pytest.approx(input_value(run, FLOWS_SPIKE, "flows"), rel=1e-3)
    assert float(expected) == pytest.approx(float(alert["expected_flows"]), rel=1e-3)
    share = json.loads(alert["metrics"])[0][1]
    assert marker == f"{round(share * 100)}% of the surprise"
    assert legends[4] == [stamp(FLOWS_SPIKE), f"{float(alert['anomaly_score']):.3f}", "0.7",
                          f"{float(alert['anomaly_score']):.3f}"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(ARTIFACTS / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_tables_hold_one_row_per_stream_and_per_alert(page) -> None:
    run, browser = page
    assert rows(browser, "streams") == [LINK, HOST]
    alerts = alert_rows(run / LINK) + alert_rows(run / HOST)
    assert rows(browser, "alerts") == [a["timestamp"] for a in alerts]
    assert browser.evaluate("document.querySelector('.shown[data-table=alerts]').textContent") \
        == f"{len(alerts)} of {len(alerts)} shown"


def test_sorting_and_filtering_the_tables(page) -> None:
    run, browser = page
    # The table shows scores to 3 decimals.
    scores = [float(f"{float(a['anomaly_score']):.3f}")
              for a in alert_rows(run / LINK) + alert_rows(run / HOST)]
    browser.evaluate("document.querySelectorAll('#alerts th')[2].click()")  # score
    shown = [float(v) for v in rows(browser, "alerts", 2)]
    assert shown == sorted(scores, reverse=True)
    browser.evaluate("document.querySelectorAll('#alerts th')[2].click()")
    assert [float(v) for v in rows(browser, "alerts", 2)] == sorted(scores)
    type_in = ("(() => {{ const f = document.querySelector('input.filter[data-table=streams]');"
               "f.value = {!r}; f.dispatchEvent(new Event('input')); }})()")
    browser.evaluate(type_in.format("cpu"))
    assert rows(browser, "streams") == [HOST]
    assert browser.evaluate("document.getElementById('s0').hidden") is True
    browser.evaluate(type_in.format(""))
    assert rows(browser, "streams") == [LINK, HOST]
    assert browser.evaluate("document.getElementById('s0').hidden") is False


def test_clicking_an_alert_zooms_every_panel_of_its_stream_around_it(page) -> None:
    _, browser = page
    row = (f"Array.from(document.querySelectorAll('#alerts tbody tr'))"
           f".find(r => r.cells[0].textContent === {stamp(FLOWS_SPIKE)!r})")
    t = browser.evaluate(f"Number({row}.dataset.t)")
    browser.evaluate(f"{row}.cells[1].click()")
    ranges = browser.evaluate("window.report.drawn.get('s0').map(u => [u.scales.x.min, "
                              "u.scales.x.max])")
    assert len(ranges) == 5 and len({tuple(r) for r in ranges}) == 1, ranges
    low, high = ranges[0]
    assert low < t < high and high - low < 0.1 * 7 * 86_400  # a week's run, zoomed in
    browser.screenshot(ARTIFACTS / "report-zoomed.png")
    assert browser.errors() == []
