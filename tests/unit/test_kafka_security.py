"""TLS and SASL settings: the exact kafka-python options, secrets from files, never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from detector.cli import main
from detector.kafka_clients import client_config
from detector.settings import KafkaSettings
from detector.settings_docs import settings_summary
from detector.settings_env import load_settings
from tests.conftest import REPO

SECRET = "s3cr3t-from-the-vault"
KEY_SECRET = "key-pass-from-the-vault"
SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                 "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
                 "ssl_password")


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Readable stand-ins for the CA, certificate and key (client_config does not parse them)."""
    files = {}
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(tmp_path / name)
    return files


def security_options(k: KafkaSettings) -> dict[str, object]:
    config = client_config(k)
    return {key: config[key] for key in SECURITY_KEYS if key in config}


def test_client_config_for_plaintext_passes_no_sasl_or_ssl_options() -> None:
    assert security_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}


def test_client_config_for_ssl_passes_the_ca_and_the_client_certificate(pem_files) -> None:
    k = KafkaSettings(security_protocol="SSL", ssl_cafile=pem_files["ca.crt"],
                      ssl_certfile=pem_files["client.crt"],
                      ssl_keyfile=pem_files["client.key"], ssl_password=KEY_SECRET)
    assert security_options(k) == {
        "security_protocol": "SSL", "ssl_cafile": pem_files["ca.crt"],
        "ssl_certfile": pem_files["client.crt"], "ssl_keyfile": pem_files["client.key"],
        "ssl_password": KEY_SECRET}


def test_client_config_for_ssl_without_files_verifies_against_the_system_cas() -> None:
    assert security_options(KafkaSettings(security_protocol="SSL")) == {
        "security_protocol": "SSL", "ssl_cafile": None, "ssl_certfile": None,
        "ssl_keyfile": None, "ssl_password": None}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_client_config_for_sasl_plaintext_passes_the_mechanism_and_credentials(
        mechanism: str) -> None:
    k = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                      sasl_username="detector", sasl_password=SECRET)
    assert security_options(k) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
        "sasl_plain_username": "detector", "sasl_plain_password": SECRET}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_client_config_for_sasl_ssl_passes_credentials_and_the_ca(mechanism: str,
                                                                  pem_files) -> None:
    k = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism=mechanism,
                      sasl_username="detector", sasl_password=SECRET,
                      ssl_cafile=pem_files["ca.crt"])
    assert security_options(k) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
        "sasl_plain_username": "detector", "sasl_plain_password": SECRET,
        "ssl_cafile": pem_files["ca.crt"], "ssl_certfile": None, "ssl_keyfile": None,
        "ssl_password": None}


@pytest.mark.parametrize("client", [KafkaConsumer, KafkaProducer, KafkaAdminClient])
def test_client_config_names_only_options_the_kafka_client_knows(client, pem_files) -> None:
    k = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="detector", sasl_password=SECRET,
                      ssl_cafile=pem_files["ca.crt"], ssl_certfile=pem_files["client.crt"],
                      ssl_keyfile=pem_files["client.key"], ssl_password=KEY_SECRET)
    assert set(client_config(k)) <= set(client.DEFAULT_CONFIG)


def test_password_files_fill_the_passwords_without_the_trailing_newline(
        clean_env, tmp_path: Path) -> None:
    (tmp_path / "sasl").write_text(SECRET + "\n")
    (tmp_path / "key").write_text(KEY_SECRET)
    clean_env.setenv("DETECTOR_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("DETECTOR_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    clean_env.setenv("DETECTOR_KAFKA_SASL_USERNAME", "detector")
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "sasl"))
    clean_env.setenv("DETECTOR_KAFKA_SSL_PASSWORD_FILE", str(tmp_path / "key"))
    k = load_settings().kafka
    assert k.sasl_password.get_secret_value() == SECRET
    assert k.ssl_password.get_secret_value() == KEY_SECRET
    assert client_config(k)["sasl_plain_password"] == SECRET


@pytest.mark.parametrize("name", ["DETECTOR_KAFKA_SASL_PASSWORD_FILE",
                                  "DETECTOR_KAFKA_SSL_PASSWORD_FILE"])
@pytest.mark.parametrize("where", ["missing", "directory"])
def test_unreadable_secret_file_exits_2_with_one_line_naming_the_variable(
        clean_env, capsys, tmp_path: Path, name: str, where: str) -> None:
    clean_env.setenv(name, str(tmp_path / "absent" if where == "missing" else tmp_path))
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"detector: configuration error: {name}: "), err


