"""A stop signal during start-up (while settings and torch are still being imported) stops the
daemon cleanly: exit code 0, never the signal's default action.

Nothing can catch a signal before the interpreter has started and run the entry point's first
lines, which takes a variable time on a loaded machine; the signal is sent `after_s` after the
process shows (in /proc) that it catches SIGTERM, while the heavy imports are still ahead."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.kafka_tools import REPO, daemon_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("signum", "after_s"), [(signal.SIGTERM, 0.1), (signal.SIGTERM, 1.0),
                                                 (signal.SIGINT, 0.5)])
def test_a_stop_signal_during_start_up_exits_zero(bootstrap_servers: str, unique_name: str,
                                                  tmp_path: Path, after_s: float,
                                                  signum: int) -> None:
    env = daemon_env(bootstrap_servers, unique_name, f"{unique_name}-alerts", unique_name)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "detector", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        wait_until_it_catches_sigterm(proc)
        time.sleep(after_s)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-2000:]


def wait_until_it_catches_sigterm(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Until the process's caught-signals mask (SigCgt in /proc/PID/status) has SIGTERM, which
    must happen before torch is loaded (its libraries in /proc/PID/maps)."""
    status = Path(f"/proc/{proc.pid}/status")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        if int(fields["SigCgt"], 16) >> (signal.SIGTERM - 1) & 1:
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert "libtorch" not in maps, "SIGTERM is caught only once torch is loaded"
            return
        assert proc.poll() is None, "the daemon exited before it caught signals"
        time.sleep(0.005)
    raise AssertionError("the daemon did not install its SIGTERM handler within "
                         f"{timeout_s} s")
