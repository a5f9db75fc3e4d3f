"""`detector bench corpus`: replay a labelled corpus through the daemon's engine and score it.

Each file is one stream with fresh state, fed one record at a time through `detector replay`'s
path (one engine per file, the daemon's settings for all). Our detector and the rolling z-score
baseline are each scored at their shipped threshold and with the threshold swept on labels;
HitRate compares alert rankings with root_cause.json. Scores go to OUT/scores/, the numbers to
OUT/summary.json (the same for the same corpus, settings and code) and what produced them,
wall time included, to OUT/run.json.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detector import __version__
from detector.bench.baseline import ZSCORE_THRESHOLD, ZSCORE_WINDOW, rolling_z
from detector.bench.corpus import Corpus, CorpusFile, select
from detector.bench.hitrate import (
    NO_ROOT_CAUSE,
    corpus_hit_rate,
    ranked_alerts,
    replay_hit_rate,
)
from detector.bench.nab.scorer import held_out_leave_one_category_out
from detector.bench.replay_output import read_replay_output
from detector.bench.scoring import evaluate, layouts
from detector.engine import EngineConfig
from detector.offline.replay import replay_many

OURS, ZSCORE = "lstm-detector", "rolling z-score"


def run_corpus_bench(root: Path, out: Path, config: EngineConfig, *, jobs: int,
                     patterns: list[str] | None = None, nab_rules: bool = False) -> dict:
    """Replay, score and record; returns the summary. `patterns` selects a subset of files."""
    started = time.monotonic()
    corpus = Corpus(root, nab_rules=nab_rules)
    rels = select(corpus.files, patterns)
    files: list[CorpusFile] = []
    z_scores: dict[str, np.ndarray] = {}
    z_ranked: list = []
    for rel in tqdm(rels, unit="file", desc="load + z-score", file=sys.stderr):
        f = corpus.load(rel)
        files.append(f)
        z_scores[rel], pairs = _baseline(f)
        z_ranked += pairs
    _check_width(files, config)
    scores_dir = out / "scores"
    configs = ({Path(f.rel): dataclasses.replace(config, warmup_events=f.probation)
                for f in files} if nab_rules else None)
    replay_started = time.monotonic()
    with tqdm(total=len(files), unit="file", desc="replay", file=sys.stderr) as bar:
        replay_many([(corpus.data_path(f.rel), Path(f.rel)) for f in files], scores_dir, config,
                    jobs=jobs, configs=configs, progress=lambda _: bar.update(1))
    replay_s = time.monotonic() - replay_started
    outputs = {f.rel: read_replay_output(scores_dir / f.rel, f) for f in files}
    ours = evaluate(files, {r: o.scores for r, o in outputs.items()},
                    {r: o.alerts for r, o in outputs.items()}, corpus.profiles, config.threshold)
    theirs = evaluate(files, z_scores, {r: z >= ZSCORE_THRESHOLD for r, z in z_scores.items()},
                      corpus.profiles, ZSCORE_THRESHOLD)
    ours["hitrate"] = replay_hit_rate(corpus.has_root_causes, files, outputs.values())
    theirs["hitrate"] = corpus_hit_rate(z_ranked) if corpus.has_root_causes else NO_ROOT_CAUSE
    summary = _summary(files, corpus, ours, theirs, config.threshold)
    if nab_rules:  # NAB's held-out number: each category at the others' swept threshold
        fold = held_out_leave_one_category_out(
            layouts(files, {r: o.scores for r, o in outputs.items()}), corpus.profiles)
        summary["held_out"] = {name: v["score"] for name, v in fold.items()}
    elapsed = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(_run_record(
        corpus, files, config, jobs, nab_rules, elapsed, replay_s), indent=2, default=str) + "\n")
    summary["wall_time_s"], summary["replay_s"] = round(elapsed, 1), round(replay_s, 1)
    return summary


def _baseline(f: CorpusFile) -> tuple[np.ndarray, list]:
    """The z-score baseline's per-row score of one file, and its ranked alerts for HitRate."""
    z = rolling_z(f.values, ZSCORE_WINDOW)
    score = z.max(axis=1) if z.shape[1] else np.zeros(f.n)
    alerts = score >= ZSCORE_THRESHOLD
    rows = np.flatnonzero(alerts)
    names = np.array(f.metrics)
    ranking = {}
    for row in rows:
        if any(c.first <= row <= c.last for c in f.root_causes):
            order = np.argsort(-z[row], kind="stable")
            ranking[int(row)] = tuple(names[order][z[row][order] > 0])
    return score, ranked_alerts(alerts, f.root_causes, ranking)


