"""CSV replay: feed files through the daemon's engine in record order, write the scores.

Each file is one stream with fresh state (its own Engine, as a Kafka partition has), read by
the input rules of detector.offline.csv_format: `timestamp` plus one or more numeric columns,
every row kept in file order. A missing or unparsable value still gets a score (from the
remaining columns, or 0 when none is left) and is not learned from; each such row and each bad
timestamp is a warning naming the file and line.

The result CSV's columns are described in detector.offline.csv_format. A file the engine could not
score meaningfully (bad header, too many metrics, a column without valid values) is an
InputFileError before any file is replayed.

Beside the scores, `replay_many` keeps a manifest, OUT/replay.json, naming for each result CSV
its source file, stream name and the alert thresholds that stream used (what `detector report`
needs to draw the input series next to the scores).
"""

from __future__ import annotations

import csv
import gc
import json
import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from detector.engine import BatchResult, Engine, EngineConfig, Event
from detector.engine.post_rules import threshold_for
from detector.offline.csv_format import (
    EXPECTED_PREFIX,
    MANIFEST,
    METRICS_COLUMN,
    OUTPUT_HEADER,
    InputFile,
    check_input,
    read_input,
)

log = structlog.get_logger("detector.replay")

REPLAY_BATCH = 1_024


@dataclass
class ReplayedFile:
    source: Path
    output: Path
    rows: int
    alerts: int
    warnings: list[str] = field(default_factory=list)


def replay_file(path: Path, output: Path, config: EngineConfig, stream: str | None = None,
                on_row: Callable[[int], None] | None = None) -> ReplayedFile:
    """Score every row of one CSV, in order, and write the result CSV.

    The rows go to the engine in batches of REPLAY_BATCH: one stream's events are stepped
    one at a time whatever the batch (each is a wave of its own), so the scores are those of
    a record-at-a-time replay, without paying the per-call cost on every record."""
    source = read_input(path)
    metrics, stamps = source.metrics, source.stamps
    engine = Engine(config)
    done = ReplayedFile(path, output, source.n, 0, list(source.problems))
    events = events_of(source, stream or path.stem)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((*OUTPUT_HEADER, *(f"{EXPECTED_PREFIX}{m}" for m in metrics),
                         METRICS_COLUMN))
        for start in range(0, len(events), REPLAY_BATCH):
            result = engine.process(events[start:start + REPLAY_BATCH])
            for i, stamp in enumerate(stamps[start:start + REPLAY_BATCH]):
                row = _output_row(stamp, result, i, len(metrics))
                done.alerts += row[2]
                writer.writerow(row)
            if on_row is not None:
                on_row(len(result))
    return done


def events_of(source: InputFile, stream: str) -> list[Event]:
    """The rows of an input file as the events of one stream, in file order."""
    return [Event(stream, ts, dict(zip(source.metrics, values, strict=True)))
            for ts, values in zip(source.seconds.tolist(), source.values.tolist(), strict=True)]


def _output_row(stamp: str, result: BatchResult, i: int, n_metrics: int) -> list:
    """One row of a result CSV (the columns of OUTPUT_HEADER, then the expected value of each
    metric, then the ranked metrics of an alert); a rejected event scores 0 and expects
    nothing."""
    if result.rejected[i] is not None:
        return [stamp, f"{0.0:.6f}", 0, f"{0.0:.6f}", "", *[""] * n_metrics, ""]
    alert = int(bool(result.alert[i]))
    error = result.error[i]
    # The engine's metric order is the stream's first event's, which is the header's.
    expected = ["" if math.isnan(v) else f"{v:.6g}" for v in result.expected[i, :n_metrics]]
    # Every valid metric, as the daemon's alert lists them: a share too small for a fixed
    # number of decimals still ranks its metric above the ones after it.
    ranked = (json.dumps([[name, float(f"{share:.4g}")] for name, share in result.ranked(i)])
              if alert else "")
    return [stamp, f"{float(result.score[i]):.6f}", alert, f"{float(result.raw_score[i]):.6f}",
            "" if math.isnan(error) else f"{error:.6g}", *expected, ranked]


def _replay_one(args: tuple[Path, Path, EngineConfig, str]) -> ReplayedFile:
    import torch  # noqa: PLC0415 - set in the worker process

    torch.set_num_threads(1)
    # Full collections would walk torch's ~10^6 import-time objects again and again while
    # the replay allocates its events; frozen, they are left alone.
    gc.freeze()
    return replay_file(*args)


def replay_many(files: Iterable[tuple[Path, Path]], out_dir: Path, config: EngineConfig,
                jobs: int = 1, progress: Callable[[ReplayedFile], None] | None = None,
                configs: dict[Path, EngineConfig] | None = None) -> list[ReplayedFile]:
    """Replay files (in parallel processes when jobs > 1); outputs mirror relative paths.
    `configs` may give a file (by relative path) its own config, e.g. its NAB warm-up."""
    per_file = configs or {}
    tasks = [(src, out_dir / rel, per_file.get(rel, config), rel.with_suffix("").as_posix())
             for src, rel in files]
    for src, _, task_config, _ in tasks:
        check_input(src, task_config.max_metrics)
    # Longest first keeps the workers busy to the end.
    tasks.sort(key=lambda t: t[0].stat().st_size, reverse=True)
    results: list[ReplayedFile] = []
    if jobs <= 1:
        for task in tasks:
            results.append(_replay_one(task))
            if progress:
                progress(results[-1])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done in pool.map(_replay_one, tasks):
                results.append(done)
                if progress:
                    progress(done)
    write_manifest(out_dir, tasks)
    return results


def write_manifest(out_dir: Path, tasks: Sequence[tuple[Path, Path, EngineConfig, str]]) -> None:
    """Add these files to OUT/replay.json (entries of earlier replays into OUT are kept)."""
    path = out_dir / MANIFEST
    files = json.loads(path.read_text())["files"] if path.exists() else {}
    for src, output, config, stream in tasks:
        files[output.relative_to(out_dir).as_posix()] = {
            "source": str(src.resolve()), "stream": stream,
            "threshold": threshold_for(stream, config.threshold, config.threshold_overrides),
            "critical_threshold": config.critical_threshold}
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n")
