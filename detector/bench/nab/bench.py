"""`detector bench nab`: the NAB corpus through `bench corpus` under NAB's streaming rules.

Each file is one stream with fresh state, fed one record at a time (the CSV replay path); the
detector is told the probation length (min(15 %, 750 rows) of the file, its warm-up) and nothing
else about the file. One configuration, the daemon's settings, serves every file. Beside the
corpus bench's numbers (shipped and swept, the z-score baseline), NAB adds the held-out
leave-one-category-out score and the official scoreboard.
"""

from __future__ import annotations

from pathlib import Path

from detector.bench.nab.profiles import PROFILE_NAMES
from detector.bench.run import OURS, run_corpus_bench
from detector.bench.table import render_corpus_table
from detector.engine import EngineConfig

SCOREBOARD = (  # NAB v1.1 official results, standard / low FP / low FN
    ("ARTime", 74.9, 65.1, 80.4),
    ("Numenta HTM", 70.1, 63.1, 74.3),
    ("contextOSE", 69.9, 67.0, 73.2),
    ("earthgecko Skyline", 58.2, 46.2, 63.8),
    ("KNN CAD", 58.0, 43.4, 64.8),
    ("Random Cut Forest", 51.7, 38.4, 59.7),
    ("Windowed Gaussian", 39.6, 20.9, 47.4),
)


def run_bench(nab_root: Path, out: Path, config: EngineConfig, jobs: int,
              patterns: list[str] | None = None) -> dict:
    """Replay, score and record; `patterns` selects a subset (not comparable with the board)."""
    return run_corpus_bench(nab_root, out, config, jobs=jobs, patterns=patterns, nab_rules=True)


def render_table(summary: dict) -> str:
    """The scoreboard with this run (swept, held-out and at the shipped threshold) placed in
    it, then every number of the corpus bench."""
    shipped = summary["detectors"][OURS]
    lines = [f"{'detector':<36}{'standard':>10}{'low FP':>10}{'low FN':>10}", "-" * 66]
    rows = [("lstm-detector (this run, swept)", *(summary[p] for p in PROFILE_NAMES)),
            ("lstm-detector, held-out", *(summary["held_out"][p] for p in PROFILE_NAMES)),
            (f"lstm-detector, shipped {shipped['shipped_threshold']:g}",
             *(shipped["shipped"][p]["score"] for p in PROFILE_NAMES)), *SCOREBOARD]
    for name, *values in sorted(rows, key=lambda r: -r[1]):
        lines.append(f"{name:<36}" + "".join(f"{v:>10.1f}" for v in values))
    if summary.get("subset"):
        lines.append(f"subset of {summary['files']} files: not comparable with the board")
    return "\n".join(lines) + "\n\n" + render_corpus_table(summary, "NAB")
