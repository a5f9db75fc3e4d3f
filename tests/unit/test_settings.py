"""Settings: defaults, DETECTOR_* parsing, one clear exit-2 line per invalid setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from detector.cli import main
from detector.errors import SettingsError
from detector.settings_docs import example_env_path, render_example_env
from detector.settings_env import load_settings
from tests.conftest import REPO


def test_load_settings_reads_nested_sections_from_single_underscore_names(clean_env) -> None:
    clean_env.setenv("DETECTOR_ALERT_THRESHOLD", "0.7")
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    clean_env.setenv("DETECTOR_MODEL_PATH", "/models/ae.npz")
    clean_env.setenv("DETECTOR_ALERT_OVERRIDES", '{"core-*": 0.9}')
    s = load_settings()
    assert s.alert.threshold == 0.7
    assert s.kafka.bootstrap_list == ["k1:9092", "k2:9092"]
    assert s.model.path == "/models/ae.npz"
    assert s.alert.overrides == {"core-*": 0.9}


INVALID = [
    ("DETECTOR_ALERT_THRESHOLD", "1.5"),
    ("DETECTOR_ALERT_THRESHOLD", "high"),
    ("DETECTOR_ALERT_CRITICAL_THRESHOLD", "-0.1"),
    ("DETECTOR_ALERT_OVERRIDES", "not json"),
    ("DETECTOR_ALERT_OVERRIDES", '{"core-*": 3}'),
    ("DETECTOR_ALERT_COOLDOWN_EVENTS", "-1"),
    ("DETECTOR_ALERT_WARMUP_EVENTS", "many"),
    ("DETECTOR_KAFKA_SESSION_TIMEOUT_MS", "abc"),
    ("DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS", "0"),
    ("DETECTOR_KAFKA_AUTO_OFFSET_RESET", "middle"),
    ("DETECTOR_KAFKA_SECURITY_PROTOCOL", "TLS"),
    ("DETECTOR_KAFKA_SASL_MECHANISM", "GSSAPI"),
    ("DETECTOR_KAFKA_MAX_POLL_RECORDS", "0"),
    ("DETECTOR_KAFKA_INPUT_TOPIC", ""),
    ("DETECTOR_KAFKA_CREATE_TOPICS", "perhaps"),
    ("DETECTOR_MODEL_HIDDEN_SIZE", "2"),
    ("DETECTOR_MODEL_WINDOW", "1"),
    ("DETECTOR_MODEL_LEARNING_RATE", "0"),
    ("DETECTOR_MODEL_THREADS", "0"),
    ("DETECTOR_STATE_MAX_STREAMS", "0"),
    ("DETECTOR_STATE_MAX_EVENT_BYTES", "10"),
    ("DETECTOR_LOG_LEVEL", "LOUD"),
    ("DETECTOR_LOG_FORMAT", "xml"),
    ("DETECTOR_SERVICE_SHUTDOWN_TIMEOUT_S", "0"),
    ("DETECTOR_ALERTT_THRESHOLD", "0.5"),
    ("DETECTOR_KAFKA_BOOTSTRAP", "k:9092"),
]


@pytest.mark.parametrize(("name", "value"), INVALID)
def test_invalid_setting_exits_2_with_one_line_naming_it(clean_env, capsys, name: str,
                                                         value: str) -> None:
    clean_env.setenv(name, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0], err


@pytest.mark.parametrize(("env", "fragment"), [
    ({"DETECTOR_ALERT_THRESHOLD": "0.9", "DETECTOR_ALERT_CRITICAL_THRESHOLD": "0.8"},
     "critical_threshold must be >= threshold"),
    ({"DETECTOR_KAFKA_SESSION_TIMEOUT_MS": "6000", "DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "6000"},
     "heartbeat_interval_ms"),
    ({"DETECTOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "sasl_mechanism is required"),
])
def test_inconsistent_settings_exit_2_naming_the_section(clean_env, capsys, env: dict,
                                                         fragment: str) -> None:
    for k, v in env.items():
        clean_env.setenv(k, v)
    assert main(["run"]) == 2
    assert fragment in capsys.readouterr().err


def test_run_without_bootstrap_servers_exits_2_naming_the_variable(clean_env, capsys) -> None:
    assert main(["run"]) == 2
    assert "DETECTOR_KAFKA_BOOTSTRAP_SERVERS: required" in capsys.readouterr().err


def test_run_against_an_unreachable_broker_exits_2_without_a_traceback(clean_env) -> None:
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
           "DETECTOR_KAFKA_CONNECT_TIMEOUT_MS": "500",
           "DETECTOR_SERVICE_METRICS_PORT": "0"}  # 9108 may be taken on a shared machine
    proc = subprocess.run([sys.executable, "-m", "detector", "run"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "DETECTOR_KAFKA_BOOTSTRAP_SERVERS: cannot reach Kafka" in proc.stderr


def test_config_check_masks_secrets(clean_env, capsys) -> None:
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD", "hunter2-very-secret")
    clean_env.setenv("DETECTOR_KAFKA_SSL_PASSWORD", "key-pass-secret")
    assert main(["config", "--check"]) == 0
    out = capsys.readouterr().out
    assert "hunter2-very-secret" not in out and "key-pass-secret" not in out
    assert "**********" in out


def test_invalid_secret_value_is_not_echoed(clean_env, capsys) -> None:
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD", "")
    clean_env.setenv("DETECTOR_KAFKA_SECURITY_PROTOCOL", "SASL_PLAIN_WRONG")
    assert main(["run"]) == 2
    assert "SASL_PLAIN_WRONG" in capsys.readouterr().err  # the bad non-secret value is shown


def test_config_example_env_is_generated_from_the_settings_and_current() -> None:
    assert example_env_path().read_text() == render_example_env(), (
        "config.example.env is stale: run `detector config --example > config.example.env`")


def test_every_setting_appears_in_the_example_env_with_a_description() -> None:
    text = render_example_env()
    for line in [ln for ln in text.splitlines() if ln.startswith("DETECTOR_")]:
        name = line.split("=", 1)[0]
        preceding = text.split(line)[0].rstrip().splitlines()[-1]
        assert preceding.startswith("# ") and len(preceding) > 10, name


def test_settings_error_is_a_detector_error() -> None:
    assert issubclass(SettingsError, Exception)
