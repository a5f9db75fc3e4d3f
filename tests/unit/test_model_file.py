"""Model files: a saved model reproduces the scores it was saved with; bad files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.cli import main
from detector.engine import Engine, EngineConfig, Event
from detector.engine.model_file import load_model, save_model
from detector.state.codec import encode_shared, load_records
from tests.unit.factories import T0, traffic

CONFIG = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=16)


def test_saved_model_loaded_by_a_new_engine_gives_identical_scores(tmp_path: Path) -> None:
    trained = Engine(CONFIG)
    trained.process(traffic(n_streams=3, n_steps=150, seed=1))
    (lane,) = trained.lanes.values()  # the streams' lane: its model is as wide as they are
    path = tmp_path / "ae.npz"
    digest = save_model(path, lane.model, lane.config.shape)
    later = traffic(n_streams=2, n_steps=60, seed=2)
    frozen = EngineConfig(**{**CONFIG.__dict__, "learn": False})
    expected = Engine(frozen)
    expected.lane(lane.width).model.load_state_dict(lane.model.state_dict())
    loaded = Engine(EngineConfig(**{**frozen.__dict__, "model_path": str(path)}))
    np.testing.assert_array_equal(loaded.process(later).score, expected.process(later).score)
    assert loaded.model_version.endswith(digest) and len(digest) == 12
    # Streams of another width start from their own lane's untrained model.
    other = Engine(frozen).process([Event("wide", T0, {f"m{j}": 1.0 for j in range(9)})])
    assert loaded.process([Event("wide", T0, {f"m{j}": 1.0 for j in range(9)})]
                          ).expected.tolist() == other.expected.tolist()


def test_model_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    lane = Engine(CONFIG).lane(8)
    save_model(path, lane.model, lane.config.shape)
    with pytest.raises(ValueError, match="does not match"):
        Engine(EngineConfig(hidden_size=32, window=4, model_path=str(path)))
    with pytest.raises(ValueError, match="does not match"):  # no lane of 8 metrics
        Engine(EngineConfig(hidden_size=16, window=4, max_metrics=2, model_path=str(path)))


def test_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable model file"):
        load_model(path)


def test_run_with_a_bad_model_path_exits_2_naming_the_variable(clean_env, capsys,
                                                              tmp_path: Path) -> None:
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    clean_env.setenv("DETECTOR_MODEL_PATH", str(tmp_path / "missing.npz"))
    assert main(["run"]) == 2
    assert "DETECTOR_MODEL_PATH" in capsys.readouterr().err


def test_a_restored_engine_names_the_weights_it_goes_on_from(tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    lane = Engine(CONFIG).lane(8)
    digest = save_model(path, lane.model, lane.config.shape)
    started = Engine(EngineConfig(**{**CONFIG.__dict__, "model_path": str(path)}))
    started.process(traffic(n_streams=2, n_steps=20))
    shared = encode_shared(started.shared_state(), CONFIG.shape)
    later = Engine(CONFIG)  # restarted without DETECTOR_MODEL_PATH
    load_records(later, shared, [])
    assert later.model_version == started.model_version and later.model_version.endswith(digest)
