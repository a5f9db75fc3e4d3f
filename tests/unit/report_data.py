"""A small run to report on: a replay, through the CLI, of a four-metric link whose `flows`
spike and `packets_in` drop are labelled incidents, and of a one-metric host with a spike."""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from detector.cli import main

T0 = datetime(2026, 3, 2)
ROWS = 2_016  # a week at 5-minute steps
LINK, HOST = "edge/edge-07.csv", "hosts/cpu-a.csv"
LINK_METRICS = ("bytes_in", "bytes_out", "packets_in", "flows")
FLOWS_SPIKE, PACKETS_DROP, CPU_SPIKE = 1_500, 1_800, 1_200


def stamp(row: int) -> str:
    return (T0 + timedelta(minutes=5 * row)).strftime("%Y-%m-%d %H:%M:%S")


def write_inputs(root: Path) -> Path:
    """The two input CSVs under root/in and their label windows (root/labels.json)."""
    rng = np.random.default_rng(4)
    (root / "in/edge").mkdir(parents=True)
    (root / "in/hosts").mkdir(parents=True)
    with (root / "in" / LINK).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *LINK_METRICS])
        for i in range(ROWS):
            day = 1 + 0.5 * math.sin(2 * math.pi * i / 288)
            values = [x * day * math.exp(rng.normal(0, 0.04)) for x in (1.2e6, 3.4e5, 1500, 40)]
            if i == FLOWS_SPIKE:
                values[3] *= 8
            if PACKETS_DROP <= i < PACKETS_DROP + 6:
                values[2] *= 0.15
            writer.writerow([stamp(i), *(f"{v:.2f}" for v in values)])
    with (root / "in" / HOST).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "cpu"])
        for i in range(ROWS):
            value = 35 + 10 * math.sin(2 * math.pi * i / 288) + rng.normal(0, 1.5)
            writer.writerow([stamp(i), f"{value + (45 if i == CPU_SPIKE else 0):.2f}"])
    labels = root / "labels.json"
    labels.write_text(json.dumps({
        LINK: [[stamp(600), stamp(620)], [stamp(FLOWS_SPIKE - 10), stamp(FLOWS_SPIKE + 10)],
               [stamp(PACKETS_DROP - 5), stamp(PACKETS_DROP + 15)]],
        HOST: [[stamp(CPU_SPIKE - 10), stamp(CPU_SPIKE + 10)]]}))
    return labels


def replay_run(root: Path) -> Path:
    """root/run: the replay of write_inputs' files with the default settings, hosts/* alerting
    at 0.6."""
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("DETECTOR_")]:
            env.delenv(name)
        env.setenv("DETECTOR_ALERT_OVERRIDES", '{"hosts/*": 0.6}')
        assert main(["replay", str(root / "in"), "--out", str(root / "run"), "--jobs", "1"]) == 0
    return root / "run"


def alert_rows(result_csv: Path) -> list[dict[str, str]]:
    with result_csv.open() as handle:
        return [dict(r, row=str(i)) for i, r in enumerate(csv.DictReader(handle))
                if r["alert"] == "1"]
