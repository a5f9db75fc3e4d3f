"""`detector train` and `detector evaluate`: argument handling and printed reports."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import structlog
from tqdm import tqdm

from detector.bench.nab.corpus import probation_length, window_rows
from detector.bench.nab.profiles import NAB_PROFILES
from detector.bench.nab.scorer import file_layout, score_corpus
from detector.engine import EngineConfig
from detector.errors import InputFileError
from detector.offline.csv_format import discover
from detector.offline.training import evaluate, fit, load_streams, save_trained
from detector.settings import Settings

log = structlog.get_logger("detector.train")
SHOWN_PROBLEMS = 20  # bad input rows logged one by one; the rest are counted


def _streams(inputs: list[Path]):  # noqa: ANN202
    files = discover(inputs)
    problems: list[str] = []
    streams = load_streams([(src, rel.as_posix()) for src, rel in files], problems.append)
    for problem in problems[:SHOWN_PROBLEMS]:
        log.warning("input_row", detail=problem)
    if len(problems) > SHOWN_PROBLEMS:
        log.warning("input_rows_suppressed", more=len(problems) - SHOWN_PROBLEMS)
    return files, streams


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    if not 0.0 <= args.validation_split < 1.0 or args.epochs < 1 or args.patience < 1:
        print("detector: --validation-split must be in [0, 1); --epochs and --patience >= 1",
              file=sys.stderr)
        return 2
    config = EngineConfig.from_settings(settings)
    if args.batch_size:
        config = dataclasses.replace(config, train_batch=args.batch_size)
    files, streams = _streams(args.inputs)
    events = sum(len(s.events) for s in streams)
    print(f"training on {len(streams)} streams, {events} events; "
          f"validation split {args.validation_split}")
    with tqdm(total=events * args.epochs, unit="ev", desc="train", file=sys.stderr) as bar:
        def report(epoch: int, loss: float, val_loss: float) -> None:
            bar.write(f"epoch {epoch}/{args.epochs}  loss {loss:.5f}  val_loss {val_loss:.5f}")

        engine, history = fit(streams, config, epochs=args.epochs,
                              validation_split=args.validation_split, patience=args.patience,
                              on_epoch=report, on_events=bar.update)
    digest = save_trained(engine, args.out, history, [rel.as_posix() for _, rel in files])
    print(f"best epoch {history.best_epoch}; model {args.out} (version {digest}); start the "
          f"daemon from it with DETECTOR_MODEL_PATH={args.out}")
    return 0


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    config = EngineConfig.from_settings(settings)
    if args.model is not None:
        config = dataclasses.replace(config, model_path=str(args.model))
    files, streams = _streams(args.inputs)
    loss, per_stream = evaluate(streams, config)
    print(f"loss (mean squared forecast error, normalised units): {loss:.5f} over "
          f"{len(streams)} streams")
    if args.labels is None:
        return 0
    labels = json.loads(args.labels.read_text())
    layouts, windows_total, windows_hit, alerts_in, alerts_all = {}, 0, 0, 0, 0
    for (_, rel), stream in zip(files, streams, strict=True):
        key = rel.as_posix()
        seconds = np.array([e.ts for e in stream.events])
        try:
            rows = window_rows(seconds, labels.get(key, []), key)
        except ValueError as exc:
            raise InputFileError(f"{args.labels}: {exc}") from None
        result = per_stream[stream.name]
        layouts[key] = file_layout(result["score"], rows, seconds.size,
                                   probation_length(seconds.size), key)
        alerted = np.flatnonzero(result["alert"])
        in_window = [any(a <= i <= b for a, b in rows) for i in alerted]
        alerts_all += len(alerted)
        alerts_in += sum(in_window)
        windows_total += len(rows)
        windows_hit += sum(any(a <= i <= b for i in alerted) for a, b in rows)
    scored = score_corpus(layouts, NAB_PROFILES)
    for name, values in scored.items():
        print(f"NAB {name:<20} {values['score']:7.2f}  (threshold {values['threshold']:.4g}, "
              f"windows {values['windows_detected']}/{values['windows']}, "
              f"FP {values['false_positives']})")
    precision = alerts_in / alerts_all if alerts_all else float("nan")
    recall = windows_hit / windows_total if windows_total else float("nan")
    print(f"event-wise at the alert threshold: precision {precision:.3f} ({alerts_in}/"
          f"{alerts_all} alerts inside a window), recall {recall:.3f} ({windows_hit}/"
          f"{windows_total} windows alerted)")
    return 0

