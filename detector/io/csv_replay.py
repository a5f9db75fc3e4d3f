"""CSV replay: feed files through the daemon's engine in record order, write the scores.

Each file is one stream with fresh state (its own Engine, as a Kafka partition has). Columns:
`timestamp` plus one or more numeric columns. A missing or unparsable value still gets a score
(from the remaining columns, or 0 when none is left) and is not learned from.

Beside the scores, `replay_many` keeps a manifest, OUT/replay.json, naming for each result CSV
its source file, stream name and the alert threshold that stream used (what `detector report`
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

from detector.engine import Engine, EngineConfig, Event
from detector.engine.post_rules import threshold_for
from detector.records import parse_ts

log = structlog.get_logger("detector.replay")

OUTPUT_HEADER = ("timestamp", "anomaly_score", "alert", "raw_score", "raw_error")
MANIFEST = "replay.json"
REPLAY_BATCH = 1_024


@dataclass
class ReplayedFile:
    source: Path
    output: Path
    rows: int
    alerts: int
    warnings: list[str] = field(default_factory=list)


def discover(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(csv path, path relative to its INPUT) for every file or every CSV under a folder."""
    found: list[tuple[Path, Path]] = []
    for root in inputs:
        if root.is_dir():
            found += [(p, p.relative_to(root)) for p in sorted(root.rglob("*.csv"))]
        elif root.is_file():
            found.append((root, Path(root.name)))
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
    return found


def read_rows(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0].strip().lower() != "timestamp" or len(header) < 2:
            raise ValueError(f"{path}: the header must be 'timestamp' then numeric columns")
        rows = [row for row in reader if row]
    return [h.strip() for h in header[1:]], [r[0] for r in rows], rows


def parse_value(text: str) -> float:
    """A finite float, or NaN for an empty, unparsable or infinite cell."""
    try:
        v = float(text)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def replay_file(path: Path, output: Path, config: EngineConfig, stream: str | None = None,
                on_row: Callable[[int], None] | None = None) -> ReplayedFile:
    """Score every row of one CSV, in order, and write the result CSV.

    The rows go to the engine in batches of REPLAY_BATCH: one stream's events are stepped
    one at a time whatever the batch (each is a wave of its own), so the scores are those of
    a record-at-a-time replay, without paying the per-call cost on every record."""
    metrics, stamps, rows = read_rows(path)
    engine = Engine(config)
    name = stream or path.stem
    done = ReplayedFile(path, output, len(rows), 0)
    events: list[Event] = []
    last_ts = 0.0
    for number, (stamp, row) in enumerate(zip(stamps, rows, strict=True), start=2):
        ts = parse_ts(stamp)
        if isinstance(ts, str):
            done.warnings.append(f"{path}:{number}: {ts}; using the previous timestamp")
            ts = last_ts
        last_ts = ts
        values = {m: parse_value(row[j + 1]) if j + 1 < len(row) else math.nan
                  for j, m in enumerate(metrics)}
        if any(math.isnan(v) for v in values.values()):
            done.warnings.append(f"{path}:{number}: missing or unparsable value; scored, "
                                 "not learned from")
        events.append(Event(name, ts, values))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(OUTPUT_HEADER)
        for start in range(0, len(events), REPLAY_BATCH):
            result = engine.process(events[start:start + REPLAY_BATCH])
            for i, stamp in enumerate(stamps[start:start + REPLAY_BATCH]):
                ok = result.rejected[i] is None
                score = float(result.score[i]) if ok else 0.0
                raw = float(result.raw_score[i]) if ok else 0.0
                alert = bool(result.alert[i]) and ok
                error = result.error[i]
                done.alerts += alert
                writer.writerow((stamp, f"{score:.6f}", int(alert), f"{raw:.6f}",
                                 "" if math.isnan(error) else f"{error:.6g}"))
            if on_row is not None:
                on_row(len(result))
    return done


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
            "threshold": threshold_for(stream, config.threshold, config.threshold_overrides)}
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n")
