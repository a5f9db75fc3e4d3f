"""A stop signal during start-up (while settings and torch are still being imported) stops the
daemon cleanly: exit code 0, never the signal's default action."""

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
        time.sleep(after_s)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-2000:]
