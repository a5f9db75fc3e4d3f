"""Offline training and evaluation: loss falls, early stopping, a model the daemon can load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from detector.cli import main
from detector.engine import EngineConfig
from detector.engine.model_file import load_model
from detector.offline.training import Stream, fit, split
from tests.unit.factories import traffic
from tests.unit.test_replay import write_series

SMALL = EngineConfig(hidden_size=8, window=4, train_batch=4, warmup_events=16)


def streams(n_steps: int = 240) -> list[Stream]:
    events = traffic(n_streams=2, n_steps=n_steps, seed=5)
    return [Stream(name, tuple(e for e in events if e.stream == name))
            for name in ("host-0/eth0", "host-1/eth0")]


def test_split_holds_out_the_tail_of_every_stream_in_time_order() -> None:
    train, val = split(streams(100), 0.2)
    assert [len(s.events) for s in train] == [80, 80] and [len(s.events) for s in val] == [20, 20]
    assert max(e.ts for e in train[0].events) < min(e.ts for e in val[0].events)


def test_fit_lowers_the_loss_and_keeps_the_best_epoch() -> None:
    engine, history = fit(streams(), SMALL, epochs=4, validation_split=0.25, patience=4)
    assert len(history.epochs) == 4
    assert all(math.isfinite(v) for v in history.val_loss)
    assert min(history.train_loss[1:]) < history.train_loss[0]
    assert history.val_loss[history.best_epoch - 1] == min(history.val_loss)


def test_fit_stops_early_when_validation_stops_improving() -> None:
    _, history = fit(streams(), EngineConfig(**{**SMALL.__dict__, "learning_rate": 1e-9}),
                     epochs=10, validation_split=0.25, patience=1)
    assert len(history.epochs) < 10


def test_train_then_evaluate_commands_write_and_use_a_model(tmp_path: Path, clean_env,
                                                            capsys) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_series(tmp_path / "data" / f"{name}.csv",
                     [f"{50 + 10 * math.sin(i / 12) + rng.normal(0, 1):.3f}" for i in range(300)])
    for k, v in {"DETECTOR_MODEL_HIDDEN_SIZE": "8", "DETECTOR_MODEL_WINDOW": "4",
                 "DETECTOR_ALERT_WARMUP_EVENTS": "30"}.items():
        clean_env.setenv(k, v)
    model = tmp_path / "model.npz"
    assert main(["train", str(tmp_path / "data"), "--out", str(model), "--epochs", "2"]) == 0
    loaded = load_model(model)
    assert loaded.shape["hidden_size"] == 8 and len(loaded.meta["val_loss"]) == 2
    with (tmp_path / "data" / "a.csv").open() as handle:
        stamps = [line.split(",")[0] for line in handle.read().splitlines()[1:]]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.csv": [[stamps[200], stamps[215]]]}))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "data"), "--model", str(model),
                 "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "loss (mean squared forecast error" in out
    assert "NAB standard" in out and "precision" in out and "recall" in out
