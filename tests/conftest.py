"""Shared fixtures: the real broker for integration tests, started once per session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.sim.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker: KAFKA_TEST_BOOTSTRAP_SERVERS, or an embedded Tansu.

    A broker that cannot be started is an error, never a skip.
    """
    external = os.environ.get("KAFKA_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    log_path = tmp_path_factory.mktemp("broker") / "broker.log"
    broker = EmbeddedBroker(log_path=log_path).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def unique_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DETECTOR_* variables from the caller's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith("DETECTOR_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
