"""Logging: structlog and the standard library's records (kafka-python's) alike, one JSON
object per line with `severity`, on the stream the command writes its logs to."""

from __future__ import annotations

import logging

import orjson
import pytest
import structlog

from detector.alerts import Alert, alert_log_fields
from detector.logs import configure_logging
from detector.records import Coordinates


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    structlog.reset_defaults()
    logging.getLogger("kafka").setLevel(logging.NOTSET)


def lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_json_mode_renders_ours_and_kafka_pythons_lines_alike_on_stdout(capsys) -> None:
    configure_logging("INFO", "json", stream="stdout")
    structlog.get_logger("detector.test").info("progress", events=3)
    logging.getLogger("kafka.coordinator").warning("Heartbeat failed: %s", "coordinator gone")
    logging.getLogger("kafka.conn").info("connecting to %s", "127.0.0.1:9092")  # below WARNING
    out, err = capsys.readouterr()
    assert err == ""
    ours, theirs = lines(out)
    assert ours["event"] == "progress" and ours["events"] == 3
    assert (ours["level"], ours["severity"], ours["logger"]) == ("info", "INFO", "detector.test")
    assert theirs["event"] == "Heartbeat failed: coordinator gone"
    assert (theirs["severity"], theirs["logger"]) == ("WARNING", "kafka.coordinator")
    assert ours["timestamp"].endswith("Z") and theirs["timestamp"].endswith("Z")


def test_kafka_level_setting_lets_its_info_lines_through(capsys) -> None:
    configure_logging("INFO", "json", kafka_level="INFO", stream="stdout")
    logging.getLogger("kafka.conn").info("connecting")
    assert lines(capsys.readouterr().out)[0]["severity"] == "INFO"


def test_level_filters_our_lines_and_other_libraries_stay_at_warning(capsys) -> None:
    configure_logging("WARNING", "json", stream="stdout")
    log = structlog.get_logger("detector.test")
    log.info("hidden")
    log.error("shown")
    logging.getLogger("urllib3").info("hidden too")
    assert [line["event"] for line in lines(capsys.readouterr().out)] == ["shown"]


def test_stderr_stream_keeps_stdout_for_results(capsys) -> None:
    configure_logging("INFO", "json", stream="stderr")
    structlog.get_logger("detector.test").warning("replay_row")
    out, err = capsys.readouterr()
    assert out == "" and lines(err)[0]["severity"] == "WARNING"


def test_an_exception_is_one_json_line_with_the_traceback(capsys) -> None:
    configure_logging("INFO", "json", stream="stdout")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("detector.test").exception("fatal")
        logging.getLogger("kafka.client").exception("theirs")
    ours, theirs = lines(capsys.readouterr().out)
    assert ours["severity"] == theirs["severity"] == "ERROR"
    assert "ValueError: boom" in ours["exception"] and "ValueError: boom" in theirs["exception"]


def test_configuring_twice_keeps_one_handler(capsys) -> None:
    configure_logging("INFO", "json", stream="stdout")
    configure_logging("INFO", "json", stream="stdout")
    structlog.get_logger("detector.test").info("once")
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_alert_log_fields_name_the_metric_that_contributed_most() -> None:
    alert = Alert.build(coords=Coordinates("metrics", 2, 18227), stream="edge-07/eth0",
                        ts=1.7e9, score=0.93, threshold=0.7, severity="critical", error=41.7,
                        expected={"bytes_in": 1.2e6, "packets_in": 1510.0, "flows": 41.0},
                        actual={"bytes_in": 1.1e6, "packets_in": 12100.0, "flows": float("nan")},
                        ranked=[("packets_in", 0.9), ("bytes_in", 0.1)], model_version="m")
    fields = alert_log_fields(alert)
    assert fields == {"stream": "edge-07/eth0", "score": 0.93, "severity": "critical",
                      "alert_id": alert.alert_id, "source": "metrics[2]@18227",
                      "top_metric": "packets_in", "share": 0.9, "expected": 1510.0,
                      "actual": 12100.0}