@pytest.mark.parametrize("name", ["DETECTOR_KAFKA_SSL_CAFILE", "DETECTOR_KAFKA_SSL_CERTFILE"])
def test_missing_tls_file_exits_2_naming_the_variable(clean_env, capsys, tmp_path: Path,
                                                      name: str) -> None:
    clean_env.setenv(name, str(tmp_path / "absent.pem"))
    assert main(["run"]) == 2
    assert f"{name}: " in capsys.readouterr().err


def test_client_key_without_its_certificate_exits_2(clean_env, capsys, pem_files) -> None:
    clean_env.setenv("DETECTOR_KAFKA_SSL_KEYFILE", pem_files["client.key"])
    assert main(["run"]) == 2
    assert "DETECTOR_KAFKA_SSL_CERTFILE: " in capsys.readouterr().err


@pytest.mark.parametrize(("missing", "env"), [
    ("DETECTOR_KAFKA_SASL_USERNAME", {"DETECTOR_KAFKA_SASL_PASSWORD": SECRET}),
    ("DETECTOR_KAFKA_SASL_PASSWORD", {"DETECTOR_KAFKA_SASL_USERNAME": "detector"}),
])
def test_sasl_without_username_or_password_exits_2_naming_it(clean_env, capsys, missing: str,
                                                              env: dict[str, str]) -> None:
    clean_env.setenv("DETECTOR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("DETECTOR_KAFKA_SASL_MECHANISM", "PLAIN")
    for k, v in env.items():
        clean_env.setenv(k, v)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: " in err and SECRET not in err


def test_password_and_password_file_together_exit_2(clean_env, capsys, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET)
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD", "another")
    clean_env.setenv("DETECTOR_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "pw"))
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "DETECTOR_KAFKA_SASL_PASSWORD_FILE: " in err and SECRET not in err


def sasl_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sasl").write_text(SECRET)
    (tmp_path / "key").write_text(KEY_SECRET)
    return {"DETECTOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "DETECTOR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DETECTOR_KAFKA_SASL_USERNAME": "detector",
            "DETECTOR_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sasl"),
            "DETECTOR_KAFKA_SSL_PASSWORD_FILE": str(tmp_path / "key")}


def test_secrets_never_appear_in_repr_str_or_summary_of_the_settings(clean_env,
                                                                     tmp_path: Path) -> None:
    for k, v in sasl_env(tmp_path).items():
        clean_env.setenv(k, v)
    settings = load_settings()
    assert settings.kafka.sasl_password.get_secret_value() == SECRET
    for shown in (repr(settings), str(settings), repr(settings.kafka), str(settings.kafka),
                  str(settings_summary(settings))):
        assert SECRET not in shown and KEY_SECRET not in shown


def test_config_check_masks_secrets_read_from_files(clean_env, capsys, tmp_path: Path) -> None:
    for k, v in sasl_env(tmp_path).items():
        clean_env.setenv(k, v)
    assert main(["config", "--check"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and KEY_SECRET not in out
    assert '"sasl_password": "**********"' in out and str(tmp_path / "sasl") in out


def test_run_logs_never_show_secrets_even_at_debug_level(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
           "DETECTOR_KAFKA_CONNECT_TIMEOUT_MS": "500", "DETECTOR_LOG_LEVEL": "DEBUG",
           "DETECTOR_LOG_FORMAT": "json", "DETECTOR_SERVICE_METRICS_PORT": "0",
           **sasl_env(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "detector", "run"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    logged = proc.stdout + proc.stderr
    assert proc.returncode == 2 and '"event": "settings"' in logged, logged
    assert SECRET not in logged and KEY_SECRET not in logged


@pytest.mark.parametrize("refusal", ["SaslAuthenticationFailedError",
                                     "TopicAuthorizationFailedError"])
def test_a_refused_login_or_permission_exits_2_naming_the_credentials(
        clean_env, capsys, monkeypatch, tmp_path: Path, refusal: str) -> None:
    # Apache Kafka answers a wrong password with SaslAuthenticationFailed (error 58), which
    # kafka-python raises from the client constructor; the test broker cannot require SASL.
    import kafka.errors

    import detector.kafka_clients as clients

    def refuse(**_: object) -> None:
        raise getattr(kafka.errors, refusal)("refused")

    for name, value in sasl_env(tmp_path).items():
        clean_env.setenv(name, value)
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    clean_env.setenv("DETECTOR_SERVICE_METRICS_PORT", "0")
    monkeypatch.setattr(clients, "KafkaProducer", refuse)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err.strip().splitlines()[-1].startswith(
        "detector: configuration error: DETECTOR_KAFKA_SASL_USERNAME"), err
