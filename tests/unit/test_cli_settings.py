"""Settings on the command line: Kafka-style flags, --env-file, choices in any case, the
bootstrap list's format, `config --check` against a missing broker and `config` alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector.cli import main
from detector.cli.config import SETTING_FLAGS, env_name
from detector.errors import SettingsError
from detector.settings_env import load_settings
from tests.conftest import REPO

FLAG_VALUES = {"--group": "fraud-detectors", "--input-topic": "netflow.v2",
               "--output-topic": "netflow.alerts", "--log-level": "debug"}


def checked(capsys, *argv: str) -> dict:
    """The effective settings `config --check` prints for these flags."""
    assert main(["config", "--check", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_help_shows_each_flag_with_its_variable_and_default(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, _, (section, field), _ in SETTING_FLAGS:
        default = {"bootstrap_servers": "none", "group_id": "lstm-detector",
                   "input_topic": "metrics", "output_topic": "alerts", "level": "INFO"}[field]
        assert re.search(rf"{flag} \S+ .*?overrides {env_name(section, field)} "
                         rf"\(default: {default}\)", text), flag
    assert "--env-file FILE" in text and "(default: none)" in text


@pytest.mark.parametrize("flag", sorted(FLAG_VALUES))
def test_each_flag_overrides_its_variable(clean_env, capsys, flag: str) -> None:
    (section, field), = [target for f, _, target, _ in SETTING_FLAGS if f == flag]
    clean_env.setenv(env_name(section, field), "WARNING" if field == "level" else "from-env")
    value = checked(capsys, flag, FLAG_VALUES[flag])[section][field]
    assert value == ("DEBUG" if field == "level" else FLAG_VALUES[flag])


def test_bootstrap_server_flag_overrides_the_variable_in_run(clean_env, free_port) -> None:
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
           "DETECTOR_KAFKA_CONNECT_TIMEOUT_MS": "500",
           "DETECTOR_SERVICE_METRICS_PORT": "0"}  # 9108 may be taken on a shared machine
    proc = subprocess.run([sys.executable, "-m", "detector", "run", "--bootstrap-server",
                           f"127.0.0.1:{free_port}"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot reach Kafka at '127.0.0.1:{free_port}'" in proc.stderr


def test_invalid_flag_value_names_the_flag_and_its_variable(clean_env, capsys) -> None:
    assert main(["run", "--group", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--group (DETECTOR_KAFKA_GROUP_ID)" in err[0]


def test_env_file_is_read_under_the_environment_and_the_flags(clean_env, capsys,
                                                              tmp_path: Path) -> None:
    env_file = tmp_path / "detector.env"
    env_file.write_text("# production\n"
                        "DETECTOR_KAFKA_GROUP_ID=from-file\n"
                        "export DETECTOR_KAFKA_INPUT_TOPIC='in-from-file'\n"
                        "DETECTOR_KAFKA_OUTPUT_TOPIC=out-from-file\n"
                        'DETECTOR_ALERT_OVERRIDES={"core-*": 0.9}\n'
                        "DETECTOR_LOG_LEVEL=warning\n"
                        "COMPOSE_PROJECT_NAME=ignored\n")
    clean_env.setenv("DETECTOR_KAFKA_INPUT_TOPIC", "in-from-env")
    shown = checked(capsys, "--env-file", str(env_file), "--output-topic", "out-from-flag")
    assert shown["kafka"]["group_id"] == "from-file"
    assert shown["kafka"]["input_topic"] == "in-from-env"
    assert shown["kafka"]["output_topic"] == "out-from-flag"
    assert shown["alert"]["overrides"] == {"core-*": 0.9}
    assert shown["log"]["level"] == "WARNING"


@pytest.mark.parametrize(("content", "fragment"), [
    ("DETECTOR_KAFKA_GROUPID=x\n", "DETECTOR_KAFKA_GROUPID: unknown setting"),
    ("DETECTOR_ALERT_OVERRIDES={not json\n", "DETECTOR_ALERT_OVERRIDES: not valid JSON"),
    ("DETECTOR_ALERT_THRESHOLD=high\n", "DETECTOR_ALERT_THRESHOLD"),
    (None, "no such file"),
])
def test_bad_env_file_exits_2_naming_the_file_or_the_variable(
        clean_env, capsys, tmp_path: Path, content: str | None, fragment: str) -> None:
    env_file = tmp_path / "bad.env"
    if content is not None:
        env_file.write_text(content)
    assert main(["run", "--env-file", str(env_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    if content is None or "unknown" in fragment:
        assert str(env_file) in err[0]


@pytest.mark.parametrize(("name", "given", "stored"), [
    ("DETECTOR_LOG_LEVEL", "debug", "DEBUG"),
    ("DETECTOR_LOG_FORMAT", "JSON", "json"),
    ("DETECTOR_KAFKA_AUTO_OFFSET_RESET", "Latest", "latest"),
    ("DETECTOR_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", "SASL_SSL"),
    ("DETECTOR_KAFKA_SASL_MECHANISM", "scram-sha-512", "SCRAM-SHA-512"),
])
def test_enumerated_values_are_accepted_in_any_case(clean_env, name: str, given: str,
                                                    stored: str) -> None:
    clean_env.setenv("DETECTOR_KAFKA_SASL_MECHANISM", "PLAIN")
    clean_env.setenv("DETECTOR_KAFKA_SASL_USERNAME", "u")
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD", "p")
    clean_env.setenv(name, given)
    section, field = name.removeprefix("DETECTOR_").lower().split("_", 1)
    assert getattr(getattr(load_settings(), section), field) == stored


@pytest.mark.parametrize(("servers", "fragment"), [
    ("nohostport", "'nohostport' has no port"),
    ("localhost:99999", "'localhost:99999' has a port outside 1-65535"),
    ("localhost:0", "port outside 1-65535"),
    ("kafka:nine", "port outside 1-65535"),
    (":9092", "has no host"),
    ("::1:9092", "IPv6 host without brackets (write [::1]:9092)"),
    ("bad host:9092", "invalid host 'bad host'"),
    ("k1:9092,k2", "'k2' has no port"),
])
def test_malformed_bootstrap_list_is_a_settings_error_naming_the_entry(
        clean_env, servers: str, fragment: str) -> None:
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", servers)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith("DETECTOR_KAFKA_BOOTSTRAP_SERVERS: ") and \
        fragment in str(err.value)


@pytest.mark.parametrize("servers", ["localhost:9092", "[::1]:9092", "10.0.0.7:9093",
                                     " kafka-0.kafka.svc:9092 , kafka_1:19092 ", ""])
def test_well_formed_bootstrap_lists_are_accepted(clean_env, servers: str) -> None:
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", servers)
    assert load_settings().kafka.bootstrap_servers == servers


def test_config_check_reports_a_missing_broker_within_seconds(clean_env, free_port) -> None:
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port}"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "detector", "config", "--check"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"detector: configuration error: DETECTOR_KAFKA_BOOTSTRAP_SERVERS: no broker answered "
        f"at '127.0.0.1:{free_port}' within 3 s"]
    assert json.loads(proc.stdout)["kafka"]["bootstrap_servers"] == f"127.0.0.1:{free_port}"
    # DETECTOR_KAFKA_CONNECT_TIMEOUT_MS is 30 s by default: the check does not wait for it.
    assert elapsed < 15, elapsed


def test_config_check_rejects_a_malformed_bootstrap_list_at_once(clean_env, capsys) -> None:
    assert main(["config", "--check", "--bootstrap-server", "localhost:99999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "detector: configuration error: --bootstrap-server (DETECTOR_KAFKA_BOOTSTRAP_SERVERS)")


def test_config_without_a_flag_prints_its_usage_and_exits_2(clean_env, capsys) -> None:
    assert main(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: detector config")
    assert "--example" in captured.err and "--check" in captured.err