def _check_width(files: list[CorpusFile], config: EngineConfig) -> None:
    """Refuse files wider than the engine takes: it would score their rows 0, silently."""
    widest = max(files, key=lambda f: len(f.metrics))
    if len(widest.metrics) > config.max_metrics:
        raise ValueError(f"{widest.rel}: {len(widest.metrics)} metrics, but "
                         f"DETECTOR_MODEL_MAX_METRICS is {config.max_metrics}; set it to at "
                         f"least {len(widest.metrics)}")


def _summary(files: list[CorpusFile], corpus: Corpus, ours: dict, theirs: dict,
             threshold: float) -> dict:
    mine = _detector_summary(ours, threshold)
    return {
        **{name: v["score"] for name, v in mine["swept"].items()},  # NAB's headline, swept
        "detail": mine["swept"],
        "per_file_standard": ours["swept"].get("standard", {}).get("per_file", {}),
        "files": len(files), "subset": len(files) < len(corpus.files),
        "rows": sum(f.n for f in files), "scored_rows": sum(f.scored_rows for f in files),
        "stream_days": round(sum(f.scored_days for f in files), 3),
        "windows": sum(len(f.windows) for f in files),
        "detectors": {OURS: mine, ZSCORE: {**_detector_summary(theirs, ZSCORE_THRESHOLD),
                                           "window": ZSCORE_WINDOW}},
    }


def _detector_summary(result: dict, shipped_threshold: float) -> dict:
    """One detector's numbers; per-file raw scores only for the standard profile, shipped."""
    def without_files(entries: dict) -> dict:
        return {p: {k: v for k, v in e.items() if k != "per_file"} for p, e in entries.items()}

    return {"shipped_threshold": shipped_threshold,
            "shipped": without_files(result["shipped"]), "swept": without_files(result["swept"]),
            "per_file_standard_shipped": result["shipped"].get("standard", {}).get("per_file"),
            "categories": result["categories"], "hitrate": result["hitrate"]}


def _run_record(corpus: Corpus, files: list[CorpusFile], config: EngineConfig, jobs: int,
                nab_rules: bool, elapsed: float, replay_s: float) -> dict:
    engine = dataclasses.asdict(config)
    if nab_rules:
        engine.pop("warmup_events")
    root = str(corpus.root.resolve())
    return {
        "detector": f"lstm-detector {__version__}", "code_version": git_version(),
        "corpus_root": root, "nab_root": root,  # `detector report` reads the labels there
        "rules": "nab" if nab_rules else "corpus",
        "probation": "NAB: min(15 % of the file, 750 rows), the detector's warm-up"
        if nab_rules else "probation.json rows (0 if absent): replayed, not scored",
        "engine_config": engine, "seed": config.seed,
        "baseline": {"name": ZSCORE, "window": ZSCORE_WINDOW, "threshold": ZSCORE_THRESHOLD},
        "records": sum(f.n for f in files), "files": len(files),
        "wall_time_s": round(elapsed, 1), "replay_s": round(replay_s, 1), "jobs": jobs,
        "python": platform.python_version(),
        "causal": "strict: no file min/max or length; told the probation length only"
        if nab_rules else "strict: every row replayed in order, nothing told about the file",
    }


def git_version() -> str:
    """`git describe` of the code that ran, "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
