"""`detector bench nab`: the NAB corpus through the daemon's engine under the streaming rules.

Each file is one stream with fresh state, fed one record at a time (the CSV replay path); the
detector is told the probation length (its warm-up) and nothing else about the file. One
configuration, the daemon's settings, serves every file. Scores go to DIR/scores/, the scored
summary to DIR/summary.json, and what produced them to DIR/run.json.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

from tqdm import tqdm

from detector import __version__
from detector.engine import EngineConfig
from detector.io.csv_replay import replay_many
from detector.nab.corpus import NabCorpus, read_run_scores
from detector.nab.scorer import held_out_leave_one_category_out, layout, score_corpus

SCOREBOARD = (  # NAB v1.1 official results, standard / low FP / low FN
    ("ARTime", 74.9, 65.1, 80.4),
    ("Numenta HTM", 70.1, 63.1, 74.3),
    ("contextOSE", 69.9, 67.0, 73.2),
    ("earthgecko Skyline", 58.2, 46.2, 63.8),
    ("KNN CAD", 58.0, 43.4, 64.8),
    ("Random Cut Forest", 51.7, 38.4, 59.7),
    ("Windowed Gaussian", 39.6, 20.9, 47.4),
)
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def select(files: tuple[str, ...], patterns: list[str] | None) -> list[str]:
    """Files whose category or relative path matches a pattern (all files without patterns)."""
    if not patterns:
        return list(files)
    chosen = [rel for rel in files if any(
        rel.split("/", 1)[0] == p or fnmatch(rel, p) or fnmatch(rel, p + ".csv")
        for p in patterns)]
    if not chosen:
        raise ValueError(f"no NAB file matches {patterns}")
    return chosen


def run_bench(nab_root: Path, out: Path, config: EngineConfig, jobs: int,
              patterns: list[str] | None = None) -> dict:
    """Replay, score and record; `patterns` selects a subset (not comparable with the board)."""
    corpus = NabCorpus(nab_root)
    started = time.monotonic()
    rels = select(corpus.files, patterns)
    datas = {rel: corpus.load(rel) for rel in rels}
    scores_dir = out / "scores"
    files = [(corpus.data_path(rel), Path(rel)) for rel in rels]
    configs = {Path(rel): dataclasses.replace(config, warmup_events=d.probation)
               for rel, d in datas.items()}
    with tqdm(total=len(files), unit="file", desc="nab", file=sys.stderr) as bar:
        replay_many(files, scores_dir, config, jobs=jobs, configs=configs,
                    progress=lambda _: bar.update(1))
    layouts = {rel: layout(d, read_run_scores(scores_dir / rel, d)) for rel, d in datas.items()}
    scored = score_corpus(layouts, corpus.profiles)
    fold = held_out_leave_one_category_out(layouts, corpus.profiles)
    elapsed = time.monotonic() - started
    summary = {name: round(v["score"], 4) for name, v in scored.items()}
    summary["held_out"] = {name: round(v["score"], 4) for name, v in fold.items()}
    summary["detail"] = {name: {k: v for k, v in s.items() if k != "per_file"}
                         for name, s in scored.items()}
    summary["per_file_standard"] = scored["standard"]["per_file"]
    summary["wall_time_s"] = round(elapsed, 1)
    summary["files"] = len(datas)
    summary["subset"] = len(datas) < len(corpus.files)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "run.json").write_text(json.dumps({
        "detector": f"lstm-detector {__version__}", "code_version": _git_version(),
        "nab_root": str(corpus.root.resolve()),
        "engine_config": {k: v for k, v in dataclasses.asdict(config).items()
                          if k != "warmup_events"},
        "warmup": "the file's NAB probation length", "seed": config.seed,
        "records": sum(d.n for d in datas.values()), "files": len(datas),
        "wall_time_s": round(elapsed, 1), "jobs": jobs, "python": platform.python_version(),
        "causal": "strict: no file min/max or length; told the probation length only",
    }, indent=2, default=str) + "\n")
    return summary


def render_table(summary: dict) -> str:
    lines = [f"{'detector':<28}{'standard':>10}{'low FP':>10}{'low FN':>10}",
             "-" * 58]
    ours = [summary[p] for p in PROFILES]
    held = [summary["held_out"][p] for p in PROFILES]
    rows = [("lstm-detector (this run)", *ours), ("lstm-detector, held-out", *held),
            *SCOREBOARD]
    for name, *values in sorted(rows, key=lambda r: -r[1]):
        lines.append(f"{name:<28}" + "".join(f"{v:>10.1f}" for v in values))
    if summary.get("subset"):
        lines.append(f"subset of {summary['files']} files: not comparable with the board")
    lines.append(f"wall time {summary['wall_time_s']:.1f}s")
    return "\n".join(lines)


def _git_version() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
